"""Issue 11 end to end: a virtual node with the app sends its frames over its (simulated)
Wi-Fi to the real Mosquitto; `citynode listen -o` verifies and records them, `citynode
decode` reads the capture: values as the scenario says, times in UTC."""

import csv
import json
import os
import subprocess
import sys
import time
from pathlib import Path

import pytest

from citynode import cli
from broker_fixtures import needs_mosquitto
from citynode.broker import LocalBroker
from citynode.demo import NODE_HEAP, provision
from citynode.keystore import Keystore
from citynode.serial_link import NodeClient
from vnode_fixtures import virtual_node

REPO = Path(__file__).resolve().parents[2]
ENV = dict(os.environ, PYTHONPATH=os.pathsep.join([str(REPO / "host"), str(REPO / "protocol")]))
pytestmark = [needs_mosquitto]
# bench/soak_uplink.py raises these: 60 s and 10-minute outages, 100 power cuts
OUTAGE_S = float(os.environ.get("CITYNODE_OUTAGE_S", "8"))
KILLS = int(os.environ.get("CITYNODE_KILLS", "12"))
RING_KB = int(os.environ.get("CITYNODE_RING_KB", "256"))  # the default; the 10-minute soak needs more
TEMP_C, RH_PCT = 17.3, 61.0
SCENARIO = {"temperature_c": TEMP_C, "relative_humidity_pct": RH_PCT, "seed": 5,
            "wifi": {"up": True, "rssi": -58, "ssids": ["city-iot"], "password": "pw-lamp-7"}}


def _rows(path):
    with open(path, newline="") as f:
        return list(csv.DictReader(f))


def _listen(broker, keystore, capture, seconds):
    return subprocess.Popen([sys.executable, "-m", "citynode", "listen", "--broker", broker.url, "--keystore",
                             str(keystore), "-o", str(capture), "--duration", str(seconds), "--json"],
                            env=ENV, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)


@pytest.mark.timeout(180)
def test_a_virtual_node_streams_signed_frames_over_mqtt_to_listen_and_decode(tmp_path, capsys):
    ks_path = tmp_path / "keys.json"
    key = Keystore(ks_path).new_key(7)
    capture = tmp_path / "net.bin"
    with LocalBroker(tmp_path / "broker") as broker, virtual_node(
            tmp_path, scenario=SCENARIO, with_app=True, heap=NODE_HEAP) as node:
        provision(node, {"node_id": 7, "climate_period_s": 2, "status_period_s": 5, "uplink": "wifi",
                         "wifi_ssid": "city-iot", "wifi_password": "pw-lamp-7", "broker_url": broker.url,
                         "node_key": key.hex(), "accel_block_samples": 250})
        listener = _listen(broker, ks_path, capture, 12)
        time.sleep(1.0)
        with NodeClient(node.port) as client:  # a USB session sets the node's clock: TIME goes out by MQTT too
            info = client.command("info")
        out, err = listener.communicate(timeout=60)
        with NodeClient(node.port) as client:
            after = client.command("info")
    assert listener.returncode == 0, err
    summary = json.loads(out)
    assert summary["frames_rejected"] == 0 and summary["frames_accepted"] > 10, summary
    assert summary["status"] == {"7": "online"}
    up = after["uplink"]
    assert up["network"] == "joined" and up["broker"] == "up" and up["rssi"] == -58, up
    assert up["acked"] >= 1 and up["dropped_accel"] == 0 and up["dropped_other"] == 0
    assert "key" not in json.dumps(info["config"]["node_key"]) and info["config"]["node_key"] == "***"

    tables = tmp_path / "tables"
    assert cli.main(["decode", str(capture), "--out-dir", str(tables), "--format", "csv"]) == 0
    capsys.readouterr()
    climate = _rows(tables / "climate.csv")
    assert len(climate) >= 3
    for row in climate:
        assert abs(float(row["temperature_c"]) - TEMP_C) <= 0.05
        assert abs(float(row["relative_humidity_pct"]) - RH_PCT) <= 0.12
    timed = [r for r in climate if r["time"]]  # after the USB session set the clock: UTC
    assert timed and all(r["time"].endswith("Z") and r["time"][:4] >= "2026" for r in timed)
    assert len(_rows(tables / "accel.csv")) >= 250
    # over the network a TIME goes when the node learns the time (the USB session), not with
    # every status (SPEC §6 time)
    statuses = _rows(tables / "status.csv")
    times = _rows(tables / "time.csv") if (tables / "time.csv").exists() else []
    assert len(statuses) >= 2 and len(times) == 1, (len(statuses), times)


