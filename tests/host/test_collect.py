"""`citynode collect` against the real Mosquitto, into the in-memory store: every frame once, with its
boot, 32-bit seq, UTC and values; shared between collectors; acknowledged only after the commit; kept
by the broker's persistent session while the collector is away; forgeries in `rejects`, never in data."""

import os
import subprocess
import sys
import threading
import time
from pathlib import Path

import numpy as np
import pytest

from broker_fixtures import SignedNode, broker, needs_mosquitto  # noqa: F401 (fixture)
from citynode.broker import LocalBroker
from citynode.fleet.collector import Collector
from citynode.fleet.store import StoreError
from citynode.keystore import Keystore
from citynode.traffic import TrafficBuilder, utc_ms
from fleet_memory_store import MemoryStore

REPO = Path(__file__).resolve().parents[2]
ENV = dict(os.environ, PYTHONPATH=os.pathsep.join([str(REPO / "host"), str(REPO / "protocol")]))
pytestmark = [needs_mosquitto]
UTC0 = "2026-11-26T06:00:00Z"
WAIT_S = 15


@pytest.fixture(scope="module")
def keys(tmp_path_factory):
    ks = Keystore(tmp_path_factory.mktemp("keys") / "keys.json")
    for node in (7, 8, 9):
        ks.new_key(node)
    return ks


class Publisher:
    """The nodes' side: QoS 1 publishes, each waited for."""

    def __init__(self, broker):
        import paho.mqtt.client as paho

        self.client = paho.Client(paho.CallbackAPIVersion.VERSION2, client_id="nodes-%d-%d" % (os.getpid(), id(self)))
        self.client.connect("127.0.0.1", broker.port)
        self.client.loop_start()

    def __call__(self, topic, data):
        self.client.publish(topic, data, qos=1).wait_for_publish(5)

    def close(self):
        self.client.disconnect()
        self.client.loop_stop()


@pytest.fixture
def publish(broker):
    send = Publisher(broker)
    yield send
    send.close()


_prefixes = iter(range(1000))


@pytest.fixture
def prefix():
    """A topic prefix of this test alone: the broker is shared by the module."""
    return "t%d" % next(_prefixes)


class Running:
    """A collector running in a thread, stopped (batch committed) on leaving the block."""

    def __init__(self, broker, store, keys, prefix, **options):
        self.collector = Collector(broker.url, store, keys, prefix=prefix, batch_s=options.pop("batch_s", 0.1),
                                   log=options.pop("log", lambda line: None), **options)
        self.thread = threading.Thread(target=self.collector.run, daemon=True)

    def __enter__(self):
        self.collector.start()
        self.thread.start()
        return self.collector

    def __exit__(self, *exc):
        self.collector.stop()
        self.thread.join(WAIT_S)
        self.collector.close()
        assert not self.thread.is_alive()


def wait_for(check, what):
    end = time.monotonic() + WAIT_S
    while time.monotonic() < end:
        if check():
            return
        time.sleep(0.02)
    raise AssertionError("not within %d s: %s" % (WAIT_S, what))


def frames_in(store):
    return len(store.query("frames"))


def rows(store, table):
    return store.query(table).to_pylist()


def utc_us(text, plus_ms=0):
    return (utc_ms(text) + plus_ms) * 1000


def as_us(when):
    return None if when is None else int(when.timestamp() * 1_000_000)


