"""The fleet simulator: its frames are a node's to the byte, on the node's schedule,
recorded exactly, with the injections where they were asked for, through a real Mosquitto."""

import ast
import json
import os
import re
import subprocess
import sys
import threading
import time
from collections import Counter
from pathlib import Path

import numpy as np
import pytest

import mp_program
from broker_fixtures import needs_mosquitto
from citynode.broker import LocalBroker
from citynode.fleet import fleet_sim
from citynode.fleet.fleet_sim import FleetSim, Record, SimNode
from citynode.fleet.sim_publish import ListPublisher
from citynode.keystore import Keystore
from citynode.verifier import Verifier
from citynode_protocol import auth, frame, payload, topics

REPO = Path(__file__).resolve().parents[2]
ENV = dict(os.environ, PYTHONPATH=os.pathsep.join([str(REPO / "host"), str(REPO / "protocol")]))
FIRMWARE = REPO / "firmware" / "citynode_fw"
NEEDS_MICROPYTHON = pytest.mark.skipif(not mp_program.MICROPYTHON.exists(), reason="no MicroPython Unix port in the venv "
                                       "(`make install` builds it)")
KEY = bytes(range(1, 33))
NODE = 4242
BOOT = 77
FIRST_SEQ = 0xFFFF - 30  # the 16-bit sequence wraps within the vectors: seq_hi counts it


def _assigned(path, name):
    for node in ast.parse(path.read_text()).body:
        if isinstance(node, ast.Assign) and any(getattr(t, "id", None) == name for t in node.targets):
            return ast.literal_eval(node.value)
    raise AssertionError("%s not in %s" % (name, path))


def _config_default(key):
    row = re.search(r'^    \("%s", "\w+", ([^,]+),' % key, (FIRMWARE / "config.py").read_text(), re.M)
    return ast.literal_eval(row.group(1))


def test_the_simulator_keeps_the_firmwares_numbers():
    assert fleet_sim.MAX_MESSAGE == _assigned(FIRMWARE / "uplink.py", "MAX_MESSAGE") <= 4096  # SPEC §10: 4 KiB
    assert fleet_sim.APP_VERSION == _assigned(FIRMWARE / "version.py", "VERSION")
    assert fleet_sim.CLIMATE_PERIOD_S == _config_default("climate_period_s")
    assert fleet_sim.STATUS_PERIOD_S == _config_default("status_period_s")
    assert fleet_sim.LINGER_MS == 1000 * _config_default("uplink_linger_s")
    assert fleet_sim.BUNDLE_BYTES == _assigned(FIRMWARE / "uplink.py", "BUNDLE_BYTES")
    assert fleet_sim.FEATURE_WINDOW_S == _config_default("feature_window_s")
    assert fleet_sim.BLOCK_SAMPLES == _config_default("accel_block_samples")


# -- byte-identical to the firmware ------------------------------------------------------


def _mp_version():
    out = subprocess.run([str(mp_program.MICROPYTHON), "-c", "import sys; print(tuple(sys.implementation.version[:3]))"],
                         capture_output=True, text=True, check=True).stdout
    return ast.literal_eval(out.strip())


def _bridge_frames():
    """A bridge node's first 31 s as the simulator makes them: log, climate, status,
    TIME from SNTP, 31 accel blocks, 3 feature windows, a status with its TIME."""
    node = SimNode(NODE, "bridge", auth.Signer(KEY), BOOT, phase_ms=0, utc0_ms=1796000000000, seed=5,
                   first_seq=FIRST_SEQ, calibration_id=0x1234, mpy=_mp_version())
    return node.run_until(31000)  # node time 32.2 s


def _wire_int(fields, name, scale):
    return payload._wire_int(fields[name], scale)


