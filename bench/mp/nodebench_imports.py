"""The live heap each of the node's modules costs once imported (bench/bench_uplink_heap.py).

Parameters (env NODEBENCH): none. The modules come from imports.txt in the
current folder, one a line, dependencies first (the bench orders them), so
that each figure is that module's own: its code (bytecode and constants, from
a filesystem; from a ROMFS only what running it makes) and its globals.

RESULT import module=<module> bytes=<live heap after - before, after gc.collect()>

As nodebench_heap, a generator that yields where it wants a collection; the
WebAssembly port's run.mjs advances it one top-level run at a time (STEPS).
"""

import gc
import sys

STEPS = None


def measure(names):
    import nodebench_rig as rig

    for name in names:
        yield
        before = gc.mem_alloc()
        __import__(name)
        yield
        rig.result("import", module=name, bytes=gc.mem_alloc() - before)


def main():
    global STEPS
    with open("imports.txt") as f:
        names = [line.strip() for line in f if line.strip()]
    import nodebench_rig  # noqa: F401 (its own heap, before the first figure)

    steps = measure(names)
    if sys.platform == "webassembly":
        STEPS = steps
        return
    for _ in steps:
        gc.collect()


main()
