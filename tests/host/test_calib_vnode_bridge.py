"""End to end against the virtual node on a bridge in service: `calibrate mount` and then `calibrate verify`
while the deck vibrates under traffic (issue 9: a verify after mounting on a real bridge always failed
"not still" after 120 s of silence).

The simulated accelerometer reads gravity plus a 4.1 Hz deck mode of 40 mg on a
slanted axis, about 27 mg rms on the worst axis: more than the 10 mg a still
capture allows. The node runs its 60 s climate period; the verify shortens it
for the check and sets it back. (That a verify on a vibrating node still sees a
sagged bracket is shown against the scripted fake, test_calib_verify.py, and on
a still virtual node in test_calib_vnode_accel.py.)
"""

import numpy as np
import pytest

from citynode.serial_link import NodeClient
from test_calib_vnode_accel import FACES, HEAP, TEST_TIMEOUT_S, run_done, tilted
from vnode_fixtures import virtual_node

MOUNTED = tilted(FACES[5], 2.5)  # under the deck on its side (-y up), a little crooked
SCENARIO = {
    "gravity": MOUNTED,
    "vibration": [{"freq_hz": 4.1, "amp_g": 0.04, "axis": [0.3, 1.0, 0.2]}],
    "noise_g": 0.0005,
    "temperature_c": 21.5,
    "relative_humidity_pct": 48.0,
    "seed": 5,
}
SIX_POSITION = {"id": 100, "date": "2026-01-01", "method": "six-position", "site": {"name": "lab"},
                "accel": {"bias_g": [0.0, 0.0, 0.0], "scale": [1.0, 1.0, 1.0]}}


def check_line(out, name):
    return next(ln for ln in out if ln.startswith(name.ljust(22)))


@pytest.mark.timeout(TEST_TIMEOUT_S)
def test_mount_then_verify_on_a_vibrating_bridge(tmp_path):
    with virtual_node(tmp_path, scenario=SCENARIO, with_app=True, heap=HEAP) as node:
        with NodeClient(node.port) as c:
            c.command("calib_write", calib=SIX_POSITION)
            assert c.command("config_get", key="climate_period_s")["config"]["climate_period_s"] == 60
        code, out, err = run_done("calibrate", "mount", "--port", node.port, "--up=-y", "--along=+x",
                                  "--seconds", "3", "--no-report")
        assert code == 0, "\n".join(out) + err
        with NodeClient(node.port) as c:
            rotation = np.array(c.command("calib_get")["calib"]["accel"]["rotation"])
        assert np.allclose(rotation @ MOUNTED, [0, 0, 1], atol=0.003)

        code, out, err = run_done("calibrate", "verify", "--port", node.port, "--reference-temperature", "21.5",
                                  "--reference-humidity", "48", "--no-report")
        assert code == 0, "\n".join(out) + err
        text = "\n".join(out)
        for name in ("calibration in use", "temperature", "humidity", "gravity |a|", "tilt since install"):
            assert " PASS " in check_line(out, name), text
        vibration = float(check_line(out, "gravity |a|").split("vibration ")[1].split()[0])
        assert vibration > 10.0  # mg rms: not still by the accel calibration's measure, and yet judged
        assert "(mean of 5)" in check_line(out, "temperature")
        with NodeClient(node.port) as c:
            assert c.command("config_get", key="climate_period_s")["config"]["climate_period_s"] == 60

