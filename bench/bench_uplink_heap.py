"""Heap of the node's network uplink under MicroPython, on both word sizes.

    python bench/bench_uplink_heap.py [--quick]

Runs bench/mp/nodebench_uplink.py (the sampler with the uplink attached: each
block signed, put in the ring, published over an MQTT session to a socket
stand-in that acknowledges it) as bench/bench_node.py runs its programs: the
firmware precompiled by mpy-cross, on the Unix port (64-bit) and, where
Node.js is installed, on MicroPython's WebAssembly port (32-bit, as an ESP32).

Exit status 1 when a target fails (0 bytes per block; the node's heap with the
uplink within 100 kB on the 32-bit port with its packages in a ROMFS image, as
`citynode deploy --romfs` installs them; the figure from the filesystem is
printed beside it), 2 when a run fails. Prints, per port: the bytes allocated
per published block in steady state (gc off from block 10 to block 60), the
same for signing alone and publishing alone, the live heap the uplink adds
(its modules, then its objects), and the time to sign a frame with the node's
signer against hashlib's. The node signs with citynode_fw.hmac_viper where the
port runs viper code (the Unix port; an ESP32), allocating nothing; the
WebAssembly port has no native emitter, so it signs through hashlib, which
makes a new sha256 object for each hash and a new bytes for each digest, two
of each per HMAC. Without --quick, also the whole node's share (filesystem and
ROMFS) and what each module costs once imported.
"""

import argparse
import ast
import shutil
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
    return {"alloc": a, "parts": res["uplink_parts"][0], "live": res["uplink_live"][0], "time": res["uplink_sign_time"][0]}


SECONDS = 22  # node time: two feature windows, a climate reading, status, the host's commands


def node_heap(runner, seconds):
    """The node's share at most (live before a pass + the pass, less the simulator), with
    uplink="wifi" and no network in reach: every frame signed into the flash ring."""
    sim = runner.run("nodebench_heap", what="sim", seconds=seconds)[0]["heap_sim"][0]
    n = runner.run("nodebench_heap", what="node", seconds=seconds, sample=1)[0]["heap_node"][0]
    if not n["accel"] >= seconds - 2 or n["reply"] != n["commands"]:
        raise bench_node.BenchError("the node run (%s) did not do what a node does: %s" % (runner.name, n))
    return {"share": n["peak_bound"] - n["sim"], "live": n["peak_live"] - n["sim"], "code": n["imported"] - n["sim"],
            "sim": sim, "loaded": n["loaded"].split(",")}


_SOURCES = {"citynode_fw": bench_node.REPO / "firmware", "citynode_protocol": bench_node.REPO / "protocol"}


def import_order(names):
    """names (modules the node had loaded), each after the ones it imports."""
    names = set(names)

    def deps(name):
        base = _SOURCES[name.split(".")[0]] / Path(*name.split("."))
        src = base.with_suffix(".py") if base.with_suffix(".py").exists() else base / "__init__.py"
        found = set()
        for node in ast.walk(ast.parse(src.read_text())):
            if isinstance(node, ast.Import):
                found.update(a.name for a in node.names)
            elif isinstance(node, ast.ImportFrom) and node.module:
                found.add(node.module)
                found.update("%s.%s" % (node.module, a.name) for a in node.names)
        parents = {".".join(name.split(".")[:i]) for i in range(1, name.count(".") + 1)}
        return sorted((found | parents) & names - {name})

    order, done = [], set()

    def visit(name, stack):
        if name in done or name in stack:
            return
        for dep in deps(name):
            visit(dep, stack | {name})
        done.add(name)
        order.append(name)

    for name in sorted(names):
        visit(name, frozenset())
    return order


def imports(runner):
    """{module: live heap bytes it costs}, dependencies first, as loaded by this runner's node run."""
    order = import_order(runner.loaded)
    (runner.flash / "imports.txt").write_text("".join(n + "\n" for n in order))
    res, _ = runner.run("nodebench_imports")
    return {r["module"]: r["bytes"] for r in res["import"]}


def node_runs(runners, tmp, flash, results):
    """The whole node with uplink="wifi", from a flash of its own: its packages
    imported from that flash, then from a ROMFS image of them mounted at /rom."""
    wifi = tmp / "flash-wifi"
    shutil.copytree(flash, wifi)
    bench_node.write_commands(wifi)
    for r in runners:
        r.flash = wifi
        r.path = str(wifi)
    runners[0].run("nodebench_setup", uplink=1)
    rom = tmp / "flash-wifi-romfs"
    shutil.copytree(wifi, rom)
    size = bench_node.write_romfs(rom)
    for r in runners:
        res = results[r.name]
        res["node"] = node_heap(r, SECONDS)
        r.loaded = res["node"]["loaded"]
        res["imports"] = imports(r)
        r.flash, r.path, r.romfs = rom, str(rom), True
        res["node_rom"] = node_heap(r, SECONDS)
        res["imports_rom"] = imports(r)
        res["romfs_bytes"] = size


