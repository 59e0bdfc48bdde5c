"""The fleet's reads on the real engines: the health scenario of fleet_scenario.py written into a
ParquetStore and a PgStore gives the same health rows and warnings as the MemoryStore; their own
SQL for query_received, last_received and calibrations_first_seen agrees with the Store defaults;
`citynode fleet` never reads the per-sample accel table; and `citynode query` against a PgStore
writes the same files as against a ParquetStore holding the same rows."""

import os
import re

import pyarrow as pa
import pyarrow.parquet as pq
import pytest
from fleet_memory_store import MemoryStore
from fleet_scenario import DAY, EXPECTED, NOW, SINCE, write_fleet
from pg_fixtures import needs_postgres, pg_server  # noqa: F401 (fixtures)
from store_rows import batch

from citynode.cli import main
from citynode.fleet import schema
from citynode.fleet.health import fleet_health
from citynode.fleet.parquet_store import ParquetStore
from citynode.fleet.report import draw_plots
from citynode.fleet.store import Store, StoreError

ENGINES = ["parquet", pytest.param("pg", marks=needs_postgres)]


@pytest.fixture(scope="module")
def memory():
    return write_fleet(MemoryStore())


@pytest.fixture(scope="module")
def parquet(tmp_path_factory):
    with write_fleet(ParquetStore(str(tmp_path_factory.mktemp("fleet") / "store"))) as store:
        yield store


@pytest.fixture(scope="module")
def pg(request):
    from citynode.fleet.pg_store import PgStore

    server = request.getfixturevalue("pg_server")
    with write_fleet(PgStore(server.create_database("fleet"))) as store:
        yield store


@pytest.fixture(params=ENGINES)
def engine(request):
    return request.getfixturevalue(request.param)


def _health(store, since=SINCE, now=NOW):
    return [h.as_json() for h in fleet_health(store, since, now)]


def test_the_scenario_gives_the_memory_stores_health_rows(engine, memory):
    rows = _health(engine)
    assert {r["node_id"]: [w["kind"] for w in r["warnings"]] for r in rows} == EXPECTED
    assert rows == _health(memory)


def test_a_window_where_every_node_is_silent(engine, memory):
    later = NOW + 3 * DAY
    rows = _health(engine, later - DAY, later)
    assert all(r["warnings"][0]["kind"] == "silent" for r in rows) and len(rows) == 8
    assert rows == _health(memory, later - DAY, later)


@pytest.mark.parametrize("table, columns", [
    ("frames", ("node_id", "boot", "seq", "received")),
    ("status", None),
    ("climate", ("qc_flags", "node_id", "time")),
])
def test_query_received_agrees_with_the_default(engine, memory, table, columns):
    for start, end, nodes in ((SINCE, None, None), (None, None, [8, 5]), (NOW - 3600 * 10**6, NOW, [3, 4, 99]),
                              (NOW - 400 * DAY, NOW - 399 * DAY, None)):
        mine = engine.query_received(table, start=start, end=end, nodes=nodes, columns=columns)
        assert mine.equals(memory.query_received(table, start=start, end=end, nodes=nodes, columns=columns)), (start, nodes)
    assert engine.query_received(table, start=NOW + DAY).num_rows == 0


def test_last_received_and_calibrations_agree_with_the_default(engine, memory):
    assert engine.last_received() == memory.last_received() and len(memory.last_received()) == 8
    assert engine.last_received(nodes=[2, 3, 77]) == memory.last_received(nodes=[2, 3, 77])
    assert engine.calibrations_first_seen() == memory.calibrations_first_seen()
    assert engine.calibrations_first_seen(nodes=[5, 1]) == {(5, 5): NOW - 400 * DAY, (1, 17): NOW - 30 * DAY}
    assert engine.last_received(nodes=[]) == {} and engine.calibrations_first_seen(nodes=[]) == {}


def test_an_unknown_column_is_a_store_error(engine):
    with pytest.raises(StoreError, match="no column 'pressure' in table climate"):
        engine.query_received("climate", columns=("node_id", "pressure"))