def _spec(sents, i):
    """What the firmware needs to make frame i (and how many Sent records it covers)."""
    s = sents[i]
    f = s.fields
    t = s.time_ms
    if s.name == "log":
        return {"kind": "log", "t": t, "level": f["level"], "text": f["text"]}, 1
    if s.name == "climate":
        return {"kind": "climate", "t": t, "temp": _wire_int(f, "temperature_c", 0.01),
                "rh": _wire_int(f, "relative_humidity_pct", 0.01), "status": f["status"]}, 1
    if s.name == "accel":
        samples = np.asarray(f["samples"], "<i2").tobytes().hex()
        return {"kind": "accel", "t": t, "t_first": t - f["age_ms"], "first": f["first_index"], "flags": f["flags"],
                "samples": samples}, 1
    if s.name == "features":
        values = [_wire_int(f, "rms_%s_g" % a, 1e-6) for a in "xyz"] + [_wire_int(f, "peak_%s_g" % a, 1e-6) for a in "xyz"]
        values += [10 * _wire_int(f, "dominant_freq_%s_hz" % a, 0.01) for a in "xyz"]  # mHz
        values += [10000 * _wire_int(f, "pitch_deg", 0.01), 10000 * _wire_int(f, "roll_deg", 0.01)]  # micro-degrees
        return {"kind": "features", "t": t, "values": values, "ms": _wire_int(f, "window_s", 0.001),
                "n": f["n_samples"], "flags": f["flags"], "age": f["age_ms"]}, 1
    if s.name == "status":
        anchored = i + 1 < len(sents) and sents[i + 1].name == "time" and sents[i + 1].time_ms == t
        spec = {"kind": "status", "t": t, "uptime_s": f["uptime_s"], "free_heap": f["free_heap"],
                "fitted": f["sensors_fitted"], "ok": f["sensors_ok"], "flags": f["flags"],
                "supply_mv": _wire_int(f, "supply_v", 0.001), "calib_id": f["calibration_id"],
                "utc": sents[i + 1].fields["utc_ms"] if anchored else None}
        return spec, 2 if anchored else 1
    if s.name == "time":
        return {"kind": "time", "t": t, "utc": f["utc_ms"]}, 1
    raise AssertionError(s.name)


@pytest.fixture(scope="module")
def vectors():
    sents = _bridge_frames()
    return sents, _firmware_frames(sents)


def _firmware_frames(sents, **options):
    """What the firmware makes, under MicroPython, of the same frames as `sents`."""
    specs = []
    i = 0
    while i < len(sents):
        spec, used = _spec(sents, i)
        specs.append(spec)
        i += used
    proc = mp_program.start("fleet_vectors.py", node=NODE, key=KEY.hex(), boot=BOOT, first_seq=FIRST_SEQ,
                            odr_hz=fleet_sim.ODR_HZ, range_g=fleet_sim.RANGE_G, block=fleet_sim.BLOCK_SAMPLES,
                            frames=specs, **options)
    out, err = proc.communicate(timeout=60)
    assert proc.returncode == 0, err
    return [bytes.fromhex(h) for h in json.loads(out.strip().splitlines()[-1])["frames"]]


@NEEDS_MICROPYTHON
def test_vectors_cover_every_kind_and_the_sequence_wrap(vectors):
    sents, _ = vectors
    kinds = Counter(s.name for s in sents)
    assert kinds == {"log": 1, "climate": 1, "status": 2, "time": 1, "accel": 31, "features": 3}
    assert sents[0].seq == FIRST_SEQ and sents[-1].seq > 0xFFFF  # seq_hi went 0 -> 1


@NEEDS_MICROPYTHON
@pytest.mark.parametrize("kind", ["log", "climate", "accel", "features", "status", "time"])
def test_simulated_frames_are_the_firmwares_to_the_byte(vectors, kind):
    sents, firmware = vectors
    assert len(firmware) == len(sents)
    pairs = [(s, fw) for s, fw in zip(sents, firmware) if s.name == kind]
    assert pairs
    for s, fw in pairs:
        assert s.wire == fw, "%s seq %d differs" % (s.name, s.seq)


@NEEDS_MICROPYTHON
def test_a_climate_nodes_bundles_are_the_firmwares_to_the_byte():
    node = SimNode(NODE, "climate", auth.Signer(KEY), BOOT, phase_ms=0, utc0_ms=1796000000000, seed=5,
                   first_seq=FIRST_SEQ, calibration_id=0x1234, mpy=_mp_version())
    sents = node.run_until(40 * 60000)
    firmware = _firmware_frames(sents, linger_ms=fleet_sim.LINGER_MS)
    wires, _last = fleet_sim.bundle_wires(node.builder, sents)
    assert len(wires) >= 2 and sents[0].seq <= 0xFFFF < sents[-1].seq  # a full bundle, and the seq wrap
    assert wires == firmware


def test_frames_verify_and_carry_boot_and_the_32_bit_sequence():
    sents = SimNode(9, "climate", auth.Signer(KEY), BOOT, 0, 1796000000000, 1, first_seq=0x2FFFE).run_until(65000)
    v = Verifier(_KeystoreOf({9: KEY}))
    got = v.check(9, b"".join(s.wire for s in sents))[0]
    assert len(sents) > 4
    assert [(g.boot, g.seq) for g in got] == [(BOOT, 0x2FFFE + k) for k in range(len(sents))]
    assert v.total_rejected() == 0


