"""End to end against the virtual node: `citynode calibrate climate` at one reference point.

The simulated SHT3x reads T + offset and RH * gain + offset (scenario
`sensor_error`), plus the parts' repeatability noise. After each calibration
the node's own calibrated output must match the truth at the calibration
points within 0.05 degC and 0.5 %RH.
"""

import sys
import time

import numpy as np
import pytest

from citynode.serial_link import NodeClient
from citynode_protocol import messages
from test_calib_vnode_accel import HEAP, TEST_TIMEOUT_S, run_done
from vnode_fixtures import virtual_node

T_TRUE, RH_TRUE = 21.5, 48.0
ERRORS = {"temperature_offset_c": 0.8, "humidity_gain": 1.1, "humidity_offset_pct": -3.0}
SCENARIO = {"temperature_c": T_TRUE, "relative_humidity_pct": RH_TRUE, "vibration": [], "sensor_error": ERRORS,
            "seed": 4}
# settled means 4 readings at 2 s within the spreads (the parts' noise is 0.013 degC / 0.033 %RH)
FAST = ["--stable-window", "8"]


def reported(out):
    """(T, RH) from the tool's line with the node's own calibrated values afterwards."""
    line = next(ln for ln in out if ln.startswith("node now reports"))
    t, h = line.split("reports ")[1].split(" (")[0].split(", ")
    return float(t.split()[0]), float(h.split()[0])


def calibrated_climate(client, t_true, rh_true, n=3, timeout=20.0):
    """Mean of n calibrated climate records once they show the truth's neighbourhood."""
    vals = []
    deadline = time.monotonic() + timeout
    for m in client.read_frames(timeout):
        if m.name != "climate" or not m.fields["status"] & messages.CLIMATE_CALIBRATED:
            continue
        t, h = m.fields["temperature_c"], m.fields["relative_humidity_pct"]
        if abs(t - t_true) > 1 or abs(h - rh_true) > 3:
            vals = []  # still the conditions before the change
            continue
        vals.append((t, h))
        if len(vals) >= n:
            return np.mean(vals, axis=0)
        if time.monotonic() > deadline:
            break
    pytest.fail("no calibrated climate records near %.2f degC, %.1f %%RH" % (t_true, rh_true))


def start(tmp_path, scenario):
    """A virtual node with the app on a 2 s climate period (a technician's short session)."""
    ctx = virtual_node(tmp_path, scenario=scenario, with_app=True, heap=HEAP)
    node = ctx.__enter__()
    try:
        with NodeClient(node.port) as c:
            c.command("config_set", values={"climate_period_s": 2})
            c.command("reboot")  # the reading already scheduled on the 60 s period would come last
        node.wait_boots(2)
    except BaseException:
        ctx.__exit__(*sys.exc_info())
        raise
    return ctx, node


@pytest.mark.timeout(TEST_TIMEOUT_S)
def test_climate_one_point(tmp_path):
    reports = tmp_path / "reports"
    ctx, node = start(tmp_path, SCENARIO)
    try:
        code, out, err = run_done("calibrate", "climate", "--port", node.port, "--reference-temperature",
                                  str(T_TRUE), "--reference-humidity", str(RH_TRUE), "--report-dir", str(reports),
                                  *FAST)
        assert code == 0, "\n".join(out) + err
        with NodeClient(node.port) as c:
            doc = c.command("calib_get")["calib"]
            assert doc["method"].startswith("climate: temperature one-point offset")
            assert c.command("config_get", key="climate_period_s")["config"]["climate_period_s"] == 2
        t, h = reported(out)  # the node's calibrated records, read by the tool after the write
        assert abs(t - T_TRUE) < 0.05 and abs(h - RH_TRUE) < 0.5, (t, h)
        with NodeClient(node.port) as c:
            t, h = calibrated_climate(c, T_TRUE, RH_TRUE)
        assert abs(t - T_TRUE) < 0.05 and abs(h - RH_TRUE) < 0.5, (t, h)
    finally:
        ctx.__exit__(None, None, None)
    made = list((reports / "node-1").glob("*-climate-*"))
    assert len(made) == 1 and (made[0] / "before_after.png").exists()


@pytest.mark.timeout(TEST_TIMEOUT_S)
def test_node_without_climate_sensor(tmp_path):
    scenario = dict(SCENARIO, faults={"climate": "absent"})
    with virtual_node(tmp_path, scenario=scenario, with_app=True, heap=HEAP) as node:
        code, out, err = run_done("calibrate", "climate", "--port", node.port, "--point", "21.5,48")
        assert code == 1 and err.count("\n") == 1
        assert "has no temperature/humidity sensor (it reports: accel adxl355); nothing was changed" in err
        with NodeClient(node.port) as c:
            assert c.command("calib_get")["calib"] is None