def main(argv=None):
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--quick", action="store_true", help="20 blocks instead of 50, and no whole-node runs")
    args = p.parse_args(argv)
    try:
        exe = bench_node.tool("micropython", "CITYNODE_MICROPYTHON")
        mpy_cross = bench_node.tool("mpy-cross")
        with tempfile.TemporaryDirectory(prefix="bench_uplink_heap_") as tmp:
            flash = Path(tmp) / "flash"
            bench_node.compile_mpy(flash, mpy_cross, bench_node.unix_march(exe))
            runners = [bench_node.Runner(bench_node.MPY, exe, [flash], flash)]
            node, why = bench_node.wasm32_node()
            if node:
                runners.append(bench_node.Wasm32Runner(bench_node.MPY32, node, [flash], flash))
            results = {r.name: measure(r, args.quick) for r in runners}
            if not args.quick:
                node_runs(runners, Path(tmp), flash, results)
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
    print("Time to sign a 300-byte frame (mac_into, 300 ms or more each), the node's signer and hashlib's in the same run:")
    rows = []
    for name, r in results.items():
        t = r["time"]
        rows.append([name, t["signer"], "%.1f" % (t["node_ns"] / 1000), "%.1f" % (t["hashlib_ns"] / 1000),
                     "%.2f" % (t["node_ns"] / max(1, t["hashlib_ns"]))])
    table(["port", "node's signer", "µs/frame", "hashlib µs/frame", "× hashlib"], rows)
    print()
    if not args.quick:
        kb = bench_node.kb
        print("The node with uplink=\"wifi\" (no network in reach: frames signed into the flash ring), %d s of node"
              % SECONDS)
        print("time as bench_node.py part 2 runs it; node's share at most = live before a pass + the pass, less the sim;")
        print("its packages imported from the filesystem (.mpy), then from a ROMFS image of them (%s bytes) mounted at /rom"
              % next(iter(results.values()))["romfs_bytes"])
        print()
        rows = []
        for name, r in results.items():
            for where, key in (("filesystem", "node"), ("ROMFS", "node_rom")):
                n = r[key]
                rows.append([name, where, kb(n["share"]), kb(n["live"]), kb(n["code"])])
        table(["port", "packages from", "node's share at most kB", "live between passes kB", "after its imports kB"], rows)
        print()
        print("Live heap each module costs once imported (dependencies first), bytes:")
        names = list(next(iter(results.values()))["imports"])
        for r in results.values():
            names += [n for n in r["imports"] if n not in names]
        cols = [(name, key) for name in results for key in ("imports", "imports_rom")]
        rows = [[m] + [results[name][key].get(m, "-") for name, key in cols] for m in names]
        rows.append(["total"] + [sum(results[name][key].values()) for name, key in cols])
        table(["module"] + ["%s %s" % (name, "ROMFS" if key == "imports_rom" else "fs") for name, key in cols], rows)
        print()
    for name, r in results.items():
        if "node" in r:
            print("node's heap with the uplink, %s: %s kB from the filesystem, %s kB from ROMFS (target 100 kB on 32-bit)"
                  % (name, bench_node.kb(r["node"]["share"]), bench_node.kb(r["node_rom"]["share"])))
        print("uplink heap per published block, %s: %d bytes" % (name, r["alloc"]["bytes"] // r["alloc"]["blocks"]))
        print("uplink live heap, %s: %s kB" % (name, bench_node.kb(r["live"]["modules"] + r["live"]["objects"])))
    print("Targets")
    ok = True
    for name, r in results.items():
        per = r["alloc"]["bytes"] // r["alloc"]["blocks"]
        ok &= per == 0
        print("  0 bytes allocated per published block, %s: %d: %s" % (name, per, "PASS" if per == 0 else "FAIL"))
    r = results.get(bench_node.MPY32)
    if r is not None and "node" in r:
        for where, key in (("from the filesystem", "node"), ("from ROMFS", "node_rom")):
            met = r[key]["share"] <= bench_node.HEAP_TARGET
            if key == "node_rom":
                ok &= met
            print("  node's heap with the uplink <= 100 kB, %s, %s: %s kB: %s" % (
                bench_node.MPY32, where, bench_node.kb(r[key]["share"]), "PASS" if met else "FAIL"))
    return 0 if ok else 1


if __name__ == "__main__":
    sys.exit(main())
