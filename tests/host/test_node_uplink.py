"""The node's uplink (citynode_fw/uplink.py) under the MicroPython Unix port against the real
Mosquitto: signed frames arrive verified and in order through radio and broker outages."""

import json
import sys
import threading
import time

import mp_program
from broker_fixtures import needs_mosquitto
from citynode.broker import LocalBroker
from citynode.keystore import Keystore
from citynode.paths import firmware_root
from citynode.verifier import Verifier
from citynode_protocol import topics
from citynode_protocol.decoder import Decoder
from citynode_protocol.frame import to_wire

sys.path.insert(0, str(firmware_root()))
from citynode_fw.uplink import BUNDLE_BYTES, BUNDLE_FILE, LINGER_BYTES  # noqa: E402

pytestmark = [needs_mosquitto]


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
        self.messages = []  # bytes of each frames message
        self.replies = []
        self.places = []  # (boot, 32-bit seq) of every frame verified
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
            self.messages.append(len(m.payload))
            for v in self.verifier.check(where[0], m.payload)[0]:
                self.places.append((v.boot, v.seq))
                for msg in self.decoder.feed(to_wire(v.raw)):
                    if msg.name == "climate":
                        self.temps.append(round(msg["temperature_c"] * 100))
                    else:
                        self.replies.append(msg["request_id"])

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


def test_a_lingering_node_sends_fewer_messages_and_still_every_frame_in_order(tmp_path):
    ks, key, radio = _setup(tmp_path)
    radio.write_text("up")
    with LocalBroker(tmp_path / "broker") as broker:
        col = Collector(broker.port, ks)
        node = start_node(node=7, key=key.hex(), boot=1, port=broker.port, ring=str(tmp_path / "ring"),
                          radio=str(radio), count=30, period_ms=20, seconds=10, until_sent=True, linger_ms=500,
                          page_size=2048)
        got = col.wait(30)
        out, err = node.communicate(timeout=30)
        col.close()
    assert node.returncode == 0, err
    assert got == [2000 + i for i in range(30)]
    # 30 frames of 34 bytes, under LINGER_BYTES: each message waits for the oldest frame's 500 ms;
    # the 600 ms of frames fit in at most three (without lingering, about one message per frame)
    assert 1 <= len(col.messages) <= 3, col.messages
    st = json.loads(out.strip().splitlines()[-1])
    assert st["pending"] == 0 and st["acked"] == len(col.messages) + 1  # and "online"


def test_a_lingering_node_sends_once_its_bundle_is_full(tmp_path):
    ks, key, radio = _setup(tmp_path)
    radio.write_text("up")
    with LocalBroker(tmp_path / "broker") as broker:
        col = Collector(broker.port, ks)
        node = start_node(node=7, key=key.hex(), boot=1, port=broker.port, ring=str(tmp_path / "ring"),
                          radio=str(radio), count=200, period_ms=5, seconds=4, linger_ms=600000, page_size=2048)
        out, err = node.communicate(timeout=30)
        time.sleep(0.3)
        col.close()
    assert node.returncode == 0, err
    st = json.loads(out.strip().splitlines()[-1])
    assert st["made"] == 200 and st["bundles"] == 1 and len(col.messages) == 1, (st, col.messages)
    # the bundle closed when the next record did not fit: one signed frame of about BUNDLE_BYTES
    assert LINGER_BYTES <= col.messages[0] <= BUNDLE_BYTES + 40, col.messages
    n = len(col.temps)
    assert 100 < n < 200 and col.temps == [2000 + i for i in range(n)]
    assert col.places == [(1, i) for i in range(n)]
    assert col.messages[0] * 3 < n * 34  # each reading alone would be a 34-byte signed frame
    assert st["pending"] == 0  # the rest is in the open bundle, waiting out its linger (10 minutes)


def test_a_bundle_saved_open_survives_a_kill_and_is_sent_once_after_the_reboot(tmp_path):
    ks, key, radio = _setup(tmp_path)  # the radio is down: nothing leaves before the kill
    ring = tmp_path / "ring"
    saved = ring / BUNDLE_FILE
    node = start_node(node=7, key=key.hex(), boot=3, port=9, ring=str(ring), radio=str(radio), count=10,
                      period_ms=20, seconds=30, linger_ms=600000, flush_after_ms=300)
    end = time.monotonic() + 15
    while time.monotonic() < end and not saved.exists():
        time.sleep(0.05)
    time.sleep(0.5)
    node.kill()  # a power cut: no close(), the open bundle only on flash
    node.wait()
    assert saved.exists()
    radio.write_text("up")
    with LocalBroker(tmp_path / "broker") as broker:
        col = Collector(broker.port, ks)
        again = start_node(node=7, key=key.hex(), boot=4, port=broker.port, ring=str(ring), radio=str(radio),
                           count=3, period_ms=20, seconds=20, until_sent=True)
        col.wait(13)
        out, err = again.communicate(timeout=30)
        time.sleep(0.3)
        col.close()
    assert again.returncode == 0, err
    # the ten readings of boot 3 with their seqs, once, before boot 4's
    assert col.places == [(3, i) for i in range(10)] + [(4, i) for i in range(3)], col.places
    assert col.temps == [2000 + i for i in range(10)] + [2000 + i for i in range(3)]
    assert col.verifier.total_rejected() == 0
    assert not saved.exists()  # acked: it is not sent again after another reboot


def test_a_reply_ends_the_linger(tmp_path):
    ks, key, radio = _setup(tmp_path)
    radio.write_text("up")
    with LocalBroker(tmp_path / "broker") as broker:
        col = Collector(broker.port, ks)
        node = start_node(node=7, key=key.hex(), boot=1, port=broker.port, ring=str(tmp_path / "ring"),
                          radio=str(radio), count=5, period_ms=20, seconds=10, until_sent=True, linger_ms=600000,
                          page_size=2048, reply_at=4)
        got = col.wait(4)
        out, err = node.communicate(timeout=30)
        time.sleep(0.2)
        col.close()
    assert node.returncode == 0, err
    st = json.loads(out.strip().splitlines()[-1])
    # readings that would wait 10 minutes go with the answer someone is waiting for
    assert got == [2000 + i for i in range(4)] and col.replies == [4]
    assert st["pending"] == 0