class Recording(Store):
    """A store that passes reads to another and notes which table and columns each asked."""

    def __init__(self, store):
        self.store, self.asked = store, []

    def query(self, table, start=None, end=None, nodes=None):
        self.asked.append((table, None))
        return self.store.query(table, start, end, nodes)

    def query_received(self, table, start=None, end=None, nodes=None, columns=None):
        self.asked.append((table, columns))
        return self.store.query_received(table, start, end, nodes, columns)

    def last_received(self, nodes=None):
        return self.store.last_received(nodes)

    def calibrations_first_seen(self, nodes=None):
        return self.store.calibrations_first_seen(nodes)


def test_fleet_reads_only_the_columns_it_needs_and_never_accel(memory, tmp_path):
    recording = Recording(memory)
    fleet_health(recording, SINCE, NOW)
    draw_plots(recording, [], SINCE, NOW, str(tmp_path))  # its reads, without drawing
    tables = [t for t, _ in recording.asked]
    assert set(tables) == {"frames", "status", "climate", "features"}
    assert all(columns is not None for _, columns in recording.asked)  # never a whole table
    assert dict(recording.asked)["climate"] is not None


def test_parquet_reads_keep_one_row_per_key(tmp_path):
    """A batch's data files written twice (a crash before its ledger file, then re-delivery)
    and a frame in the ledger twice (two collectors): each counts once, when first received."""
    with ParquetStore(str(tmp_path / "s")) as store:
        store.write(batch(3, 1, range(14)))
        again = batch(3, 1, range(14), received_us=1_796_000_100_000_000)
        for name, rows in again.tables.items():  # what a second collector's files add
            store._write_file(str(tmp_path / "s" / name / "day=2026-11-30"), rows)
        once = batch(3, 1, range(14))
        assert store.query_received("climate").equals(once.tables["climate"].sort_by(
            [("node_id", "ascending"), ("boot", "ascending"), ("seq", "ascending")]))
        assert store.query_received("frames").num_rows == 14
        assert store.last_received() == {3: max(once.tables["frames"]["received"].cast("int64").to_pylist())}
        late = store.query_received("frames", start=1_796_000_100_000_000)  # the copies' receipt is in this window
        assert late.num_rows == 14 and late["received"].cast("int64").to_pylist()[0] == 1_796_000_100_500_000


def _query(capsys, store, out, *argv):
    assert main(["query", "--store", store, "-o", str(out), *argv]) == 0, capsys.readouterr().err
    capsys.readouterr()
    return sorted(os.listdir(out))


def _same_rows():
    """Batches of every table: two nodes, one without UTC, an accel frame's samples, rejects."""
    return [batch(3, 1, range(21), rejects=2), batch(4, 2, range(5, 19), anchored=False),
            batch(3, 2, range(7), t0_us=1_796_090_000_000_000)]


@needs_postgres
@pytest.mark.parametrize("fmt", ["csv", "jsonl", "parquet"])
def test_query_from_postgresql_writes_the_same_files_as_from_parquet(pg_server, tmp_path, capsys, fmt):  # noqa: F811
    from citynode.fleet.pg_store import PgStore

    url = pg_server.create_database("query_" + fmt)
    folder = str(tmp_path / "store")
    with PgStore(url) as pg, ParquetStore(folder) as parquet:
        for b in _same_rows():
            assert pg.write(b) == parquet.write(b)
    windows = ([], ["--node", "4", "--table", "climate"], ["--from", "2026-11-30T00:53:26Z", "--to", "2026-12-01"])
    for argv in windows if fmt == "csv" else windows[:1]:
        from_pg = _query(capsys, url, tmp_path / ("pg" + str(len(argv))), "--format", fmt, *argv)
        from_files = _query(capsys, folder, tmp_path / ("pq" + str(len(argv))), "--format", fmt, *argv)
        assert from_pg == from_files and from_pg
        for name in from_pg:
            a, b = tmp_path / ("pg" + str(len(argv))) / name, tmp_path / ("pq" + str(len(argv))) / name
            if fmt == "parquet":
                assert pq.read_table(a).equals(pq.read_table(b)), name
            else:
                assert a.read_bytes() == b.read_bytes(), name


