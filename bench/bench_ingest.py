"""Ingest at rising load: `citynode fleet-sim` into PostgreSQL through citynode's collectors and through a naive ingester.

    python bench/bench_ingest.py [--quick] [--seconds S] [--rate X] [--pg-url URL] [--loads C:B [C:B ...]]

Same run, same machine, same broker (citynode.broker.LocalBroker: the real
Mosquitto on a free port) and the same PostgreSQL:

- naive: `bench/naive_ingest.py`, paho-mqtt and one INSERT per row with
  psycopg in autocommit, fed by `citynode fleet-sim --json-peer` (the same
  simulated readings as one JSON message per reading, each accel sample one).
- citynode: `citynode fleet-sim` (signed frames, several in a message) into 1
  and 2 `citynode collect` in one shared-subscription group writing
  PostgreSQL: measure_citynode() below, filled in once the collector is merged.

Each load step (C climate nodes at a reading a minute, B bridge nodes at 200 Hz)
runs S seconds at real time (--rate 1); a step's rate is the rows stored over
the time from the first publish to the last row stored (the ingester catching
up counts; rows it never stores are reported as lost). The target (issue 12):
one collector sustains 1000 climate + 100 bridge nodes (20 000 samples/s) at
>= 20 x the naive ingester's rows/s; and how 2 collectors compare with 1.

PostgreSQL: --pg-url, else citynode.postgres.LocalPostgres (a throwaway server).
"""

import argparse
import json
import os
import subprocess
import sys
import tempfile
import threading
import time
from contextlib import contextmanager
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
sys.path[:0] = [str(REPO / "host"), str(REPO / "protocol"), str(REPO / "bench")]

import _report  # noqa: E402
from citynode.broker import LocalBroker, mosquitto_path  # noqa: E402

ENV = dict(os.environ, PYTHONPATH=os.pathsep.join([str(REPO / "host"), str(REPO / "protocol")]))
LOADS = ((100, 0), (1000, 0), (1000, 10), (1000, 50), (1000, 100))
QUICK_LOADS = ((50, 0), (100, 2))
TARGET_RATIO = 20.0
STALL_S = 5.0  # no new row for this long after the publisher ended: the ingester is done (or lost the rest)


class Skip(Exception):
    """The benchmark cannot run here (no PostgreSQL, no Mosquitto): said, not failed."""


@contextmanager
def postgres(pg_url, folder):
    """A PostgreSQL URL: the one given, else a LocalPostgres for the run."""
    if pg_url:
        yield pg_url
        return
    try:
        from citynode.postgres import LocalPostgres
    except ImportError:
        # TODO(integrator): citynode.postgres (LocalPostgres) comes from the PostgreSQL helper's branch;
        # once merged this path starts a throwaway server and --pg-url becomes optional in practice.
        raise Skip("no --pg-url and no citynode.postgres.LocalPostgres in this tree")
    from citynode.errors import CitynodeError

    try:
        pg = LocalPostgres(folder).start()
    except CitynodeError as exc:  # no PostgreSQL installed, or it would not start
        raise Skip(str(exc))
    try:
        yield pg.url
    finally:
        pg.close()


def fleet_sim(broker, keystore, climate, bridge, seconds, first_node, json_peer=False, rate=1.0):
    """Run `citynode fleet-sim` for one step; its JSON summary."""
    argv = [sys.executable, "-m", "citynode", "fleet-sim", "--broker", broker, "--keystore", str(keystore),
            "--climate-nodes", str(climate), "--bridge-nodes", str(bridge), "--rate", str(rate),
            "--duration", str(seconds), "--first-node", str(first_node), "--json"]
    if json_peer:
        argv.append("--json-peer")
    proc = subprocess.run(argv, env=ENV, capture_output=True, text=True)
    if proc.returncode != 0:
        raise SystemExit("bench_ingest: fleet-sim failed: %s" % proc.stderr.strip())
    return json.loads(proc.stdout)


class NaiveIngester:
    """bench/naive_ingest.py as a process; `rows` follows the count it prints every second."""

    def __init__(self, broker, pg_url):
        self.proc = subprocess.Popen([sys.executable, str(REPO / "bench" / "naive_ingest.py"), "--broker", broker,
                                      "--pg-url", pg_url], stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                                     text=True, env=ENV)
        self.rows = 0
        self.changed = time.monotonic()
        self.ready = threading.Event()
        threading.Thread(target=self._follow, daemon=True).start()
        if not self.ready.wait(30):
            self.stop()
            raise SystemExit("bench_ingest: naive_ingest.py did not start: %s" % self.proc.stderr.read())

    def _follow(self):
        for line in self.proc.stdout:
            if line.startswith("rows "):
                n = int(line.split()[1])
                if n != self.rows:
                    self.rows = n
                    self.changed = time.monotonic()
                self.ready.set()

    def stop(self):
        self.proc.terminate()
        self.proc.wait(10)