def test_every_frame_lands_once_with_boot_seq_time_calibration_and_values(broker, keys, publish, prefix):
    store = MemoryStore()
    n7 = SignedNode(7, keys.key(7), boot=5, seq_hi=2)  # 32-bit seq = 2 * 65536 + seq
    n8 = SignedNode(8, keys.key(8), boot=1)
    rng = np.random.default_rng(3)
    samples = rng.integers(-500, 500, (20, 3))
    messages = [
        (7, n7.status(100, mpy_major=1, mpy_minor=24, mpy_patch=1, app_major=0, app_minor=9, app_patch=2,
                      calibration_id=17, free_heap=50000)
         + n7.climate(500, 19.5, 40.0)  # before the boot's first TIME: no UTC
         + n7.time_anchor(1000, UTC0)),
        (7, n7.climate(61_000, 20.25, 41.5) + n7.accel_block(62_000, samples, odr_hz=200.0, age_ms=100)),
        (8, n8.time_anchor(5000, UTC0) + n8.climate(6000, 12.0, 80.0)),
        (7, n7.features(63_000, window_s=1.0, age_ms=1000, n_samples=200, rms_x_g=0.01) + n7.log(64_000, "hello")),
    ]
    with Running(broker, store, keys, prefix) as collector:
        publish("%s/7/status" % prefix, b"online")  # the uplink state: seen, nothing stored
        for node, data in messages:
            publish("%s/%d/frames" % (prefix, node), data)
        wait_for(lambda: frames_in(store) == 9 and collector.uplink, "9 frames stored, node 7 online")
    s = collector.summary()
    assert s["uplink"] == {"7": "online"} and collector.counters.status_messages == 1
    assert s["messages"] == 4 and s["frames_accepted"] == 9 and s["frames_rejected"] == 0
    assert s["frames_duplicate"] == 0 and s["batches"] >= 1 and s["latency_ms"]["p99"] >= s["latency_ms"]["p50"]
    ledger = rows(store, "frames")
    assert sorted((r["node_id"], r["boot"], r["seq"]) for r in ledger) == sorted(
        [(7, 5, 2 * 65536 + i) for i in range(7)] + [(8, 1, 0), (8, 1, 1)])
    climate = {(r["node_id"], r["seq"] & 0xFFFF): r for r in rows(store, "climate")}
    first, later, other = climate[(7, 1)], climate[(7, 3)], climate[(8, 1)]
    assert first["time"] is None and first["node_time_s"] == 0.5  # before the TIME frame
    assert as_us(later["time"]) == utc_us(UTC0, 60_000) and later["temperature_c"] == 20.25
    assert later["boot"] == 5 and later["seq"] == 2 * 65536 + 3
    assert later["calibration_id"] == 17 and later["firmware"] == "1.24.1/0.9.2"
    assert first["calibration_id"] == 17  # the status frame came before it
    assert as_us(other["time"]) == utc_us(UTC0, 1000) and other["calibration_id"] is None
    assert later["qc_flags"] == 0 and later["qc_score"] == 0
    accel = rows(store, "accel")
    assert len(accel) == 20 and [r["sample_index"] for r in accel] == list(range(20))
    assert as_us(accel[0]["time"]) == utc_us(UTC0, 61_000 - 100) and as_us(accel[1]["time"]) == utc_us(UTC0, 60_905)
    assert accel[0]["ax_g"] == samples[0][0] * 2 / 32768
    features = rows(store, "features")
    assert as_us(features[0]["time"]) == utc_us(UTC0, 61_000) and features[0]["rms_x_g"] == 0.01
    assert [r["text"] for r in rows(store, "log")] == ["hello"]
    assert rows(store, "rejects") == []
    received = [as_us(r["received"]) for r in ledger]
    assert all(abs(t - time.time() * 1e6) < 60e6 for t in received)


