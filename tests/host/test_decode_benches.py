"""The benchmarks run (--quick, as a CI smoke test) and print their tables and targets.

Their exit status reports the targets; it is not asserted here, because a
loaded CI machine says nothing about the decoder's speed. The wire sizes are
deterministic, so those targets are asserted.
"""

import importlib.util
from pathlib import Path

BENCH = Path(__file__).resolve().parents[2] / "bench"


def _load(name):
    spec = importlib.util.spec_from_file_location(name, BENCH / (name + ".py"))
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def test_wire_size_quick(capsys):
    code = _load("bench_wire_size").main(["--quick"])
    out = capsys.readouterr().out
    assert "climate record 20 bytes <= 20: PASS" in out
    assert "quiet acceleration, blocks of 200" in out and "MAVLink 2 SCALED_IMU x200" in out
    assert code == 0, out


def test_decode_speed_quick(capsys):
    _load("bench_decode_speed").main(["--quick"])
    out = capsys.readouterr().out
    assert "pymavlink parse_buffer, SCALED_IMU" in out
    assert "raw-int16 capture:" in out and "x pymavlink's samples/s" in out
