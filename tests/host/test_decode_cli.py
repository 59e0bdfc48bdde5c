"""`citynode decode`: tables with the right columns and values, statistics, and every bad input
refused in one line with nothing written."""

import csv
import datetime
import json
import os
import sys

import numpy as np
import pytest

from citynode import traffic
from citynode.cli import main
from citynode.traffic import TrafficBuilder

UTC0 = "2026-11-26T06:12:24Z"
UTC0_MS = traffic.utc_ms(UTC0)


def run(capsys, *argv):
    code = main(["decode", *map(str, argv)])
    out, err = capsys.readouterr()
    return code, out, err


def read_csv(path):
    with open(path, newline="", encoding="utf-8") as f:
        return list(csv.DictReader(f))


def one_line_error(code, out, err, *words):
    assert code != 0
    lines = err.strip().splitlines()
    assert len(lines) == 1, err
    assert lines[0].startswith("citynode: "), err
    assert "Traceback" not in err
    for w in words:
        assert w in lines[0], (w, lines[0])


def only_the_capture_left(folder, capture_name):
    assert sorted(os.listdir(folder)) == [capture_name]


@pytest.fixture
def small_capture(tmp_path):
    """Node 1: climate, a TIME anchor, a raw block of 4 samples at 200 Hz, climate; node 2 never anchored."""
    n1 = TrafficBuilder(1)
    n2 = TrafficBuilder(2)
    block = np.array([[16, -8, 16384], [32, -16, 16400], [48, 0, 16368], [-32768, 32767, 0]])
    wire = n1.climate(1000, 21.5, 48.25, status=4)
    wire += n2.climate(1000, -3.75, 99.5)
    wire += n1.time_anchor(2000, UTC0)
    wire += n1.accel_block(2500, block, odr_hz=200.0, range_g=2, encoding=0)
    wire += n1.climate(3000, 21.55, 48.0)
    wire += n2.accel_block(4000, block, odr_hz=400.0, range_g=8, encoding=1)
    path = tmp_path / "run1.bin"
    path.write_bytes(wire)
    return path


def test_default_out_dir_columns_and_values(capsys, small_capture):
    code, out, err = run(capsys, small_capture)
    assert code == 0, err
    folder = small_capture.parent / "run1-tables"
    assert sorted(os.listdir(folder)) == ["accel.csv", "accel_blocks.csv", "climate.csv", "time.csv"]
    climate = read_csv(folder / "climate.csv")
    assert list(climate[0]) == ["node_id", "time", "node_time_s", "epoch", "seq", "temperature_c", "relative_humidity_pct", "status"]
    assert [(r["node_id"], r["time"], r["temperature_c"], r["relative_humidity_pct"], r["status"]) for r in climate] == [
        ("1", "", "21.5", "48.25", "4"),  # before the anchor: no UTC
        ("2", "", "-3.75", "99.5", "0"),  # never anchored
        ("1", "2026-11-26T06:12:25.000000Z", "21.55", "48", "0"),  # 1 s after the anchor
    ]
    assert [r["node_time_s"] for r in climate] == ["1", "1", "3"]
    assert [r["seq"] for r in climate] == ["0", "0", "3"]
    accel = read_csv(folder / "accel.csv")
    assert list(accel[0]) == ["node_id", "time", "node_time_s", "epoch", "seq", "sample_index", "ax_g", "ay_g", "az_g", "segment"]
    a1 = [r for r in accel if r["node_id"] == "1"]
    # interpolated within the block: t0 + i / 200 Hz
    assert [r["time"] for r in a1] == [
        "2026-11-26T06:12:24.500000Z",
        "2026-11-26T06:12:24.505000Z",
        "2026-11-26T06:12:24.510000Z",
        "2026-11-26T06:12:24.515000Z",
    ]
    assert [r["node_time_s"] for r in a1] == ["2.5", "2.505", "2.51", "2.515"]
    assert [r["sample_index"] for r in a1] == ["0", "1", "2", "3"]
    assert [float(r["ax_g"]) for r in a1] == [16 / 16384, 32 / 16384, 48 / 16384, -2.0]
    assert [float(r["ay_g"]) for r in a1] == [-8 / 16384, -16 / 16384, 0.0, 32767 / 16384]
    assert float(a1[0]["az_g"]) == 1.0
    a2 = [r for r in accel if r["node_id"] == "2"]
    assert [r["time"] for r in a2] == [""] * 4  # no anchor
    assert [r["node_time_s"] for r in a2] == ["4", "4.0025", "4.005", "4.0075"]  # 400 Hz
    assert [float(r["ax_g"]) for r in a2] == [16 * 8 / 32768, 32 * 8 / 32768, 48 * 8 / 32768, -8.0]
    blocks = read_csv(folder / "accel_blocks.csv")
    assert [(b["encoding"], b["range_g"], b["odr_hz"], b["n_samples"]) for b in blocks] == [
        ("0", "2", "200", "4"),
        ("1", "8", "400", "4"),
    ]
    time_rows = read_csv(folder / "time.csv")
    assert time_rows[0]["utc"] == "2026-11-26T06:12:24.000000Z" and time_rows[0]["time"] == time_rows[0]["utc"]
    assert (time_rows[0]["utc_ms"], time_rows[0]["plausible"]) == (str(UTC0_MS), "true")
    assert "decoded 6 messages from 2 node(s)" in out
    # rows before the anchor: 1 climate of node 1; node 2's climate and 4 samples
    assert "note: 6 row(s) have no UTC" in out and "node 1 epoch 0; node 2 epoch 0" in out


