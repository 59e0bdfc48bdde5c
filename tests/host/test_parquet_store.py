"""The embedded store: Parquet by table and day, atomic idempotent writes, DuckDB queries."""

import json
import os

import pyarrow.parquet as pq
import pytest

from citynode.fleet import parquet_store, schema
from citynode.fleet.parquet_store import ParquetStore
from citynode.fleet.store import SCHEMA_VERSION, StoreError, open_store

from stamp_race import check_stamped, race_batches
from store_rows import ACCEL_SAMPLES, FIRMWARE, T0_US, batch, kind_of

DAY_US = 86_400_000_000


def _files(folder, table):
    out = []
    for root, _dirs, names in os.walk(os.path.join(folder, table)):
        out += [os.path.join(root, n) for n in names]
    return sorted(out)


def _keys(table, name="frames"):
    return list(zip(*(table.column(c).to_pylist() for c in schema.KEYS[name])))


def test_every_table_round_trips_with_its_schema(tmp_path):
    b = batch(3, 1, range(21), rejects=2)
    with ParquetStore(str(tmp_path / "s")) as store:
        written = store.write(b)
        assert (written.frames_new, written.frames_duplicate, written.rejects) == (21, 0, 2)
        assert written.rows == sum(t.num_rows for n, t in b.tables.items() if n != "frames")
        for name in schema.TABLES:
            got = store.query(name)
            assert got.schema.equals(schema.SCHEMAS[name]), name
            want = b.tables[name] if name != "rejects" else b.rejects
            assert got.to_pylist() == want.to_pylist(), name
    meta = json.loads((tmp_path / "s" / "store.json").read_text())
    assert meta == {"kind": "citynode-store", "schema_version": SCHEMA_VERSION}
    day = "day=" + parquet_store._day(T0_US)
    assert all(os.path.basename(os.path.dirname(f)) == day and f.endswith(".parquet") for f in _files(str(tmp_path / "s"), "climate"))


def test_a_missing_table_is_empty_and_a_fresh_store_answers_none(tmp_path):
    with open_store(str(tmp_path / "s")) as store:
        assert store.query("features").equals(schema.empty("features"))
        assert store.anchor(3, 1) is None and store.latest_status(3, 1) is None
        assert store.climate_history([3], 0).num_rows == 0


def test_rewriting_a_batch_changes_nothing_and_reopening_remembers(tmp_path):
    folder = str(tmp_path / "s")
    b = batch(3, 1, range(14))
    with ParquetStore(folder) as store:
        store.write(b)
        again = store.write(b)
    assert (again.frames_new, again.frames_duplicate, again.rows) == (0, 14, 0)
    with ParquetStore(folder) as store:  # the ledger is read back at open
        third = store.write(batch(3, 1, range(10, 20)))
        assert (third.frames_new, third.frames_duplicate) == (6, 4)
        assert sorted(third.duplicates) == [(3, 1, s) for s in range(10, 14)]  # those the ledger had
        assert _keys(store.query("frames")) == [(3, 1, s) for s in range(20)]
        assert store.query("accel").num_rows == sum(ACCEL_SAMPLES for s in range(20) if kind_of(s) == "accel")


def test_two_writers_on_one_folder_never_show_a_row_twice(tmp_path):
    folder = str(tmp_path / "s")
    b = batch(5, 2, range(14))
    with ParquetStore(folder) as one, ParquetStore(folder) as two:
        assert one.write(b).frames_new == 14
        assert two.write(b).frames_new == 14  # two's ledger was read before one wrote
        for name in ("climate", "accel", "frames", "time"):
            keys = _keys(one.query(name), name)
            assert len(keys) == len(set(keys)) == b.tables[name].num_rows, name
        assert len(_files(folder, "climate")) == 2  # both files are there; the query keeps one row per key


def test_a_write_failing_midway_leaves_nothing_and_a_rewrite_stores_it_once(tmp_path, monkeypatch):
    folder = str(tmp_path / "s")
    b = batch(3, 1, range(14))
    real = parquet_store._write_atomic
    calls = []

    def second_fails(path, table):
        calls.append(path)
        if len(calls) == 2:
            raise OSError(28, "No space left on device")
        real(path, table)

    with ParquetStore(folder) as store:
        monkeypatch.setattr(parquet_store, "_write_atomic", second_fails)
        with pytest.raises(StoreError, match="No space left on device"):
            store.write(b)
        monkeypatch.setattr(parquet_store, "_write_atomic", real)
        assert all(store.query(name).num_rows == 0 for name in schema.TABLES)
        assert not any(n.endswith(".tmp") for t in schema.TABLES for n in _files(folder, t))
        assert store.write(b).frames_new == 14
        assert store.query("climate").to_pylist() == b.tables["climate"].to_pylist()


