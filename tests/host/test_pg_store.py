"""PgStore against a real PostgreSQL: every table round trips and agrees with the in-memory
reference store, writes are idempotent (also from two collectors at once), migrations are
versioned, errors are one line without the password, and a server restart is survived."""

import datetime
import math
import threading

import pyarrow as pa
import pytest

from citynode.broker import free_port
from citynode.fleet import schema
from citynode.fleet.pg_store import PgStore, mask_url, migrations
from citynode.fleet.store import SCHEMA_VERSION, IngestBatch, StoreError, open_store
from fleet_memory_store import MemoryStore
from pg_fixtures import _store_template, needs_postgres, pg_server, pg_store_url, pg_url  # noqa: F401 (fixtures)
from stamp_race import check_stamped, race_batches

pytestmark = [needs_postgres]

DAY_US = 86_400_000_000
T0 = 1_796_601_600_000_000  # 2026-12-07 00:00 UTC in µs
SAMPLES = 4  # accel samples a frame


def _value(field, i, key):
    """A value of field's type for row i; some nulls, quotes, newlines and non-ASCII text."""
    t = field.type
    if field.name in ("node_id", "boot", "seq"):
        return key[("node_id", "boot", "seq").index(field.name)]
    if field.name == "sample_index":
        return key[3]
    if field.name == "received":
        return key[4]
    if field.name == "time":
        return None if i % 5 == 4 else key[4] - 1_000_000
    if i % 7 == 6 and field.name not in ("plausible",):
        return None
    if pa.types.is_timestamp(t):
        return key[4] - 123_457
    if t == pa.int64():
        return i * 1_000_003 - 5 - (1 << 40)
    if t == pa.int32():
        return i - 3
    if t == pa.float64():
        return i * 0.1 - 1e-05
    if t == pa.bool_():
        return i % 3 != 0
    if t == pa.string():
        return "fw 1.2.3/0.4.%d 'q' \"dq\"\n\\ é°C" % i if i % 4 else ""
    if t == pa.binary():
        return bytes([i % 256, 0, 255, 10])
    raise AssertionError(t)


def table(name, keys):
    fields = schema.SCHEMAS[name]
    columns = [[_value(f, i, key) for i, key in enumerate(keys)] for f in fields]
    return pa.Table.from_arrays([pa.array(c, f.type) for c, f in zip(columns, fields)], schema=fields)


def batch(frames, received=T0, with_rejects=True):
    """A batch with every data table: frames is [(node_id, boot, seq)]; one frame of each kind per key."""
    keys = [(n, b, s, 0, received + i * 1000) for i, (n, b, s) in enumerate(frames)]
    tables = {name: table(name, keys) for name in schema.DATA_TABLES if name != "accel"}
    tables["accel"] = table("accel", [(n, b, s, s * SAMPLES + j, r) for n, b, s, _, r in keys for j in range(SAMPLES)])
    tables["frames"] = table("frames", keys)
    rejects = table("rejects", [(n, 0, 0, 0, received) for n, _b, _s in frames[:2]]) if with_rejects else None
    return IngestBatch(tables, rejects)


def frame_keys(nodes, boot, seqs):
    return [(n, boot, s) for n in nodes for s in seqs]


@pytest.fixture
def store(pg_store_url):
    with PgStore(pg_store_url) as s:
        yield s


def test_every_table_round_trips_and_agrees_with_the_memory_store(store):
    b = batch(frame_keys([3, 1], 2, range(10)) + frame_keys([1], 1, range(5)))
    mem = MemoryStore()
    assert store.write(b) == mem.write(b)
    for name in schema.TABLES:
        got = store.query(name)
        assert got.schema.equals(schema.SCHEMAS[name]), name
        want = mem.query(name)
        if name == "rejects":  # no key: any order
            got, want = (t.sort_by([("node_id", "ascending")]) for t in (got, want))
        assert got.to_pylist() == want.to_pylist(), name
        assert got.num_rows > 0


