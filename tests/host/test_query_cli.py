"""`citynode query`: the store's rows in the files `citynode decode` writes, then the store's columns;
every bad input refused in one line with nothing written."""

import csv
import json
import os

import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq
import pytest

from citynode.cli import main
from citynode.commands.query import parse_time
from citynode.fleet import schema
from citynode.fleet.parquet_store import ParquetStore
from citynode.fleet.query_rows import accel_runs, epochs, output_columns
from citynode.fleet.store import IngestBatch
from citynode.tables import columns_of
from citynode.traffic import TrafficBuilder

from store_rows import FIRMWARE, T0_US, batch

UTC0 = "2026-11-26T06:12:24Z"
RECEIVED_US = 1_796_100_000_000_000


def run(capsys, *argv):
    code = main(["query", *map(str, argv)])
    out, err = capsys.readouterr()
    return code, out, err


def one_line_error(code, err, *words):
    assert code != 0
    lines = err.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("citynode: ") and "Traceback" not in err, err
    for w in words:
        assert w in lines[0], (w, lines[0])


@pytest.fixture(scope="module")
def decoded(tmp_path_factory):
    """A capture decoded by `citynode decode` (CSV and Parquet), and a store holding the same rows.

    Node 1 restarts once (epoch 1); node 2 never learns UTC. The store's boot is
    epoch + 40, so `query` must count epochs from the boots."""
    folder = tmp_path_factory.mktemp("decoded")
    n1, n2 = TrafficBuilder(1), TrafficBuilder(2)
    block = np.array([[16, -8, 16384], [32, -16, 16400], [48, 0, 16368], [-32768, 32767, 0]])
    wire = n1.climate(1000, 21.5, 48.25, status=4) + n2.climate(1000, -3.75, 99.5)
    wire += n1.time_anchor(2000, UTC0) + n1.accel_block(2500, block, odr_hz=200.0, range_g=2, encoding=0)
    wire += n1.log(2600, 'retry "sht4x", ok', level=2) + n1.climate(3000, 21.55, 48.0)
    wire += n2.accel_block(4000, block, odr_hz=400.0, range_g=8, encoding=1)
    wire += n1.climate(500, 21.6, 47.0)  # the node's clock went back: a restart
    (folder / "cap.bin").write_bytes(wire)
    for fmt in ("csv", "parquet"):
        with pytest.MonkeyPatch.context():
            assert main(["decode", str(folder / "cap.bin"), "--out-dir", str(folder / fmt), "--format", fmt]) == 0
    tables, frames = {}, {}
    for name in os.listdir(folder / "parquet"):
        kind = name[: -len(".parquet")]
        rows = pq.read_table(folder / "parquet" / name)
        n = rows.num_rows
        store_rows = {"boot": pa.compute.add(rows["epoch"], 40), "received": pa.array([RECEIVED_US] * n, schema.TIME)}
        tables[kind] = pa.table({f.name: store_rows[f.name] if f.name in store_rows else rows[f.name] if f.name in rows.column_names
                                 else pa.nulls(n, f.type) for f in schema.SCHEMAS[kind]}).cast(schema.SCHEMAS[kind])
        for key in zip(rows["node_id"].to_pylist(), store_rows["boot"].to_pylist(), rows["seq"].to_pylist()):
            frames[key] = kind
    tables["frames"] = pa.Table.from_pylist(
        [{"node_id": k[0], "boot": k[1], "seq": k[2], "type": 1, "time": None, "received": RECEIVED_US} for k in frames],
        schema=schema.SCHEMAS["frames"])
    with ParquetStore(str(folder / "store")) as store:
        assert store.write(IngestBatch(tables)).frames_new == len(frames)
    return folder


def _sorted_lines(path, columns):
    with open(path, newline="", encoding="utf-8") as f:
        rows = list(csv.reader(f))
    index = [rows[0].index(c) for c in ("node_id", "epoch", "seq") + (("sample_index",) if "sample_index" in rows[0] else ())]
    return rows[0][:columns], sorted((r[:columns] for r in rows[1:]), key=lambda r: [int(r[i]) for i in index])