def measure_naive(ingester, broker, keystore, climate, bridge, seconds, first_node, rate=1.0):
    before = ingester.rows
    started = time.monotonic()
    stats = fleet_sim(broker, keystore, climate, bridge, seconds, first_node, json_peer=True, rate=rate)
    expected = stats["messages"]  # one row a JSON message
    while ingester.rows - before < expected and time.monotonic() - ingester.changed < STALL_S:
        time.sleep(0.2)
    stored = ingester.rows - before
    done = ingester.changed if stored else time.monotonic()
    return {"offered": expected, "publish_s": stats["seconds"], "stored": stored, "lost": expected - stored,
            "rows_per_s": stored / max(1e-9, done - started)}


def measure_citynode(broker, pg_url, keystore, climate, bridge, seconds, first_node, collectors, rate=1.0):
    """Rows/s of `collectors` `citynode collect` processes (one group) writing pg_url, fed by
    `citynode fleet-sim` at this load; and PUBACK-to-commit latency p50/p99.

    TODO(integrator): fill in once `citynode collect` is merged: start `collectors` processes
    (`citynode collect --broker BROKER --group bench --store PG_URL`), run fleet_sim(...) without
    json_peer (--record to compare), wait for the store to hold stats["frames"] frames (or stall),
    return {"offered", "stored", "lost", "rows_per_s", "p50_ms", "p99_ms"} counted as rows the same
    way as the naive side (one row a climate value, one a sample), then stop the collectors.
    """
    raise NotImplementedError("the collector is not wired into bench_ingest.py yet")


def main(argv=None):
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--quick", action="store_true", help="small loads, short steps (a smoke test)")
    ap.add_argument("--seconds", type=float, help="seconds of each load step (default 20; --quick 5)")
    ap.add_argument("--pg-url", help="PostgreSQL to write (default: a LocalPostgres for the run)")
    ap.add_argument("--loads", nargs="+", metavar="C:B", help="climate:bridge node counts of the steps")
    ap.add_argument("--rate", type=float, default=1.0,
                    help="node time per wall time of every step (default 1: real time; 0: flat out)")
    args = ap.parse_args(argv)
    if mosquitto_path() is None:
        print("bench_ingest: skipped: mosquitto is not installed")
        return 0
    loads = [tuple(int(x) for x in s.split(":")) for s in args.loads] if args.loads else (
        QUICK_LOADS if args.quick else LOADS)
    seconds = args.seconds or (5.0 if args.quick else 20.0)
    print("bench_ingest: %s, %d cores; %g s of node time a step at rate %g" % (
        _report.cpu_model(), os.cpu_count(), seconds, args.rate))
    try:
        rows, judged = run_steps(args, loads, seconds)
    except Skip as exc:
        print("bench_ingest: skipped: %s" % exc)
        return 0
    _report.table(["climate + bridge nodes", "rows offered", "naive rows/s", "naive lost",
                   "citynode 1 rows/s", "citynode 2 rows/s", "1 collector / naive"], rows)
    if not judged:
        print("target >= %g x naive at 1000 + 100 nodes: not judged (%s)" % (
            TARGET_RATIO, "collector not wired in yet" if rows and rows[-1][4] == "n/a" else "load not run"))
        return 0
    ok = min(judged) >= TARGET_RATIO
    print("target >= %g x naive at 1000 + 100 nodes: %s (%.1f x)" % (TARGET_RATIO, "PASS" if ok else "FAIL",
                                                                       min(judged)))
    return 0 if ok else 1


def run_steps(args, loads, seconds):
    """The table's rows, and the ratios at the target load."""
    rows = []
    judged = []
    with tempfile.TemporaryDirectory() as tmp, LocalBroker(Path(tmp) / "broker", persistence=False) as broker, \
            postgres(args.pg_url, Path(tmp) / "pg") as pg_url:
        keystore = Path(tmp) / "keys.json"
        ingester = NaiveIngester(broker.url, pg_url)
        try:
            first = 1
            for climate, bridge in loads:
                naive = measure_naive(ingester, broker.url, keystore, climate, bridge, seconds, first, args.rate)
                ours = {}
                for n in (1, 2):
                    try:
                        ours[n] = measure_citynode(broker.url, pg_url, keystore, climate, bridge, seconds, first, n,
                                                   args.rate)
                    except NotImplementedError:
                        ours[n] = None
                first += climate + bridge  # fresh node ids a step: no replay window carries over
                one, two = ours[1], ours[2]
                ratio = one["rows_per_s"] / naive["rows_per_s"] if one and naive["rows_per_s"] else None
                if ratio is not None and climate >= 1000 and bridge >= 100:
                    judged.append(ratio)
                rows.append(["%d + %d" % (climate, bridge), naive["offered"], "%.0f" % naive["rows_per_s"],
                             naive["lost"], _fmt(one), _fmt(two), "n/a" if ratio is None else "%.1f x" % ratio])
        finally:
            ingester.stop()
    return rows, judged


def _fmt(result):
    return "n/a" if result is None else "%.0f" % result["rows_per_s"]


if __name__ == "__main__":
    sys.exit(main())
