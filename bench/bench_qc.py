"""Time to flag one batch of climate rows (citynode.fleet.qc), against titanlib called per row.

    python bench/bench_qc.py [--nodes N] [--minutes M] [--reps R] [--quick]

A city of N nodes (default 1000) spread over 25 km × 25 km, each reading once a
minute (21 °C, 60 % with noise; every 50th node 6 K warm); the batch is one
reading of every node, the history the M minutes before it (default 300, the
5 h humidity persistence window).

- citynode: QcChecker.apply(batch, history), all checks of both variables,
  against pyarrow sorting the history by node and time (the least any look at
  the history costs); and apply() with the temperature buddy check only (and
  the 10 minutes of history it needs), against
- titanlib.buddy_check once per row, over the latest reading of every node at
  the row's time with obs_to_check = that row (temperature only). Its best
  case: the points are built once before timing, which holds only while every
  node has a fresh reading (a scene without some nodes needs new points, about
  1 ms for 1000 nodes, per row).

Both give the same temperature buddy flags (checked). Target: citynode's buddy
check in at most the peer's time, with the same flags (exit status).
"""

import argparse
import sys
import time
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
sys.path[:0] = [str(REPO / "host"), str(REPO / "protocol"), str(REPO / "bench")]

import numpy as np  # noqa: E402
import pyarrow as pa  # noqa: E402

import _report  # noqa: E402
from citynode.fleet import schema  # noqa: E402
from citynode.fleet.qc import QcChecker, QcConfig, flag_bit  # noqa: E402

TARGET = 1.0
T0 = 1_780_000_000 * 1_000_000
MINUTE = 60 * 1_000_000


def city(nodes, seed=1):
    rng = np.random.default_rng(seed)
    lat = 51.40 + rng.uniform(0, 0.225, nodes)
    lon = 7.10 + rng.uniform(0, 0.36, nodes)
    elev = rng.uniform(60, 160, nodes)
    return {n: (lat[n], lon[n], elev[n]) for n in range(nodes)}, rng.integers(0, MINUTE, nodes)


def minute_of(nodes, offsets, minute, rng):
    temp = np.round(21 + rng.normal(0, 0.4, nodes) + 0.002 * minute, 2)
    temp[::50] += 6.0
    return pa.table({
        "node_id": pa.array(np.arange(nodes), pa.int64()),
        "time": pa.array(T0 + minute * MINUTE + offsets, pa.int64()).cast(schema.TIME),
        "temperature_c": pa.array(temp),
        "relative_humidity_pct": pa.array(np.round(60 + rng.normal(0, 1.0, nodes), 2)),
    })


def best(fn, reps):
    times = []
    for _ in range(reps):
        start = time.perf_counter()
        result = fn()
        times.append(time.perf_counter() - start)
    return min(times), result


def per_row_titanlib(positions, history, batch):
    """The peer: one titanlib.buddy_check per row, every node's latest reading as the scene."""
    import titanlib

    buddy = QcConfig().check("temperature_c", "buddy")
    nodes = len(positions)
    lat, lon, elev = (np.array([positions[n][i] for n in range(nodes)]) for i in range(3))
    last = history.slice(history.num_rows - nodes)  # the minute before the batch, in node order
    before = last["temperature_c"].to_numpy().copy()
    before_t = last["time"].cast(pa.int64()).to_numpy()
    now_t = batch["time"].cast(pa.int64()).to_numpy()
    now = batch["temperature_c"].to_numpy()
    order = np.argsort(now_t)
    scenes = []
    for row in order:  # scene at the row's time: batch readings up to it, else the minute before
        values = np.where(now_t <= now_t[row], now, before)
        scenes.append((row, values))
    points = titanlib.Points(lat, lon, elev)

    def run():
        flags = np.zeros(nodes, dtype=bool)
        for row, values in scenes:
            check = np.zeros(nodes, dtype=np.int64)
            check[row] = 1
            flags[row] = titanlib.buddy_check(
                points, values, [buddy["radius_m"]], [buddy["num_min"]], buddy["threshold"],
                buddy["max_elev_diff_m"], buddy["elev_gradient"], buddy["min_std"], buddy["num_iterations"],
                check)[row]
        return flags

    assert (before_t < now_t.min()).all()
    return run


def main(argv=None):
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--nodes", type=int, default=1000)
    p.add_argument("--minutes", type=int, default=300, help="history before the batch (default %(default)d)")
    p.add_argument("--reps", type=int, default=5, help="best of (default %(default)d)")
    p.add_argument("--quick", action="store_true", help="200 nodes, 60 minutes, best of 2")
    args = p.parse_args(argv)
    if args.quick:
        args.nodes, args.minutes, args.reps = 200, 60, 2
    try:
        import titanlib  # noqa: F401
    except ImportError:
        print("bench_qc: titanlib is not installed (pip install -r requirements/fleet.txt): peer n/a")
        titanlib = None

    positions, offsets = city(args.nodes)
    rng = np.random.default_rng(2)
    history = pa.concat_tables([minute_of(args.nodes, offsets, m, rng) for m in range(args.minutes)])
    batch = minute_of(args.nodes, offsets, args.minutes, rng)
    checker = QcChecker(QcConfig(), positions)
    bare = QcChecker(QcConfig())

    off = {"enabled": False}
    buddy_only = QcChecker(QcConfig({
        "temperature_c": {"range": off, "persistence": off, "spike": off},
        "relative_humidity_pct": {"range": off, "persistence": off, "spike": off, "buddy": off}}), positions)
    recent = history.slice(history.num_rows - 10 * args.nodes)  # the buddy window

    full, out = best(lambda: checker.apply(batch, history), args.reps)
    no_buddy, _ = best(lambda: bare.apply(batch, history), args.reps)
    buddy, _ = best(lambda: buddy_only.apply(batch, recent), args.reps)
    sort, _ = best(lambda: history.sort_by([("node_id", "ascending"), ("time", "ascending")]), args.reps)
    print("one batch of %d rows, %d rows of history, best of %d (%s)" % (
        batch.num_rows, history.num_rows, args.reps, _report.cpu_model()))
    rows = [("QcChecker.apply: all checks, %d min of history" % args.minutes, "%.1f" % (full * 1e3),
             "%.2f" % (full / sort)),
            ("  the same without positions (no buddy check)", "%.1f" % (no_buddy * 1e3), "%.2f" % (no_buddy / sort)),
            ("  peer: pyarrow sort_by(node_id, time) of the history", "%.1f" % (sort * 1e3), "1"),
            ("QcChecker.apply: temperature buddy check only, 10 min", "%.1f" % (buddy * 1e3), "")]
    failed = False
    if titanlib is not None:
        peer, theirs = best(per_row_titanlib(positions, history, batch), max(1, args.reps // 2))
        mine = (out["qc_flags"].to_numpy() & flag_bit("temperature_c", "buddy")) != 0
        rows[-1] = rows[-1][:2] + ("%.3f" % (buddy / peer),)
        rows.append(("  peer: titanlib.buddy_check per row (T only)", "%.1f" % (peer * 1e3), "1"))
        differ = int((mine != theirs).sum())
        failed = buddy / peer > TARGET or differ > 0
    _report.table(("what", "ms", "ratio"), rows)
    if titanlib is not None:
        print("temperature buddy flags: citynode %d, titanlib %d, rows that differ %d" % (
            mine.sum(), theirs.sum(), differ))
        print("target: citynode's buddy check <= %g x titanlib's, same flags: %s" % (
            TARGET, "FAIL" if failed else "PASS"))
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
