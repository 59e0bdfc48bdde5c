"""The node's memory and CPU under MicroPython: heap per block, heap of the running node, CPU per sample.

    python bench/bench_node.py [--quick] [--seconds N] [--samples N] [--reps N] [--cpu-heap SIZE]

Runs the firmware on the simulated parts (an ADXL345 at 200 Hz, +-2 g, and an
SHT45 on a simulated I2C bus, a manual clock, frames to a null port that counts
them) in two MicroPythons:
- the Unix port from .venv (`micropython`, override with env CITYNODE_MICROPYTHON),
  64-bit: the firmware as .py source (compiled on the node) and precompiled by
  mpy-cross (.mpy, as `citynode deploy` and `make mpy` put it on a node);
- MicroPython's WebAssembly port (npm package pinned in bench/wasm32/, run by
  bench/wasm32/run.mjs under Node.js; installed with `npm ci` on first use),
  32-bit like an ESP32: 4-byte words and object headers, 16-byte GC blocks,
  small ints of 31 bits, the same .mpy loader. The .mpy files run there.
  Without Node.js and npm the 32-bit runs are left out and the bench says so.
The MicroPython programs are bench/mp/nodebench_*.py; this script writes the
node's flash into a temp folder (config.json with the firmware defaults,
calib.json with a full calibration, the precompiled files, as deployed),
runs them there and prints the tables.

1. Heap bytes allocated per accelerometer block in steady state: the Sampler
   (FIFO read, calibration, feature accumulation, encoding, framing, write),
   blocks of 100 samples, gc disabled from block 10 to block 60, with the
   calibration applied and in raw mode, delta-bitpack and raw-int16 encoding,
   on both word sizes (a 64-bit port hides what boxes on a 32-bit one: any
   int past 2**30). Target 0. Feature windows and climate readings are events,
   not blocks: their allocation is measured on its own and printed. The
   simulated parts serving the same traffic are measured alone: if they
   allocate, the block figures include it and are not judged.
2. The running node's heap: node.build() and --seconds of node time (30: 29
   ACCEL blocks, two FEATURES, STATUS, a CLIMATE reading), gc.collect()
   before every loop pass, the peak of gc.mem_alloc() (live heap), and what
   each pass allocates with gc off. Host commands arrive during the run
   (COMMAND_SCRIPT: info, status, config_get, calib_get as the first window
   closes, set_time, selftest), so the peak covers answering them. The
   simulator's share is measured alone (same parts and harness, driven over
   the bus, no node code) and taken off. On the Unix port, the whole run
   under -X heapsize=100k, and the smallest heapsize that runs it without
   MemoryError, found by bisection (for the sim alone too); the WebAssembly
   port grows its heap instead of failing, so it gives the live figures only.
   Target: the node's share at its most (live before a pass plus what the
   pass allocates, the largest over the run) fits in 100 kB (an ESP32
   without PSRAM), judged on the 32-bit .mpy run (on the 64-bit one, with a
   rough 32-bit estimate beside it, when there is no 32-bit run).
3. CPU time per sample (Unix port): the citynode path (the Sampler as above,
   blocks of 200, 10 s windows with their spectra) against a naive loop that per sample
   reads the 6 data bytes over the same bus, makes floats in g, a dict,
   json.dumps and writes the line. time.ticks_us() over --samples samples,
   best of --reps; the bus reads (which include the simulated part's own
   work) are timed apart, and the citynode stages one by one.

Exit status: non-zero when a run fails or a target fails: the allocation per
block on every port that ran (unless the simulator allocates there), and the
heap target when the 32-bit port ran (a 64-bit figure alone is printed, not
judged: an ESP32 is 32-bit).
"""

import argparse
import os
import re
import shutil
import subprocess
import sys
import tempfile
from pathlib import Path

HERE = Path(__file__).resolve().parent
REPO = HERE.parent
sys.path[:0] = [str(HERE), str(REPO / "host"), str(REPO / "protocol")]

from _report import cpu_model, table  # noqa: E402
from citynode.deploy import mpy_version_of  # noqa: E402