def test_jsonl_and_parquet_hold_the_same_rows(capsys, small_capture, tmp_path):
    code, _, err = run(capsys, small_capture, "--out-dir", tmp_path / "j", "--format", "jsonl")
    assert code == 0, err
    with open(tmp_path / "j" / "climate.jsonl") as f:
        rows = [json.loads(line) for line in f]
    assert rows[0]["time"] is None and rows[2]["time"] == "2026-11-26T06:12:25.000000Z"
    assert rows[2]["temperature_c"] == 21.55 and rows[2]["node_time_s"] == 3.0
    pq = pytest.importorskip("pyarrow.parquet")
    code, _, err = run(capsys, small_capture, "--out-dir", tmp_path / "p", "--format", "parquet")
    assert code == 0, err
    table = pq.read_table(tmp_path / "p" / "accel.parquet").to_pylist()
    assert len(table) == 8
    utc0 = datetime.datetime(2026, 11, 26, 6, 12, 24, tzinfo=datetime.timezone.utc)
    assert table[0]["time"] == utc0 + datetime.timedelta(milliseconds=500) and table[0]["ax_g"] == 16 / 16384
    assert table[4]["time"] is None and table[4]["node_time_s"] == 4.0
    climate = pq.read_table(tmp_path / "p" / "climate.parquet")
    assert str(climate.schema.field("time").type) == "timestamp[us, tz=UTC]"
    assert climate.schema.field("temperature_c").type == "double"
    assert climate.schema.field("node_id").type == "int64"


def test_node_clock_wrap_is_unwrapped(capsys, tmp_path):
    node = TrafficBuilder(9)
    block = np.zeros((4, 3), int)
    wire = node.time_anchor(0xFFFFFF00, UTC0)  # 256 ms before the u32 wrap
    wire += node.accel_block(0xFFFFFFF0, block, odr_hz=100.0)  # samples straddle the wrap
    wire += node.climate(0x00000100, 20.0, 50.0)  # 512 ms after the anchor
    cap = tmp_path / "wrap.bin"
    cap.write_bytes(wire)
    code, _, err = run(capsys, cap, "--out-dir", tmp_path / "out")
    assert code == 0, err
    climate = read_csv(tmp_path / "out" / "climate.csv")
    assert climate[0]["time"] == "2026-11-26T06:12:24.512000Z"
    assert float(climate[0]["node_time_s"]) == (0x1_0000_0100) / 1000
    assert climate[0]["epoch"] == "0"
    accel = read_csv(tmp_path / "out" / "accel.csv")
    assert [r["time"][11:] for r in accel] == ["06:12:24.240000Z", "06:12:24.250000Z", "06:12:24.260000Z", "06:12:24.270000Z"]