def test_two_collectors_in_one_group_share_the_messages_and_store_each_frame_once(broker, keys, publish, prefix):
    class LockedStore(MemoryStore):  # two collectors in two threads of one process share it
        lock = threading.Lock()

        def write(self, batch):
            with self.lock:
                return super().write(batch)

    store = LockedStore()
    nodes = [SignedNode(n, keys.key(n)) for n in (7, 8, 9)]
    with Running(broker, store, keys, prefix, group="pair", instance=1) as a, \
            Running(broker, store, keys, prefix, group="pair", instance=2) as b:
        for i in range(30):
            for node in nodes:
                data = node.climate(1000 * i, 20.0 + i / 10, 50.0) + node.climate(1000 * i + 500, 20.0, 50.0)
                publish("%s/%d/frames" % (prefix, node.traffic.node_id), data)
        wait_for(lambda: frames_in(store) == 180, "180 frames stored")
    assert a.client_id != b.client_id
    assert a.counters.messages > 0 and b.counters.messages > 0
    assert a.counters.messages + b.counters.messages == 90
    keys_stored = [(r["node_id"], r["boot"], r["seq"]) for r in rows(store, "frames")]
    assert len(keys_stored) == len(set(keys_stored)) == 180
    assert len(rows(store, "climate")) == 180


def test_a_failed_write_is_not_acknowledged_and_the_batch_lands_once(broker, keys, publish, prefix):
    store = MemoryStore()
    store.fail_next = True
    logged = []
    node = SignedNode(7, keys.key(7))
    samples = np.arange(60).reshape(20, 3)
    with Running(broker, store, keys, prefix, log=logged.append) as collector:
        # the first batch, whose write fails, holds the accel blocks
        publish("%s/7/frames" % prefix, node.accel_block(500, samples[:10]) + node.accel_block(550, samples[10:]))
        for i in range(5):
            publish("%s/7/frames" % prefix, node.climate(1000 * (i + 1), 20.0, 50.0))
        wait_for(lambda: frames_in(store) == 7, "7 frames stored after the retry")
    assert collector.counters.store_errors == 1 and len(logged) == 1
    assert "write failed" in logged[0] and "not acknowledged" in logged[0]
    assert len(rows(store, "climate")) == 5
    blocks = rows(store, "accel_blocks")  # the retry wrote the same rows: one run of samples, no gap
    assert [(b["first_index"], b["gap_before"], b["segment"]) for b in blocks] == [(0, 0, 0), (10, 0, 0)]
    assert [r["sample_index"] for r in rows(store, "accel")] == list(range(20))


def test_the_broker_keeps_what_a_stopped_collector_did_not_store(broker, keys, publish, prefix):
    """A collector whose store fails is stopped: nothing is acknowledged. Messages published while it is
    away wait in its persistent session; restarted with the same client id, it stores them all, once."""

    class DownStore(MemoryStore):
        def write(self, batch):
            raise StoreError("database went away (test)")

    node = SignedNode(7, keys.key(7))
    down = DownStore()
    with Running(broker, down, keys, prefix, client_id="collect-%s" % prefix) as first:
        publish("%s/7/frames" % prefix, node.climate(1000, 20.0, 50.0) + node.climate(2000, 21.0, 50.0))
        wait_for(lambda: first.counters.store_errors > 0, "a failed write")
    assert first.unstored == 1 and first.counters.batches == 0
    for i in range(3, 8):  # while no collector runs
        publish("%s/7/frames" % prefix, node.climate(1000 * i, 20.0 + i, 50.0))
    store = MemoryStore()
    with Running(broker, store, keys, prefix, client_id="collect-%s" % prefix) as again:
        wait_for(lambda: frames_in(store) == 7, "all 7 frames stored")
        time.sleep(0.3)  # nothing more comes
    assert again.session.session_present
    assert sorted(r["seq"] for r in rows(store, "frames")) == list(range(7))
    assert len(rows(store, "climate")) == 7 and frames_in(store) == 7


