"""`citynode fleet`: health rows and warnings from a store, the table, --json, and the HTML report.

One MemoryStore holds a day of rows of eight nodes, built directly as the
store's Arrow tables (schema.SCHEMAS), each node with one thing wrong or none:

    1 climate, healthy          5 climate, calibration first seen 400 days ago
    2 bridge, healthy           6 climate, app 1.2.0 while the fleet runs 1.3.0
    3 climate, silent for 2 h   7 climate, 1 reading in 5 fails QC
    4 climate, 10 frames lost   8 climate, no UTC, uplink down, its ring dropped 3 frames
"""

import json
import os
import re
import shutil
import subprocess
import tempfile

import pyarrow as pa
import pytest
from fleet_memory_store import MemoryStore

from citynode.cli import main
from citynode.fleet import schema, when
from citynode.fleet.health import Thresholds, fleet_health
from citynode.fleet.report import write_report
from citynode.fleet.store import IngestBatch
from citynode_protocol import wire

NOW = 1_796_644_800_000_000  # 2026-12-07T12:00:00Z, µs
S = 1_000_000
MIN = 60 * S
DAY = 86_400 * S
SINCE = NOW - DAY
CHROMIUM = "/usr/bin/chromium"
EXPECTED = {1: [], 2: [], 3: ["silent"], 4: ["losing_data"], 5: ["stale_calibration"], 6: ["old_firmware"],
            7: ["qc_failing"], 8: ["losing_data"]}