@pytest.mark.timeout(120)
def test_a_node_whose_network_is_out_of_reach_keeps_sampling_and_says_why(tmp_path):
    scenario = dict(SCENARIO, wifi={"up": True, "ssids": ["another-net"]})
    key = Keystore(tmp_path / "keys.json").new_key(7)
    with virtual_node(tmp_path, scenario=scenario, with_app=True, heap=NODE_HEAP) as node:
        provision(node, {"uplink": "wifi", "wifi_ssid": "city-iot", "wifi_password": "pw",
                         "broker_url": "mqtt://127.0.0.1:9", "node_key": key.hex(), "climate_period_s": 2})
        time.sleep(3.0)
        with NodeClient(node.port) as client:
            info = client.command("info")
            status = client.command("status")
    up = info["uplink"]
    assert up["network"] != "joined" and up["network_error"] == "no AP found", up
    # `info` is one REPLY (link.MAX_REPLY, 1800 B of JSON); counters and error words grow in the
    # field (a 10-minute outage soak once got "reply too long"): keep room for them
    size = len(json.dumps(info, separators=(",", ":")))
    assert size <= 1800 - 100, "info is %d B of JSON: near the 1800 B a reply holds" % size
    assert up["frames_signed"] > 0 and up["pending_bytes"] > 0  # still sampling, into the ring
    assert status["flags"] & 0x10  # STATUS_UPLINK_DOWN


@pytest.mark.timeout(120)
def test_an_uplink_missing_its_settings_is_an_error_the_node_reports(tmp_path):
    with virtual_node(tmp_path, scenario=SCENARIO, with_app=True, heap=NODE_HEAP) as node:
        provision(node, {"uplink": "wifi", "wifi_ssid": "city-iot"})
        with NodeClient(node.port) as client:
            info = client.command("info")
    assert info["uplink"] == {"error": "uplink=wifi but broker_url, node_key not set"}
    assert any("broker_url" in e for e in info["last_errors"])


class Collector:
    """paho on node 7's frames, every frame verified; keeps (boot, seq32) and the accel blocks."""

    def __init__(self, port, keystore_path):
        import threading

        import paho.mqtt.client as paho

        from citynode.verifier import Verifier
        from citynode_protocol import auth, topics

        self.auth = auth
        self.verifier = Verifier(Keystore(keystore_path))
        self.seen = []  # (boot, seq32) of every frame, repeats included
        self.kept = {}  # (boot, seq32): (message name, its fields) of the LOG and CLIMATE frames
        self.blocks = []  # (first_index, n_samples, flags) of every accel block, once
        self.bad = 0  # pieces that are no frame
        self.lock = threading.Lock()
        ready = threading.Event()
        self.client = paho.Client(paho.CallbackAPIVersion.VERSION2, client_id="outage-collector", clean_session=False)
        self.client.on_message = self._message
        self.client.on_subscribe = lambda *a: ready.set()
        self.client.reconnect_delay_set(0.1, 0.5)
        self.client.connect("127.0.0.1", port)
        self.client.subscribe(topics.topic(7, "frames"), 1)
        self.client.loop_start()
        assert ready.wait(5)

    def _message(self, _c, _u, m):
        from citynode_protocol import cobs, frame
        from citynode_protocol.decoder import Decoder

        with self.lock:
            for piece in bytes(m.payload).split(b"\x00"):
                if not piece:
                    continue
                try:
                    raw = cobs.decode(piece)
                    frame.parse(raw)
                    boot, seq_hi, _mac = self.auth.trailer(raw)
                except ValueError:
                    self.bad += 1  # the verifier counts it by reason below
                    continue
                seq = raw[3] | raw[4] << 8
                self.seen.append(self.auth.sequence(boot, seq_hi, seq))
            for v in self.verifier.check(7, m.payload)[0]:
                for msg in Decoder().feed(frame.to_wire(v.raw)):
                    if msg.name == "accel":
                        self.blocks.append((msg["first_index"], msg["n_samples"], msg["flags"]))
                    elif msg.name in ("log", "climate"):
                        self.kept[(v.boot, v.seq)] = (msg.name, dict(msg.fields))

    def close(self):
        self.client.loop_stop()
        self.client.disconnect()


def _wait_drained(node, timeout=60):
    end = time.monotonic() + timeout
    while time.monotonic() < end:
        with NodeClient(node.port) as client:
            info = client.command("info")
        up = info["uplink"]
        if up["broker"] == "up" and up["pending_bytes"] == 0:
            return info
        time.sleep(1.0)
    raise AssertionError("the ring did not drain: %s" % up)


