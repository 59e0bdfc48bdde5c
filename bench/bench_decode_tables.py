"""`citynode decode` end to end, to CSV and to Parquet, against pymavlink + csv.writer, in the same run.

    python bench/bench_decode_tables.py [--quick] [--mb N [N ...]] [--large] [--peer-samples N]

Captures are a node's stream as the firmware sends it, built with
citynode.traffic: quiet acceleration at 200 Hz in blocks of 200 samples
(delta-bitpack, the node's choice for a bridge at rest), a TIME anchor at the
start and with every status message (every 30 s), a climate reading every
10 s. To build hundreds of MB quickly, 64 distinct blocks of signal are
encoded once and cycled (as bench_decode_speed.py does); every frame has its
own sequence number, time and sample index.

Ours: `citynode decode CAPTURE --format csv|parquet` in a fresh process
(every table: accel one row per sample with ISO 8601 UTC, accel_blocks,
climate, status, time). The peer: a 20-line script, pymavlink's
`MAVLink.parse_buffer` on the same samples as a MAVLink 2 SCALED_IMU stream
(one message per sample), read in 1 MB pieces, each message a row of
`csv.writer` (time_boot_ms, xacc, yacc, zacc), in a fresh process too. Each
process's wall time and peak RSS (`os.wait4`) are measured; samples/s counts
3-axis samples written as rows.

Targets: on the 100 MB capture, CSV >= 10 x and Parquet >= 50 x the peer's
samples/s; peak RSS flat: the largest capture's at most 1.5 x the 10 MB one's
(sizes from --mb; --large adds a 1 GB capture: to Parquet a few minutes, to
CSV about 10 minutes and 40 GB written and removed, so it is not in the
default run; `--formats parquet` leaves CSV out).
"""

import argparse
import os
import platform
import shutil
import struct
import subprocess
import sys
import tempfile
import time
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent
sys.path[:0] = [str(REPO / "host"), str(REPO / "protocol"), str(REPO / "bench")]

import numpy as np  # noqa: E402

from _report import cpu_model, table  # noqa: E402
from citynode import traffic  # noqa: E402
from citynode_protocol import codec, frame, messages  # noqa: E402

ODR = 200
BLOCK = 200
DISTINCT = 64
UTC0 = "2026-11-26T06:00:00Z"
CSV_TARGET = 10
PARQUET_TARGET = 50
RSS_FLAT = 1.5
ENV = dict(os.environ, PYTHONPATH=os.pathsep.join([str(REPO / "host"), str(REPO / "protocol")]))

PEER = r'''
import csv, sys
from pymavlink.dialects.v20 import common as mav
rx = mav.MAVLink(None)
rx.robust_parsing = True
rows = 0
with open(sys.argv[1], "rb") as f, open(sys.argv[2], "w", newline="") as out:
    w = csv.writer(out)
    w.writerow(["time_boot_ms", "xacc", "yacc", "zacc"])
    while True:
        data = f.read(1 << 20)
        if not data:
            break
        for m in rx.parse_buffer(data) or []:
            if m.get_type() == "SCALED_IMU":
                w.writerow([m.time_boot_ms, m.xacc, m.yacc, m.zacc])
                rows += 1
print(rows)
'''


def stuff(raw):
    """COBS + delimiter: the C `cobs` package when installed (byte-identical, SPEC 2.2), else ours."""
    try:
        from cobs import cobs
    except ImportError:
        return frame.to_wire(raw)
    return cobs.encode(raw) + b"\x00"


def signal_blocks(seed=1):
    rng = np.random.default_rng(seed)
    return [traffic.quiet_accel(BLOCK, rng, odr_hz=ODR, range_g=2, t0_s=k * BLOCK / ODR) for k in range(DISTINCT)]


