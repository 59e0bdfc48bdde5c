"""End to end, no mocks: a virtual node running the app (the real MicroPython
interpreter on a pseudo-terminal, simulated sensors reading a scenario) →
`citynode record` → `citynode decode` → the tables against the scenario.

Tolerances: climate readings within the parts' repeatability (the simulated
SHT3x/SHT4x add noise of 3σ = 0.04 °C and 0.1 %RH, then the wire rounds to
0.01); tilt within 0.05° (the wire carries 0.01°); the node's dominant
frequency within its documented accuracy of ±0.1 Hz (citynode_fw/features.py);
the host's Welch spectrum of the recorded samples within 0.05 Hz.
"""

import csv
import threading
from pathlib import Path

import numpy as np
import pytest

from citynode import cli, plotting
from citynode.demo import NODE_HEAP, gravity, provision
from citynode.serial_link import NodeClient
from citynode_protocol import messages
from vnode_fixtures import virtual_node

PITCH_DEG, ROLL_DEG = 1.2, -0.7
TEMP_C, RH_PCT = 14.6, 72.5
MODE_HZ = 2.85
SCENARIO = {
    "temperature_c": TEMP_C,
    "relative_humidity_pct": RH_PCT,
    "gravity": gravity(PITCH_DEG, ROLL_DEG),
    "vibration": [{"freq_hz": MODE_HZ, "amp_g": 0.015, "axis": [0.0, 0.0, 1.0]}],
    "noise_g": 0.0005,
    "seed": 3,
}
# A short session: climate every 2 s, 4 s feature windows, status every 5 s.
CONFIG = {"climate_period_s": 2, "feature_window_s": 4, "status_period_s": 5}
T_TOL_C = 0.05  # 3σ repeatability 0.04 °C + the wire's 0.01
RH_TOL_PCT = 0.12  # 3σ repeatability 0.1 %RH + the wire's 0.01 (and rounding)
TILT_TOL_DEG = 0.05
NODE_FREQ_TOL_HZ = 0.1  # citynode_fw/features.py: documented accuracy
HOST_FREQ_TOL_HZ = 0.05


def record_and_decode(node, tmp_path, seconds, capsys, during=None):
    """`citynode record` then `citynode decode`; returns ({table: rows}, record's summary line).

    during: (delay s, callable) run from a timer thread while recording."""
    capture = tmp_path / "capture.bin"
    timer = threading.Timer(during[0], during[1]) if during else None
    if timer:
        timer.start()
    try:
        code = cli.main(["record", "--port", node.port, "--duration", str(seconds), "-o", str(capture)])
    finally:
        if timer:
            timer.join()
    out, err = capsys.readouterr()
    assert code == 0, err
    summary = out.strip().splitlines()[-1]
    tables = tmp_path / "tables"
    code = cli.main(["decode", str(capture), "--out-dir", str(tables), "--format", "csv"])
    _out, err = capsys.readouterr()
    assert code == 0, err
    return {p.stem: _rows(p) for p in tables.glob("*.csv")}, summary


def _rows(path):
    with open(path, newline="") as f:
        rows = list(csv.DictReader(f))
    return [{k: _number(v) for k, v in row.items()} for row in rows]


def _number(text):
    try:
        return int(text)
    except ValueError:
        try:
            return float(text)
        except ValueError:
            return text


def accel_array(rows):
    """(node_time_s, (n, 3) g) of the accel table's rows."""
    t = np.array([r["node_time_s"] for r in rows])
    g = np.array([[r["ax_g"], r["ay_g"], r["az_g"]] for r in rows])
    return t, g


def dominant(g, odr_hz, axis=2):
    freqs, psd = plotting.welch(g[:, axis], odr_hz)
    return plotting.dominant_peak(freqs, psd)


def test_recorded_values_match_the_scenario(tmp_path, capsys):
    with virtual_node(tmp_path, scenario=SCENARIO, with_app=True, heap=NODE_HEAP) as node:
        provision(node, CONFIG)
        tables, summary = record_and_decode(node, tmp_path, 9.0, capsys)
    assert " 0 lost, 0 CRC errors" in summary

    climate = tables["climate"]
    assert len(climate) >= 4
    for row in climate:
        assert row["status"] & messages.CLIMATE_SENSOR_ERROR == 0
        assert abs(row["temperature_c"] - TEMP_C) <= T_TOL_C, row
        assert abs(row["relative_humidity_pct"] - RH_PCT) <= RH_TOL_PCT, row

    features = tables["features"]
    assert len(features) >= 1
    for row in features:
        assert abs(row["pitch_deg"] - PITCH_DEG) <= TILT_TOL_DEG, row
        assert abs(row["roll_deg"] - ROLL_DEG) <= TILT_TOL_DEG, row
        assert abs(row["dominant_freq_z_hz"] - MODE_HZ) <= NODE_FREQ_TOL_HZ, row

    blocks = tables["accel_blocks"]
    odr = blocks[0]["odr_hz"]
    assert all(b["first_index"] == a["first_index"] + a["n_samples"] for a, b in zip(blocks, blocks[1:]))
    _t, g = accel_array(tables["accel"])
    assert len(g) >= 8 * odr
    assert abs(dominant(g, odr) - MODE_HZ) <= HOST_FREQ_TOL_HZ
    pitch, roll = plotting.tilt_deg(g)
    assert abs(pitch - PITCH_DEG) <= TILT_TOL_DEG and abs(roll - ROLL_DEG) <= TILT_TOL_DEG

    status = tables["status"]
    both = messages.SENSOR_CLIMATE | messages.SENSOR_ACCEL
    assert status and all(r["sensors_fitted"] == both and r["sensors_ok"] == both for r in status)