def test_restart_drops_the_anchor_until_the_next_time_message(capsys, tmp_path):
    node = TrafficBuilder(4)
    wire = node.time_anchor(10_000, UTC0) + node.climate(11_000, 1.0, 2.0)
    node.restart()
    wire += node.climate(500, 3.0, 4.0)  # clock went backwards: a restart, no anchor
    wire += node.time_anchor(600, "2026-11-26T07:00:00Z") + node.climate(1600, 5.0, 6.0)
    cap = tmp_path / "restart.bin"
    cap.write_bytes(wire)
    code, out, err = run(capsys, cap, "--out-dir", tmp_path / "o", "--stats")
    assert code == 0, err
    rows = read_csv(tmp_path / "o" / "climate.csv")
    assert [(r["time"], r["epoch"], r["node_time_s"]) for r in rows] == [
        ("2026-11-26T06:12:25.000000Z", "0", "11"),
        ("", "1", "0.5"),
        ("2026-11-26T07:00:01.000000Z", "1", "1.6"),
    ]
    assert "restarts" in out


def test_accel_and_features_rows_are_stamped_at_their_first_sample(capsys, tmp_path):
    node = TrafficBuilder(5)
    wire = node.time_anchor(1000, UTC0)
    wire += node.accel_block(10_000, np.zeros((2, 3), int), odr_hz=100.0, age_ms=20)  # sent 20 ms after sample 0
    wire += node.features(10_000, window_s=9.0, age_ms=9000, rms_x_g=0.001)  # window from 1 s to 10 s
    wire += node.climate(11_000, 20.0, 50.0)
    cap = tmp_path / "f.bin"
    cap.write_bytes(wire)
    code, out, err = run(capsys, cap, "--out-dir", tmp_path / "o", "--json")
    assert code == 0, err
    assert json.loads(out)["nodes"]["5"]["restarts"] == 0
    feats = read_csv(tmp_path / "o" / "features.csv")
    assert (feats[0]["time"], feats[0]["node_time_s"], feats[0]["age_ms"]) == ("2026-11-26T06:12:24.000000Z", "1", "9000")
    accel = read_csv(tmp_path / "o" / "accel.csv")
    assert [(r["time"][11:], r["node_time_s"]) for r in accel] == [("06:12:32.980000Z", "9.98"), ("06:12:32.990000Z", "9.99")]
    assert read_csv(tmp_path / "o" / "accel_blocks.csv")[0]["age_ms"] == "20"
    assert read_csv(tmp_path / "o" / "climate.csv")[0]["time"] == "2026-11-26T06:12:34.000000Z"


