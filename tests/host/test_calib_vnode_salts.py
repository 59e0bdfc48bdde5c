"""End to end against the virtual node: `citynode calibrate climate` with two saturated salts.

The simulated SHT3x reads RH * 1.1 - 3 %RH; the test moves the node from the
LiCl box (11.3 %RH at 25 degC) to the NaCl box (75.3 %RH) when the tool says
the first point was taken, as an installer does. The tool notices the change
by itself (stdin is not a terminal), fits gain and offset, and afterwards the
node's own calibrated output is within 0.05 degC and 0.5 %RH of the truth at
both points.
"""

import pytest

from citynode.serial_link import NodeClient
from test_calib_vnode_accel import HUNG_S, TEST_TIMEOUT_S, citynode, lines
from test_calib_vnode_climate import FAST, calibrated_climate, reported, start

SCENARIO = {"temperature_c": 25.0, "relative_humidity_pct": 11.3, "vibration": [], "seed": 6,
            "sensor_error": {"temperature_offset_c": 0.8, "humidity_gain": 1.1, "humidity_offset_pct": -3.0}}


@pytest.mark.timeout(TEST_TIMEOUT_S)
def test_climate_two_salts(tmp_path):
    ctx, node = start(tmp_path, SCENARIO)
    try:
        proc = citynode("calibrate", "climate", "--port", node.port, "--point", "25,LiCl", "--point", "25,NaCl",
                        "--report-dir", str(tmp_path / "reports"), *FAST)
        out = []
        for line in lines(proc, HUNG_S):  # ~40 s on an idle machine
            out.append(line)
            if line.startswith("point 1/2 taken"):
                node.set_scenario(relative_humidity_pct=75.3)  # the node goes into the NaCl box
        err = proc.stderr.read()
        assert proc.wait() == 0, "\n".join(out) + err
        assert any("humidity: two-point linear" in ln for ln in out)
        t, h = reported(out)  # in the NaCl box, read by the tool after the write
        assert abs(t - 25.0) < 0.05 and abs(h - 75.3) < 0.5, (t, h)
        with NodeClient(node.port) as c:
            cal = c.command("calib_get")["calib"]["climate"]
            assert abs(cal["rh_gain"] - 1 / 1.1) < 0.005
            node.set_scenario(relative_humidity_pct=11.3)  # back in the LiCl box
            t, h = calibrated_climate(c, 25.0, 11.3)
        assert abs(t - 25.0) < 0.05 and abs(h - 11.3) < 0.5, (t, h)
    finally:
        ctx.__exit__(None, None, None)