def write_capture(path, mb, blocks):
    """A node's stream of about `mb` MB into path; returns the samples in it."""
    node = traffic.TrafficBuilder(1)
    fmt = messages.BY_NAME["accel"][2]
    tails = [codec.encode(b.reshape(-1).tolist(), None) for b in blocks]
    step_ms = 1000 * BLOCK // ODR
    target = int(mb * 1e6)
    size = samples = 0
    with open(path, "wb") as f:
        t = 1000
        f.write(node.log(t, "boot: citynode node 1") + node.time_anchor(t, UTC0))
        i = 0
        while size < target:
            t = 1000 + (i + 1) * step_ms
            enc, tail = tails[i % DISTINCT]
            body = struct.pack(fmt, enc, messages.ACCEL_CALIBRATED, 2, 0, ODR * 1000, i * BLOCK, BLOCK, step_ms) + tail
            wire = stuff(frame.build(messages.ACCEL, 1, node.seq, t & 0xFFFFFFFF, body))
            node.skip(1)
            if i % 10 == 9:
                wire += node.climate(t, 20.0 + (i % 50) / 100, 50.0)
            if i % 30 == 29:
                wire += node.status(t, uptime_s=t // 1000, supply_v=3.3) + node.time_anchor(t, traffic.utc_ms(UTC0) + t - 1000)
            f.write(wire)
            size += len(wire)
            samples += BLOCK
            i += 1
    return samples


def mavlink_capture(path, blocks, n_samples):
    from pymavlink.dialects.v20 import common as mav

    link = mav.MAVLink(None, srcSystem=1, srcComponent=1)
    milli_g = [np.rint(b * (2 / 32768.0) * 1000).astype(int).tolist() for b in blocks]
    with open(path, "wb") as f:
        for i in range(n_samples):
            x, y, z = milli_g[(i // BLOCK) % DISTINCT][i % BLOCK]
            f.write(mav.MAVLink_scaled_imu_message((i * 5) & 0xFFFFFFFF, x, y, z, 0, 0, 0, 0, 0, 0, 0).pack(link))


def run_measured(argv):
    """(wall s, CPU s, peak RSS MB, stdout) of argv in a fresh process, through the --child wrapper."""
    done = subprocess.run([sys.executable, __file__, "--child", *argv], env=ENV, capture_output=True)
    if done.returncode:
        raise SystemExit("failed: %s\n%s" % (" ".join(argv), done.stderr.decode(errors="replace")))
    seconds, cpu, rss_kb, text = done.stdout.decode().split("\n", 3)
    return float(seconds), float(cpu), int(rss_kb) / 1024, text


def child(argv):
    """Run argv; print its wall time, CPU time and peak RSS in kB (os.wait4: that process alone), its stdout."""
    t0 = time.perf_counter()
    proc = subprocess.Popen(argv, env=ENV, stdout=subprocess.PIPE)
    out = proc.stdout.read()
    _pid, status, usage = os.wait4(proc.pid, 0)
    seconds = time.perf_counter() - t0
    if status:
        return 1
    sys.stdout.write("%.6f\n%.6f\n%d\n" % (seconds, usage.ru_utime + usage.ru_stime, usage.ru_maxrss) + out.decode())
    return 0


def main(argv=None):
    argv = sys.argv[1:] if argv is None else list(argv)
    if argv[:1] == ["--child"]:
        return child(argv[1:])
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--quick", action="store_true", help="0.5 and 2 MB captures (CI smoke)")
    parser.add_argument("--mb", type=float, nargs="+", default=[10, 100], help="capture sizes in MB (default 10 100)")
    parser.add_argument("--large", action="store_true", help="add a 1 GB capture (slow: see the docstring)")
    parser.add_argument("--formats", nargs="+", choices=("csv", "parquet"), default=["csv", "parquet"], help="formats to run (default both)")
    parser.add_argument("--peer-samples", type=int, default=400_000, help="samples in the peer's capture (default 400000)")
    args = parser.parse_args(argv)
    sizes = [0.5, 2] if args.quick else sorted(args.mb + ([1000] if args.large else []))
    peer_samples = 10_000 if args.quick else args.peer_samples
    import pyarrow

    print("machine: %s, %d logical CPUs, Python %s, numpy %s, pyarrow %s" % (
        cpu_model(), os.cpu_count(), platform.python_version(), np.__version__, pyarrow.__version__))
    blocks = signal_blocks()
    rows = []
    rates = {}
    rss = {}
    peer = []  # (samples/s by wall clock, by CPU time) of every peer run
    work = Path(tempfile.mkdtemp(prefix="bench-decode-tables-"))

    def run_peer():
        seconds, cpu, peak, out = run_measured([sys.executable, "-c", PEER, str(peer_cap), str(work / "peer.csv")])
        assert int(out.split()[0]) == peer_samples, out
        peer.append((peer_samples / seconds, peer_samples / cpu))
        rows.append(["pymavlink + csv.writer", "%.1f" % (peer_cap.stat().st_size / 1e6), peer_samples, "%.2f" % seconds,
                     "%.2f" % cpu, "%.3f" % (peer_samples / seconds / 1e6), "%.0f" % peak,
                     "%.0f" % ((work / "peer.csv").stat().st_size / 1e6), "", ""])

    try:
        peer_cap = work / "peer.mav"
        mavlink_capture(peer_cap, blocks, peer_samples)
        run_peer()
        for mb in sizes:
            cap = work / ("c%g.bin" % mb)
            n = write_capture(cap, mb, blocks)
            for fmt in args.formats:
                out_dir = work / ("t%g-%s" % (mb, fmt))
                seconds, cpu, peak, out = run_measured(
                    [sys.executable, "-m", "citynode.cli", "decode", str(cap), "--format", fmt, "--out-dir", str(out_dir)])
                assert "accel.%s (%d rows)" % (fmt, n) in out, out
                size = sum(p.stat().st_size for p in out_dir.iterdir())
                shutil.rmtree(out_dir)
                rates[mb, fmt] = (n / seconds, n / cpu)
                rss[mb, fmt] = peak
                rows.append(["citynode decode --format %s" % fmt, "%.1f" % (cap.stat().st_size / 1e6), n, "%.2f" % seconds,
                             "%.2f" % cpu, "%.3f" % (n / seconds / 1e6), "%.0f" % peak, "%.0f" % (size / 1e6), mb, fmt])
                if not args.quick:
                    run_peer()  # the peer again, right after: the machine may be shared
            cap.unlink()
    finally:
        shutil.rmtree(work, ignore_errors=True)
    best_wall = max(w for w, _ in peer)
    best_cpu = max(c for _, c in peer)
    for r in rows:  # ratios against the peer's best run (the ratio least in our favour)
        mb, fmt = r[-2:]
        r[-2:] = ["%.1f" % (rates[mb, fmt][0] / best_wall), "%.1f" % (rates[mb, fmt][1] / best_cpu)] if fmt else ["1", "1"]
    print()
    table(["run", "capture MB", "samples", "wall s", "CPU s", "Msamples/s", "peak RSS MB", "output MB", "x peer", "x peer CPU"], rows)
    print()
    print("x peer: samples/s by wall clock over the peer's best run; x peer CPU: the same by CPU time (user + sys)")
    print("Targets (by wall clock)")
    ok = True
    big = max(s for s in sizes if s <= 100) if any(s <= 100 for s in sizes) else sizes[-1]
    for fmt, target in [(f, t) for f, t in (("csv", CSV_TARGET), ("parquet", PARQUET_TARGET)) if f in args.formats]:
        ratio = rates[big, fmt][0] / best_wall
        passed = ratio >= target
        ok &= passed
        print("  %s, %g MB capture: %.1f x the peer's samples/s >= %d x: %s" % (fmt, big, ratio, target, "PASS" if passed else "FAIL"))
        growth = rss[sizes[-1], fmt] / rss[sizes[0], fmt]
        passed = growth <= RSS_FLAT
        ok &= passed
        print("  %s peak RSS %g MB -> %g MB capture: %.0f -> %.0f MB (x %.2f <= %.1f): %s" % (
            fmt, sizes[0], sizes[-1], rss[sizes[0], fmt], rss[sizes[-1], fmt], growth, RSS_FLAT, "PASS" if passed else "FAIL"))
    return 0 if ok else 1


if __name__ == "__main__":
    sys.exit(main())
