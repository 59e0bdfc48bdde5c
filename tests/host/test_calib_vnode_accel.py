"""End to end against the virtual node: `citynode calibrate accel` while the test turns the node,
then `mount`, `verify` and `rollback`.

The simulated ADXL355 reads scale * gravity + bias + noise (scenario
`sensor_error`); the test rewrites `gravity` in the scenario each time the tool
says a position was taken, as an installer turns the node. Afterwards the node's
own calibrated output must match the truth: bias within 2 mg and scale within
0.2 % on every axis, measured by turning it through the six faces again. Then
`calibrate verify` passes; `calibrate mount` on a tilted bracket makes the node
report gravity straight up in structure axes; a further 1 degree of tilt makes
`verify` fail on "tilt since install"; `rollback` brings back the six-position
calibration, and a second rollback the mount again.
"""

import math
import os
import queue
import subprocess
import sys
import threading
import time
from pathlib import Path

import numpy as np
import pytest

from citynode.serial_link import NodeClient
from citynode_protocol import messages
from vnode_fixtures import virtual_node

REPO = Path(__file__).resolve().parents[2]
HEAP = "1m"
# A bound on one hung command, not a speed target (two CI-like runs took 40 s and 60 s to finish one);
# pytest-timeout's bound on a whole test is wider, so a hung command is named by run_done, not cut off.
HUNG_S = 150
TEST_TIMEOUT_S = HUNG_S + 50
BIAS = [0.042, -0.027, 0.061]
SCALE = [1.031, 0.976, 1.012]  # the sensor's gain error: the node must multiply by 1/SCALE
FACES = [[0, 0, 1], [0, 0, -1], [1, 0, 0], [-1, 0, 0], [0, 1, 0], [0, -1, 0]]
SCENARIO = {
    "gravity": FACES[0],
    "vibration": [],
    "noise_g": 0.0005,
    "sensor_error": {"accel_bias_g": BIAS, "accel_scale": SCALE},
    "seed": 11,
}
CLIMATE_ONLY = {"id": 100, "date": "2026-01-01", "method": "climate: earlier", "site": {"name": "lab"},
                "climate": {"t_gain": 1.0, "t_offset_c": -0.2, "rh_gain": 1.0, "rh_offset_pct": 0.0}}


def tilted(v, deg):
    """A face as an installer puts it down: a couple of degrees off."""
    a = math.radians(deg)
    x, y, z = v
    # rotate about an axis that is never parallel to a face normal
    k = np.array([0.48, 0.6, 0.64])
    k /= np.linalg.norm(k)
    v = np.array([x, y, z], float)
    r = v * math.cos(a) + np.cross(k, v) * math.sin(a) + k * (k @ v) * (1 - math.cos(a))
    return [round(float(c), 6) for c in r]


def citynode(*argv):
    env = dict(os.environ)
    env["PYTHONPATH"] = os.pathsep.join([str(REPO / "host"), str(REPO / "protocol"), env.get("PYTHONPATH", "")])
    return subprocess.Popen([sys.executable, "-m", "citynode", *argv], stdout=subprocess.PIPE,
                            stderr=subprocess.PIPE, stdin=subprocess.DEVNULL, text=True, bufsize=1, env=env,
                            cwd=str(REPO))


def lines(proc, timeout):
    """stdout lines of proc as they come; fails the test after timeout s, showing them."""
    seen = []
    q = queue.Queue()
    threading.Thread(target=lambda: [q.put(ln) for ln in proc.stdout] + [q.put(None)], daemon=True).start()
    deadline = time.monotonic() + timeout
    while True:
        try:
            line = q.get(timeout=max(0.1, deadline - time.monotonic()))
        except queue.Empty:
            proc.kill()
            pytest.fail("citynode still running after %.0f s; its output:\n%s" % (timeout, "\n".join(seen)))
        if line is None:
            return
        seen.append(line.rstrip("\n"))
        yield seen[-1]


def run_done(*argv, timeout=HUNG_S):
    proc = citynode(*argv)
    out = list(lines(proc, timeout))
    err = proc.stderr.read()
    return proc.wait(), out, err


def calibrated_mean(client, face, seconds=1.0, timeout=10.0):
    """Mean of the node's calibrated accel output over a still `seconds` on `face` (g).

    Blocks already on their way when the scenario changed are skipped: a window
    counts only when it shows the new face and its two halves agree within 0.5 mg.
    """
    got = []
    deadline = time.monotonic() + timeout
    for m in client.read_frames(timeout):
        if m.name != "accel" or not m.fields["flags"] & messages.ACCEL_CALIBRATED:
            continue
        got.append(np.asarray(m.fields["samples"], float).reshape(-1, 3) * m.fields["range_g"] / 32768)
        a = np.concatenate(got)
        n = int(seconds * m.fields["odr_hz"])
        if len(a) >= n:
            a = a[-n:]
            half = n // 2
            on_face = np.dot(a.mean(axis=0), face) > 0.9
            if on_face and np.max(np.abs(a[:half].mean(axis=0) - a[half:].mean(axis=0))) < 0.0005:
                return a.mean(axis=0)
            got = [a[half:]]
        if time.monotonic() > deadline:
            break
    pytest.fail("no still calibrated accel output within %.0f s" % timeout)


