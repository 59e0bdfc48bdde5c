"""`make demo` (python -m citynode.demo): it finishes well under a minute with what
the scenario says, and it never leaves its virtual node running."""

import os
import re
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

from citynode import demo
from citynode.errors import CitynodeError

ROOT = Path(__file__).resolve().parents[2]
_PATH = [str(ROOT / "host"), str(ROOT / "protocol")] + [p for p in [os.environ.get("PYTHONPATH")] if p]
ENV = dict(os.environ, PYTHONPATH=os.pathsep.join(_PATH))


def _children(pid):
    """Process ids of the direct children of pid (Linux /proc)."""
    found = set()
    for task in Path("/proc/%d/task" % pid).glob("*"):
        try:
            found.update(int(c) for c in (task / "children").read_text().split())
        except OSError:
            pass
    return found


def _running(pid):
    try:
        state = Path("/proc/%d/stat" % pid).read_text().rsplit(")", 1)[1].split()[0]
    except OSError:
        return False
    return state != "Z"


def test_demo_runs_and_matches_the_scenario(tmp_path):
    out = tmp_path / "demo-out"
    start = time.monotonic()
    done = subprocess.run([sys.executable, "-m", "citynode.demo", "--out", str(out)], cwd=tmp_path, env=ENV,
                          stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, timeout=60)
    took = time.monotonic() - start
    assert done.returncode == 0, done.stderr
    assert took < 40, "the demo took %.1f s" % took
    text = done.stdout
    for name in ("scenario.json", "capture.bin", "plot.png", "tables/climate.csv", "tables/accel.csv",
                 "tables/features.csv", "tables/status.csv"):
        assert (out / name).is_file(), name
        assert str(out / name) in text, name
    assert re.search(r"frames +\d+ \(.*accel \d+.*\), 0 lost, 0 CRC errors", text), text
    climate = re.search(r"climate +mean ([\d.]+) °C, ([\d.]+) %RH over (\d+) readings", text)
    assert climate and int(climate[3]) >= 5, text
    assert abs(float(climate[1]) - demo.SCENARIO["temperature_c"]) <= 0.05
    assert abs(float(climate[2]) - demo.SCENARIO["relative_humidity_pct"]) <= 0.12
    vibration = re.search(r"vibration +dominant ([\d.]+) Hz on z from the host's spectrum.*node's features ([\d./]+) Hz",
                          text)
    assert vibration, text
    assert abs(float(vibration[1]) - demo.MODE_HZ) <= 0.05
    assert all(abs(float(f) - demo.MODE_HZ) <= 0.1 for f in vibration[2].split("/"))
    tilt = re.search(r"tilt +pitch ([+-][\d.]+)°, roll ([+-][\d.]+)° from the node's features", text)
    assert tilt, text
    assert abs(float(tilt[1]) - demo.PITCH_DEG) <= 0.05 and abs(float(tilt[2]) - demo.ROLL_DEG) <= 0.05
    assert re.search(r"demo finished in [\d.]+ s", text)


class _Spy(demo.VirtualNode):
    """The demo's VirtualNode, noting each interpreter it starts."""

    pids = []

    def _spawn(self):
        super()._spawn()
        _Spy.pids.append(self._pid)


def test_demo_stops_the_node_when_a_step_fails(tmp_path, monkeypatch, capsys):
    def fail(*argv):
        raise CitynodeError("`citynode %s` failed (exit status 1)" % argv[0])

    _Spy.pids = []
    monkeypatch.setattr(demo, "VirtualNode", _Spy)
    monkeypatch.setattr(demo, "_citynode", fail)
    code = demo.main(["--out", str(tmp_path / "out"), "--seconds", "1"])
    err = capsys.readouterr().err
    assert code == 1 and err.strip() == "citynode demo: `citynode record` failed (exit status 1)"
    assert _Spy.pids and not any(_running(pid) for pid in _Spy.pids)


@pytest.mark.parametrize("sig", [signal.SIGTERM, signal.SIGINT], ids=["sigterm", "ctrl-c"])
def test_demo_stopped_by_a_signal_stops_its_node(tmp_path, sig):
    proc = subprocess.Popen([sys.executable, "-m", "citynode.demo", "--out", str(tmp_path / "out"), "--seconds", "20"],
                            cwd=tmp_path, env=ENV, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    try:
        line = ""
        deadline = time.monotonic() + 20
        while "$ citynode record" not in line:  # the node is up and recording
            assert time.monotonic() < deadline, "the demo did not start recording within 20 s"
            line = proc.stdout.readline()
            assert line or proc.poll() is None, proc.stderr.read()
        nodes = [pid for pid in _children(proc.pid) if _running(pid)]
        assert nodes, "no interpreter running under the demo"
        proc.send_signal(sig)
        _out, err = proc.communicate(timeout=15)
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()
    assert proc.returncode == 130, err
    assert "Traceback" not in err
    deadline = time.monotonic() + 5
    while any(_running(pid) for pid in nodes):
        assert time.monotonic() < deadline, "the virtual node's interpreter outlived the demo"
        time.sleep(0.05)