class _KeystoreOf:
    def __init__(self, keys):
        self.keys = keys

    def key(self, node_id):
        return self.keys.get(node_id)

    def signer(self, node_id):
        return auth.Signer(self.keys[node_id]) if node_id in self.keys else None


# -- the schedule ---------------------------------------------------------------------


def _run(tmp_path, climate=3, bridge=1, duration_s=600, injections=None, record_name="rec.jsonl", **kw):
    ks = Keystore(tmp_path / "keys.json")
    sim = FleetSim(ks, climate, bridge, duration_s=duration_s, seed=3, boot=11, utc0_ms=1796000000000,
                   injections=injections, **kw)
    pub = ListPublisher()
    rec = Record(tmp_path / record_name)
    stats = sim.run(pub, rate=0, record=rec)
    rec.close()
    return sim, ks, pub, stats, tmp_path / record_name


def _rows(path):
    return [json.loads(line) for line in path.read_text().splitlines()]


def test_frames_per_node_minute_are_the_firmwares(tmp_path):
    sim, _ks, _pub, _stats, path = _run(tmp_path, duration_s=12 * 60)
    rows = _rows(path)
    for node in sim.nodes:
        mine = [r for r in rows if r["node_id"] == node.node_id]
        # ten whole minutes of node time after the first
        t0 = fleet_sim.BOOT_MS + 60000
        minutes = Counter(r["type"] for r in mine if t0 <= r["time_ms"] < t0 + 10 * 60000)
        per_minute = {"climate": 1, "status": 2}
        if node.kind == "bridge":
            per_minute.update(accel=60, features=6)  # 200 Hz in blocks of 200; a 10 s window
        assert minutes == {k: 10 * n for k, n in per_minute.items()}, node.node_id
        boot = [r["type"] for r in mine if r["time_ms"] == fleet_sim.BOOT_MS]
        assert boot[:3] == ["log", "climate", "status"]


def test_messages_are_online_first_then_whole_frames_under_the_nodes_limit(tmp_path):
    sim, ks, pub, stats, _path = _run(tmp_path, duration_s=120)
    by_topic = {}
    for _slot, topic, data, retain in pub.messages:
        by_topic.setdefault(topic, []).append((data, retain))
    for node in sim.nodes:
        status = by_topic[topics.topic(node.node_id, "status")]
        assert status == [(b"online", True)]
        frames = by_topic[topics.topic(node.node_id, "frames")]
        assert all(len(d) <= fleet_sim.MAX_MESSAGE and d.endswith(b"\x00") and not r for d, r in frames)
    assert any(d.count(b"\x00") > 1 for _s, t, d, _r in pub.messages)  # several frames share a message
    assert stats["messages"] == len(pub.messages)
    assert stats["bytes"] == sum(len(d) for _s, t, d, _r in pub.messages if t.endswith("/frames"))
    v = Verifier(ks)
    for _slot, topic, data, _r in pub.messages:
        node_id, kind = topics.parse(topic)
        if kind == "frames":
            v.check(node_id, data)
    assert v.accepted == stats["frames"] and v.total_rejected() == 0


def test_the_record_is_what_was_published(tmp_path):
    sim, ks, pub, stats, path = _run(tmp_path, duration_s=300)
    rows = _rows(path)
    v = Verifier(ks)
    decoded = []
    for _slot, topic, data, _r in pub.messages:
        node_id, kind = topics.parse(topic)
        if kind != "frames":
            continue
        for ok in v.check(node_id, data)[0]:
            _v, msg_type, _n, _s, time_ms, body = frame.parse(ok.raw)
            fields, _extra = payload.unpack(msg_type, body)
            decoded.append((ok.node_id, ok.boot, ok.seq, time_ms, fields))
    assert len(rows) == len(decoded) == stats["frames"]
    for row, (node_id, boot, seq, time_ms, fields) in zip(rows, decoded):
        assert (row["node_id"], row["boot"], row["seq"], row["time_ms"]) == (node_id, boot, seq, time_ms)
        if row["type"] == "climate":
            assert (row["temperature_c"], row["relative_humidity_pct"]) == (
                fields["temperature_c"], fields["relative_humidity_pct"])
        if row["type"] == "accel":
            assert row["n_samples"] == fields["n_samples"] == len(fields["samples"]) // 3
    assert sum(r["n_samples"] for r in rows if r["type"] == "accel") == stats["samples"]