def test_numbers_and_text_are_exact(store):
    keys = [(1, 1, s, 0, T0 + s) for s in range(6)]
    climate = table("climate", keys)
    specials = [math.nan, math.inf, -math.inf, 5e-324, 1.7976931348623157e308, -0.0]
    climate = climate.set_column(climate.schema.get_field_index("temperature_c"), "temperature_c",
                                 pa.array(specials, pa.float64()))
    log = table("log", keys)
    texts = ["", "a\x00b", "\u2603 snow", "tab\tcr\r", "x" * 5000, None]
    log = log.set_column(log.schema.get_field_index("text"), "text", pa.array(texts, pa.string()))
    store.write(IngestBatch({"frames": table("frames", keys), "climate": climate, "log": log}))
    got = store.query("climate").column("temperature_c").to_pylist()
    assert math.isnan(got[0]) and got[1:5] == specials[1:5] and math.copysign(1, got[5]) == -1
    assert store.query("log").column("text").to_pylist() == ["", "a\ufffdb", "\u2603 snow", "tab\tcr\r", "x" * 5000, None]


def test_rewrite_is_idempotent(store):
    first = batch(frame_keys([1, 2], 1, range(8)))
    w = store.write(first)
    assert (w.frames_new, w.frames_duplicate, w.rejects) == (16, 0, 2)
    assert w.rows == 16 * 6 + 16 * SAMPLES
    before = {name: store.query(name).num_rows for name in schema.TABLES}
    again = store.write(first)
    assert (again.frames_new, again.frames_duplicate, again.rows) == (0, 16, 0)
    after = {name: store.query(name).num_rows for name in schema.TABLES}
    assert after == dict(before, rejects=before["rejects"] + 2)  # rejects are always kept
    overlap = store.write(batch(frame_keys([1, 2], 1, range(4, 12)), with_rejects=False))
    assert (overlap.frames_new, overlap.frames_duplicate) == (8, 8)
    assert sorted(overlap.duplicates) == [(n, 1, s) for n in (1, 2) for s in range(4, 8)]  # those the ledger had
    assert w.duplicates == []
    assert store.query("climate").column("seq").to_pylist() == list(range(12)) * 2


def test_a_frame_twice_in_one_batch_is_stored_once(store):
    b = batch(frame_keys([1], 1, [5, 5, 6]), with_rejects=False)
    w = store.write(b)
    assert (w.frames_new, w.frames_duplicate) == (2, 1)
    assert store.query("frames").num_rows == 2
    assert store.query("status").column("seq").to_pylist() == [5, 5, 6]  # as the memory store: rows of a new frame


