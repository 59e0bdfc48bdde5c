"""The running node's heap (bench/bench_node.py, part 2).

Parameters (env NODEBENCH):
  what     bare: the interpreter alone; sim: the simulated parts, board and
           null port, driven over the bus as the node drives them (no node
           code); node: node.build() on that sim, run for `seconds`.
  seconds  node time to run (default 30).
  sample   1: gc.collect() before every loop pass and record the live heap
           (gc.mem_alloc() after the collect), what one pass allocates (gc
           off during the pass) and their sum, the most the heap can hold
           at any moment of the pass; 0: run as a node runs (the -X heapsize
           bisection uses 0).
  commands 1 (default): host command lines from nodebench_commands.txt
           arrive while the node runs (see nodebench_rig.Stdin); 0: none.
  trace    1: print a TRACE line for every pass that allocates over 1 kB
           (with sample=1), to find what a peak is made of.

Run from a folder holding config.json and calib.json (node.build reads them).
Prints RESULT lines; exits non-zero on MemoryError like any other error.

The measurement is a generator that yields where it wants a collection before
it reads gc.mem_alloc(). Here main() runs gc.collect() at every yield. The
WebAssembly port collects only between top-level runs (inside one, gc.collect()
is put off and the heap grows instead), so there main() leaves the generator in
STEPS and bench/wasm32/run.mjs advances it one top-level run at a time.
"""

import gc
import sys

gc.collect()  # on the WebAssembly port run.mjs has collected already
_AT_START = gc.mem_alloc()
STEPS = None


def buffer_bytes(root):
    """Bytes of the bytearrays and arrays reachable from root: the part of the
    node's heap that is the same size on a 32-bit port (call after measuring)."""
    seen = set()
    todo = [root]
    total = 0
    while todo:
        o = todo.pop()
        if id(o) in seen:
            continue
        seen.add(id(o))
        if isinstance(o, bytearray):
            total += len(o)
        elif type(o).__name__ == "array":
            total += len(bytes(o))
        elif isinstance(o, (list, tuple)):
            todo.extend(o)
        elif isinstance(o, dict):
            todo.extend(o.values())
        elif hasattr(o, "__dict__") and not isinstance(o, type) and type(o).__name__ != "module":
            todo.extend(o.__dict__.values())
    return total


def measure(what, ms, sample, commands, trace=0):
    """The run, as a generator: each yield asks for gc.collect() before the next gc.mem_alloc()."""
    import nodebench_rig as rig

    if what == "bare":
        yield
        rig.result("heap_bare", start=_AT_START, live=gc.mem_alloc())
        return
    clock, bus, board = rig.sim()
    out = rig.NullOut()
    stdin = rig.Stdin(board, rig.COMMANDS_FILE if commands else None)
    yield
    at_sim = gc.mem_alloc()
    if what == "sim":
        samples, readings = rig.drive_sim(clock, bus, ms)
        yield
        rig.result("heap_sim", start=_AT_START, built=at_sim, live=gc.mem_alloc(), samples=samples, readings=readings)
        return

    # everything node.build() keeps imported, so that "imported" is the code
    # and "built" adds the node's objects (probing the bus tries the ADXL355
    # driver at 0x53 first: the node unloads it when the part is not there)
    from citynode_fw import node, version  # noqa: F401
    from citynode_fw.drivers import adxl345, sht4x  # noqa: F401
    from citynode_protocol import wire as messages  # what the node itself imports

    yield
    at_import = gc.mem_alloc()
    modules = len(sys.modules)
    n = node.build(board, out, stdin)
    yield
    at_build = gc.mem_alloc()
    late = len(sys.modules) - modules
    end = n.now() + ms
    peak_live = at_build
    peak_pass = 0
    peak_bound = at_build
    passes = 0
    while n.now() - end < 0:
        if sample:
            yield
            live = gc.mem_alloc()
            gc.disable()
            wait = n.step()
            made = gc.mem_alloc() - live
            gc.enable()
            if live > peak_live:
                peak_live = live
            if made > peak_pass:
                peak_pass = made
            if live + made > peak_bound:
                peak_bound = live + made
            if trace and made > 1000:
                print("TRACE t=%d live=%d made=%d replies=%d features=%d" % (n.now(), live, made, out.frames[messages.REPLY], out.frames[messages.FEATURES]))
        else:
            wait = n.step()
        passes += 1
        board.sleep_ms(wait)
    yield
    at_end = gc.mem_alloc()
    f = out.frames
    rig.result(
        "heap_node",
        start=_AT_START,
        sim=at_sim,
        imported=at_import,
        built=at_build,
        peak_live=peak_live if sample else -1,
        peak_pass=peak_pass if sample else -1,
        peak_bound=peak_bound if sample else -1,
        end=at_end,
        late_imports=late,
        modules=modules,
        buffers=buffer_bytes(n) if sample else -1,
        passes=passes,
        node_ms=ms,
        accel=f[messages.ACCEL],
        features=f[messages.FEATURES],
        status=f[messages.STATUS],
        climate=f[messages.CLIMATE],
        log=f[messages.LOG],
        reply=f[messages.REPLY],
        commands=len(stdin.lines),
        bytes=out.bytes,
        dropped=n.counters.tx_dropped,
        streaming=int(n.sampler.streaming),
        calibration_id=n.calib.id if n.calib is not None else 0,
        # the node's modules (sampled runs only: the bisection's runs must not need the room for it)
        loaded=",".join(sorted(m for m in sys.modules if m.startswith(("citynode_fw", "citynode_protocol")))) if sample else "-",
    )


def main():
    global STEPS
    import nodebench_rig as rig

    p = rig.params()
    steps = measure(p.get("what", "node"), 1000 * p.get("seconds", 30), p.get("sample", 0), p.get("commands", 1), p.get("trace", 0))
    if sys.platform == "webassembly":
        STEPS = steps
        return
    for _ in steps:
        gc.collect()


main()