def test_csv_has_decodes_columns_and_text_then_the_stores(capsys, decoded, tmp_path):
    code, out, err = run(capsys, "--store", decoded / "store", "-o", tmp_path / "q")
    assert code == 0 and err == "", err
    decode_files = sorted(os.listdir(decoded / "csv"))
    assert sorted(os.listdir(tmp_path / "q")) == decode_files
    for name in decode_files:
        kind = name[:-4]
        width = len(columns_of(kind))
        assert _sorted_lines(tmp_path / "q" / name, width) == _sorted_lines(decoded / "csv" / name, width), kind
        with open(tmp_path / "q" / name, newline="") as f:
            header = next(csv.reader(f))
        assert header == [c for c, _ in output_columns(kind)]
        assert header[width:width + 2] == ["boot", "received"]
    with open(tmp_path / "q" / "climate.csv", newline="") as f:
        climate = list(csv.DictReader(f))
    assert [(r["node_id"], r["epoch"], r["boot"]) for r in climate] == [
        ("1", "0", "40"), ("1", "0", "40"), ("1", "1", "41"), ("2", "0", "40")]
    assert climate[0]["received"] == "2026-12-01T04:40:00.000000Z"
    assert climate[0]["calibration_id"] == climate[0]["qc_flags"] == "" and climate[3]["time"] == ""
    assert "into %s" % (tmp_path / "q") in out


def test_jsonl_and_parquet_and_one_table_of_one_node(capsys, decoded, tmp_path):
    argv = ["--store", decoded / "store", "--table", "climate", "--node", "2"]
    assert run(capsys, *argv, "-o", tmp_path / "j", "--format", "jsonl", "--time-format", "epoch-us")[0] == 0
    assert os.listdir(tmp_path / "j") == ["climate.jsonl"]
    rows = [json.loads(line) for line in (tmp_path / "j" / "climate.jsonl").read_text().splitlines()]
    assert len(rows) == 1
    assert list(rows[0]) == [c for c, _ in output_columns("climate")]
    assert rows[0]["time"] is None and rows[0]["received"] == RECEIVED_US and rows[0]["temperature_c"] == -3.75
    assert rows[0]["calibration_id"] is None and rows[0]["firmware"] is None
    assert run(capsys, *argv, "-o", tmp_path / "p", "--format", "parquet")[0] == 0
    table = pq.read_table(tmp_path / "p" / "climate.parquet")
    decode = pq.read_table(decoded / "parquet" / "climate.parquet")
    assert table.schema.names[: len(decode.schema)] == decode.schema.names
    assert table.select(decode.schema.names).schema.equals(decode.schema)
    assert table["received"].type == pa.timestamp("us", tz="UTC") and table["qc_flags"].null_count == 1


def test_time_range_and_the_default_store(capsys, tmp_path, monkeypatch):
    monkeypatch.setenv("XDG_DATA_HOME", str(tmp_path / "xdg"))
    from citynode.fleet.store import default_folder, open_store

    with open_store(None) as store:
        store.write(batch(3, 1, range(14)))
        store.write(batch(4, 1, range(14)))
    assert default_folder().startswith(str(tmp_path / "xdg"))
    code, out, err = run(capsys, "--from", "2026-11-30T00:53:26Z", "--to", "2026-11-30T00:53:33Z",
                         "--node", "3", "-o", tmp_path / "q", "--table", "status")
    assert code == 0, err
    with open(tmp_path / "q" / "status.csv", newline="") as f:
        rows = list(csv.DictReader(f))
    assert [(r["node_id"], r["seq"], r["firmware"]) for r in rows] == [("3", "10", FIRMWARE)]
    assert rows[0]["time"] == "2026-11-30T00:53:30.000000Z"
    code, out, err = run(capsys, "--from", "-1h", "-o", tmp_path / "none")  # nothing in the last hour
    assert code == 0 and "no rows" in out and not (tmp_path / "none").exists()


def test_times():
    now = T0_US
    assert parse_time("-24h", now) == now - 86_400_000_000
    assert parse_time("-7d", now) == now - 7 * 86_400_000_000
    assert parse_time("-30m", now) == now - 1_800_000_000
    assert parse_time("2026-11-26T06:12:24.5Z") == 1_795_673_544_500_000
    assert parse_time("2026-11-26T07:12:24.5+01:00") == 1_795_673_544_500_000
    assert parse_time("2026-11-26") == 1_795_651_200_000_000