@pytest.mark.timeout(TEST_TIMEOUT_S)
def test_six_position_calibration_against_the_virtual_node(tmp_path):
    reports = tmp_path / "reports"
    with virtual_node(tmp_path, scenario=SCENARIO, with_app=True, heap=HEAP) as node:
        with NodeClient(node.port) as c:
            c.command("calib_write", calib=CLIMATE_ONLY)  # an earlier calibration to roll back to
        proc = citynode("calibrate", "accel", "--port", node.port, "--report-dir", str(reports),
                        "--capture", "1.5", "--installer", "e2e")
        out = []
        for line in lines(proc, 90):
            out.append(line)
            if " taken: " in line and line.startswith("position "):
                k = int(line.split()[1].split("/")[0])
                if k < 6:
                    node.set_scenario(gravity=tilted(FACES[k], 2.0 + k % 2))  # the installer turns it
        err = proc.stderr.read()
        assert proc.wait() == 0, "\n".join(out) + err
        assert "position 6/6 taken" in "\n".join(out)

        with NodeClient(node.port) as c:
            doc = c.command("calib_get")["calib"]
            assert doc["method"] == "six-position" and doc["site"]["installer"] == "e2e"
            assert doc["climate"] == CLIMATE_ONLY["climate"]  # kept
            stored_bias = np.array(doc["accel"]["bias_g"])
            stored_scale = np.array(doc["accel"]["scale"])
            assert np.max(np.abs(stored_bias - BIAS)) < 0.002
            assert np.max(np.abs(stored_scale * SCALE - 1)) < 0.002
            status = c.command("status")
            assert status["calibration_id"] == doc["id"]
            # the node's own output against the truth, face by face
            means = {}
            for i, face in enumerate(FACES):
                node.set_scenario(gravity=face)
                means[i] = calibrated_mean(c, face)
        for axis, up_face in ((0, 2), (1, 4), (2, 0)):  # FACES: +z -z +x -x +y -y
            up, down = means[up_face][axis], means[up_face + 1][axis]
            bias_left = (up + down) / 2
            scale_left = (up - down) / 2
            assert abs(bias_left) < 0.002, (axis, up, down)
            assert abs(scale_left - 1) < 0.002, (axis, up, down)

        code, out, err = run_done("calibrate", "verify", "--port", node.port, "--seconds", "2", "--no-report")
        assert code == 0, "\n".join(out) + err
        assert any(ln.startswith("gravity |a|") and "PASS" in ln for ln in out)

        # fixed under the deck on its side: sensor -y up, +x along the bridge, 2.5 degrees off
        mounted = tilted(FACES[5], 2.5)
        node.set_scenario(gravity=mounted)
        code, out, err = run_done("calibrate", "mount", "--port", node.port, "--up=-y", "--along=+x",
                                  "--seconds", "2", "--report-dir", str(reports))
        assert code == 0, "\n".join(out) + err
        with NodeClient(node.port) as c:
            mount_doc = c.command("calib_get")["calib"]
            assert mount_doc["accel"]["bias_g"] == doc["accel"]["bias_g"]  # six-position part kept
            r = np.array(mount_doc["accel"]["rotation"])
            assert np.allclose(r @ mounted, [0, 0, 1], atol=0.003)
            up = calibrated_mean(c, [0, 0, 1])  # the node now reports in structure axes
            assert np.max(np.abs(up - [0, 0, 1])) < 0.002, up

        # the bracket sags by 1 degree about the bridge axis: verify sees the tilt
        k = math.radians(1.0)
        rot_x = np.array([[1, 0, 0], [0, math.cos(k), -math.sin(k)], [0, math.sin(k), math.cos(k)]])
        sagged = r.T @ rot_x @ (r @ np.array(mounted))
        node.set_scenario(gravity=[round(float(v), 6) for v in sagged])
        time.sleep(1.0)  # let the blocks from before the sag drain
        code, out, err = run_done("calibrate", "verify", "--port", node.port, "--seconds", "2", "--no-report")
        assert code == 1 and err.strip() == "citynode: verify failed: tilt since install", "\n".join(out) + err
        tilt_line = next(ln for ln in out if ln.startswith("tilt since install"))
        roll = float(tilt_line.split("roll ")[1].split()[0])
        assert 0.95 <= abs(roll) <= 1.05, tilt_line  # 1 degree, either sign; the noise moves the estimate by ~0.005

        code, out, err = run_done("calibrate", "rollback", "--port", node.port, "--report-dir", str(reports))
        assert code == 0, err
        assert "calibration id %d" % doc["id"] in "\n".join(out)
        with NodeClient(node.port) as c:
            assert c.command("calib_get")["calib"] == doc
        code, out, err = run_done("calibrate", "rollback", "--port", node.port, "--no-report")
        assert code == 0, err
        with NodeClient(node.port) as c:
            assert c.command("calib_get")["calib"] == mount_doc

    folders = sorted(p.name for p in (reports / "node-1").iterdir())
    assert any("-accel-" in f for f in folders) and any("-rollback-" in f for f in folders)
    assert any("-mount-" in f for f in folders)
    accel_report = next((reports / "node-1").glob("*-accel-*"))
    assert (accel_report / "positions.png").exists() and (accel_report / "report.md").exists()
