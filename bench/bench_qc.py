"""Time to flag one batch of climate rows (citynode.fleet.qc), titanlib making the buddy check.

    python bench/bench_qc.py [--nodes N] [--minutes M] [--reps R] [--quick]

A city of N nodes (default 1000) spread over 25 km × 25 km, each reading once a
minute (21 °C, 60 % with noise; every 50th node 8 K warm); the batch is one
reading of every node, the history the M minutes before it (default 300, the
5 h humidity persistence window).

- citynode: QcChecker.apply(batch, history), all checks of both variables,
  against pyarrow sorting the history by node and time (the least any look at
  the history costs); and apply() with the two buddy checks only (and the
  11 minutes of history they need), against
- titanlib the way d2r-api calls it: titanlib.Points of every node and one
  titanlib.buddy_check over all of them, per variable (a scene of the whole
  batch at once, checked all together).

The buddy flags must be the warm nodes' and no other (exit status); the ratio
to d2r-api's call is reported, with a target of at most TARGET times it at the
default size
(citynode checks each row against readings from before its minute, in groups
of nodes out of each other's radius: more calls, each checking fewer rows).
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

TARGET = 3.0
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
    temp[::50] += 8.0
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


def d2r_api_titanlib(positions, batch, config):
    """The peer: Points of every node and one titanlib.buddy_check per variable over the batch."""
    import titanlib

    nodes = len(positions)
    lat, lon, elev = (np.array([positions[n][i] for n in range(nodes)]) for i in range(3))

    def run():
        points = titanlib.Points(lat, lon, elev)
        flags = {}
        for variable in ("temperature_c", "relative_humidity_pct"):
            p = config.check(variable, "buddy")
            flags[variable] = np.asarray(titanlib.buddy_check(
                points, batch[variable].to_numpy(), [p["radius_m"]], [p["num_min"]], p["threshold"],
                p["max_elev_diff_m"], p["elev_gradient"], p["min_std"], p["num_iterations"])) != 0
        return flags

    return run


def counted_calls(fn):
    """fn() run once, with the number of titanlib.buddy_check calls it made."""
    import titanlib

    real, calls = titanlib.buddy_check, []

    def counting(*args):
        calls.append(1)
        return real(*args)

    titanlib.buddy_check = counting
    try:
        fn()
    finally:
        titanlib.buddy_check = real
    return len(calls)


def main(argv=None):
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--nodes", type=int, default=1000)
    p.add_argument("--minutes", type=int, default=300, help="history before the batch (default %(default)d)")
    p.add_argument("--reps", type=int, default=5, help="best of (default %(default)d)")
    p.add_argument("--quick", action="store_true", help="200 nodes, 60 minutes, best of 2")
    args = p.parse_args(argv)
    if args.quick:
        args.nodes, args.minutes, args.reps = 200, 60, 2
    positions, offsets = city(args.nodes)
    rng = np.random.default_rng(2)
    history = pa.concat_tables([minute_of(args.nodes, offsets, m, rng) for m in range(args.minutes)])
    batch = minute_of(args.nodes, offsets, args.minutes, rng)
    checker = QcChecker(QcConfig(), positions)
    bare = QcChecker(QcConfig())

    off = {"enabled": False}
    buddy_only = QcChecker(QcConfig({
        "temperature_c": {"range": off, "persistence": off, "spike": off},
        "relative_humidity_pct": {"range": off, "persistence": off, "spike": off}}), positions)
    recent = history.slice(history.num_rows - 11 * args.nodes)  # the buddy window and the minute's start

    full, out = best(lambda: checker.apply(batch, history), args.reps)
    no_buddy, _ = best(lambda: bare.apply(batch, history), args.reps)
    buddy, _ = best(lambda: buddy_only.apply(batch, recent), args.reps)
    sort, _ = best(lambda: history.sort_by([("node_id", "ascending"), ("time", "ascending")]), args.reps)
    peer, _ = best(d2r_api_titanlib(positions, batch, QcConfig()), args.reps)
    calls = counted_calls(lambda: buddy_only.apply(batch, recent))
    print("one batch of %d rows, %d rows of history, best of %d (%s)" % (
        batch.num_rows, history.num_rows, args.reps, _report.cpu_model()))
    _report.table(("what", "ms", "ratio"), [
        ("QcChecker.apply: all checks, %d min of history" % args.minutes, "%.1f" % (full * 1e3),
         "%.2f" % (full / sort)),
        ("  the same without positions (no buddy check)", "%.1f" % (no_buddy * 1e3), "%.2f" % (no_buddy / sort)),
        ("  peer: pyarrow sort_by(node_id, time) of the history", "%.1f" % (sort * 1e3), "1"),
        ("QcChecker.apply: buddy checks only (T, RH), 11 min", "%.1f" % (buddy * 1e3), "%.2f" % (buddy / peer)),
        ("  peer: titanlib.buddy_check once per variable (d2r-api)", "%.1f" % (peer * 1e3), "1"),
    ])
    warm = np.arange(args.nodes) % 50 == 0
    flags = out["qc_flags"].to_numpy()
    mine = (flags & flag_bit("temperature_c", "buddy")) != 0
    humid = int(((flags & flag_bit("relative_humidity_pct", "buddy")) != 0).sum())
    isolated = int(((flags & (flag_bit("temperature_c", "isolated") | flag_bit("relative_humidity_pct", "isolated")))
                    != 0).sum())
    print("titanlib.buddy_check calls per batch: %d (both variables); titanlib.Points built once per node set" % calls)
    print("buddy flags: temperature %d of %d warm nodes, %d others; humidity %d; isolated rows %d" % (
        (mine & warm).sum(), warm.sum(), (mine & ~warm).sum(), humid, isolated))
    slow = buddy / peer > TARGET and not args.quick  # a small city is all calls and no rows
    failed = slow or (mine != warm).any() or humid
    print("target: the warm nodes flagged and no other, buddy checks <= %g x d2r-api's call%s: %s" % (
        TARGET, " (not judged with --quick)" if args.quick else "", "FAIL" if failed else "PASS"))
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
