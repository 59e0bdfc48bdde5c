"""The running node's heap (bench/bench_node.py, part 2).

Parameters (env NODEBENCH):
  what     bare: the interpreter alone; sim: the simulated parts, board and
           null port, driven over the bus as the node drives them (no node
           code); node: node.build() on that sim, run for `seconds`.
  seconds  node time to run (default 30).
  sample   1: gc.collect() before every loop pass and record the live heap
           (gc.mem_alloc() after the collect) and what one pass allocates
           (gc off during the pass); 0: run as a node runs (the -X heapsize
           bisection uses 0).

Run from a folder holding config.json and calib.json (node.build reads them).
Prints RESULT lines; exits non-zero on MemoryError like any other error.
"""

import gc

gc.collect()
_AT_START = gc.mem_alloc()


def _sim_drive(clock, bus, ms):
    """The bus traffic the node makes, without the node: ADXL345 at 200 Hz in
    FIFO stream mode read every 80 ms, an SHT45 reading once a minute."""
    one = bytearray(1)
    sample = bytearray(6)
    cmd = bytearray(1)
    reading = bytearray(6)
    bus.writeto_mem(0x53, 0x31, b"\x08")  # DATA_FORMAT: full resolution, +-2 g
    bus.writeto_mem(0x53, 0x2C, b"\x0b")  # BW_RATE: 200 Hz
    bus.writeto_mem(0x53, 0x38, b"\x90")  # FIFO_CTL: stream, watermark 16
    bus.writeto_mem(0x53, 0x2D, b"\x08")  # POWER_CTL: measure
    samples = 0
    readings = 0
    t = 0
    while t < ms:
        bus.readfrom_mem_into(0x53, 0x39, one)  # FIFO_STATUS
        for _ in range(one[0] & 0x3F):
            bus.readfrom_mem_into(0x53, 0x32, sample)
            samples += 1
        if t % 60000 == 0:
            cmd[0] = 0xFD  # measure, high precision
            bus.writeto(0x44, cmd)
            clock.advance_ms(10)
            bus.readfrom_into(0x44, reading)
            readings += 1
            t += 10
        clock.advance_ms(80)
        t += 80
    return samples, readings


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


def main():
    import nodebench_rig as rig

    p = rig.params()
    what = p.get("what", "node")
    ms = 1000 * p.get("seconds", 30)
    sample = p.get("sample", 0)
    if what == "bare":
        gc.collect()
        rig.result("heap_bare", start=_AT_START, live=gc.mem_alloc())
        return
    clock, bus, board = rig.sim()
    out = rig.NullOut()
    stdin = rig.Stdin()
    gc.collect()
    at_sim = gc.mem_alloc()
    if what == "sim":
        samples, readings = _sim_drive(clock, bus, ms)
        gc.collect()
        rig.result("heap_sim", start=_AT_START, built=at_sim, live=gc.mem_alloc(), samples=samples, readings=readings)
        return
    import sys

    # everything node.build() imports, so that "imported" is the code and
    # "built" adds the node's objects (probing the bus tries the ADXL355
    # driver at 0x53 before the ADXL345's)
    from citynode_fw import node, version  # noqa: F401
    from citynode_fw.drivers import adxl345, adxl355, sht4x  # noqa: F401
    from citynode_protocol import wire as messages  # what the node itself imports

    gc.collect()
    at_import = gc.mem_alloc()
    modules = len(sys.modules)
    n = node.build(board, out, stdin)
    gc.collect()
    at_build = gc.mem_alloc()
    late = len(sys.modules) - modules
    end = n.now() + ms
    peak_live = at_build
    peak_pass = 0
    passes = 0
    while n.now() - end < 0:
        if sample:
            gc.collect()
            live = gc.mem_alloc()
            gc.disable()
            wait = n.step()
            made = gc.mem_alloc() - live
            gc.enable()
            if live > peak_live:
                peak_live = live
            if made > peak_pass:
                peak_pass = made
        else:
            wait = n.step()
        passes += 1
        board.sleep_ms(wait)
    gc.collect()
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
        bytes=out.bytes,
        dropped=n.counters.tx_dropped,
        streaming=int(n.sampler.streaming),
        calibration_id=n.calib.id if n.calib is not None else 0,
    )


main()
