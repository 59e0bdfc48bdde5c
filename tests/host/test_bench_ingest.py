"""bench/bench_ingest.py runs end to end in its smallest mode: the naive ingester and 1 and 2 collectors
store readings in PostgreSQL and the results table is printed. Figures are not judged here (timings
belong to the bench, not to a test)."""

import importlib.util
import os

import pytest

from citynode.broker import mosquitto_path
from citynode.postgres import postgres_path

BENCH = os.path.join(os.path.dirname(__file__), "..", "..", "bench", "bench_ingest.py")

pytestmark = [
    pytest.mark.skipif(mosquitto_path() is None, reason="mosquitto not installed"),
    pytest.mark.skipif(postgres_path() is None, reason="PostgreSQL not installed"),
]


def _bench():
    spec = importlib.util.spec_from_file_location("bench_ingest", BENCH)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def test_the_smallest_run_stores_readings_and_prints_the_table(capsys):
    bench = _bench()
    steps = bench.run_steps(None, (4, 1), (0.0,), 2.0, 2.0)
    assert [s["ingester"] for s in steps] == ["naive", 1, 2]
    for step in steps:
        assert step["offered"] > 0
        assert step["stored"] > 0
        assert step["stored"] + step["lost"] == step["offered"]
    for step in steps[1:]:
        assert step["latency_ms"] is not None and step["latency_ms"]["p99"] >= step["latency_ms"]["p50"]
        assert step["frames_offered"] > 0
    assert bench.report(steps, (4, 1)) == 0  # a fleet below the target's: not judged
    out = capsys.readouterr().out
    assert "citynode x1" in out and "citynode x2" in out and "naive" in out
    assert "PUBACK p50 / p99 ms" in out
    assert "targets: not judged" in out