def test_the_record_as_parquet(tmp_path):
    import pyarrow.parquet as pq

    _sim, _ks, _pub, stats, path = _run(tmp_path, duration_s=60, record_name="rec.parquet")
    table = pq.read_table(path)
    assert table.num_rows == stats["frames"]
    assert {"node_id", "boot", "seq", "type", "temperature_c", "n_samples", "injected"} <= set(table.column_names)


def test_value_injections_are_where_the_record_says(tmp_path):
    inject = {"spike": 1, "frozen": 1, "out_of_range": 2}
    sim, _ks, _pub, _stats, path = _run(tmp_path, climate=5, bridge=0, duration_s=5 * 3600, injections=inject)
    climate = [r for r in _rows(path) if r["type"] == "climate"]
    marked = Counter(r["injected"] for r in climate)
    assert marked["spike"] == 1 and marked["out_of_range"] == 2 and marked["frozen"] == 240  # 4 h at 1 a minute
    assert len({r["node_id"] for r in climate if r["injected"]}) == 4  # each on its own node
    for r in climate:
        if r["injected"] == "out_of_range":
            assert r["temperature_c"] == -60.0
    frozen = [r for r in climate if r["injected"] == "frozen"]
    assert len({(r["temperature_c"], r["relative_humidity_pct"]) for r in frozen}) == 1
    assert frozen[-1]["time_ms"] - frozen[0]["time_ms"] == (240 - 1) * 60000
    spike = next(r for r in climate if r["injected"] == "spike")
    mine = [r for r in climate if r["node_id"] == spike["node_id"]]
    k = mine.index(spike)
    neighbours = (mine[k - 1]["temperature_c"] + mine[k + 1]["temperature_c"]) / 2
    assert abs(spike["temperature_c"] - neighbours - 8.0) < 0.5
    unmarked = [r["temperature_c"] for r in climate if not r["injected"]]
    assert -20 < min(unmarked) and max(unmarked) < 40


def test_bad_traffic_is_rejected_for_the_reason_recorded(tmp_path):
    inject = {"bad_mac": 2, "replay": 2, "unknown_node": 1, "malformed": 3}
    _sim, ks, pub, stats, path = _run(tmp_path, duration_s=300, injections=inject)
    v = Verifier(ks)
    for _slot, topic, data, _r in pub.messages:
        node_id, kind = topics.parse(topic)
        if kind == "frames":
            v.check(node_id, data)
    rows = _rows(path)
    assert Counter(r["rejected"] for r in rows if r["rejected"]) == inject
    assert {k: n for k, n in v.rejected.items() if n} == inject
    assert v.accepted == stats["frames"] == sum(1 for r in rows if not r["injected"])


# -- the command, against the real Mosquitto ------------------------------------------------


def _cli(*args, timeout=60):
    return subprocess.run([sys.executable, "-m", "citynode", "fleet-sim", *args], env=ENV, capture_output=True,
                          text=True, timeout=timeout)


@needs_mosquitto
def test_publish_to_mosquitto_verified_with_only_the_injected_rejects(tmp_path):
    import paho.mqtt.client as paho

    keys = tmp_path / "keys.json"
    with LocalBroker(tmp_path / "broker") as broker:
        got = []
        subscribed = threading.Event()
        c = paho.Client(paho.CallbackAPIVersion.VERSION2, client_id="test-fleet-sim")
        c.on_message = lambda _c, _u, m: got.append((m.topic, m.payload, m.retain))
        c.on_subscribe = lambda *a: subscribed.set()
        c.connect("127.0.0.1", broker.port)
        c.subscribe("citynode/#", 1)
        c.loop_start()
        assert subscribed.wait(10)
        proc = _cli("--broker", broker.url, "--climate-nodes", "60", "--bridge-nodes", "3", "--rate", "0",
                    "--duration", "240", "--keystore", str(keys), "--seed", "2", "--clients", "2",
                    "--inject", "spike,bad_mac=2,replay,unknown_node,malformed", "--record",
                    str(tmp_path / "r.jsonl"), "--json")
        assert proc.returncode == 0, proc.stderr
        stats = json.loads(proc.stdout)
        deadline = time.monotonic() + 20
        while len(got) < stats["messages"] and time.monotonic() < deadline:
            time.sleep(0.05)
        c.loop_stop()
        c.disconnect()
    assert stats["nodes"] == 63 and stats["acknowledged"]
    assert len(got) == stats["messages"]
    v = Verifier(Keystore(keys))
    for topic, data, _retain in got:
        node_id, kind = topics.parse(topic)
        if kind == "frames":
            v.check(node_id, data)
    assert v.accepted == stats["frames"]
    assert {k: n for k, n in v.rejected.items() if n} == {"bad_mac": 2, "replay": 1, "unknown_node": 1, "malformed": 1}
    rows = _rows(tmp_path / "r.jsonl")
    assert sum(1 for r in rows if not r["injected"] or r["injected"] == "spike") == stats["frames"]