MP = HERE / "mp"
WASM = HERE / "wasm32"
WASM_PACKAGE = "@micropython/micropython-webassembly-pyscript"
SOURCE_PATH = [REPO / "firmware", REPO / "protocol", MP]
PACKAGES = ((REPO / "firmware", "citynode_fw"), (REPO / "firmware", "citynode_sim"), (REPO / "protocol", "citynode_protocol"))

HEAP_TARGET = 100 * 1024
PY, MPY, MPY32 = ".py 64-bit", ".mpy 64-bit", ".mpy 32-bit"
HEAP_TRY = "100k"
ALLOC_HEAP = "64M"  # gc is off over whole feature windows there: room for anything a window allocates
TIMEOUT = 300
_RESULT = re.compile(r"^RESULT (\w+)((?: \w+=\S*)*)$")


class BenchError(Exception):
    pass


def tool(name, env=None):
    """A command from env, else beside this Python (.venv/bin), else PATH."""
    override = os.environ.get(env) if env else None
    if override:
        return override
    beside = Path(sys.executable).parent / name
    if beside.exists():
        return str(beside)
    found = shutil.which(name)
    if not found:
        raise BenchError("%s not found (install requirements/dev.txt into .venv)" % name)
    return found


def compile_mpy(dest, mpy_cross, march=None):
    """The firmware, the simulator, the protocol package and bench/mp as .mpy files under
    dest; a module with viper code for march (the Unix port's architecture, unix_march()),
    which another port (the WebAssembly one, no native emitter) refuses to import, and
    left out without one."""
    jobs = []
    for base, package in PACKAGES:
        for src in sorted((base / package).rglob("*.py")):
            jobs.append((src, src.relative_to(base)))
    for src in sorted(MP.glob("*.py")):
        jobs.append((src, Path(src.name)))
    for src, rel in jobs:
        out = dest / rel.with_suffix(".mpy")
        out.parent.mkdir(parents=True, exist_ok=True)
        native = b"@micropython.viper" in src.read_bytes()
        if native and not march:
            continue  # no architecture to build it for: the node falls back without it
        arch = ["-march=" + march] if native else []
        proc = subprocess.run([mpy_cross, *arch, "-o", str(out), "-s", rel.as_posix(), str(src)], capture_output=True, text=True, check=False)
        if proc.returncode != 0:
            raise BenchError("mpy-cross %s: %s" % (rel, proc.stderr.strip()))
    return len(jobs)


def unix_march(exe):
    """The -march of the Unix port exe runs native code for (None: it has none)."""
    proc = subprocess.run([exe, "-c", "import sys; print(getattr(sys.implementation, '_mpy', 0))"],
                          capture_output=True, text=True, check=False)
    text = proc.stdout.strip()
    return mpy_version_of(int(text))[1] if text.isdigit() else None


ROMFS_IMAGE = "romfs.img"  # in the flash folder: the app's packages as a ROMFS image


def write_romfs(flash):
    """Put the .mpy packages under flash (compile_mpy) into flash/romfs.img, as
    `citynode deploy --romfs` lays them out; its size."""
    from citynode import romfs

    files = {}
    for package in ("citynode_fw", "citynode_protocol"):
        for path in sorted((flash / package).rglob("*.mpy")):
            files[path.relative_to(flash).as_posix()] = path.read_bytes()
    data = romfs.image(files)
    (flash / ROMFS_IMAGE).write_bytes(data)
    return len(data)


# Mounts flash/romfs.img at /rom, first on sys.path, before the program runs. On
# a board the image is memory-mapped flash; here it is a bytearray made before
# the program measures anything, so it is outside every figure, as flash is.
MOUNT_ROMFS = ("import vfs, sys, os, gc\n_rom = bytearray(os.stat('%s')[6])\nwith open('%s', 'rb') as f:\n"
               "    f.readinto(_rom)\nvfs.mount(vfs.VfsRom(_rom), '/rom')\nsys.path.insert(0, '/rom')\n"
               "del f, _rom, vfs, sys, os\ngc.collect()\n" % (ROMFS_IMAGE, ROMFS_IMAGE))