def test_a_broker_restart_loses_nothing_and_a_message_delivered_again_is_stored_once(broker, keys, prefix):
    """The store holds a batch while the broker restarts: its PUBACK would belong to the old connection, so
    it is not sent; the broker sends the message again (DUP) and that copy's frames are duplicates."""

    class HeldStore(MemoryStore):
        held = threading.Event()

        def write(self, batch):
            if self.held.is_set():
                raise StoreError("held (test)")
            return super().write(batch)

    store = HeldStore()
    store.held.set()
    node = SignedNode(7, keys.key(7))
    publish = Publisher(broker)
    with Running(broker, store, keys, prefix, client_id="restart-%s" % prefix) as collector:
        publish("%s/7/frames" % prefix, node.climate(1000, 20.0, 50.0) + node.climate(2000, 21.0, 50.0))
        wait_for(lambda: collector.counters.store_errors > 0, "a held write")
        publish.close()
        broker.restart()
        wait_for(lambda: collector.session.connects >= 2, "the collector connected again")
        store.held.clear()
        wait_for(lambda: collector.counters.frames_duplicate == 2, "the message delivered again, stored once")
        publish = Publisher(broker)
        publish("%s/7/frames" % prefix, node.climate(3000, 22.0, 50.0))
        wait_for(lambda: frames_in(store) == 3, "a message after the restart")
        publish.close()
    assert rows(store, "rejects") == [] and len(rows(store, "climate")) == 3
    assert collector.summary()["reconnects"] >= 1
    with Running(broker, store, keys, prefix, client_id="restart-%s" % prefix) as again:
        time.sleep(0.5)
    assert again.counters.messages == 0  # every message was acknowledged


def test_anchors_stamp_later_messages_of_the_boot_and_a_new_boot_waits_for_its_time(broker, keys, publish, prefix):
    store = MemoryStore()
    node = SignedNode(8, keys.key(8), boot=3)
    topic = "%s/8/frames" % prefix
    with Running(broker, store, keys, prefix) as collector:
        publish(topic, node.time_anchor(10_000, UTC0) + node.climate(10_500, 20.0, 50.0))
        wait_for(lambda: frames_in(store) == 2, "the TIME frame stored")
        publish(topic, node.climate(70_000, 21.0, 50.0))  # a later batch: the collector's anchor
        wait_for(lambda: frames_in(store) == 3, "a later frame")
    assert collector.counters.batches == 2
    with Running(broker, store, keys, prefix):  # a new collector: the store's anchor
        publish(topic, node.climate(130_000, 22.0, 50.0))
        wait_for(lambda: frames_in(store) == 4, "a frame for a new collector")
        node.reboot()
        publish(topic, node.climate(1_000, 23.0, 50.0))  # boot 4: no UTC yet
        wait_for(lambda: frames_in(store) == 5, "the first frame of boot 4")
        publish(topic, node.time_anchor(2_000, "2026-11-27T00:00:00Z") + node.climate(3_000, 24.0, 50.0))
        wait_for(lambda: frames_in(store) == 7, "boot 4's TIME")
    times = {(r["boot"], r["temperature_c"]): as_us(r["time"]) for r in rows(store, "climate")}
    assert times == {
        (3, 20.0): utc_us(UTC0, 500), (3, 21.0): utc_us(UTC0, 60_000), (3, 22.0): utc_us(UTC0, 120_000),
        (4, 23.0): None, (4, 24.0): utc_us("2026-11-27T00:00:00Z", 1000),
    }


def test_the_time_difference_to_the_anchor_crosses_the_node_clocks_wrap(broker, keys, publish, prefix):
    store = MemoryStore()
    node = SignedNode(9, keys.key(9))
    with Running(broker, store, keys, prefix):
        publish("%s/9/frames" % prefix, node.time_anchor(2**32 - 1000, UTC0))
        publish("%s/9/frames" % prefix, node.climate(2**32 + 4000, 20.0, 50.0))  # sent as 4000 after the wrap
        wait_for(lambda: frames_in(store) == 2, "2 frames")
    climate = rows(store, "climate")[0]
    assert as_us(climate["time"]) == utc_us(UTC0, 5000) and climate["node_time_s"] == 4.0