def test_no_broker_is_one_line_and_non_zero(tmp_path):
    proc = _cli("--broker", "mqtt://127.0.0.1:1", "--climate-nodes", "2", "--keystore", str(tmp_path / "k.json"))
    assert proc.returncode != 0
    assert proc.stderr.splitlines() == [proc.stderr.strip()] and "does not answer" in proc.stderr
    proc = _cli("--broker", "http://x", "--climate-nodes", "2", "--keystore", str(tmp_path / "k.json"))
    assert proc.returncode == 2 and len(proc.stderr.splitlines()) == 1 and "Traceback" not in proc.stderr


@pytest.mark.parametrize("args, words", [
    (["--climate-nodes", "0"], "at least one node"),
    (["--climate-nodes", "2", "--inject", "lasers"], "--inject lasers"),
    (["--climate-nodes", "2", "--inject", "spike"], "needs --duration"),
    (["--climate-nodes", "2", "--rate", "-1"], "--rate"),
    (["--climate-nodes", "2", "--first-node", "65535"], "outside 0..65535"),
])
def test_bad_options_are_one_line(tmp_path, args, words):
    proc = _cli("--broker", "mqtt://127.0.0.1:1", "--keystore", str(tmp_path / "k.json"), *args)
    assert proc.returncode == 2, proc.stderr
    assert len(proc.stderr.splitlines()) == 1 and words in proc.stderr


def test_the_json_peer_publishes_the_same_readings_one_message_each(tmp_path):
    _sim, _ks, pub, stats, path = _run(tmp_path, climate=2, bridge=1, duration_s=30, json_peer=True)
    rows = _rows(path)
    by_sensor = {}
    for _slot, topic, data, _r in pub.messages:
        node, sensor = topic.split("/")[0], topic.split("/")[2]
        by_sensor.setdefault(sensor, []).append((node, json.loads(data)))
    climate = [r for r in rows if r["type"] == "climate"]
    assert [v["value"] for _n, v in by_sensor["temperature"]] == [r["temperature_c"] for r in climate]
    assert [v["value"] for _n, v in by_sensor["humidity"]] == [r["relative_humidity_pct"] for r in climate]
    assert len(by_sensor["accel"]) == stats["samples"] == sum(r["n_samples"] for r in rows if r["type"] == "accel")
    assert stats["messages"] == len(pub.messages) == 2 * len(climate) + stats["samples"]
    assert set(by_sensor) == {"temperature", "humidity", "accel"}


def test_climate_nodes_send_bundles_that_verify_into_every_frame_recorded(tmp_path):
    from citynode_protocol import bundle, cobs

    sim, ks, pub, stats, path = _run(tmp_path, climate=2, bridge=1, duration_s=11 * 60)
    climate_ids = {n.node_id for n in sim.nodes if n.kind == "climate"}
    v = Verifier(ks)
    got = []
    kinds = Counter()
    for _slot, topic, data, _r in pub.messages:
        node_id, kind = topics.parse(topic)
        if kind != "frames":
            continue
        for piece in data.split(b"\x00")[:-1]:
            kinds[(node_id in climate_ids, cobs.decode(piece)[0] & 0x0F == bundle.BUNDLE)] += 1
        got += [(x.node_id, x.seq) for x in v.check(node_id, data)[0]]
    rows = _rows(path)
    assert sorted(got) == sorted((r["node_id"], r["seq"]) for r in rows) and v.total_rejected() == 0
    for node_id in climate_ids:  # each node's sequence whole, in order
        mine = [s for n, s in got if n == node_id]
        assert mine == list(range(mine[0], mine[0] + len(mine)))
    # a climate node's frames go as bundles (the boot's first ones before its first linger ends too);
    # a bridge node's alone
    assert kinds[(True, True)] >= 2 * 2 and kinds[(True, False)] == 0 and kinds[(False, True)] == 0
