"""Faults while the fleet publishes: two `citynode collect` processes in one group lose nothing and store
nothing twice when one is SIGKILLed (and restarted with its --instance), when the broker restarts and
when PostgreSQL restarts; checked against the fleet simulator's record of every frame it published.
Bad input to collect (a store URL that does not parse or answer, wrong credentials, a folder that
cannot be written, a schema of a newer version) is one line and a non-zero exit, and the messages
waiting for that collector stay on the broker for the next one."""

import collections
import json
import os
import signal
import subprocess
import sys
import threading
import time
from pathlib import Path

import pytest

from broker_fixtures import broker, needs_mosquitto  # noqa: F401 (fixture)
from citynode.broker import LocalBroker
from citynode.fleet.collector import Collector
from citynode.fleet.fleet_sim import FleetSim, Record
from citynode.fleet.mqtt_session import Session
from citynode.fleet.sim_publish import MqttPublisher
from citynode.keystore import Keystore
from fleet_memory_store import MemoryStore
from pg_fixtures import needs_postgres, pg_server  # noqa: F401 (fixture)

REPO = Path(__file__).resolve().parents[2]
ENV = dict(os.environ, PYTHONPATH=os.pathsep.join([str(REPO / "host"), str(REPO / "protocol")]))
pytestmark = [
    needs_mosquitto,
    pytest.mark.xdist_group("fleet_faults"),  # brokers, PostgreSQL and four collectors at once: one worker
]
CLIMATE_NODES = 24
BRIDGE_NODES = 2
NODES = range(1, CLIMATE_NODES + BRIDGE_NODES + 1)
RATE = 10  # node seconds a wall second
AFTER_S = 2.0  # the fleet goes on publishing this long after a fault
DRAIN_S = 60
_DATA = {"climate": "climate", "status": "status", "time": "time", "log": "log", "features": "features",
         "accel": "accel_blocks"}


@pytest.fixture(scope="module")
def keys(tmp_path_factory):
    ks = Keystore(tmp_path_factory.mktemp("keys") / "keys.json")
    ks.new_keys(list(NODES))  # before any collector reads the keystore
    return ks


_names = iter(range(1000))


@pytest.fixture
def name():
    """A topic prefix and group of this test alone: the broker is shared by the module."""
    return "f%d" % next(_names)


def wait_for(check, what, timeout=DRAIN_S):
    end = time.monotonic() + timeout
    while time.monotonic() < end:
        if check():
            return
        time.sleep(0.25)
    raise AssertionError("not within %d s: %s" % (timeout, what))


class Collectors:
    """`citynode collect` processes of one group, each with its --instance; output in files."""

    def __init__(self, broker, keys, store, name, folder):
        self.broker = broker
        self.argv = ["--broker", broker.url, "--store", store, "--group", name, "--prefix", name,
                     "--keystore", str(keys.path), "--batch", "0.2", "--json"]
        self.keys = keys
        self.name = name
        self.folder = Path(folder)
        self.procs = {}
        self.runs = collections.Counter()

    def make_sessions(self, *instances):
        """The collectors' persistent sessions, subscribed: from here on the broker keeps their share
        of the messages whether or not their process is up yet."""
        for instance in instances:
            collector = Collector(self.broker.url, MemoryStore(), self.keys, group=self.name, prefix=self.name,
                                  instance=instance, log=lambda line: None)
            collector.start()
            collector.close()

    def start(self, instance):
        self.runs[instance] += 1
        out = self.folder / ("collector-%d-%d" % (instance, self.runs[instance]))
        with open(str(out) + ".out", "w") as stdout, open(str(out) + ".err", "w") as stderr:
            self.procs[instance] = (subprocess.Popen(
                [sys.executable, "-m", "citynode", "collect", *self.argv, "--instance", str(instance)], env=ENV,
                stdout=stdout, stderr=stderr), out)

    def drain(self, instances, expected):
        """Run a collector on each of those sessions (in this process) until `expected` frames are stored
        and then a second more; the frames stored."""
        store = LockedStore()
        running = []
        for instance in instances:
            collector = Collector(self.broker.url, store, self.keys, group=self.name, prefix=self.name,
                                  instance=instance, batch_s=0.1, log=lambda line: None)
            collector.start()
            thread = threading.Thread(target=collector.run, daemon=True)
            thread.start()
            running.append((collector, thread))
        try:
            wait_for(lambda: store.frames() >= expected, "%d frames from the sessions" % expected, timeout=30)
            time.sleep(1.0)  # and no more
        finally:
            for collector, thread in running:
                collector.stop()
                thread.join(10)
                collector.close()
        return store.frames()

    def kill(self, instance):
        proc, _out = self.procs.pop(instance)
        proc.send_signal(signal.SIGKILL)
        assert proc.wait(10) == -signal.SIGKILL

    def stop(self):
        """SIGTERM to each: {instance: its JSON summary}; each must exit 0."""
        for proc, _out in self.procs.values():
            proc.send_signal(signal.SIGTERM)
        summaries = {}
        for instance, (proc, out) in sorted(self.procs.items()):
            code = proc.wait(30)
            err = Path(str(out) + ".err").read_text()
            assert code == 0 and "Traceback" not in err, (instance, code, err)
            summaries[instance] = json.loads(Path(str(out) + ".out").read_text())
        self.procs = {}
        return summaries

    def close(self):
        for proc, _out in self.procs.values():
            proc.kill()
            proc.wait(10)