class Runner:
    """Runs bench/mp programs in one configuration (.py source or .mpy) from the flash folder."""

    def __init__(self, name, exe, path, flash, romfs=False):
        self.name = name
        self.exe = exe
        self.path = ":".join(str(p) for p in path)
        self.flash = flash
        self.romfs = romfs  # True: the app's packages come from flash/romfs.img mounted at /rom
        self.runs = 0

    grows = False  # True: the heap grows instead of raising MemoryError (no -X heapsize runs)

    def argv(self, program, heapsize):
        return [self.exe, "-X", "heapsize=%s" % heapsize, "-c", (MOUNT_ROMFS if self.romfs else "") + "import " + program]

    def run(self, program, heapsize="4M", check=True, **params):
        """(results by name, None) or, when it fails and check is False, (None, the error's last line)."""
        env = dict(os.environ)
        env["MICROPYPATH"] = self.path
        env["NODEBENCH"] = ";".join("%s=%s" % kv for kv in params.items())
        argv = self.argv(program, heapsize)
        self.runs += 1
        proc = subprocess.run(argv, env=env, cwd=self.flash, capture_output=True, text=True, timeout=TIMEOUT, check=False)
        if proc.returncode != 0:
            lines = (proc.stderr or proc.stdout).strip().splitlines()
            where = [ln.strip() for ln in lines if ln.strip().startswith("File ")]
            why = (lines[-1] if lines else "exit %d" % proc.returncode) + (" (at %s)" % where[-1][5:] if where else "")
            if check:
                raise BenchError("%s (%s, heapsize %s, %s) failed: %s" % (program, self.name, heapsize, env["NODEBENCH"], why))
            return None, why
        return parse(proc.stdout), None


class Wasm32Runner(Runner):
    """The same programs on MicroPython's WebAssembly port (32-bit, as an ESP32),
    through bench/wasm32/run.mjs under Node.js. That build collects only between
    top-level runs, so the heap program is advanced by run.mjs one step at a
    time (its STEPS generator), and its heap grows instead of running out."""

    grows = True
    STEPPED = ("nodebench_heap", "nodebench_imports")

    def argv(self, program, heapsize):
        argv = [self.exe, str(WASM / "run.mjs"), "-X", "heapsize=%s" % heapsize, "--flash", str(self.flash)]
        if self.romfs:  # mounted in run.mjs's setup run, whose garbage is collected before the program
            argv += ["--setup", MOUNT_ROMFS]
        argv += ["-c", "import " + program]
        if program in self.STEPPED:
            argv += ["--drive", program + ".STEPS"]
        return argv


def wasm32_node():
    """(node, None) when the 32-bit runs can go ahead, installing bench/wasm32's
    npm package (pinned in its package-lock.json) the first time; else (None, why)."""
    node = shutil.which("node")
    if not node:
        return None, "node (Node.js) not found"
    if not (WASM / "node_modules" / WASM_PACKAGE).is_dir():
        npm = shutil.which("npm")
        if not npm:
            return None, "npm not found to install bench/wasm32"
        proc = subprocess.run([npm, "ci", "--no-audit", "--no-fund"], cwd=WASM, capture_output=True, text=True, check=False)
        if proc.returncode != 0:
            lines = (proc.stderr or proc.stdout).strip().splitlines()
            return None, "npm ci in bench/wasm32 failed: %s" % (lines[-1] if lines else "exit %d" % proc.returncode)
    return node, None


def wasm32_version(runner):
    res, why = runner.run("nodebench_version", check=False)
    return res["version"][0]["version"] if res else "? (%s)" % why


def node_version(node):
    return subprocess.run([node, "--version"], capture_output=True, text=True, check=False).stdout.strip().lstrip("v")


def parse(text):
    out = {}
    for line in text.splitlines():
        m = _RESULT.match(line.strip())
        if not m:
            continue
        fields = {}
        for item in m.group(2).split():
            k, v = item.split("=", 1)
            try:
                fields[k] = int(v)
            except ValueError:
                fields[k] = v.replace("~", " ")
        out.setdefault(m.group(1), []).append(fields)
    return out


def kb(n):
    return "%.1f" % (n / 1024)


# -- 1. allocation per block -----------------------------------------------------------