def test_scenario_change_while_recording_shows_in_the_data(tmp_path, capsys):
    """The node re-reads the scenario file when it changes: warmer air and a new mode."""
    new_hz = 6.4

    def change():
        node.set_scenario(temperature_c=25.0, vibration=[{"freq_hz": new_hz, "amp_g": 0.015, "axis": [0.0, 0.0, 1.0]}])

    with virtual_node(tmp_path, scenario=SCENARIO, with_app=True, heap=NODE_HEAP) as node:
        provision(node, CONFIG)
        tables, _summary = record_and_decode(node, tmp_path, 8.0, capsys, during=(3.0, change))

    temps = [r["temperature_c"] for r in tables["climate"]]
    assert abs(temps[0] - TEMP_C) <= T_TOL_C and abs(temps[-1] - 25.0) <= T_TOL_C, temps
    odr = tables["accel_blocks"][0]["odr_hz"]
    _t, g = accel_array(tables["accel"])
    before, after = g[: int(2 * odr)], g[-int(3 * odr):]
    assert abs(dominant(before, odr) - MODE_HZ) <= 0.3
    assert abs(dominant(after, odr) - new_hz) <= 0.3


def test_absent_climate_sensor_node_streams_accel_and_status_says_so(tmp_path, capsys):
    scenario = dict(SCENARIO, faults={"climate": "absent"})
    with virtual_node(tmp_path, scenario=scenario, with_app=True, heap=NODE_HEAP) as node:
        tables, summary = record_and_decode(node, tmp_path, 4.0, capsys)
        with NodeClient(node.port) as client:  # its boot log came before the recording (record drops that)
            info = client.command("info")
    assert " 0 lost, 0 CRC errors" in summary
    assert "climate" not in tables  # no climate frames at all
    odr = tables["accel_blocks"][0]["odr_hz"]
    assert len(tables["accel"]) >= 3 * odr
    status = tables["status"]
    assert status
    for row in status:
        assert row["sensors_fitted"] & messages.SENSOR_CLIMATE == 0
        assert row["sensors_ok"] & messages.SENSOR_ACCEL
    # climate_part=auto: a part that does not answer is no fault, and info says what was found
    assert [x["kind"] for x in info["sensors"]] == ["accel"]
    assert not [e for e in info["last_errors"] if "climate" in e]


def test_monitor_against_the_virtual_node(tmp_path, capsys):
    with virtual_node(tmp_path, scenario=SCENARIO, with_app=True, heap=NODE_HEAP) as node:
        provision(node, CONFIG)  # climate every 2 s: monitor starts from what the node sends now
        code = cli.main(["monitor", "--port", node.port, "--duration", "3"])
    out, err = capsys.readouterr()
    assert code == 0, err
    lines = out.strip().splitlines()
    assert lines[-1].startswith("link: ") and " 0 lost, 0 CRC errors" in lines[-1]
    kinds = {line.split()[0] for line in lines[:-1]}
    assert {"status", "climate", "accel"} <= kinds
    climate = next(line for line in lines if line.startswith("climate "))
    t = float(climate.split("temperature_c=")[1].split()[0])
    assert abs(t - TEMP_C) <= T_TOL_C


# -- the developer's guide: its examples are run here ---------------------------------

GUIDE = Path(__file__).resolve().parents[2] / "docs" / "developers.md"


def _guide_examples():
    """The ```python blocks of docs/developers.md that define test functions."""
    blocks = []
    text = GUIDE.read_text()
    for part in text.split("```python\n")[1:]:
        code = part.split("\n```", 1)[0]
        if "def test_" in code:
            blocks.append(code)
    return blocks


@pytest.mark.parametrize("index", range(len(_guide_examples())))
def test_developer_guide_example_runs(index, tmp_path, capsys):
    """Every example in docs/developers.md runs and its tests pass, as written."""
    code = _guide_examples()[index]
    namespace = {"__name__": "developers_md_example_%d" % index}
    exec(compile(code, "%s example %d" % (GUIDE.name, index + 1), "exec"), namespace)
    tests = [f for name, f in namespace.items() if name.startswith("test_") and callable(f)]
    assert tests
    for i, test in enumerate(tests):
        args = {"tmp_path": tmp_path / str(i), "capsys": capsys}
        args["tmp_path"].mkdir()
        wanted = test.__code__.co_varnames[: test.__code__.co_argcount]
        test(**{name: args[name] for name in wanted})