class NodeRows:
    """The rows one node's frames leave in a store: a data row and a ledger row per frame."""

    def __init__(self, node_id, boot=3, boot_began=NOW - 30 * DAY, app=(1, 3, 0), calibration_id=17, utc=True,
                 flags=wire.STATUS_TIME_ANCHORED):
        self.node_id, self.boot, self.boot_began = node_id, boot, boot_began
        self.app, self.calibration_id, self.utc, self.flags = app, calibration_id, utc, flags
        self.seq = 0
        self.rows = {}

    def frame(self, kind, received, **fields):
        row = {
            "node_id": self.node_id, "boot": self.boot, "seq": self.seq,
            "time": received - S // 2 if self.utc else None,
            "node_time_s": (received - self.boot_began) / S, "received": received,
            "calibration_id": self.calibration_id, "firmware": "1.24.1/%d.%d.%d" % self.app,
        }
        row.update(fields)
        self.rows.setdefault(kind, []).append(row)
        self.rows.setdefault("frames", []).append({k: row[k] for k in ("node_id", "boot", "seq", "time", "received")})
        self.rows["frames"][-1]["type"] = {"climate": wire.CLIMATE, "features": wire.FEATURES,
                                           "status": wire.STATUS}[kind]
        self.seq += 1

    def climate(self, received, qc_flags=0, temperature_c=8.5):
        self.frame("climate", received, temperature_c=temperature_c, relative_humidity_pct=81.0,
                   status=wire.CLIMATE_CALIBRATED, qc_flags=qc_flags, qc_score=0 if qc_flags == 0 else 3)

    def features(self, received, k):
        axes = {}
        for axis, f in zip("xyz", (2.1, 2.2, 7.5)):
            axes.update({"rms_%s_g" % axis: 0.01 + 0.001 * (k % 7), "peak_%s_g" % axis: 0.05,
                         "dominant_freq_%s_hz" % axis: f})
        self.frame("features", received, window_s=10.0, age_ms=10_000, n_samples=2000,
                   flags=wire.ACCEL_CALIBRATED | wire.FEATURES_TILT_RELATIVE,
                   pitch_deg=0.2 + 0.001 * k, roll_deg=-0.1, **axes)

    def status(self, received, tx_dropped=0, free_heap=81_000, flags=None):
        self.frame("status", received, uptime_s=(received - self.boot_began) // S, free_heap=free_heap,
                   mpy_major=1, mpy_minor=24, mpy_patch=1, app_major=self.app[0], app_minor=self.app[1],
                   app_patch=self.app[2], protocol_minor=2, sensors_fitted=wire.SENSOR_CLIMATE,
                   sensors_ok=wire.SENSOR_CLIMATE, flags=self.flags if flags is None else flags, supply_v=3.31,
                   sensor_errors=0, crc_errors=1, timeouts=0, fifo_overruns=0, tx_dropped=tx_dropped,
                   command_errors=0)

    def day(self, until=NOW, every=5 * MIN, qc_fail_every=0, skip=(), drops=0):
        """A day of climate readings every `every`, a status every 6th frame, up to `until`."""
        t, k = SINCE + every, 0
        while t <= until:
            if k in skip:
                self.seq += 1  # a frame lost on the way
            if k % 6 == 0:
                self.status(t - S, tx_dropped=drops * k // (DAY // every))
            self.climate(t, qc_flags=1 if qc_fail_every and k % qc_fail_every == 0 else 0,
                         temperature_c=8.5 + (k % 48) / 10)
            t, k = t + every, k + 1

    def table(self, name):
        return pa.Table.from_pylist(self.rows.get(name, []), schema=schema.SCHEMAS[name])


def _fleet():
    nodes = {}
    for n in (1, 4, 5, 6, 7):
        nodes[n] = NodeRows(n, app=(1, 2, 0) if n == 6 else (1, 3, 0))
    nodes[1].day()
    nodes[4].day(skip=range(100, 110))
    nodes[6].day()
    nodes[7].day(qc_fail_every=5)
    # node 5 has run calibration 5 since 400 days ago (a status of an earlier boot said so)
    old = NodeRows(5, boot=1, boot_began=NOW - 401 * DAY, calibration_id=5)
    old.status(NOW - 400 * DAY)
    nodes[5].calibration_id = 5
    nodes[5].day()
    nodes[3] = NodeRows(3)
    nodes[3].day(until=NOW - 2 * 3600 * S)
    nodes[8] = NodeRows(8, utc=False, flags=wire.STATUS_UPLINK_DOWN)
    nodes[8].day(drops=4)
    bridge = nodes[2] = NodeRows(2)
    for k, t in enumerate(range(SINCE + 10 * S, NOW, 5 * MIN)):
        if k % 6 == 0:
            bridge.status(t - S, flags=wire.STATUS_TIME_ANCHORED | wire.STATUS_STREAMING)
        bridge.features(t, k)
    # the healthy nodes' calibration 17 was first seen 30 days ago
    first = [NodeRows(n, boot=2, boot_began=NOW - 31 * DAY) for n in (1, 2, 3, 4, 6, 7, 8)]
    for rows in first:
        rows.status(NOW - 30 * DAY)
    store = MemoryStore()
    for rows in list(nodes.values()) + [old] + first:
        store.write(IngestBatch({name: rows.table(name) for name in rows.rows}))
    return store


@pytest.fixture(scope="module")
def store():
    return _fleet()


@pytest.fixture(scope="module")
def small_store():
    """One node, for tests of how the report is written rather than what it says."""
    rows = NodeRows(1)
    rows.day()
    store = MemoryStore()
    store.write(IngestBatch({name: rows.table(name) for name in rows.rows}))
    return store


@pytest.fixture(scope="module")
def health(store):
    return {h.node_id: h for h in fleet_health(store, SINCE, NOW)}


@pytest.fixture(scope="module")
def report(store, tmp_path_factory):
    out = tmp_path_factory.mktemp("fleet") / "report"
    rows, files = write_report(store, str(out), SINCE, NOW)
    return out, rows, files


def test_each_node_gets_exactly_its_warnings(health):
    assert {n: h.warning_kinds() for n, h in health.items()} == EXPECTED


def test_healthy_nodes_figures(health):
    h = health[1]
    assert h.last_seen_us == NOW and h.silent_s == 0
    assert h.frames == 288 + 48 and h.frames_lost == 0 and h.lost_share == 0
    assert h.uplink == "up" and h.utc_known is True
    assert h.free_heap == 81_000 and h.supply_v == pytest.approx(3.31)
    assert h.errors == {"sensor_errors": 0, "crc_errors": 1, "timeouts": 0, "fifo_overruns": 0, "command_errors": 0}
    assert (h.firmware, h.app, h.boot) == ("1.24.1", "1.3.0", 3)
    assert h.calibration_id == 17 and h.calibration_age_days == 30
    assert h.climate_rows == 288 and h.qc_pass_rate == 1.0
    assert h.usual_gap_s == 300 and h.drops == 0
    bridge = health[2]
    assert bridge.climate_rows == 0 and bridge.qc_pass_rate is None and bridge.warnings == []


def test_the_unhealthy_figures_and_words(health):
    silent = health[3]
    assert silent.silent_s == 7200
    assert silent.warnings[0][1].startswith("silent for 2 h")
    gaps = health[4]
    assert gaps.frames_lost == 10 and gaps.frames == 336
    assert gaps.lost_share == pytest.approx(10 / 346)
    assert gaps.warnings == [("losing_data", "losing data: 10 frames lost (2.9 %)")]
    stale = health[5]
    assert stale.calibration_id == 5 and stale.calibration_age_days == 400
    assert stale.warnings == [("stale_calibration", "stale calibration: id 5 in force for 400 days")]
    assert health[6].warnings == [("old_firmware", "old firmware: app 1.2.0, the fleet's newest is 1.3.0")]
    qc = health[7]
    assert qc.qc_pass_rate == pytest.approx(1 - 58 / 288)
    assert qc.warnings == [("qc_failing", "QC failing: 79.9 % of 288 climate readings pass")]
    ring = health[8]  # rows without UTC are still in the window: the window is on `received`
    assert ring.frames == 336 and ring.utc_known is False and ring.uplink == "down"
    assert ring.drops == 3 and ring.warnings == [("losing_data", "losing data: 3 frames dropped by the node")]


def test_thresholds_move_the_warnings(store):
    rows = {h.node_id: h for h in fleet_health(store, SINCE, NOW, Thresholds(
        silent_min_s=3 * 3600, stale_calibration_days=500, qc_pass_min=0.5, min_app=(1, 4, 0), lost_share=0.05))}
    assert {n: h.warning_kinds() for n, h in rows.items() if h.warnings} == {
        n: ["old_firmware"] for n in (1, 2, 3, 4, 5, 6, 7)} | {8: ["losing_data", "old_firmware"]}


def test_a_node_silent_for_the_whole_window_keeps_its_last_status(store):
    later = NOW + 3 * DAY
    rows = {h.node_id: h for h in fleet_health(store, later - DAY, later)}
    assert all(h.warning_kinds()[0] == "silent" for h in rows.values())
    assert rows[1].frames == 0 and rows[1].app == "1.3.0" and rows[1].calibration_id == 17
    assert rows[1].silent_s == 3 * 86400


@pytest.fixture
def cli_store(store, monkeypatch, tmp_path):
    monkeypatch.setattr("citynode.fleet.store.open_store", lambda target, create=True: store)
    monkeypatch.setattr(when, "now_us", lambda: NOW)
    return str(tmp_path)


def test_json_output(cli_store, capsys):
    assert main(["fleet", "--store", cli_store, "--since", "-24h", "--json"]) == 0
    out = json.loads(capsys.readouterr().out)
    assert out["since"] == "2026-12-06T12:00:00Z" and out["now"] == "2026-12-07T12:00:00Z"
    assert out["thresholds"]["stale_calibration_days"] == 365
    nodes = {n["node_id"]: n for n in out["nodes"]}
    assert {n: [w["kind"] for w in v["warnings"]] for n, v in nodes.items()} == EXPECTED
    assert nodes[4]["frames_lost"] == 10 and nodes[1]["last_seen"] == "2026-12-07T12:00:00Z"
    assert nodes[5]["calibration_since"] == "2025-11-02T12:00:00Z"


def test_table_is_plain_text_off_a_terminal(cli_store, capsys):
    assert main(["fleet", "--store", cli_store, "--since", "2026-12-06T12:00Z", "--min-app", "1.3"]) == 0
    out = capsys.readouterr().out
    assert "\x1b[" not in out
    lines = out.splitlines()
    assert lines[0].split()[:3] == ["node", "last", "seen"]
    by_node = {int(line.split()[0]): line for line in lines[1:]}
    assert sorted(by_node) == list(range(1, 9))
    assert "silent for 2 h" in by_node[3] and "down, UTC unknown" in by_node[8]
    assert "old firmware: app 1.2.0, below 1.3.0" in by_node[6]
    assert "17 (30 d)" in by_node[1] and not re.search(r"silent|losing|stale|old|QC", by_node[1])


@pytest.mark.parametrize("argv, words", [
    (["fleet", "--store", "/no/such/store"], "no store at /no/such/store"),
    (["fleet", "--store", "mysql://db/x"], "give a store folder or a postgresql:// URL"),
    (["fleet", "--store", "mysql://ann:s3cret@db/x"], "--store mysql://ann:***@db/x: give"),
    (["fleet", "--since", "yesterday"], "'yesterday' is not a time"),
    (["fleet", "--min-app", "one"], "is not a version"),
    (["fleet", "report", "-o", "OUT", "--store", "/no/such/store"], "no store at"),
])
def test_bad_input_is_one_line(argv, words, capsys, monkeypatch, tmp_path):
    monkeypatch.chdir(tmp_path)
    assert main(argv) != 0
    err = capsys.readouterr().err
    assert len(err.splitlines()) == 1 and words in err and "s3cret" not in err, err
    assert not os.path.exists(tmp_path / "OUT")


def test_report_files_and_references(report):
    out, rows, files = report
    assert sorted(os.listdir(out)) == sorted(files + ["index.html"])
    assert sorted(files) == sorted(["node-%d-climate.png" % n for n in (1, 3, 4, 5, 6, 7, 8)] + ["node-2-bridge.png"])
    index = (out / "index.html").read_text()
    assert sorted(re.findall(r'<img src="([^"]+)"', index)) == sorted(files)
    for name in files:
        assert (out / name).read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    assert not re.search(r"(src|href)=\"(https?:)?//", index)  # nothing from the network
    for n, kinds in EXPECTED.items():
        assert re.search(r'<tr class="%s" data-node="%d">' % ("warn" if kinds else "ok", n), index)


def test_report_replaces_a_report_whole_and_refuses_other_folders(small_store, tmp_path):
    store = small_store
    out = tmp_path / "r"
    write_report(store, str(out), SINCE, NOW)
    (out / "stale.png").write_bytes(b"old")
    write_report(store, str(out), SINCE, NOW)
    assert not (out / "stale.png").exists() and (out / "index.html").exists()
    assert [p.name for p in tmp_path.iterdir()] == ["r"]  # no staging folder left
    other = tmp_path / "other"
    other.mkdir()
    (other / "notes.txt").write_text("mine")
    from citynode.errors import UsageError

    with pytest.raises(UsageError, match="no report"):
        write_report(store, str(other), SINCE, NOW)
    assert os.listdir(other) == ["notes.txt"]


def test_a_failing_report_leaves_nothing_half_written(small_store, tmp_path, monkeypatch):
    store = small_store
    out = tmp_path / "r"
    write_report(store, str(out), SINCE, NOW)
    before = (out / "index.html").read_text()

    def broken(*_args):
        raise OSError("disk full")

    monkeypatch.setattr("citynode.fleet.report.page", broken)
    with pytest.raises(OSError):
        write_report(store, str(out), SINCE, NOW)
    assert (out / "index.html").read_text() == before
    assert [p.name for p in tmp_path.iterdir()] == ["r"]


def test_report_command(small_store, monkeypatch, capsys, tmp_path):
    monkeypatch.setattr("citynode.fleet.store.open_store", lambda target, create=True: small_store)
    monkeypatch.setattr(when, "now_us", lambda: NOW)
    out = tmp_path / "site"
    assert main(["fleet", "--since", "-2d", "report", "-o", str(out), "--store", str(tmp_path)]) == 0
    assert "1 node, 0 with warnings, 1 plot" in capsys.readouterr().out
    assert sorted(os.listdir(out)) == ["index.html", "node-1-climate.png"]
    assert "window 2026-12-05T12:00:00Z to 2026-12-07T12:00:00Z" in (out / "index.html").read_text()


def _dump_dom(url):
    profile = tempfile.mkdtemp(prefix="citynode-chromium-")
    try:
        done = subprocess.run(
            [CHROMIUM, "--headless", "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
             "--disable-background-networking", "--disable-component-update", "--disable-sync",
             "--user-data-dir=" + profile, "--virtual-time-budget=5000", "--dump-dom", url],
            capture_output=True, text=True, timeout=120)
    finally:
        shutil.rmtree(profile, ignore_errors=True)
    assert done.returncode == 0, done.stderr[-2000:]
    return done.stdout


chromium = pytest.mark.skipif(not os.access(CHROMIUM, os.X_OK),
                              reason="Chromium is not installed (`apt-get install chromium`; `make install` does)")


@chromium
def test_the_report_opens_in_a_browser_with_every_picture(report, tmp_path):
    out, rows, files = report
    dom = _dump_dom((out / "index.html").as_uri())
    body = re.search(r"<body[^>]*>", dom).group(0)
    assert 'data-images-loaded="all"' in body and 'data-images="%d/%d"' % (len(files), len(files)) in body
    assert sorted(int(n) for n in re.findall(r'<tr class="\w+" data-node="(\d+)">', dom)) == list(range(1, 9))
    # the check can fail: the same page with one picture missing says so
    broken = tmp_path / "broken"
    shutil.copytree(out, broken)
    (broken / files[0]).unlink()
    body = re.search(r"<body[^>]*>", _dump_dom((broken / "index.html").as_uri())).group(0)
    assert 'data-images-loaded="missing"' in body


def test_an_empty_store(monkeypatch, capsys, tmp_path):
    empty = MemoryStore()
    assert fleet_health(empty, SINCE, NOW) == []
    monkeypatch.setattr("citynode.fleet.store.open_store", lambda target, create=True: empty)
    assert main(["fleet", "--store", str(tmp_path)]) == 0
    assert capsys.readouterr().out == "no nodes in the store yet\n"
    rows, files = write_report(empty, str(tmp_path / "r"), SINCE, NOW)
    assert rows == [] and files == [] and "0 nodes" in (tmp_path / "r" / "index.html").read_text()