def bench_alloc(runner, quick):
    params = {"from": 10, "to": 30 if quick else 60, "windows": 1 if quick else 2}
    res, _ = runner.run("nodebench_alloc", heapsize=ALLOC_HEAP, **params)
    rows = []
    zero = True
    for r in res["alloc"]:
        want = 1 if r["calibrated"] else 2  # ACCEL_CALIBRATED, ACCEL_UNCALIBRATED_MODE
        if r["flags"] != want:
            raise BenchError("alloc run: block flags %d, expected %d: %s" % (r["flags"], want, r))
        per = r["bytes"] / r["blocks"]
        zero &= r["bytes"] == 0 and r["dropped"] == 0
        rows.append(["applied" if r["calibrated"] else "raw mode", r["encoding"], r["blocks"], r["samples"], r["bytes"], "%.1f" % per])
    sim = res["alloc_sim"][0]
    print("1. Heap allocated per accelerometer block in steady state (%s)" % runner.name)
    print("   sampler on the simulated ADXL345, 200 Hz, blocks of 100 samples, 60 s feature window;")
    print("   gc off from block %d to block %d, gc.mem_alloc() after minus before" % (params["from"], params["to"]))
    print()
    table(["calibration", "encoding", "blocks", "samples", "bytes", "bytes/block"], rows)
    w = res["alloc_window"][0]
    c = res["alloc_climate"][0]
    node_climate = c["bytes"] - c["sim_bytes"]
    print()
    if sim["bytes"]:
        print("   the simulated parts alone allocate %.1f bytes a block on this port (%d bytes over %d samples):"
              " the figures above include them" % (100 * sim["bytes"] / sim["samples"], sim["bytes"], sim["samples"]))
    else:
        print("   the simulated parts alone allocate nothing here (%d samples, gc off): the figures are the node's" % sim["samples"])
    print("   events, not blocks (gc off over them; the garbage is collected as usual):")
    print("   - a feature window closing (%d samples: moments, a fixed-point FFT per axis in steps, FEATURES frame):"
          " %d bytes a window, %.0f a sample averaged" % (w["window_samples"], w["bytes"] // w["windows"], w["bytes"] / w["windows"] / w["window_samples"]))
    print("   - a climate reading (start, read, calibrate, CLIMATE frame): %d bytes a reading for the node,"
          " the simulated SHT45 %d more" % (node_climate // c["readings"], c["sim_bytes"] // c["readings"]))
    print()
    return {"zero": zero, "rows": res["alloc"], "window": w, "climate": c, "sim": sim}


# -- 2. heap of the running node ----------------------------------------------------------


def bisect(runner, what, seconds, lo, hi, step):
    """(smallest heapsize in lo..hi, a multiple of step, that runs; why step less fails), or (None, why hi fails)."""
    def runs(size):
        res, why = runner.run("nodebench_heap", heapsize=str(size), check=False, what=what, seconds=seconds, sample=0)
        if res is not None and not _complete(res, what, seconds):
            why = "ran, but did not send what a node sends"
        return res is not None and why is None, why

    good, why = runs(hi)
    if not good:
        return None, why
    lo = lo // step
    hi = hi // step
    below = None
    while hi - lo > 1:
        mid = (lo + hi) // 2
        good, why = runs(mid * step)
        if good:
            hi = mid
        else:
            lo = mid
            below = why
    return hi * step, below


# What a technician asks of a running node, at node ms: the heap runs answer
# them while streaming (one as the first feature window closes and its spectra
# run), so the peak covers command handling too.
COMMAND_SCRIPT = (
    (2500, "info", None),
    (5000, "status", None),
    (7500, "config_get", None),
    (10050, "calib_get", None),
    (12500, "set_time", {"utc_ms": 1795651200000}),
    (15000, "selftest", None),
)


def write_commands(flash):
    """The script nodebench_rig.Stdin feeds, armoured by the host's own encoder."""
    sys.path[:0] = [str(REPO / "protocol")]
    from citynode_protocol import armour

    rows = [b"%d %s" % (t, armour.encode_command(i + 1, cmd, args).rstrip(b"\n")) for i, (t, cmd, args) in enumerate(COMMAND_SCRIPT)]
    (flash / "nodebench_commands.txt").write_bytes(b"\n".join(rows) + b"\n")


def _complete(res, what, seconds):
    """The run did what a node does in that time (not just: no MemoryError)."""
    if what == "sim":
        return "heap_sim" in res
    if "heap_node" not in res:
        return False
    r = res["heap_node"][0]
    # 200 Hz in blocks of 200: a block a second; 10 s windows: two by 21 s
    return (r["accel"] >= seconds - 2 and r["features"] >= 2 and r["status"] >= 1 and r["climate"] >= 1
            and r["reply"] == r["commands"] == len(COMMAND_SCRIPT)
            and r["dropped"] == 0 and r["streaming"] == 1 and r["calibration_id"] == 42)


def bench_heap(runners, seconds, step, bisect_all):
    out = {}
    for runner in runners:
        bare = runner.run("nodebench_heap", what="bare")[0]["heap_bare"][0]
        sim = runner.run("nodebench_heap", what="sim", seconds=seconds)[0]["heap_sim"][0]
        node = runner.run("nodebench_heap", what="node", seconds=seconds, sample=1)[0]["heap_node"][0]
        if not _complete({"heap_node": [node]}, "node", seconds):
            raise BenchError("the node run (%s) did not do what a node does in %d s: %s" % (runner.name, seconds, node))
        entry = {"bare": bare, "sim": sim, "node": node, "try": (None, None)}
        if not runner.grows:
            res, why = runner.run("nodebench_heap", heapsize=HEAP_TRY, check=False, what="node", seconds=seconds, sample=0)
            entry["try"] = (res is not None and _complete(res, "node", seconds), why)
            if bisect_all or runner.name == MPY:
                entry["min_node"], entry["below_node"] = bisect(runner, "node", seconds, 16 * 1024, 2 * 1024 * 1024, step)
                entry["min_sim"], _why = bisect(runner, "sim", seconds, 16 * 1024, 2 * 1024 * 1024, step)
        out[runner.name] = entry
    return out


def node_share(e):
    """(peak live of the node's share, its code, its objects, buffers) in bytes."""
    n = e["node"]
    share = n["peak_live"] - n["sim"]
    return share, n["imported"] - n["sim"], n["built"] - n["imported"], n["buffers"]


def node_bound(e):
    """The node's share of the most the heap held at any moment: the largest
    (live before a pass + what the pass allocated), less the simulator."""
    n = e["node"]
    return n["peak_bound"] - n["sim"]


def estimate_32bit(e):
    """A rough 32-bit figure from a 64-bit run, for when the 32-bit port cannot
    run: buffers as they are, everything else halved (pointers, headers, GC
    blocks). Bytecode and strings do not halve, so this is low."""
    share, _code, _objects, buffers = node_share(e)
    return buffers + (share - buffers) // 2


def print_heap(heap, seconds, step, wasm_why):
    names = list(heap)
    e0 = heap[names[0]]
    n0 = e0["node"]
    print("2. Live heap of the running node (gc.collect() then gc.mem_alloc() before every loop pass)")
    print("   node.build() from config.json and calib.json, %d s of node time: %d accel blocks, %d feature windows,"
          % (seconds, n0["accel"], n0["features"]))
    print("   %d STATUS, %d CLIMATE, %d LOG frames and %d REPLY frames (%s) (%d bytes) to the null port;"
          % (n0["status"], n0["climate"], n0["log"], n0["reply"], ", ".join(c for _t, c, _a in COMMAND_SCRIPT), n0["bytes"]))
    print("   %d loop passes; kB = 1024 bytes" % n0["passes"])
    print()
    rows = []

    def row(label, fn):
        rows.append([label] + [fn(heap[k]) for k in names])

    def bisected(key):
        return lambda e: kb(e[key]) if e.get(key) else "-"

    row("interpreter + bench program", lambda e: kb(e["node"]["start"]))
    row("simulator + harness (sim alone)", lambda e: kb(e["node"]["sim"] - e["node"]["start"]))
    row("node code: modules imported", lambda e: kb(node_share(e)[1]))
    row("node objects after build()", lambda e: kb(node_share(e)[2]))
    row("  of which bytearray/array payload", lambda e: kb(node_share(e)[3]))
    row("whole heap, peak live", lambda e: kb(e["node"]["peak_live"]))
    row("node's share of the peak (peak - sim)", lambda e: kb(node_share(e)[0]))
    row("  x the 100 kB target", lambda e: "%.2f" % (node_share(e)[0] / HEAP_TARGET))
    row("most one loop pass allocates (gc off)", lambda e: kb(e["node"]["peak_pass"]))
    row("node's share at most, in a pass (live + pass)", lambda e: kb(node_bound(e)))
    row("  x the 100 kB target", lambda e: "%.2f" % (node_bound(e) / HEAP_TARGET))
    row("sim alone, live after %d s" % seconds, lambda e: kb(e["sim"]["live"]))
    row("runs %d s under -X heapsize=%s" % (seconds, HEAP_TRY), lambda e: "n/a" if e["try"][0] is None else "yes" if e["try"][0] else "no")
    row("smallest heapsize that runs: whole", bisected("min_node"))
    row("  sim alone", bisected("min_sim"))
    row("  difference (the node's)", lambda e: kb(e["min_node"] - e["min_sim"]) if e.get("min_node") and e.get("min_sim") else "-")
    table(["", *names], rows)
    print()
    for k in names:
        ok, why = heap[k]["try"]
        if ok is False:
            print("   %s under -X heapsize=%s: %s" % (k, HEAP_TRY, why))
        if heap[k].get("min_node") and heap[k].get("below_node"):
            print("   %s under %d bytes (%d less than the smallest that runs): %s" % (k, heap[k]["min_node"] - step, step, heap[k]["below_node"]))
    print("   bisection in steps of %d bytes; a run counts when it sends what %d s of node should (blocks,"
          " windows, STATUS, CLIMATE, nothing dropped)" % (step, seconds))
    if MPY32 in heap:
        print("   %s: MicroPython's WebAssembly port, 32-bit like an ESP32 (4-byte words, 16-byte GC blocks, the same"
              " .mpy loader); its heap grows instead of running out, so no -X heapsize runs there" % MPY32)
    else:
        print("   no 32-bit run (%s); 32-bit (ESP32) estimate of the node's share with .mpy, NOT measured: about %s kB"
              " (buffers as they are, the rest halved; bytecode and strings do not halve, so the true figure is higher)"
              % (wasm_why, kb(estimate_32bit(heap[MPY]))))
    print()


# -- 3. CPU per sample ------------------------------------------------------------------


def bench_cpu(runner, samples, reps, heap):
    best = {}
    for _ in range(reps):
        res, _ = runner.run("nodebench_cpu", heapsize=heap, samples=samples)
        for name in ("cpu_naive", "cpu_citynode", "cpu_stages"):
            r = res[name][0]
            key = "total_us" if name != "cpu_stages" else None
            if key is None:
                r["total_us"] = sum(r[s + "_us"] for s in ("calibration", "features", "spectra", "encode", "frame"))
            if name not in best or r["total_us"] < best[name]["total_us"]:
                best[name] = r
    return best


def print_cpu(cpu, runner, samples, reps, heap):
    nv = cpu["cpu_naive"]
    cn = cpu["cpu_citynode"]
    st = cpu["cpu_stages"]
    print("3. CPU time per sample (%s, -X heapsize=%s, %d samples at 200 Hz, best of %d, time.ticks_us)" % (runner.name, heap, samples, reps))
    print("   same simulated ADXL345 and bus; the bus reads include the simulated part computing its samples")
    print()

    def per(us, n):
        return us / n

    n_total = per(nv["total_us"], nv["samples"])
    n_read = per(nv["read_us"], nv["samples"])
    c_total = per(cn["total_us"], cn["samples"])
    c_read = per(cn["read_us"], cn["samples"])
    rows = [
        ["naive: read, floats, dict, json.dumps, write", "%.2f" % n_total, "%.2f" % n_read, "%.2f" % (n_total - n_read),
         "%.0f" % (nv["alloc_bytes"] / nv["samples"]), "1.00", "1.00"],
        ["citynode: FIFO, calibration, features, encode, frame, write", "%.2f" % c_total, "%.2f" % c_read, "%.2f" % (c_total - c_read),
         "%.0f" % (cn["alloc_bytes"] / cn["samples"]), "%.2f" % (c_total / n_total), "%.2f" % ((c_total - c_read) / (n_total - n_read))],
    ]
    table(["path", "us/sample", "bus read", "the rest", "heap B/sample", "x naive", "x naive, rest"], rows)
    print()
    n = st["samples"]
    stage_rows = []
    for label, key in (("calibration (integer 3x3 + bias, in place)", "calibration"),
                       ("features: accumulate (moments, decimation)", "features"),
                       ("features: spectra (fixed-point FFT per axis a window, amortised)", "spectra"),
                       ("encode (delta-bitpack, raw when smaller)", "encode"),
                       ("frame (header, CRC-32, COBS) + write", "frame")):
        us = st[key + "_us"] / n
        stage_rows.append([label, "%.2f" % us, "%.0f%%" % (100 * st[key + "_us"] / st["total_us"]), "%.2f" % (us / (n_total - n_read))])
    stage_rows.append(["sum of the stages", "%.2f" % (st["total_us"] / n), "100%", "%.2f" % (st["total_us"] / n / (n_total - n_read))])
    print("   citynode stages, timed one by one on captured blocks (%d samples, %d windows):" % (n, st["windows"]))
    table(["stage", "us/sample", "share", "x naive, rest"], stage_rows, indent="   ")
    transport = (st["encode_us"] + st["frame_us"]) / n
    print()
    print("   transport alone (encode + frame + write) %.2f us/sample = %.2f x the naive loop's JSON work (%.2f us);"
          % (transport, transport / (n_total - n_read), n_total - n_read))
    print("   on the wire: naive %.1f bytes a sample, a line like %s; citynode %.2f bytes a sample"
          % (nv["bytes"] / nv["samples"], nv["line"], cn["bytes"] / cn["samples"]))
    print("   (ACCEL frames in %s and FEATURES frames, COBS and delimiters included)"
          % ("delta-bitpack" if cn["encoding"] == 1 else "raw-int16"))
    print()
    return {"naive": n_total, "citynode": c_total, "naive_rest": n_total - n_read, "citynode_rest": c_total - c_read, "transport": transport}


# -- main ------------------------------------------------------------------------------


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--quick", action="store_true", help="a small version in a few seconds (CI smoke)")
    parser.add_argument("--seconds", type=int, default=30, help="node time of the heap runs (default 30; at least 21: two feature windows)")
    parser.add_argument("--samples", type=int, default=40000, help="samples timed per CPU run (a multiple of 2000, default 40000)")
    parser.add_argument("--reps", type=int, default=3, help="CPU runs; the best is kept (default 3)")
    parser.add_argument("--cpu-heap", default="512k", help="-X heapsize of the CPU runs (default 512k)")
    args = parser.parse_args(argv)
    if args.seconds < 21:
        parser.error("--seconds must be at least 21 (two feature windows of 10 s and their spectra)")
    if args.samples < 2000 or args.samples % 2000:
        parser.error("--samples must be a positive multiple of 2000 (whole feature windows)")
    seconds = 22 if args.quick else args.seconds
    samples = 4000 if args.quick else args.samples
    reps = 1 if args.quick else args.reps
    step = 16 * 1024 if args.quick else 1024
    try:
        return run(args, seconds, samples, reps, step)
    except BenchError as exc:
        print("bench_node: %s" % exc, file=sys.stderr)
        return 2


def run(args, seconds, samples, reps, step):
    exe = tool("micropython", "CITYNODE_MICROPYTHON")
    mpy_cross = tool("mpy-cross")
    with tempfile.TemporaryDirectory(prefix="bench_node_") as tmp:
        tmp = Path(tmp)
        # the .mpy runs import from the node's flash, as a deployed node does
        # (so `info` fingerprints real files); the .py runs from the checkout
        flash = tmp / "flash"
        files = compile_mpy(flash, mpy_cross, unix_march(exe))
        source_flash = tmp / "flash-py"
        source_flash.mkdir()
        source = Runner(PY, exe, SOURCE_PATH, source_flash)
        compiled = Runner(MPY, exe, [flash], flash)
        node, wasm_why = wasm32_node()
        wasm = Wasm32Runner(MPY32, node, [flash], flash) if node else None
        source.run("nodebench_setup")
        write_commands(source_flash)
        for name in ("config.json", "calib.json", "nodebench_commands.txt"):
            shutil.copy(source_flash / name, flash / name)
        info = subprocess.run([exe, "-c", "import sys; print('%d.%d.%d' % sys.implementation.version[:3], sys.implementation._build, 64 if sys.maxsize > 2**32 else 32)"],
                              capture_output=True, text=True, check=False).stdout.split()
        version = subprocess.run([mpy_cross, "--version"], capture_output=True, text=True, check=False).stdout.strip()
        print("machine: %s, %d logical CPUs; MicroPython %s Unix port (%s variant, %s-bit); %s"
              % (cpu_model(), os.cpu_count(), info[0] if info else "?", info[1] if len(info) > 1 else "?", info[2] if len(info) > 2 else "?", version))
        if wasm:
            print("32-bit: MicroPython %s WebAssembly port (%s) under Node.js %s" % (wasm32_version(wasm), WASM_PACKAGE, node_version(node)))
        else:
            print("32-bit: not run (%s)" % wasm_why)
        print("simulated ADXL345 (200 Hz, +-2 g) + SHT45, manual clock, null port; config defaults + calibration id 42;"
              " %d files precompiled for the .mpy runs" % files)
        print()

        alloc = {MPY: bench_alloc(compiled, args.quick)}
        if wasm:
            alloc[MPY32] = bench_alloc(wasm, args.quick)
        heap = bench_heap([source, compiled] + ([wasm] if wasm else []), seconds, step, bisect_all=not args.quick)
        print_heap(heap, seconds, step, wasm_why)
        cpu = bench_cpu(compiled, samples, reps, args.cpu_heap)
        speed = print_cpu(cpu, compiled, samples, reps, args.cpu_heap)
        runs = source.runs + compiled.runs + (wasm.runs if wasm else 0)

    print("Targets")
    ok = True
    for name, a in alloc.items():
        per_block = "/".join(str(r["bytes"] // r["blocks"]) for r in a["rows"])
        if a["sim"]["bytes"]:
            verdict = "not judged: the simulated parts allocate on this port"
        else:
            verdict = "PASS" if a["zero"] else "FAIL"
            ok &= a["zero"]
        print("  steady-state heap per accelerometer block, %s, calibrated and raw mode x delta-bitpack and raw-int16:"
              " %s bytes: %s" % (name, per_block, verdict))
    if MPY32 in heap:
        share = node_bound(heap[MPY32])
        passed = share <= HEAP_TARGET
        ok &= passed
        print("  node's heap <= 100 kB, %s (as on an ESP32), node's share at most (live before a pass + the pass): %s kB: %s"
              % (MPY32, kb(share), "PASS" if passed else "FAIL"))
        print("    (live between passes %s kB; %s: %s kB at most)" % (kb(node_share(heap[MPY32])[0]), MPY, kb(node_bound(heap[MPY]))))
    else:
        e = heap[MPY]
        share = node_share(e)[0]
        print("  node's heap <= 100 kB, %s, node's share of the peak live heap: %s kB: %s"
              % (MPY, kb(share), "PASS" if share <= HEAP_TARGET else "FAIL"))
        print("    (an ESP32 is 32-bit: the same code needs less there; estimate %s kB, not measured; not in the exit status)"
              % kb(estimate_32bit(e)))
    print("  whole run (node + simulator) under -X heapsize=%s, %s: %s; %s: %s"
          % (HEAP_TRY, MPY, "runs" if heap[MPY]["try"][0] else "MemoryError", PY, "runs" if heap[PY]["try"][0] else "MemoryError"))
    print("  (CPU: citynode path %.2f x the naive loop's time per sample, %.2f x without the bus reads;"
          " no target)" % (speed["citynode"] / speed["naive"], speed["citynode_rest"] / speed["naive_rest"]))
    print("  %d MicroPython runs" % runs)
    return 0 if ok else 1


if __name__ == "__main__":
    sys.exit(main())