@pytest.mark.timeout(int(150 + 4 * OUTAGE_S))
def test_broker_and_wifi_outages_lose_nothing_keep_order_and_never_overflow_the_fifo(tmp_path):
    ks_path = tmp_path / "keys.json"
    key = Keystore(ks_path).new_key(7)
    outage_s = OUTAGE_S
    with LocalBroker(tmp_path / "broker") as broker, virtual_node(
            tmp_path, scenario=SCENARIO, with_app=True, heap=NODE_HEAP) as node:
        provision(node, {"node_id": 7, "uplink": "wifi", "wifi_ssid": "city-iot", "wifi_password": "pw-lamp-7",
                         "broker_url": broker.url, "node_key": key.hex(), "climate_period_s": 2,
                         "ring_kb": RING_KB})
        col = Collector(broker.port, ks_path)
        time.sleep(3.0)
        broker.stop()  # the broker goes away while the node streams
        time.sleep(outage_s)
        broker.start()
        time.sleep(3.0)
        node.set_scenario(wifi=dict(SCENARIO["wifi"], up=False))  # then the network
        time.sleep(outage_s)
        node.set_scenario(wifi=SCENARIO["wifi"])
        # after a long cut the node tries to join again at most uplink.RETRY_MAX_MS (5 min) later
        info = _wait_drained(node, timeout=60 + min(outage_s, 300))
        time.sleep(1.0)
        col.close()
    up = info["uplink"]
    assert up["dropped_accel"] == 0 and up["dropped_other"] == 0 and up["corrupt"] == 0
    unique = sorted(set(col.seen))
    boots = {b for b, _s in unique}
    assert len(boots) == 1, boots
    seqs = [s for _b, s in unique]
    assert seqs == list(range(seqs[0], seqs[0] + len(seqs))), "frames lost in the outages"
    assert col.verifier.rejected["replay"] == len(col.seen) - len(unique)  # resends: recognised, dropped
    blocks = sorted(col.blocks)
    assert len(blocks) >= 2 * outage_s
    assert info["counters"]["fifo_overruns"] == 0  # reconnecting never held the sampler up
    for (first, n, _f), (nxt, _n, flags) in zip(blocks, blocks[1:]):
        assert nxt == first + n and not flags & 0x04, "a gap in the samples"


@pytest.mark.timeout(int(150 + 6 * KILLS))
def test_power_cuts_while_the_ring_fills_and_drains_send_nothing_corrupt_and_nothing_twice(tmp_path):
    """SIGKILL at random moments (KILLS of them; bench/soak_uplink.py runs 100): the first
    half with the broker away (the ring fills), the rest while it drains."""
    import random

    kills = KILLS
    rnd = random.Random(11)
    ks_path = tmp_path / "keys.json"
    key = Keystore(ks_path).new_key(7)
    with LocalBroker(tmp_path / "broker") as broker, virtual_node(
            tmp_path, scenario=SCENARIO, with_app=True, heap=NODE_HEAP) as node:
        provision(node, {"node_id": 7, "uplink": "wifi", "wifi_ssid": "city-iot", "wifi_password": "pw-lamp-7",
                         "broker_url": broker.url, "node_key": key.hex(), "climate_period_s": 2})
        col = Collector(broker.port, ks_path)
        broker.stop()
        for i in range(kills):
            if i == kills // 2:
                broker.start()
            time.sleep(rnd.uniform(0.3, 2.5))
            before = node.power_cut()
            node.wait_boots(before + 1, 20)
        info = _wait_drained(node, timeout=90)
        time.sleep(1.0)
        col.close()
    v = col.verifier
    assert col.bad == 0 and v.rejected["bad_mac"] == v.rejected["malformed"] == v.rejected["unsigned"] == 0
    assert info["uplink"]["corrupt"] == 0
    by_boot = {}
    for boot, seq in set(col.seen):
        by_boot.setdefault(boot, []).append(seq)
    assert info["uplink"]["boot"] >= kills + 1  # every boot counted on flash (a cut boot may send nothing)
    assert len(by_boot) >= kills // 4, sorted(by_boot)
    for boot, seqs in by_boot.items():
        seqs.sort()
        # what reached the ring arrives whole: a cut may lose the page in RAM (the tail), never a frame inside
        assert seqs == list(range(seqs[0], seqs[-1] + 1)), (boot, seqs[:5], len(seqs))
    assert v.accepted == len(set(col.seen))  # each frame taken once; repeats were recognised as replays


def _wait_boot_frames(col, boot, n, timeout=30):
    """Wait until the collector holds n frames of boot; return the boots seen."""
    end = time.monotonic() + timeout
    while time.monotonic() < end:
        with col.lock:
            seen = set(col.seen)
        if len([1 for b, _s in seen if b == boot]) >= n:
            return {b for b, _s in seen}
        time.sleep(0.2)
    raise AssertionError("fewer than %d frames of boot %d reached the broker: %s" % (n, boot, sorted(seen)[:20]))