def test_forged_replayed_unknown_and_malformed_traffic_lands_in_rejects_never_in_data(broker, keys, publish, prefix):
    store = MemoryStore()
    n7 = SignedNode(7, keys.key(7))
    forger = SignedNode(7, os.urandom(32))
    stranger = SignedNode(99, os.urandom(32))
    n8 = SignedNode(8, keys.key(8))
    good = [n7.climate(1000 * i, 20.0 + i, 50.0) for i in range(3)]
    bad = [
        ("7", forger.climate(9000, 99.0, 50.0), "bad_mac"),
        ("7", good[0], "replay"),
        ("99", stranger.climate(1000, 99.0, 50.0), "unknown_node"),
        ("7", b"\x05\x01\x02\x03\x00", "malformed"),
        ("7", b"", "malformed"),
        ("7", n8.climate(1000, 99.0, 50.0), "wrong_topic"),
        ("x7", n7.climate(9000, 99.0, 50.0), "wrong_topic"),
        ("7", TrafficBuilder(7, seq=40).climate(1000, 99.0, 50.0), "unsigned"),
    ]
    with Running(broker, store, keys, prefix) as collector:
        publish("%s/7/frames" % prefix, b"".join(good))
        wait_for(lambda: frames_in(store) == 3, "the good frames")
        for where, data, _reason in bad:
            publish("%s/%s/frames" % (prefix, where), data)
        wait_for(lambda: len(rows(store, "rejects")) == len(bad), "every reject stored")
    rejects = rows(store, "rejects")
    assert sorted(r["reason"] for r in rejects) == sorted(reason for _w, _d, reason in bad)
    assert {r["topic"] for r in rejects if r["node_id"] is None} == {"%s/x7/frames" % prefix}
    replay = next(r for r in rejects if r["reason"] == "replay")
    assert (replay["node_id"], replay["boot"], replay["seq"]) == (7, 1, 0)
    assert [r["temperature_c"] for r in rows(store, "climate")] == [20.0, 21.0, 22.0]
    assert frames_in(store) == 3
    assert collector.counters.rejected["malformed"] == 2 and collector.summary()["frames_rejected"] == len(bad)