@needs_postgres
def test_plain_tables_for_timescaledb(pg_server):  # noqa: F811
    """partitioning="none" makes plain data tables (what create_hypertable takes); reads and
    writes are the same, and a later open finds the layout whatever it asks."""
    from citynode.fleet.pg_store import PgStore

    url = pg_server.create_database("plain")
    with PgStore(url, partitioning="none") as plain:
        kinds = dict(plain.conn.execute("SELECT relname, relkind FROM pg_class WHERE relname = ANY(%s)",
                                        (list(schema.DATA_TABLES) + ["frames"],)).fetchall())
        assert kinds == {name: "r" for name in schema.DATA_TABLES + ("frames",)}
        b = batch(3, 1, range(14))
        assert plain.write(b).frames_new == 14
        assert plain.write(b).frames_duplicate == 14
    with PgStore(url) as again:  # native asked: the database keeps its plain tables
        assert again.write(batch(3, 1, range(14, 28), t0_us=1_796_600_000_000_000)).frames_new == 14
        assert again.query("climate").num_rows == 8
        partitions = again.conn.execute("SELECT count(*) FROM pg_inherits").fetchone()[0]
        assert partitions == 0
    with pytest.raises(StoreError, match="partitioning 'hyper': give native or none"):
        PgStore(url, partitioning="hyper")


@needs_postgres
def test_a_big_read_streams_in_blocks(pg_server, monkeypatch):  # noqa: F811
    """More rows than one CSV block and one cursor fetch: every row arrives, in order."""
    from citynode.fleet import pg_store

    monkeypatch.setattr(pg_store, "CSV_BLOCK", 1 << 12)
    monkeypatch.setattr(pg_store, "FETCH_ROWS", 7)
    with pg_store.PgStore(pg_server.create_database("big")) as store:
        b = batch(5, 1, range(700), rejects=30)
        store.write(b)
        accel = store.query("accel")
        assert accel.num_rows == 100 * 4 and accel["sample_index"].to_pylist() == sorted(accel["sample_index"].to_pylist())
        assert accel.equals(b.tables["accel"].sort_by([("sample_index", "ascending")]))
        rejects = store.query("rejects")
        assert rejects.num_rows == 30 and rejects.schema.equals(schema.SCHEMAS["rejects"])
        assert pa.compute.all(pa.compute.equal(rejects["frame"], b"\x01\x02\x03")).as_py()


@needs_postgres
def test_fleet_and_query_read_a_read_only_database_as_a_replica_serves_it(pg, memory):
    """A streaming replica takes no writes: every read path runs in read-only transactions."""
    from citynode.fleet.pg_store import PgStore

    read_only = pg.url + ("&" if "?" in pg.url else "?") + "options=-c%20default_transaction_read_only%3Don"
    with PgStore(read_only, create=False) as replica:
        assert replica.conn.execute("SHOW default_transaction_read_only").fetchone()[0] == "on"
        assert _health(replica) == _health(memory)
        assert replica.query("climate", nodes=[1]).equals(memory.query("climate", nodes=[1]))
        with pytest.raises(StoreError, match="read-only"):
            replica.write(batch(9, 1, range(3)))


@needs_postgres
def test_pg_fleet_reads_only_the_windows_partitions(pg, monkeypatch):
    """The window on `received` prunes partitions: the plan of fleet's reads of the last day
    touches only that day's partitions (the scenario's rows span four days)."""
    from citynode.fleet import pg_store

    made = []
    real = pg_store._select
    monkeypatch.setattr(pg_store, "_select", lambda *args, **kw: made.append(real(*args, **kw)) or made[-1])
    fleet_health(pg, SINCE, NOW)
    assert len(made) == 3  # frames, status and climate of the window; every node sent a status in it
    days = {"20261206", "20261207"}
    for query in made:
        plan = "\n".join(r[0] for r in pg.conn.execute(b"EXPLAIN " + query.as_bytes(pg.conn)).fetchall())
        scanned = set(re.findall(r"on (\w+?)_(\d{8})\b", plan))
        assert {day for _table, day in scanned} <= days and (scanned or "frames" in plan), plan
    partitions = {r[0][-8:] for r in pg.conn.execute("SELECT relname FROM pg_class WHERE relname LIKE 'status_2%' AND relkind = 'r'")}
    assert len(partitions) == 4 and days < partitions
