"""bench/bench_node.py --quick runs under the MicroPython Unix port (64-bit)
and, where Node.js is installed, MicroPython's WebAssembly port (32-bit, as
an ESP32), prints its tables, and exits 0: every run completed and the
steady-state allocation per accelerometer block is 0 bytes in all four
configurations on each port. That allocation is a correctness property of the
firmware (the same on every machine), so it is asserted from the printed
tables too. The timings and heap sizes are printed, not asserted.
"""

import contextlib
import importlib.util
import io
import re
import shutil
from pathlib import Path

import pytest

# both tests read one bench run: keep them on one xdist worker
pytestmark = pytest.mark.xdist_group("node_bench")

BENCH = Path(__file__).resolve().parents[2] / "bench"

# calibration, encoding, blocks, samples, bytes, bytes/block
_ALLOC_ROW = re.compile(r"^\s+(applied|raw mode)\s+(delta-bitpack|raw-int16)\s+(\d+)\s+(\d+)\s+(\d+)\s+([\d.]+)$", re.MULTILINE)
_ALLOC_HEADING = re.compile(r"^1\. Heap allocated per accelerometer block in steady state \((.+)\)$", re.MULTILINE)


def _load(name):
    spec = importlib.util.spec_from_file_location(name, BENCH / (name + ".py"))
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


@pytest.fixture(scope="module")
def bench_output():
    out = io.StringIO()
    err = io.StringIO()
    with contextlib.redirect_stdout(out), contextlib.redirect_stderr(err):
        code = _load("bench_node").main(["--quick"])
    return code, out.getvalue(), err.getvalue()


def _alloc_tables(out):
    """{port name: its table's rows}, split at each part-1 heading."""
    heads = list(_ALLOC_HEADING.finditer(out))
    tables = {}
    for i, m in enumerate(heads):
        end = heads[i + 1].start() if i + 1 < len(heads) else out.index("2. Live heap")
        tables[m.group(1)] = (_ALLOC_ROW.findall(out[m.end() : end]), out[m.end() : end])
    return tables


def test_node_bench_quick(bench_output):
    code, out, err = bench_output
    assert code == 0, out + err

    tables = _alloc_tables(out)
    assert ".mpy 64-bit" in tables, out
    for port, (rows, text) in tables.items():
        configs = {(calibration, encoding) for calibration, encoding, *_ in rows}
        assert configs == {(c, e) for c in ("applied", "raw mode") for e in ("delta-bitpack", "raw-int16")}, (port, rows)
        for calibration, encoding, blocks, samples, allocated, _per_block in rows:
            assert int(blocks) >= 20 and int(samples) == 100 * int(blocks)
            assert int(allocated) == 0, "%s, %s, %s: %s bytes over %s blocks" % (port, calibration, encoding, allocated, blocks)
        assert "the simulated parts alone allocate nothing here" in text, (port, text)
        assert "%s, calibrated and raw mode x delta-bitpack and raw-int16: 0/0/0/0 bytes: PASS" % port in out

    for heading in ("2. Live heap of the running node", "3. CPU time per sample", "Targets"):
        assert heading in out
    columns = len(tables) + 1  # .py 64-bit as well
    assert re.search(r"node's share of the peak \(peak - sim\)" + r"\s+[\d.]+" * columns + "$", out, re.MULTILINE), out
    assert re.search(r"runs 22 s under -X heapsize=100k\s+(yes|no)\s+(yes|no)" + r"\s+n/a" * (columns - 2) + "$", out, re.MULTILINE), out
    assert re.search(r"smallest heapsize that runs: whole\s+-\s+[\d.]+" + r"\s+-" * (columns - 2) + "$", out, re.MULTILINE), out
    assert re.search(r"^\s+naive: read, floats, dict, json.dumps, write\s+[\d.]+", out, re.MULTILINE), out
    assert re.search(r"^\s+citynode: FIFO, .*\s+[\d.]+\s+[\d.]+$", out, re.MULTILINE), out
    assert "node's heap <= 100 kB" in out


@pytest.mark.skipif(not (shutil.which("node") and shutil.which("npm")), reason="Node.js and npm are needed for the 32-bit (WebAssembly) MicroPython runs")
def test_node_bench_runs_32bit(bench_output):
    """With Node.js, the bench measures on a 32-bit MicroPython and judges the
    heap target there (the figure itself is printed, not asserted)."""
    code, out, err = bench_output
    assert code == 0, out + err
    not_run = re.search(r"^32-bit: not run \((.*)\)$", out, re.MULTILINE)
    if not_run:
        pytest.skip("the 32-bit MicroPython did not run: %s" % not_run.group(1))
    assert re.search(r"^32-bit: MicroPython \d+\.\d+\.\d+ WebAssembly port", out, re.MULTILINE), out
    assert ".mpy 32-bit" in _alloc_tables(out)
    assert re.search(r"node's heap <= 100 kB, \.mpy 32-bit \(as on an ESP32\), node's share at most \(live before a pass \+ the pass\): [\d.]+ kB: (PASS|FAIL)", out), out
