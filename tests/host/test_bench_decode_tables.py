"""bench_decode_tables.py runs (--quick, as a CI smoke test) and prints both sides and its targets.

Its exit status reports the speed targets; it is not asserted here, because a
loaded CI machine says nothing about speed (see docs/benchmarks.md).
"""

import importlib.util
from pathlib import Path

BENCH = Path(__file__).resolve().parents[2] / "bench"


def test_decode_tables_quick(capsys):
    spec = importlib.util.spec_from_file_location("bench_decode_tables", BENCH / "bench_decode_tables.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    module.main(["--quick"])
    out = capsys.readouterr().out
    assert "pymavlink + csv.writer" in out
    assert "citynode decode --format csv" in out and "citynode decode --format parquet" in out
    assert "x the peer's samples/s >= 10 x" in out and "x the peer's samples/s >= 50 x" in out
    assert "peak RSS" in out