def test_a_crash_between_files_shows_no_row_twice_after_redelivery(tmp_path):
    """A process killed after its data files, before its ledger file: the batch comes again."""
    folder = str(tmp_path / "s")
    b = batch(3, 1, range(14))
    with ParquetStore(folder) as store:
        store._write_file(os.path.join(folder, "climate", "day=" + parquet_store._day(T0_US)), b.tables["climate"])
    with ParquetStore(folder) as store:
        assert store.write(b).frames_new == 14
        assert store.query("climate").to_pylist() == b.tables["climate"].to_pylist()


def test_compaction_merges_parts_keeping_one_row_per_key(tmp_path, monkeypatch):
    folder = str(tmp_path / "s")
    monkeypatch.setattr(parquet_store, "COMPACT_AFTER", 5)
    with ParquetStore(folder) as store, ParquetStore(folder) as other:
        for first in range(0, 28, 7):  # four writes: four part files per table
            store.write(batch(3, 1, range(first, first + 7)))
        other.write(batch(3, 1, range(0, 7)))  # a duplicate file from another writer
        assert len(_files(folder, "frames")) == 5
        before = {name: store.query(name) for name in schema.TABLES}
        store.write(batch(3, 1, range(28, 35)))  # the sixth file: past COMPACT_AFTER, merged
        assert len(_files(folder, "frames")) == 1
        assert store.query("frames").num_rows == 35
        assert all(len(_files(folder, n)) == 1 for n in schema.TABLES if n != "rejects")
        for name, table in before.items():
            assert store.query(name, end=T0_US + 28 * 1_000_000).to_pylist() == table.to_pylist(), name
        partition = os.path.dirname(_files(folder, "climate")[0])
        stale = os.path.join(partition, ".part-1-%d-1.parquet.tmp" % 999_999_999)  # of a process killed mid-write
        open(stale, "wb").close()
        assert store.compact() == 0 and not os.path.exists(stale)
        other.write(batch(3, 1, range(28, 42)))  # half new, half a duplicate of the merged file's
        assert store.compact("climate") == 2 and len(_files(folder, "frames")) == 2
        assert store.compact() > 0
        assert all(len(_files(folder, n)) == 1 for n in schema.TABLES if n != "rejects")
        merged = pq.read_table(_files(folder, "frames")[0])
        assert merged.num_rows == 42  # the file itself holds each frame once