@pytest.mark.timeout(150)
def test_every_boot_reaches_the_network_whole_from_its_boot_log_at_seq_0(tmp_path):
    """The frames a node makes before its uplink connects (the boot log first) are signed into
    the ring like every other: after a reboot and after a cold boot (power cut), the network
    has each boot's sequence from 0, with no gap, the same frames as USB; the bridge node's
    first SHT35 reading of each boot is good."""
    ks_path = tmp_path / "keys.json"
    key = Keystore(ks_path).new_key(7)
    with LocalBroker(tmp_path / "broker") as broker, virtual_node(
            tmp_path, scenario=SCENARIO, with_app=True, heap=NODE_HEAP) as node:
        col = Collector(broker.port, ks_path)
        provision(node, {"node_id": 7, "uplink": "wifi", "wifi_ssid": "city-iot", "wifi_password": "pw-lamp-7",
                         "broker_url": broker.url, "node_key": key.hex(), "climate_period_s": 2,
                         "status_period_s": 5})  # ends in a reboot: boot 1 of the uplink
        _wait_boot_frames(col, 1, 20)
        before = node.power_cut()  # a cold boot: boot 2
        node.wait_boots(before + 1, 20)
        _wait_boot_frames(col, 2, 20)
        with NodeClient(node.port) as client:  # a reboot by command: boot 3
            client.command("reboot")
        node.wait_boots(before + 2, 20)
        _wait_boot_frames(col, 3, 20)
        time.sleep(0.5)
        col.close()
    by_boot = {}
    for boot, seq in set(col.seen):
        by_boot.setdefault(boot, []).append(seq)
    assert sorted(by_boot) == [1, 2, 3], sorted(by_boot)
    for boot, seqs in sorted(by_boot.items()):
        seqs.sort()
        # a power cut may lose the tail of boot 1 (its RAM page), never a frame before it
        assert seqs == list(range(len(seqs))), (boot, seqs[:10])
        name, fields = col.kept[(boot, 0)]
        assert name == "log" and fields["text"].startswith("boot: citynode"), (boot, name, fields)
        climate = sorted((s, f) for (b, s), (n, f) in col.kept.items() if b == boot and n == "climate")
        assert climate, boot
        assert climate[0][1]["status"] == 0, (boot, climate[0])  # no "no ACK" at boot
        assert abs(climate[0][1]["temperature_c"] - TEMP_C) <= 0.05


@pytest.mark.timeout(180)
def test_a_lingering_climate_node_sends_bundles_that_listen_and_decode_give_back_whole(tmp_path, capsys):
    from citynode_protocol.decoder import Decoder

    ks_path = tmp_path / "keys.json"
    key = Keystore(ks_path).new_key(7)
    capture = tmp_path / "net.bin"
    with LocalBroker(tmp_path / "broker") as broker, virtual_node(
            tmp_path, scenario=SCENARIO, with_app=True, heap=NODE_HEAP) as node:
        provision(node, {"node_id": 7, "climate_period_s": 2, "status_period_s": 5, "uplink": "wifi",
                         "accel_part": "none", "uplink_linger_s": 4, "wifi_ssid": "city-iot",
                         "wifi_password": "pw-lamp-7", "broker_url": broker.url, "node_key": key.hex()})
        listener = _listen(broker, ks_path, capture, 14)
        out, err = listener.communicate(timeout=60)
        with NodeClient(node.port) as client:
            up = client.command("info")["uplink"]
    assert listener.returncode == 0, err
    summary = json.loads(out)
    assert summary["frames_rejected"] == 0 and summary["frames_accepted"] >= 8, summary
    assert up["bundles"] >= 2 and up["dropped_other"] == 0, up
    dec = Decoder()
    messages = dec.feed(capture.read_bytes())
    seqs = [m.seq for m in messages]
    # every frame of the node, each with its own seq, none lost, none twice (listen expands the bundles)
    assert seqs == list(range(seqs[0], seqs[0] + len(seqs))) and dec.stats.nodes[7].lost == 0
    assert dec.stats.duplicates == 0 and dec.stats.unknown_type == 0
    tables = tmp_path / "tables"
    assert cli.main(["decode", str(capture), "--out-dir", str(tables), "--format", "csv"]) == 0
    capsys.readouterr()
    climate = _rows(tables / "climate.csv")
    assert len(climate) >= 4 and all(abs(float(r["temperature_c"]) - TEMP_C) <= 0.05 for r in climate)
    assert [int(r["seq"]) for r in climate] == [m.seq for m in messages if m.name == "climate"]