def test_epochs_count_earlier_boots_per_node():
    assert epochs([1, 1, 2, 1, 2, 1], [7, 9, 3, 7, 3, 12]).tolist() == [0, 1, 0, 0, 0, 2]
    assert epochs([], []).tolist() == []


def test_accel_runs_are_decode_s_over_the_rows_whichever_collector_stored_them():
    """Collectors of one group each see a share of a node's blocks: what one stored as a gap is none.
    `query` counts gap_before and segment over its rows, as decode does over a capture."""
    from citynode.tables import _runs
    from citynode.timebase import Timebase

    rng = np.random.default_rng(4)
    node, boot, first, count = [], [], [], []
    for n in (3, 5, 9):
        for b in (1, 2):
            index = int(rng.integers(0, 1 << 32)) if n == 9 else 0  # node 9: the u32 index wraps
            for _ in range(40):
                size = int(rng.integers(1, 30))
                index += int(rng.choice([0, 0, 0, 5, -3]))  # runs on, samples lost, the stream restarted
                node.append(n), boot.append(b), first.append(index % (1 << 32)), count.append(size)
                index += size
    cols = {"node_id": np.array(node), "first_index": np.array(first, np.uint32), "n_samples": np.array(count)}
    gap, segment = _runs(cols, epochs(node, boot), Timebase())
    got_gap, got_segment = accel_runs(node, boot, first, np.array(count))
    assert (gap != 0).sum() > 20 and (gap == -1).sum() > 5
    assert got_gap.tolist() == gap.tolist() and got_segment.tolist() == segment.tolist()


@pytest.mark.parametrize("time, words", [
    ("yesterday", "bad time 'yesterday'"), ("2026-11-26T06:00:00", "give the time zone"), ("-3y", "bad time")])
def test_bad_time(capsys, decoded, tmp_path, time, words):
    one_line_error(*run(capsys, "--store", decoded / "store", "--from", time, "-o", tmp_path / "q")[::2], words)
    assert not (tmp_path / "q").exists()


def test_to_before_from(capsys, decoded, tmp_path):
    code, _, err = run(capsys, "--store", decoded / "store", "--from", "-1h", "--to", "-2h", "-o", tmp_path / "q")
    one_line_error(code, err, "--to must be after --from")


def test_missing_store_and_not_a_store(capsys, tmp_path):
    code, _, err = run(capsys, "--store", tmp_path / "nothing", "-o", tmp_path / "q")
    one_line_error(code, err, "no store at")
    (tmp_path / "notes").mkdir()
    (tmp_path / "notes" / "a.txt").write_text("x")
    code, _, err = run(capsys, "--store", tmp_path / "notes", "-o", tmp_path / "q")
    one_line_error(code, err, "not a citynode store")
    assert sorted(os.listdir(tmp_path)) == ["notes"]


def test_output_that_cannot_be_written_leaves_nothing(capsys, decoded, tmp_path, monkeypatch):
    (tmp_path / "afile").write_text("x")
    code, _, err = run(capsys, "--store", decoded / "store", "-o", tmp_path / "afile" / "sub")
    one_line_error(code, err, "cannot create output folder")
    from citynode import tables

    real, calls = tables._CsvWriter.write, []

    def full_disk_on_the_third_table(self, table):
        calls.append(self)
        if len(calls) == 3:
            raise OSError(28, "No space left on device")
        real(self, table)

    monkeypatch.setattr(tables._CsvWriter, "write", full_disk_on_the_third_table)
    code, _, err = run(capsys, "--store", decoded / "store", "-o", tmp_path / "q")
    one_line_error(code, err, "No space left on device")
    assert sorted(os.listdir(tmp_path)) == ["afile"]


def test_time_format_is_for_text_formats(capsys, decoded, tmp_path):
    code, _, err = run(capsys, "--store", decoded / "store", "-o", tmp_path / "q", "--format", "parquet", "--time-format", "iso")
    one_line_error(code, err, "--time-format is for csv and jsonl")
