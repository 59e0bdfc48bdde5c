"""The node's uplink (citynode_fw/uplink.py) under the MicroPython Unix port against the real
Mosquitto: signed frames arrive verified and in order through radio and broker outages."""

import json
import threading
import time

import pytest

import mp_program
from citynode.broker import LocalBroker, mosquitto_path
from citynode.keystore import Keystore
from citynode.verifier import Verifier
from citynode_protocol import topics
from citynode_protocol.decoder import Decoder
from citynode_protocol.frame import to_wire

pytestmark = [
    pytest.mark.skipif(mosquitto_path() is None, reason="mosquitto is not installed (`make install` installs it "
                       "as root; else apt-get install mosquitto mosquitto-clients)"),
]


def start_node(**opt):
    return mp_program.start("uplink_node.py", **opt)


class Collector:
    """paho on the frames and status topics of node 7, every frame through the Verifier."""

    def __init__(self, port, keystore):
        import paho.mqtt.client as paho

        self.verifier = Verifier(keystore)
        self.decoder = Decoder()
        self.temps = []
        self.status = []
        self.lock = threading.Lock()
        ready = threading.Event()
        self.client = paho.Client(paho.CallbackAPIVersion.VERSION2, client_id="collector", clean_session=False)
        self.client.on_message = self._message
        self.client.on_subscribe = lambda *a: ready.set()
        self.client.reconnect_delay_set(0.1, 0.5)
        self.client.connect("127.0.0.1", port)
        self.client.subscribe([(topics.topic(7, "frames"), 1), (topics.topic(7, "status"), 1)])
        self.client.loop_start()
        assert ready.wait(5)

    def _message(self, _c, _u, m):
        with self.lock:
            where = topics.parse(m.topic)
            if where[1] == "status":
                self.status.append(m.payload.decode())
                return
            for raw in self.verifier.feed(where[0], m.payload):
                for msg in self.decoder.feed(to_wire(raw)):
                    self.temps.append(round(msg["temperature_c"] * 100))

    def wait(self, n, timeout=30):
        end = time.monotonic() + timeout
        while time.monotonic() < end and len(self.temps) < n:
            time.sleep(0.05)
        return list(self.temps)

    def close(self):
        self.client.loop_stop()
        self.client.disconnect()


def _setup(tmp_path):
    ks = Keystore(tmp_path / "keys.json")
    key = ks.new_key(7)
    radio = tmp_path / "radio"
    radio.write_text("down")
    return ks, key, radio


def test_frames_made_offline_wait_in_the_ring_then_arrive_signed_in_order(tmp_path):
    ks, key, radio = _setup(tmp_path)
    with LocalBroker(tmp_path / "broker") as broker:
        col = Collector(broker.port, ks)
        node = start_node(node=7, key=key.hex(), boot=3, port=broker.port, ring=str(tmp_path / "ring"),
                          radio=str(radio), count=120, period_ms=10, seconds=25, until_sent=True)
        time.sleep(2.0)  # the node makes all its frames with no network: they go to flash
        assert col.temps == []
        radio.write_text("up")
        got = col.wait(120)
        out, err = node.communicate(timeout=30)
        col.close()
    assert node.returncode == 0, err
    st = json.loads(out.strip().splitlines()[-1])
    assert got == [2000 + i for i in range(120)]
    assert col.verifier.total_rejected() == 0 and col.verifier.accepted == 120
    assert col.status[0] == "online"
    assert st["made"] == 120 and st["segments"] == 0 and st["frames_signed"] == 120
    assert st["dropped_accel"] == 0 and st["dropped_other"] == 0


def test_a_broker_outage_loses_nothing_and_repeats_are_dropped_by_the_signature(tmp_path):
    ks, key, radio = _setup(tmp_path)
    radio.write_text("up")
    with LocalBroker(tmp_path / "broker") as broker:
        col = Collector(broker.port, ks)
        node = start_node(node=7, key=key.hex(), boot=1, port=broker.port, ring=str(tmp_path / "ring"),
                          radio=str(radio), count=300, period_ms=20, seconds=40, until_sent=True)
        col.wait(60)
        broker.restart(down_s=2.0)  # 100 frames are made while the broker is away
        got = col.wait(300, timeout=35)
        out, err = node.communicate(timeout=40)
        col.close()
    assert node.returncode == 0, err
    assert got == [2000 + i for i in range(300)]  # in order, none lost, none twice
    st = json.loads(out.strip().splitlines()[-1])
    assert st["made"] == 300 and st["acked"] >= 1
