"""`citynode fleet`: health rows and warnings from a store, the table, --json, and the HTML report.

One MemoryStore holds the scenario of fleet_scenario.py: a day of rows of eight
nodes, each with one thing wrong or none (test_fleet_engines.py runs it on the
real engines).
"""

import json
import os
import re
import shutil
import subprocess
import tempfile

import pytest
from fleet_memory_store import MemoryStore
from fleet_scenario import DAY, EXPECTED, NOW, SINCE, NodeRows, write_fleet

from citynode.cli import main
from citynode.fleet import when
from citynode.fleet.health import Thresholds, fleet_health
from citynode.fleet.report import write_report

CHROMIUM = "/usr/bin/chromium"


@pytest.fixture(scope="module")
def store():
    return write_fleet(MemoryStore())


@pytest.fixture(scope="module")
def small_store():
    """One node, for tests of how the report is written rather than what it says."""
    rows = NodeRows(1)
    rows.day()
    store = MemoryStore()
    store.write(rows.batch())
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
