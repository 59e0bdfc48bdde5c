"""bench/bench_node.py --quick runs under the MicroPython Unix port, prints its
tables, and exits 0: every run completed and the steady-state allocation per
accelerometer block is 0 bytes in all four configurations. That allocation is
a correctness property of the firmware (the same on every port and every
machine), so it is asserted from the printed table too. The timings and heap
sizes are printed, not asserted.
"""

import importlib.util
import re
from pathlib import Path

BENCH = Path(__file__).resolve().parents[2] / "bench"

# calibration, encoding, blocks, samples, bytes, bytes/block
_ALLOC_ROW = re.compile(r"^\s+(applied|raw mode)\s+(delta-bitpack|raw-int16)\s+(\d+)\s+(\d+)\s+(\d+)\s+([\d.]+)$", re.MULTILINE)


def _load(name):
    spec = importlib.util.spec_from_file_location(name, BENCH / (name + ".py"))
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def test_node_bench_quick(capsys):
    code = _load("bench_node").main(["--quick"])
    captured = capsys.readouterr()
    out = captured.out
    assert code == 0, out + captured.err

    rows = _ALLOC_ROW.findall(out)
    configs = {(calibration, encoding) for calibration, encoding, *_ in rows}
    assert configs == {(c, e) for c in ("applied", "raw mode") for e in ("delta-bitpack", "raw-int16")}, rows
    for calibration, encoding, blocks, samples, allocated, _per_block in rows:
        assert int(blocks) >= 20 and int(samples) == 100 * int(blocks)
        assert int(allocated) == 0, "%s, %s: %s bytes over %s blocks" % (calibration, encoding, allocated, blocks)
    assert "0/0/0/0 bytes: PASS" in out

    for heading in ("1. Heap allocated per accelerometer block", "2. Live heap of the running node", "3. CPU time per sample", "Targets"):
        assert heading in out
    assert re.search(r"node's share of the peak \(peak - sim\)\s+[\d.]+\s+[\d.]+$", out, re.MULTILINE), out
    assert re.search(r"runs 22 s under -X heapsize=100k\s+(yes|no)\s+(yes|no)$", out, re.MULTILINE), out
    assert re.search(r"smallest heapsize that runs: whole\s+-\s+[\d.]+$", out, re.MULTILINE), out
    assert re.search(r"^\s+naive: read, floats, dict, json.dumps, write\s+[\d.]+", out, re.MULTILINE), out
    assert re.search(r"^\s+citynode: FIFO, .*\s+[\d.]+\s+[\d.]+$", out, re.MULTILINE), out
    assert "node's heap <= 100 kB" in out