def test_a_replay_of_a_frame_another_collector_stored_lands_in_rejects(broker, keys, publish, prefix):
    """Collectors of a group each verify a share of a node's messages: a replay may reach one that never
    saw the original. The store's ledger knows it: into rejects as a replay, the data stored once."""
    store = MemoryStore()
    node = SignedNode(7, keys.key(7))
    original = node.climate(1000, 20.0, 50.0) + node.climate(2000, 21.0, 50.0)
    with Running(broker, store, keys, prefix, group="a"):
        publish("%s/7/frames" % prefix, original)
        wait_for(lambda: frames_in(store) == 2, "the original stored")
    with Running(broker, store, keys, prefix, group="b") as other:  # a verifier that never saw them
        publish("%s/7/frames" % prefix, original[len(original) // 2:] + node.climate(3000, 22.0, 50.0))
        wait_for(lambda: frames_in(store) == 3 and other.counters.batches, "the next frame stored")
    assert [(r["reason"], r["node_id"], r["boot"], r["seq"]) for r in rows(store, "rejects")] == [("replay", 7, 1, 1)]
    assert [r["temperature_c"] for r in rows(store, "climate")] == [20.0, 21.0, 22.0]
    s = other.summary()
    assert s["rejected"]["replay"] == 1 and s["frames_duplicate"] == 0 and s["frames_accepted"] == 1


def test_one_message_with_two_boots_keeps_each_frame_with_its_own_boot_and_seq(keys):
    from citynode.fleet.rows import RowBuilder, take
    from citynode.verifier import Verifier

    node = SignedNode(7, keys.key(7), boot=1)
    data = node.time_anchor(100, UTC0) + node.climate(200, 20.0, 50.0)
    node.reboot()  # the same 16-bit seqs again, in boot 2
    data += node.climate(300, 21.0, 50.0) + node.climate(400, 22.0, 50.0)
    store = MemoryStore()
    batch = RowBuilder(store).build([take(Verifier(keys), "citynode", "citynode/7/frames", data, 0)])
    assert store.write(batch).frames_new == 4
    got = [(r["boot"], r["seq"], r["temperature_c"], as_us(r["time"])) for r in rows(store, "climate")]
    assert got == [(1, 1, 20.0, utc_us(UTC0, 100)), (2, 0, 21.0, None), (2, 1, 22.0, None)]


def test_climate_rows_get_the_flags_of_the_qc_step_with_the_history_it_asks_for(keys):
    import pyarrow as pa

    from citynode.fleet.rows import RowBuilder, take
    from citynode.verifier import Verifier

    class HotFlags:  # the interface citynode.fleet.qc offers the collector
        asked = []

        def history_window_us(self):
            return 3_600_000_000

        def apply(self, climate, history):
            self.asked.append(history.num_rows)
            hot = pa.array([t > 40 for t in climate["temperature_c"].to_pylist()])
            flags = pa.array([1 if h else 0 for h in hot.to_pylist()], pa.int32())
            scores = pa.array([100 if h else 0 for h in hot.to_pylist()], pa.int32())
            climate = climate.set_column(climate.schema.get_field_index("qc_flags"), "qc_flags", flags)
            return climate.set_column(climate.schema.get_field_index("qc_score"), "qc_score", scores)

    class AskedStore(MemoryStore):
        since = []

        def climate_history(self, node_ids, since_us):
            self.since.append((list(node_ids), since_us))
            return super().climate_history(node_ids, since_us)

    node = SignedNode(7, keys.key(7))
    store = AskedStore()
    builder = RowBuilder(store, qc=HotFlags())
    verifier = Verifier(keys)
    first = node.time_anchor(1000, UTC0) + node.climate(2000, 20.0, 50.0)
    store.write(builder.build([take(verifier, "citynode", "citynode/7/frames", first, 0)]))
    later = node.climate(3000, 45.0, 50.0) + node.climate(4000, 21.0, 50.0)
    store.write(builder.build([take(verifier, "citynode", "citynode/7/frames", later, 0)]))
    assert [(r["qc_flags"], r["qc_score"]) for r in rows(store, "climate")] == [(0, 0), (1, 100), (0, 0)]
    assert store.since[-1] == ([7], utc_us(UTC0, 2000) - 3_600_000_000) and HotFlags.asked == [0, 1]


def test_a_failed_reading_has_no_values_and_the_qc_checks_pass_it_by(keys):
    """A reading the node marks failed (CLIMATE_SENSOR_ERROR) carries zeros: stored as nulls, neither
    out of range itself nor the level the next reading is compared with (no spike after it)."""
    from citynode.fleet.qc import QcChecker
    from citynode.fleet.rows import RowBuilder, take
    from citynode.verifier import Verifier
    from citynode_protocol import wire

    class Qc:  # the collector's view of QC (commands/collect.py QcStep)
        checker = QcChecker()

        def history_window_us(self):
            return 5 * 3600 * 1_000_000

        def apply(self, climate, history):
            return self.checker.apply(climate, history)

    node = SignedNode(7, keys.key(7))
    store = MemoryStore()
    builder = RowBuilder(store, qc=Qc())
    verifier = Verifier(keys)
    first = (node.time_anchor(1000, UTC0) + node.climate(2000, 9.4, 83.5)
             + node.climate(62_000, 0.0, 0.0, status=wire.CLIMATE_SENSOR_ERROR))
    store.write(builder.build([take(verifier, "citynode", "citynode/7/frames", first, 0)]))
    later = node.climate(122_000, 9.41, 83.4)
    store.write(builder.build([take(verifier, "citynode", "citynode/7/frames", later, 0)]))
    got = [(r["temperature_c"], r["relative_humidity_pct"], r["status"], r["qc_flags"]) for r in rows(store, "climate")]
    assert got == [(9.4, 83.5, 0, 0), (None, None, wire.CLIMATE_SENSOR_ERROR, 0), (9.41, 83.4, 0, 0)]


def test_the_command_stores_what_came_and_sigterm_commits_the_batch_in_hand(broker, keys, prefix, monkeypatch,
                                                                            capsys):
    """`citynode collect` in this process (so the store can be the in-memory one): with a 30 s batch, only
    SIGTERM ends the batch; it is stored and acknowledged before the command returns."""
    import json
    import signal

    from citynode import cli
    from citynode.commands import collect as command
    from citynode.fleet import collector as collector_module

    store = MemoryStore()
    monkeypatch.setattr(command, "open_store", lambda target: store)
    taken = []
    real_take = collector_module.take
    monkeypatch.setattr(collector_module, "take", lambda *a: taken.append(a) or real_take(*a))
    subscribed = threading.Event()
    real_start = collector_module.Collector.start
    monkeypatch.setattr(collector_module.Collector, "start", lambda c: (real_start(c), subscribed.set())[0])
    node = SignedNode(7, keys.key(7))

    def nodes_then_sigterm():
        assert subscribed.wait(WAIT_S)
        publish = Publisher(broker)
        for i in range(4):
            publish("%s/7/frames" % prefix, node.climate(1000 * i, 20.0, 50.0))
        publish.close()
        wait_for(lambda: len(taken) == 4, "4 messages taken")
        os.kill(os.getpid(), signal.SIGTERM)

    helper = threading.Thread(target=nodes_then_sigterm)
    helper.start()
    code = cli.main(["collect", "--broker", broker.url, "--keystore", str(keys.path), "--prefix", prefix,
                     "--group", prefix, "--instance", "3", "--batch", "30", "--duration", "20", "--json"])
    helper.join(WAIT_S)
    out = capsys.readouterr().out
    summary = json.loads(out)
    assert code == 0 and summary["batches"] == 1 and summary["frames_accepted"] == 4 and frames_in(store) == 4
    assert summary["client_id"].startswith("citynode-collect-%s-" % prefix) and summary["client_id"].endswith("-3")
    assert summary["stopped_by"] == "stop"  # SIGTERM ended it, not --duration
    again = MemoryStore()
    with Running(broker, again, keys, prefix, group=prefix, client_id=summary["client_id"]) as after:
        time.sleep(0.3)
    assert after.counters.messages == 0  # all four were acknowledged


def collect(argv):
    return subprocess.Popen([sys.executable, "-m", "citynode", "collect", *argv], env=ENV, stdout=subprocess.PIPE,
                            stderr=subprocess.PIPE, text=True)


def test_bad_broker_url_no_broker_wrong_password_and_a_store_that_does_not_open_are_one_line(broker, keys,
                                                                                             tmp_path):
    ks = ["--keystore", str(keys.path)]
    with LocalBroker(tmp_path / "locked", users={"collector": "right"}) as locked:
        port = locked.port
        cases = [
            (["--broker", "http://x"], "give mqtt://"),
            (["--broker", "mqtt://127.0.0.1:99999"], "broker URL"),
            (["--broker", "mqtt://127.0.0.1:1"], "does not answer"),
            (["--broker", "mqtt://collector:hunter2@127.0.0.1:%d" % port], "refused the connection"),
            (["--broker", broker.url, "--group", "a/b"], "--group"),
            (["--broker", broker.url, "--duration", "0"], "--duration"),
            (["--broker", broker.url, "--store", "postgresql://u:hunter2@127.0.0.1:1/db"], ""),
        ]
        runs = [(argv, words, collect(argv + ks)) for argv, words in cases]  # at once: each is a Python start
        for argv, words, p in runs:
            out, err = p.communicate(timeout=30)
            lines = err.strip().splitlines()
            assert p.returncode != 0 and len(lines) == 1 and lines[0].startswith("citynode: "), (argv, err)
            assert words in lines[0] and "Traceback" not in err and "hunter2" not in err + out
