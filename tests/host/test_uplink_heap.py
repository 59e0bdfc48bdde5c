"""bench/bench_uplink_heap.py --quick under MicroPython: what the uplink allocates per
published block (sign, ring, publish, PUBACK) stays at what it is now on each word
size. On the Unix port (64-bit) the node signs with citynode_fw.hmac_viper: 0 bytes.
The WebAssembly port (32-bit) has no native emitter, so it signs through hashlib,
which allocates a sha256 object per hash and a bytes per digest, two of each per
HMAC (docs/benchmarks.md); anything more is a regression. A property of the
firmware, the same on every machine (not timing)."""

import contextlib
import importlib.util
import io
import re
from pathlib import Path

BENCH = Path(__file__).resolve().parents[2] / "bench"
# bytes allocated per published block, measured: 64-bit, none (viper HMAC); 32-bit
# (hashlib), two sha256 objects, two digests and the view of the frame that is hashed
MOST = {".mpy 64-bit": 0, ".mpy 32-bit": 416}


def test_uplink_allocates_no_more_per_block_than_its_hmac_needs():
    spec = importlib.util.spec_from_file_location("bench_uplink_heap", BENCH / "bench_uplink_heap.py")
    module = importlib.util.module_from_spec(spec)
    out = io.StringIO()
    with contextlib.redirect_stdout(out):
        spec.loader.exec_module(module)
        code = module.main(["--quick"])
    text = out.getvalue()
    assert code in (0, 1), text  # 1: the 0-bytes target fails (see the docstring); 2: a run failed
    found = dict(re.findall(r"^uplink heap per published block, (.+): (\d+) bytes$", text, re.MULTILINE))
    assert ".mpy 64-bit" in found, text
    for port, n in found.items():
        assert int(n) <= MOST[port], "%s: %s bytes per block, at most %d before\n%s" % (port, n, MOST[port], text)