def test_stats_count_injected_losses_and_corruption(capsys, tmp_path):
    cap = traffic.capture(nodes=(1, 2), duration_s=20, seed=4, block_samples=100)
    frames = list(cap.sent)
    keep = []
    dropped = {1: 0, 2: 0}
    damaged = []
    for k, s in enumerate(frames):
        if s.name == "accel" and k % 17 == 5:  # lost on the way (never first or last of a node)
            dropped[s.node_id] += 1
            continue
        wire = s.wire
        if s.name == "accel" and k % 23 == 7:  # one bit flipped: CRC failure, counted as lost too
            wire = bytearray(wire)
            wire[len(wire) // 2] ^= 0x10
            wire = bytes(wire)
            damaged.append(s)
        keep.append(wire)
    junk = b"Traceback (most recent call last):\r\n"
    path = tmp_path / "lossy.bin"
    path.write_bytes(junk + b"\x00" + b"".join(keep))
    code, out, err = run(capsys, path, "--json", "--out-dir", tmp_path / "o")
    assert code == 0, err
    report = json.loads(out)  # nothing but JSON on stdout
    link = report["link"]
    # each damaged frame and the junk piece are one bad frame, under their first failure
    assert link["bad_frames"] == link["crc_errors"] + link["cobs_errors"] + link["too_short"] == len(damaged) + 1
    assert link["crc_errors"] >= 1
    assert link["bytes_in"] == path.stat().st_size
    for nid in (1, 2):
        node = report["nodes"][str(nid)]
        hit = sum(1 for s in damaged if s.node_id == nid)
        assert node["lost"] == dropped[nid] + hit
        assert node["frames"] == sum(1 for s in frames if s.node_id == nid) - dropped[nid] - hit
        assert node["messages"] == node["frames"]
        assert node["restarts"] == 0
    accel_frames = sum(1 for s in frames if s.name == "accel")
    assert report["tables"]["accel"]["rows"] == 100 * (accel_frames - sum(dropped.values()) - len(damaged))
    assert os.path.isdir(report["out_dir"])


def test_stats_table_is_readable(capsys, small_capture, tmp_path):
    code, out, err = run(capsys, small_capture, "--stats", "--out-dir", tmp_path / "o")
    assert code == 0, err
    assert "Per node" in out and "Link" in out
    node_rows = [line.split() for line in out.splitlines() if line[:2] in ("1 ", "2 ")]
    assert [r[:3] for r in node_rows] == [["1", "4", "4"], ["2", "2", "2"]]
    assert any(line.split()[:3] == ["CRC", "failures", "0"] for line in out.splitlines())


def test_rewriting_an_existing_out_dir_replaces_tables_and_keeps_other_files(capsys, small_capture, tmp_path):
    out_dir = tmp_path / "o"
    out_dir.mkdir()
    (out_dir / "notes.txt").write_text("mine")
    (out_dir / "climate.csv").write_text("old")
    code, _, err = run(capsys, small_capture, "--out-dir", out_dir)
    assert code == 0, err
    assert (out_dir / "notes.txt").read_text() == "mine"
    assert (out_dir / "climate.csv").read_text().startswith("node_id,")
    assert not [n for n in os.listdir(out_dir) if n.startswith(".")]


# -- bad input ----------------------------------------------------------------------


def test_missing_file(capsys, tmp_path):
    one_line_error(*run(capsys, tmp_path / "nope.bin"), "nope.bin", "no such file")
    assert os.listdir(tmp_path) == []


def test_empty_file(capsys, tmp_path):
    (tmp_path / "empty.bin").write_bytes(b"")
    one_line_error(*run(capsys, tmp_path / "empty.bin"), "empty")
    only_the_capture_left(tmp_path, "empty.bin")


def test_a_folder(capsys, tmp_path):
    (tmp_path / "cap").mkdir()
    one_line_error(*run(capsys, tmp_path / "cap"), "folder")
    assert os.listdir(tmp_path) == ["cap"]


def test_no_valid_frame(capsys, tmp_path):
    data = bytes(np.random.default_rng(0).integers(0, 256, 5000, dtype=np.uint8)) + b"hello\x00world"
    (tmp_path / "noise.bin").write_bytes(data)
    one_line_error(*run(capsys, tmp_path / "noise.bin"), "not a citynode capture: no valid frame in %d bytes" % len(data))
    only_the_capture_left(tmp_path, "noise.bin")


def test_unreadable_file(capsys, tmp_path, monkeypatch):
    path = tmp_path / "secret.bin"
    path.write_bytes(TrafficBuilder(1).climate(0, 1, 2))
    real_open = open

    def refusing_open(file, *a, **k):
        if str(file) == str(path):
            raise PermissionError(13, "Permission denied", str(file))
        return real_open(file, *a, **k)

    monkeypatch.setattr("builtins.open", refusing_open)
    one_line_error(*run(capsys, path), "secret.bin", "permission denied")
    only_the_capture_left(tmp_path, "secret.bin")


@pytest.mark.skipif(not hasattr(os, "geteuid") or os.geteuid() == 0, reason="root reads files whatever their mode")
def test_unreadable_file_by_mode(capsys, tmp_path):
    path = tmp_path / "secret.bin"
    path.write_bytes(TrafficBuilder(1).climate(0, 1, 2))
    path.chmod(0)
    one_line_error(*run(capsys, path), "permission denied")


def test_out_dir_that_cannot_be_created(capsys, small_capture, tmp_path):
    (tmp_path / "afile").write_text("x")
    one_line_error(*run(capsys, small_capture, "--out-dir", tmp_path / "afile" / "sub"), "cannot create output folder")
    one_line_error(*run(capsys, small_capture, "--out-dir", tmp_path / "afile"), "cannot create output folder")
    assert sorted(os.listdir(tmp_path)) == ["afile", "run1.bin"]


def test_missing_parent_folders_are_made_and_removed_on_failure(capsys, tmp_path):
    (tmp_path / "noise.bin").write_bytes(b"\x01\x02\x03\x00")
    one_line_error(*run(capsys, tmp_path / "noise.bin", "--out-dir", tmp_path / "a" / "b" / "c"), "no valid frame")
    assert os.listdir(tmp_path) == ["noise.bin"]


def test_write_failure_midway_leaves_nothing(capsys, small_capture, tmp_path, monkeypatch):
    from citynode import tables

    def full_disk(self, table):
        raise OSError(28, "No space left on device")

    monkeypatch.setattr(tables._CsvWriter, "write", full_disk)
    one_line_error(*run(capsys, small_capture, "--out-dir", tmp_path / "o"), "No space left on device")
    only_the_capture_left(tmp_path, "run1.bin")


def test_unknown_format(capsys, small_capture):
    one_line_error(*run(capsys, small_capture, "--format", "xml"), "unknown table format 'xml'", "csv, jsonl, parquet")
    only_the_capture_left(small_capture.parent, "run1.bin")


@pytest.mark.parametrize("fmt", ["csv", "parquet"])
def test_without_pyarrow(capsys, small_capture, monkeypatch, fmt):
    for name in [m for m in sys.modules if m == "pyarrow" or m.startswith("pyarrow.")]:
        monkeypatch.delitem(sys.modules, name)
    monkeypatch.setitem(sys.modules, "pyarrow", None)  # import pyarrow raises ImportError
    one_line_error(*run(capsys, small_capture, "--format", fmt), "pyarrow")
    only_the_capture_left(small_capture.parent, "run1.bin")


def test_frames_of_unknown_types_only_are_a_capture_with_no_tables(capsys, tmp_path):
    node = TrafficBuilder(3)
    path = tmp_path / "future.bin"
    path.write_bytes(node.unknown(0, 29, b"\x01") + node.unknown(1, 30, b""))
    code, out, err = run(capsys, path, "--json")
    assert code == 0, err
    report = json.loads(out)
    assert report["tables"] == {} and report["out_dir"] is None
    assert report["nodes"]["3"]["unknown_type"] == 2
    only_the_capture_left(tmp_path, "future.bin")


def test_out_dir_gets_the_usual_mode_and_rows_written_in_pieces_are_the_same(capsys, tmp_path, monkeypatch):
    from citynode import tables

    cap = tmp_path / "c.bin"
    cap.write_bytes(traffic.capture(nodes=(1, 2), duration_s=12, seed=8).wire)
    assert run(capsys, cap, "--out-dir", tmp_path / "whole")[0] == 0
    umask = os.umask(0)
    os.umask(umask)
    assert os.stat(tmp_path / "whole").st_mode & 0o777 == 0o777 & ~umask
    monkeypatch.setattr(tables, "WRITE_ROWS", 7)
    assert run(capsys, cap, "--out-dir", tmp_path / "pieces")[0] == 0
    names = sorted(os.listdir(tmp_path / "whole"))
    assert names == sorted(os.listdir(tmp_path / "pieces")) and "features.csv" in names
    for name in names:
        assert (tmp_path / "whole" / name).read_bytes() == (tmp_path / "pieces" / name).read_bytes(), name


REPO = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
ENV = dict(os.environ, PYTHONPATH=os.pathsep.join([os.path.join(REPO, "host"), os.path.join(REPO, "protocol")]))


@pytest.mark.parametrize("command, words", [("decode", "--time-format"), ("encode", "raw_hex")])
def test_help_imports_neither_numpy_nor_pyarrow(command, words):
    import subprocess

    code = (
        "import sys\nfrom citynode.cli import main\n"
        "try:\n    main([%r, '--help'])\nexcept SystemExit:\n    pass\n"
        "sys.stderr.write(' '.join(m for m in ('numpy', 'pyarrow') if m in sys.modules))\n" % command
    )
    done = subprocess.run([sys.executable, "-c", code], env=ENV, capture_output=True, text=True, timeout=60)
    assert words in done.stdout and "messages.jsonl" in done.stdout
    assert done.stderr == ""


def test_a_run_killed_with_sigkill_leaves_staging_that_the_next_run_removes(capsys, small_capture, tmp_path):
    import subprocess

    killed = (
        "import os, sys\nfrom citynode.tables import StagedDir\n"
        "for target in sys.argv[1:]:\n    open(os.path.join(StagedDir(target).path, 'climate.csv'), 'w').close()\n"
        "os.kill(os.getpid(), 9)\n"
    )
    fresh, existing = tmp_path / "fresh", tmp_path / "existing"
    existing.mkdir()
    done = subprocess.run([sys.executable, "-c", killed, str(fresh), str(existing)], env=ENV, timeout=60)
    assert done.returncode == -9
    stale = [n for n in os.listdir(tmp_path) if n.startswith(".fresh.staging-")] + os.listdir(existing)
    assert len(stale) == 2, stale
    alive = tmp_path / (".fresh.staging-%d-live" % os.getppid())  # a running process's: left alone
    alive.mkdir()
    other = tmp_path / ".fresh.staging-notapid"  # not named by us: left alone
    other.mkdir()
    for target in (fresh, existing):
        code, _, err = run(capsys, small_capture, "--out-dir", target)
        assert code == 0, err
    assert sorted(n for n in os.listdir(tmp_path) if "staging" in n) == sorted([alive.name, other.name])
    assert "climate.csv" in os.listdir(existing) and not [n for n in os.listdir(existing) if "staging" in n]


def test_sigterm_midway_leaves_nothing(capsys, small_capture, monkeypatch):
    import signal

    from citynode.commands import decode as decode_command

    real = decode_command.decode_capture

    def terminated(f, tables=None, **kw):
        result = real(f, tables, **kw)  # every table written in the staging folder
        assert tables.files()
        os.kill(os.getpid(), signal.SIGTERM)
        return result

    monkeypatch.setattr(decode_command, "decode_capture", terminated)
    code, _, err = run(capsys, small_capture)
    assert code == 130 and "interrupted" in err
    only_the_capture_left(small_capture.parent, "run1.bin")


def test_absurd_utc_is_flagged_not_a_crash(capsys, tmp_path):
    """Issue 10: utc_ms 2^64 - 1 (or ns instead of ms) is kept in the time table, anchors nothing, is counted."""
    node = TrafficBuilder(1)
    wire = node.time_anchor(1000, 2**64 - 1) + node.climate(2000, 20.0, 50.0)
    wire += node.time_anchor(3000, UTC0_MS * 1_000_000) + node.climate(4000, 20.0, 50.0)
    wire += node.time_anchor(5000, UTC0) + node.climate(6000, 20.0, 50.0)
    wire += node.time_anchor(7000, 2**63) + node.climate(8000, 20.0, 50.0)  # the good anchor stays
    cap = tmp_path / "t.bin"
    cap.write_bytes(wire)
    code, out, err = run(capsys, cap, "--out-dir", tmp_path / "o")
    assert code == 0, err
    assert "note: 3 TIME message(s) with an implausible UTC" in out
    rows = read_csv(tmp_path / "o" / "time.csv")
    assert [(r["utc_ms"], r["utc"], r["plausible"]) for r in rows] == [
        (str(2**64 - 1), "", "false"),
        (str(UTC0_MS * 1_000_000), "", "false"),
        (str(UTC0_MS), "2026-11-26T06:12:24.000000Z", "true"),
        (str(2**63), "", "false"),
    ]
    climate = read_csv(tmp_path / "o" / "climate.csv")
    assert [r["time"] for r in climate] == ["", "", "2026-11-26T06:12:25.000000Z", "2026-11-26T06:12:27.000000Z"]
    code, out, err = run(capsys, cap, "--out-dir", tmp_path / "j", "--json")
    counters = json.loads(out)["nodes"]["1"]
    assert (counters["implausible_utc"], counters["messages_without_utc"], counters["epochs_without_utc"]) == (3, 4, [0])
    assert json.loads(out)["rows_without_utc"] == 4


def test_epoch_us_time_format_and_the_same_rows_in_every_format(capsys, small_capture, tmp_path):
    pq = pytest.importorskip("pyarrow.parquet")
    assert run(capsys, small_capture, "--out-dir", tmp_path / "c", "--time-format", "epoch-us")[0] == 0
    assert run(capsys, small_capture, "--out-dir", tmp_path / "j", "--format", "jsonl", "--time-format", "epoch-us")[0] == 0
    assert run(capsys, small_capture, "--out-dir", tmp_path / "p", "--format", "parquet")[0] == 0
    csv_rows = read_csv(tmp_path / "c" / "accel.csv")
    with open(tmp_path / "j" / "accel.jsonl") as f:
        json_rows = [json.loads(line) for line in f]
    parquet = pq.read_table(tmp_path / "p" / "accel.parquet")
    us = parquet.column("time").cast("int64").to_pylist()
    assert us[0] == (UTC0_MS + 500) * 1000
    assert [r["time"] for r in csv_rows] == ["" if u is None else str(u) for u in us]
    assert [r["time"] for r in json_rows] == us
    for name in ("node_time_s", "ax_g", "ay_g", "az_g"):
        values = parquet.column(name).to_pylist()
        assert [float(r[name]) for r in csv_rows] == values  # floats read back exactly
        assert [r[name] for r in json_rows] == values


def test_time_format_is_for_text_formats_only(capsys, small_capture):
    one_line_error(*run(capsys, small_capture, "--format", "parquet", "--time-format", "iso"), "--time-format", "parquet")
    one_line_error(*run(capsys, small_capture, "--time-format", "ns"), "ns", "iso")
    only_the_capture_left(small_capture.parent, "run1.bin")


def test_every_double_reads_back_exactly_from_csv_and_jsonl(tmp_path):
    """Arrow's shortest round-trip text, NaN and infinities included; u64 stays u64."""
    import math

    from citynode.tables import NO_UTC, TableSet

    values = [0.1, 1 / 3, 5e-324, 2.5e-310, 1e-5, 1e300, -0.0, 2.0, 123456789.123, 1e16, math.nan, math.inf, -math.inf]
    n = len(values)
    table = {
        "node_id": np.arange(n),
        "time": np.array([NO_UTC, 0] + [UTC0_MS * 1000 + k for k in range(n - 2)], np.int64),
        "node_time_s": np.array(values),
        "epoch": np.zeros(n, np.int64),
        "seq": np.arange(n),
        "utc_ms": np.full(n, 2**64 - 1, np.uint64),
        "utc": np.full(n, NO_UTC, np.int64),
        "plausible": np.zeros(n, bool),
    }
    for fmt in ("csv", "jsonl"):
        tables = TableSet(str(tmp_path), fmt)
        tables.append({"time": table})
        tables.close()
    rows = read_csv(tmp_path / "time.csv")
    with open(tmp_path / "time.jsonl") as f:
        lines = [json.loads(line) for line in f]
    for got in ([float(r["node_time_s"]) for r in rows], [float(r["node_time_s"]) for r in lines]):
        assert [repr(v) for v in got] == [repr(v) for v in values]  # -0.0 and nan included
    assert rows[0]["time"] == "" and lines[0]["time"] is None
    assert rows[1]["time"] == "1970-01-01T00:00:00.000000Z" and rows[2]["time"] == "2026-11-26T06:12:24.000000Z"
    assert {r["utc_ms"] for r in rows} == {str(2**64 - 1)} and {r["utc_ms"] for r in lines} == {2**64 - 1}