def test_two_collectors_writing_the_same_frames_store_each_once(pg_url):
    stores = [None, None]
    errors = []

    def open_store_(i):  # an empty database: both migrate at once, one waits for the other
        try:
            stores[i] = PgStore(pg_url)
        except Exception as exc:  # reported below: the thread must not hide it
            errors.append(exc)

    openers = [threading.Thread(target=open_store_, args=(i,)) for i in range(2)]
    for t in openers:
        t.start()
    for t in openers:
        t.join(30)
    assert not errors
    assert stores[0].conn.execute("SELECT count(*) FROM schema_migrations").fetchone()[0] == SCHEMA_VERSION
    batches = [batch(frame_keys(range(1, 21), 1, range(k * 5, k * 5 + 5)), received=T0 + k * 10_000_000,
                     with_rejects=False) for k in range(12)]
    results = [[], []]
    barrier = threading.Barrier(2)

    def collect(i):
        try:
            for b in batches:
                barrier.wait(10)
                if i:  # the other collector has the frames in the opposite order
                    b = IngestBatch({n: t.take(pa.array(range(t.num_rows - 1, -1, -1))) for n, t in b.tables.items()})
                results[i].append(stores[i].write(b))
        except Exception as exc:  # reported below: the thread must not hide it
            errors.append(exc)

    threads = [threading.Thread(target=collect, args=(i,)) for i in range(2)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(60)
    assert not errors
    for a, b in zip(*results):
        assert a.frames_new + b.frames_new == 100 and a.frames_duplicate + b.frames_duplicate == 100
    frames = stores[0].query("frames")
    assert frames.num_rows == 1200
    assert len(set(zip(*(frames.column(c).to_pylist() for c in ("node_id", "boot", "seq"))))) == 1200
    assert stores[1].query("accel").num_rows == 1200 * SAMPLES
    for s in stores:
        s.close()


def test_partitions_are_made_by_day_of_received(store):
    days = [T0, T0 + DAY_US, T0 + 3 * DAY_US + 5]
    for k, received in enumerate(days):
        store.write(batch([(1, 1, k)], received=received))
    names = {r[0] for r in store.conn.execute(
        "SELECT c.relname FROM pg_inherits i JOIN pg_class c ON c.oid = i.inhrelid "
        "WHERE i.inhparent = 'climate'::regclass").fetchall()}
    assert names == {"climate_20261207", "climate_20261208", "climate_20261210"}
    assert store.query("climate").num_rows == 3


def test_query_filters_by_time_and_node(store):
    frames = frame_keys([1, 2, 3], 1, range(10))
    store.write(batch(frames))
    everything = store.query("climate")
    assert everything.num_rows == 30 and everything.column("time").null_count == 6
    times = everything.column("time").cast(pa.int64()).to_pylist()
    valid = sorted(t for t in times if t is not None)
    start, end = valid[5], valid[15]
    got = store.query("climate", start=start, end=end, nodes=[1, 3])
    want = [r for r in everything.to_pylist()
            if r["node_id"] in (1, 3) and r["time"] is not None
            and start <= int(r["time"].timestamp() * 1e6) < end]
    assert got.to_pylist() == want and got.num_rows > 0
    assert store.query("climate", start=start).column("time").null_count == 0
    assert store.query("accel", nodes=[2]).num_rows == 10 * SAMPLES
    assert store.query("climate", nodes=[]).num_rows == 0
    assert store.query("climate", start=-(1 << 62), end=1 << 62).num_rows == 24  # all with a time
    assert store.query("rejects", start=T0, end=T0 + 1).num_rows == 2
    assert store.query("rejects", start=T0 + 1).num_rows == 0
    with pytest.raises(StoreError, match="no table 'nope'"):
        store.query("nope")


def test_anchor_status_and_climate_history(store):
    keys = [(4, 2, s, 0, T0 + s * 1000) for s in range(3)]
    time_t = table("time", keys)
    time_t = time_t.set_column(time_t.schema.get_field_index("plausible"), "plausible", pa.array([True, True, False]))
    time_t = time_t.set_column(time_t.schema.get_field_index("node_time_s"), "node_time_s",
                               pa.array([1.0, 2.0015, 3.0]))
    time_t = time_t.set_column(time_t.schema.get_field_index("utc_ms"), "utc_ms", pa.array([10, 20, 30], pa.int64()))
    b = IngestBatch({"frames": table("frames", keys), "time": time_t, "status": table("status", keys),
                     "climate": table("climate", keys)})
    mem = MemoryStore()
    store.write(b)
    mem.write(b)
    assert store.anchor(4, 2) == mem.anchor(4, 2) == (2002, 20)
    assert store.anchor(4, 1) is None and store.latest_status(5, 2) is None
    assert store.latest_status(4, 2) == mem.latest_status(4, 2)
    # the collector's batched form: one query for many (node, boot), those without left out
    asked = [(4, 2), (4, 1), (5, 2)]
    assert store.anchors(asked) == mem.anchors(asked) == {(4, 2): (2002, 20)}
    assert store.latest_statuses(asked) == mem.latest_statuses(asked) == {(4, 2): mem.latest_status(4, 2)}
    assert store.anchors([]) == store.latest_statuses([]) == {}
    history = store.climate_history([4, 9], T0 - 10_000_000)
    assert history.to_pylist() == mem.climate_history([4, 9], T0 - 10_000_000).to_pylist()
    assert history.num_rows == 3
    assert history.schema.names == ["node_id", "time", "temperature_c", "relative_humidity_pct"]
    assert store.climate_history([4], T0 + 10_000_000).num_rows == 0


def test_migrations_fresh_applied_and_newer_refused(pg_url):
    assert [v for v, _name, _sql in migrations()] == list(range(1, SCHEMA_VERSION + 1))
    with pytest.raises(StoreError, match="no citynode schema"):
        PgStore(pg_url, create=False)
    with PgStore(pg_url) as s:
        assert s.schema_version() == SCHEMA_VERSION
        columns = s.conn.execute("SELECT table_name, column_name FROM information_schema.columns "
                                 "WHERE table_schema = 'public' ORDER BY table_name, ordinal_position").fetchall()
    for name in schema.TABLES:  # the migration makes the tables of schema.py, column for column
        assert [c for t, c in columns if t == name] == schema.SCHEMAS[name].names
    with open_store(pg_url, create=False) as s:  # already applied: nothing to do
        assert s.conn.execute("SELECT count(*) FROM schema_migrations").fetchone()[0] == SCHEMA_VERSION
    with PgStore(pg_url) as s:
        s.conn.execute("INSERT INTO schema_migrations (version) VALUES (3)")
    for create in (True, False):
        with pytest.raises(StoreError) as err:
            PgStore(pg_url, create=create)
        assert str(err.value).endswith("schema version 3 is newer than this citynode (1): upgrade citynode")


def test_an_older_schema_is_migrated_only_with_create(pg_url, monkeypatch):
    import citynode.fleet.pg_store as pg_store

    later = migrations() + [(2, "0002_test.sql", "ALTER TABLE log ADD COLUMN extra integer")]
    with PgStore(pg_url):
        pass
    monkeypatch.setattr(pg_store, "migrations", lambda: later)
    with pytest.raises(StoreError, match="schema version 1 is older than this citynode \\(2\\)"):
        PgStore(pg_url, create=False)
    with PgStore(pg_url) as s:
        assert s.schema_version() == 2


def _error_line(url):
    with pytest.raises(StoreError) as err:
        PgStore(url)
    message = str(err.value)
    assert "\n" not in message
    return message


def test_errors_are_one_line_without_the_password(pg_server):
    port = pg_server.port
    bad_url = _error_line("postgresql://u:hunter22@127.0.0.1/db?colour=blue")
    assert "not a PostgreSQL URL" in bad_url and "hunter22" not in bad_url and "u:***@" in bad_url
    bad_port = _error_line("postgresql://u:hunter22@127.0.0.1:notaport/db")
    assert '"notaport"' in bad_port and "hunter22" not in bad_port
    wrong = _error_line("postgresql://citynode_app:hunter22@127.0.0.1:%d/citynode" % port)
    assert "password authentication failed" in wrong and "hunter22" not in wrong
    nobody = _error_line("postgresql://citynode_app:hunter22@127.0.0.1:%d/citynode" % free_port())
    assert "cannot connect" in nobody and "hunter22" not in nobody
    missing = pg_server.url_for("no_such_db")
    message = _error_line(missing)
    assert 'database "no_such_db" does not exist' in message and pg_server.password not in message
    query_pw = _error_line("postgresql://citynode_app@127.0.0.1:%d/citynode?password=hunter22" % port)
    assert "hunter22" not in query_pw
    encoded = _error_line("postgresql://citynode_app:p%%40ss%%20word@127.0.0.1:%d/citynode" % port)
    assert "p%40ss" not in encoded and "p@ss" not in encoded and "password authentication failed" in encoded
    assert mask_url("postgresql://a:b@h/d?password=c&x=1") == "postgresql://a:***@h/d?password=***&x=1"


def test_a_server_restart_between_writes(pg_server, pg_store_url):
    with PgStore(pg_store_url) as s:
        s.write(batch(frame_keys([1], 1, range(5))))
        pg_server.restart()
        second = batch(frame_keys([1], 1, range(5, 10)))
        try:
            s.write(second)
        except StoreError as exc:  # the old connection died with the server: one line, then the next call reconnects
            assert "\n" not in str(exc) and pg_server.password not in str(exc)
            s.write(second)
        assert s.write(second).frames_duplicate == 5
        assert s.query("climate").column("seq").to_pylist() == list(range(10))


def test_a_write_while_the_server_is_down_fails_then_reconnect_works(pg_server, pg_store_url):
    with PgStore(pg_store_url) as s:
        pg_server.stop()
        try:
            with pytest.raises(StoreError, match="write failed|cannot connect"):
                s.write(batch([(1, 1, 1)]))
            with pytest.raises(StoreError, match="cannot connect"):
                s.reconnect()
        finally:
            pg_server.start()
        s.reconnect()
        assert s.write(batch([(1, 1, 1)])).frames_new == 1
        assert s.anchor(1, 1) is not None or s.query("time").num_rows == 1


def test_a_batch_with_a_wrong_schema_is_refused_whole(store):
    b = batch([(1, 1, 1)])
    b.tables["climate"] = b.tables["climate"].drop_columns(["qc_score"])
    with pytest.raises(StoreError, match="climate has schema"):
        store.write(b)
    assert store.query("frames").num_rows == 0


def test_time_columns_keep_microseconds(store):
    b = batch([(1, 1, 1)], received=T0 + 123_456_789)
    store.write(b)
    got = store.query("frames").column("received").cast(pa.int64()).to_pylist()
    assert got == [T0 + 123_456_789]
    assert store.query("climate").column("time").to_pylist()[0] == datetime.datetime(
        2026, 12, 7, 0, 2, 2, 456789, tzinfo=datetime.timezone.utc)


def test_local_postgres_runs_unprivileged_and_restarts_on_its_port(pg_server):
    import os

    uid = int([line for line in open("/proc/%d/status" % pg_server.proc.pid) if line.startswith("Uid:")][0].split()[1])
    assert uid != 0 and (os.geteuid() != 0 or pg_server.owner[0] == uid)
    assert pg_server.url.startswith("postgresql://citynode_app:%s@127.0.0.1:%d/" % (pg_server.password, pg_server.port))
    url = pg_server.create_database("kept")
    with PgStore(url) as s:
        s.write(batch([(1, 1, 1)]))
    port = pg_server.port
    pg_server.restart()
    assert pg_server.port == port
    with PgStore(url, create=False) as s:
        assert s.query("frames").num_rows == 1


@pytest.mark.parametrize("data_first", [True, False], ids=["data-first", "anchors-first"])
def test_rows_a_collector_left_unstamped_get_the_boots_anchor_and_status(pg_store_url, data_first):
    """Two collectors: one writes a boot's data frames without stamps (the other had not stored the
    boot's STATUS and TIME yet), the other those; whichever writes second fills the stamps in."""
    data, anchors = race_batches()
    with PgStore(pg_store_url) as one, PgStore(pg_store_url) as two:
        one.write(data if data_first else anchors)
        two.write(anchors if data_first else data)
        check_stamped(one)


def _lock_waits(conn):
    return conn.execute("SELECT count(*) FROM pg_locks WHERE locktype = 'advisory' AND NOT granted").fetchone()[0]


@pytest.mark.parametrize("data_first", [True, False], ids=["data-first", "anchors-first"])
def test_two_writes_of_one_boot_at_once_fill_in_the_stamps(pg_store_url, data_first):
    """The first write holds its transaction open after filling in; the second, in another
    thread, waits for the boot's lock, then sees the first's rows and fills in what it could not."""
    data, anchors = race_batches()
    first_batch, second_batch = (data, anchors) if data_first else (anchors, data)
    filled, release, errors = threading.Event(), threading.Event(), []
    with PgStore(pg_store_url) as one, PgStore(pg_store_url) as two, PgStore(pg_store_url) as watch:
        fill = one._fill_stamps

        def fill_then_hold(cur, start):
            fill(cur, start)
            filled.set()
            release.wait(30)

        one._fill_stamps = fill_then_hold

        def write(store, b):
            try:
                store.write(b)
            except Exception as exc:  # reported below: the thread must not hide it
                errors.append(exc)

        first = threading.Thread(target=write, args=(one, first_batch))
        first.start()
        assert filled.wait(30)
        second = threading.Thread(target=write, args=(two, second_batch))
        second.start()
        for _ in range(500):  # until the second waits for the boot's lock (or, without one, is done)
            if _lock_waits(watch.conn) or not second.is_alive():
                break
            second.join(0.01)
        assert second.is_alive() and _lock_waits(watch.conn) == 1
        release.set()
        first.join(30)
        second.join(30)
        assert not errors
        check_stamped(one)


def test_filling_in_rewrites_only_rows_that_change(store):
    """A boot with a status but no plausible TIME: each write looks for stamps to fill in, and
    leaves the rows it cannot change as they are (the same row versions)."""
    from store_rows import batch as node_batch

    store.write(node_batch(3, 1, range(3, 7), anchored=False))  # the status at 3, climate at 6
    before = store.conn.execute("SELECT seq, xmin::text FROM climate ORDER BY seq").fetchall()
    store.write(node_batch(3, 1, range(3), anchored=False))  # climate at 0: from there on, rows are looked at
    after = store.conn.execute("SELECT seq, xmin::text FROM climate WHERE seq > 0 ORDER BY seq").fetchall()
    assert after == before
    climate = store.query("climate").to_pylist()
    assert [(r["seq"], r["time"], r["calibration_id"]) for r in climate] == [(0, None, None), (6, None, 7)]