class LockedStore(MemoryStore):
    """The in-memory store, shared by collectors in threads of this process."""

    lock = threading.Lock()

    def write(self, batch):
        with self.lock:
            return super().write(batch)

    def frames(self):
        with self.lock:
            return len(self.ledger)


class Publishing:
    """The fleet simulator in a thread, publishing to the broker until finish(), every frame into a record."""

    def __init__(self, broker, keys, name, folder):
        self.sim = FleetSim(keys, CLIMATE_NODES, BRIDGE_NODES, prefix=name, seed=7)
        self.path = Path(folder) / "published.jsonl"
        self.record = Record(self.path)
        self.publisher = MqttPublisher(broker.url, 2, client_prefix="sim-" + name)
        self.stats = None
        self.stopping = threading.Event()
        self.thread = threading.Thread(target=self._run, daemon=True)
        self.thread.start()

    def _run(self):
        try:
            self.stats = self.sim.run(self.publisher, rate=RATE, record=self.record, stop=self.stopping.is_set)
        finally:
            self.record.close()
            self.publisher.close()

    @staticmethod
    def some(broker, keys, name, count):
        """`count` messages of the simulator's, published and acknowledged by the broker; their frames."""
        from citynode.fleet.sim_publish import ListPublisher

        from citynode.verifier import Verifier

        # climate nodes bundle their frames for uplink_linger_s (300 s): a message every 5 minutes
        sim = FleetSim(keys, 4, 0, duration_s=400 * count // 4, prefix=name, seed=1)
        listed = ListPublisher()
        sim.run(listed, rate=0)
        messages = [(t, p) for _slot, t, p, _retain in listed.messages if t.endswith("/frames")][:count]
        assert len(messages) == count
        with MqttPublisher(broker.url, 1, client_prefix="some-" + name) as publisher:
            for topic, payload in messages:
                publisher.publish(0, topic, payload)
            assert publisher.drain(10)
        verifier = Verifier(keys)  # a bundle is several frames: count them as the collectors will
        return sum(len(verifier.check(int(t.split("/")[-2]), payload)[0]) for t, payload in messages)

    @property
    def running(self):
        return self.thread.is_alive()

    def finish(self):
        """The frames published: one dict a frame, as the record has them."""
        self.stopping.set()
        self.thread.join(DRAIN_S)
        assert not self.thread.is_alive() and self.stats["acknowledged"], self.stats
        rows = [json.loads(line) for line in self.path.read_text().splitlines()]
        assert len(rows) == self.stats["frames"] and not any(r["rejected"] for r in rows)
        return rows


def pg_count(url, sql):
    import psycopg

    with psycopg.connect(url, connect_timeout=5) as conn:
        return conn.execute(sql).fetchone()


def ledger_count(url):
    try:
        return pg_count(url, "SELECT count(*) FROM frames")[0]
    except Exception:  # noqa: BLE001 - the server is restarting in one of the tests
        return -1


def assert_pg_holds_exactly(url, published):
    """Every published frame once in the ledger; each data table's rows those of the published frames, once."""
    import psycopg

    with psycopg.connect(url, connect_timeout=5) as conn:
        ledger = conn.execute("SELECT node_id, boot, seq FROM frames").fetchall()
        stored = {}
        for table in set(_DATA.values()) | {"accel"}:
            key = "node_id, boot, seq, sample_index" if table == "accel" else "node_id, boot, seq"
            stored[table] = conn.execute("SELECT count(*), count(DISTINCT (%s)) FROM %s" % (key, table)).fetchone()
        rejects = conn.execute("SELECT reason, node_id, boot, seq FROM rejects").fetchall()
    sent = [(r["node_id"], r["boot"], r["seq"]) for r in published]
    assert len(ledger) == len(set(ledger)) and sorted(ledger) == sorted(sent)
    expected = collections.Counter(_DATA[r["type"]] for r in published)
    expected["accel"] = sum(r["n_samples"] for r in published if r["type"] == "accel")
    assert expected["climate"] and expected["accel"] and expected["status"]
    for table, (rows, distinct) in stored.items():
        assert rows == distinct == expected[table], (table, rows, distinct, expected[table])
    # A node's resend after a broker restart reaches the collector without DUP: it may be noted as a
    # replay of a stored frame, never anything else.
    assert all(r[0] == "replay" and tuple(r[1:]) in set(sent) for r in rejects), rejects


def run_with_fault(broker, keys, store_url, name, folder, fault, count=ledger_count):
    """Two collectors and the simulator; `fault(collectors)` once the store holds frames while the
    simulator still publishes; then until every published frame is stored. The collectors' summaries
    and the record."""
    collectors = Collectors(broker, keys, store_url, name, folder)
    collectors.make_sessions(1, 2)
    try:
        collectors.start(1)
        collectors.start(2)
        sim = Publishing(broker, keys, name, folder)
        wait_for(lambda: count(store_url) >= 40, "the first frames stored")
        fault(collectors)
        time.sleep(AFTER_S)
        assert sim.running
        published = sim.finish()
        wait_for(lambda: count(store_url) >= len(published), "all %d frames stored" % len(published))
        return collectors.stop(), published
    finally:
        collectors.close()


@needs_postgres
def test_a_collector_killed_mid_stream_and_restarted_loses_and_doubles_nothing(broker, keys, pg_server, name,
                                                                                tmp_path):
    url = pg_server.create_database(name)

    def sigkill_then_restart(collectors):
        collectors.kill(1)
        time.sleep(1.0)  # its share of the messages waits in its session meanwhile
        collectors.start(1)

    summaries, published = run_with_fault(broker, keys, url, name, tmp_path, sigkill_then_restart)
    assert_pg_holds_exactly(url, published)
    assert summaries[1]["messages"] > 0  # the restarted one got what the broker kept for it


@needs_postgres
def test_a_broker_restart_mid_stream_loses_and_doubles_nothing(broker, keys, pg_server, name, tmp_path):
    url = pg_server.create_database(name)
    summaries, published = run_with_fault(broker, keys, url, name, tmp_path,
                                          lambda collectors: broker.restart(down_s=0.5))
    assert_pg_holds_exactly(url, published)
    assert all(s["reconnects"] >= 1 for s in summaries.values()), summaries
    # every message was acknowledged in the end: nothing waits in the sessions
    assert Collectors(broker, keys, "-", name, tmp_path).drain((1, 2), 0) == 0


@needs_postgres
def test_a_postgresql_restart_mid_stream_loses_and_doubles_nothing(broker, keys, pg_server, name, tmp_path):
    url = pg_server.create_database(name)
    summaries, published = run_with_fault(broker, keys, url, name, tmp_path,
                                          lambda collectors: pg_server.restart(down_s=1.0))
    assert_pg_holds_exactly(url, published)
    assert sum(s["store_errors"] for s in summaries.values()) >= 1, summaries  # the restart was felt


def test_a_collector_killed_mid_stream_loses_and_doubles_nothing_in_the_parquet_store(broker, keys, name,
                                                                                      tmp_path):
    from citynode.fleet.parquet_store import ParquetStore

    folder = str(tmp_path / "store")

    def stored(_folder):
        try:
            with ParquetStore(folder, create=False) as store:
                return store.query("frames").num_rows
        except Exception:  # noqa: BLE001 - the collectors may be making the folder
            return -1

    def sigkill_then_restart(collectors):
        collectors.kill(2)
        time.sleep(1.0)
        collectors.start(2)

    _summaries, published = run_with_fault(broker, keys, folder, name, tmp_path, sigkill_then_restart, stored)
    with ParquetStore(folder) as store:
        tables = {t: store.query(t) for t in ("frames", "climate", "accel", "accel_blocks", "status", "time")}
    ledger = list(zip(*(tables["frames"][k].to_pylist() for k in ("node_id", "boot", "seq"))))
    assert sorted(ledger) == sorted((r["node_id"], r["boot"], r["seq"]) for r in published)
    for table, kind in (("climate", "climate"), ("accel_blocks", "accel"), ("status", "status"), ("time", "time")):
        keys_stored = list(zip(*(tables[table][k].to_pylist() for k in ("node_id", "boot", "seq"))))
        assert len(keys_stored) == len(set(keys_stored)) == sum(r["type"] == kind for r in published), table
    samples = list(zip(*(tables["accel"][k].to_pylist() for k in ("node_id", "boot", "seq", "sample_index"))))
    assert len(samples) == len(set(samples)) == sum(r["n_samples"] for r in published if r["type"] == "accel")


def test_the_broker_keeps_more_than_mosquittos_default_1000_messages_for_a_collector_that_is_away(tmp_path):
    """Mosquitto drops, silently, what is queued for a client past `max_queued_messages` (1000 unless
    set); LocalBroker sets no limit, as an operator's broker for the collectors must."""
    import paho.mqtt.client as paho

    def kept(broker, sent=1500):
        session = Session(broker_url_of(broker), "away")
        session.connect().subscribe([("$share/g/t/+/frames", 1)])
        session.close()
        client = paho.Client(paho.CallbackAPIVersion.VERSION2, client_id="nodes")
        client.connect("127.0.0.1", broker.port)
        client.loop_start()
        infos = [client.publish("t/1/frames", b"%d" % i, qos=1) for i in range(sent)]
        for info in infos:
            info.wait_for_publish(10)
        client.disconnect()
        client.loop_stop()
        back = Session(broker_url_of(broker), "away").connect()
        last, since = -1, time.monotonic()
        while back.inbox.qsize() < sent and time.monotonic() - since < 1.0:  # all, or no more for 1 s
            if back.inbox.qsize() != last:
                last, since = back.inbox.qsize(), time.monotonic()
            time.sleep(0.05)
        back.close()
        return back.inbox.qsize()

    with LocalBroker(tmp_path / "unlimited") as broker:
        assert kept(broker) == 1500
    with LocalBroker(tmp_path / "mosquitto_default", max_queued_messages=1000) as broker:
        assert kept(broker) < 1500


def broker_url_of(broker):
    from citynode import broker_url

    return broker_url.parse(broker.url)


@needs_postgres
def test_a_store_that_does_not_open_is_one_line_and_leaves_the_messages_on_the_broker(broker, keys, pg_server,
                                                                                      name, tmp_path, capsys):
    """Each bad store is given to a collector whose session holds messages: it says one line, exits
    non-zero, and acknowledges nothing; collectors with the same client ids then store every message."""
    from citynode.fleet.pg_store import PgStore
    from citynode.fleet.store import SCHEMA_VERSION

    newer_pg = pg_server.create_database(name + "_newer")
    PgStore(newer_pg).close()
    pg_count(newer_pg, "INSERT INTO schema_migrations (version) VALUES (%d) RETURNING version" % (SCHEMA_VERSION + 1))
    newer_folder = tmp_path / "newer"
    newer_folder.mkdir()
    (newer_folder / "store.json").write_text(json.dumps({"kind": "citynode-store", "schema_version": SCHEMA_VERSION + 1}))
    (tmp_path / "a-file").write_text("")
    cases = [
        ("postgresql://u:hunter2@[::1/db", "not a PostgreSQL URL"),
        ("postgresql://u:hunter2@127.0.0.1:1/db", "cannot connect"),
        (pg_server.url_for(name + "_newer", password="hunter2"), "password authentication failed"),
        (newer_pg, "newer than this citynode (%d): upgrade citynode" % SCHEMA_VERSION),
        (str(tmp_path / "a-file" / "store"), "cannot write the store at %s" % (tmp_path / "a-file" / "store")),
        (str(newer_folder), "store schema version %d, this citynode reads version %d (upgrade citynode)"
         % (SCHEMA_VERSION + 1, SCHEMA_VERSION)),
    ]
    collectors = Collectors(broker, keys, "-", name, tmp_path)
    instances = range(1, len(cases) + 1)
    collectors.make_sessions(*instances)
    frames = Publishing.some(broker, keys, name, 40)
    from citynode import cli

    for instance, (store, words) in zip(instances, cases):  # in this process: a Python start each is slow
        code = cli.main(["collect", "--broker", broker.url, "--store", store, "--group", name, "--prefix", name,
                         "--instance", str(instance), "--keystore", str(keys.path)])
        out, err = capsys.readouterr()
        lines = err.strip().splitlines()
        assert code != 0 and len(lines) == 1 and lines[0].startswith("citynode: "), (store, err)
        assert words in lines[0] and "hunter2" not in err + out and pg_server.password not in err + out, (store, err)
    assert collectors.drain(instances, frames) == frames  # every message, on the sessions of the collectors that failed