def test_days_partitions_time_range_and_node_filters(tmp_path):
    folder = str(tmp_path / "s")
    with ParquetStore(folder) as store:
        store.write(batch(3, 1, range(7), step_us=DAY_US // 2))  # seven frames over three and a half days
        store.write(batch(4, 1, range(7), step_us=DAY_US // 2))
        days = sorted(os.listdir(os.path.join(folder, "frames")))
        assert len(days) == 4 and days[0] == "day=" + parquet_store._day(T0_US)
        start, end = T0_US + DAY_US, T0_US + 2 * DAY_US
        got = store.query("frames", start=start, end=end, nodes=[4])
        assert _keys(got) == [(4, 1, 2), (4, 1, 3)]
        assert store.query("frames", start=start).num_rows == 10
        assert store.query("frames", end=start).num_rows == 4
        assert store.query("frames", nodes=[]).num_rows == 0
        assert store.query("frames", nodes=[3, 4]).num_rows == 14


def test_rows_without_time_go_by_received_and_show_only_without_a_range(tmp_path):
    folder = str(tmp_path / "s")
    received = T0_US + 3 * DAY_US
    with ParquetStore(folder) as store:
        store.write(batch(3, 1, range(7), anchored=False, received_us=received))
        assert os.listdir(os.path.join(folder, "climate")) == ["day=" + parquet_store._day(received)]
        everything = store.query("climate")
        assert everything.num_rows == 2 and everything["time"].null_count == 2
        # the status of seq 3 is in force at seq 6, whose row the collector left without one
        assert everything["calibration_id"].to_pylist() == [None, 7]
        assert store.query("climate", start=0).num_rows == 0
        assert store.query("rejects", start=0).num_rows == 0


def test_anchor_status_and_climate_history(tmp_path):
    folder = str(tmp_path / "s")
    with ParquetStore(folder) as store:
        assert store.anchor(3, 1) is None  # asked before anything is written: kept up by writes
        store.write(batch(3, 1, range(7)))
        assert store.anchor(3, 1) == (round((100.0 + 5) * 1000), (T0_US + 5_000_000) // 1000)
        assert store.latest_status(3, 1) == {"calibration_id": 7, "firmware": FIRMWARE}
        store.write(batch(3, 1, range(7, 14)))
        assert store.anchor(3, 1) == (112_000, (T0_US + 12_000_000) // 1000)
        assert store.anchor(3, 2) is None and store.latest_status(4, 1) is None
        history = store.climate_history([3], T0_US + 6_000_000)
        assert history.column_names == ["node_id", "time", "temperature_c", "relative_humidity_pct"]
        assert history["node_id"].to_pylist() == [3, 3, 3] and history["time"].type == schema.TIME
    with ParquetStore(folder) as store:  # read from the files
        assert store.anchor(3, 1) == (112_000, (T0_US + 12_000_000) // 1000)
        assert store.latest_status(3, 1)["firmware"] == FIRMWARE


def test_rows_that_do_not_fit_the_schema_are_refused(tmp_path):
    b = batch(3, 1, range(7))
    b.tables["climate"] = b.tables["climate"].drop_columns(["qc_score"])
    with ParquetStore(str(tmp_path / "s")) as store:
        with pytest.raises(StoreError, match="climate rows do not fit"):
            store.write(b)
        assert store.query("frames").num_rows == 0


def test_folders_that_are_not_a_store_of_this_version_are_refused(tmp_path):
    newer = tmp_path / "newer"
    newer.mkdir()
    (newer / "store.json").write_text(json.dumps({"kind": "citynode-store", "schema_version": SCHEMA_VERSION + 1}))
    with pytest.raises(StoreError, match="schema version %d.*upgrade citynode" % (SCHEMA_VERSION + 1)):
        ParquetStore(str(newer))
    other = tmp_path / "photos"
    other.mkdir()
    (other / "cat.jpg").write_bytes(b"\xff\xd8")
    with pytest.raises(StoreError, match="not a citynode store"):
        ParquetStore(str(other))
    with pytest.raises(StoreError, match="no store at"):
        ParquetStore(str(tmp_path / "missing"), create=False)
    assert not (tmp_path / "missing").exists()
    (tmp_path / "file").write_text("x")
    with pytest.raises(StoreError, match="cannot write the store") as exc:
        ParquetStore(str(tmp_path / "file" / "store"))
    assert "\n" not in str(exc.value)
    with pytest.raises(StoreError, match="not a store"):
        ParquetStore(str(tmp_path / "file"))


def test_anchor_and_status_stored_by_another_writer_are_seen(tmp_path, monkeypatch):
    folder = str(tmp_path / "s")
    with ParquetStore(folder) as one, ParquetStore(folder) as two:
        assert one.anchor(3, 1) is None and one.latest_status(3, 1) is None
        two.write(batch(3, 1, range(7)))  # a second collector took this node's TIME and STATUS
        monkeypatch.setattr(parquet_store, "REREAD_S", 0.0)
        assert one.anchor(3, 1) == (105_000, (T0_US + 5_000_000) // 1000)
        assert one.latest_status(3, 1) == {"calibration_id": 7, "firmware": FIRMWARE}


@pytest.mark.parametrize("data_first", [True, False], ids=["data-first", "anchors-first"])
def test_rows_a_collector_left_unstamped_get_the_boots_anchor_and_status_at_read(tmp_path, data_first):
    """Two collectors on one folder: one writes a boot's data frames without stamps (the other
    had not stored the boot's STATUS and TIME yet), the other those; the files are not rewritten."""
    data, anchors = race_batches()
    folder = str(tmp_path / "s")
    with ParquetStore(folder) as one, ParquetStore(folder) as two:
        one.write(data if data_first else anchors)
        two.write(anchors if data_first else data)
        check_stamped(one)
        [climate] = _files(folder, "climate")  # as written: only the data batch has climate frames
        assert pq.read_table(climate)["time"].null_count == 3
    with ParquetStore(folder) as again:
        check_stamped(again)


def test_collectors_starting_together_make_one_store(tmp_path):
    """Two collectors started at once on a new folder (a group's first start): both open it."""
    import threading

    for round_ in range(30):
        folder = str(tmp_path / ("store%d" % round_))
        errors = []
        start = threading.Barrier(4)

        def open_it():
            start.wait()
            try:
                ParquetStore(folder).close()
            except Exception as exc:  # noqa: BLE001 - any failure is the finding
                errors.append(exc)

        threads = [threading.Thread(target=open_it) for _ in range(4)]
        for t in threads:
            t.start()
        for t in threads:
            t.join()
        assert not errors, errors
        assert sorted(os.listdir(folder)) == ["store.json"]
