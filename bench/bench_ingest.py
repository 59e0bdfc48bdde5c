"""Ingest at rising load: `citynode fleet-sim` into PostgreSQL through citynode's collectors and through a naive ingester.

    python bench/bench_ingest.py [--quick] [--seconds S] [--naive-seconds S] [--rates X ...] [--fleet C:B]
                                 [--ingesters naive 1 2] [--pg-url URL] [--json FILE]

Same run, same machine, same broker (citynode.broker.LocalBroker: the real
Mosquitto on a free port) and the same PostgreSQL. Each load step is the
fleet (C climate nodes at a reading a minute, B bridge nodes streaming 200 Hz
acceleration) run for S seconds of node time at a rate X (node time per wall
time: 0.5, 1, 2; 0 is as fast as `citynode fleet-sim` goes), into each of:

- naive: `bench/naive_ingest.py`, paho-mqtt and one INSERT per row with
  psycopg in autocommit, fed by `citynode fleet-sim --json-peer` (the same
  simulated readings as one JSON message per reading, each accel sample one);
  its steps are shorter (--naive-seconds): publishing a JSON message per
  sample, the simulator offers far fewer readings a second than the fleet
  makes, still more than the naive ingester stores, so its figure is its
  ceiling; at 20 s of node time a step would take minutes;
- citynode x1 and x2: `citynode fleet-sim` (signed frames, several in a
  message) into 1 and 2 `citynode collect --json` in one shared-subscription
  group writing PostgreSQL.

The unit is the reading (a row of the naive schema: a temperature, a
humidity, an acceleration sample): the naive side stores one a message;
citynode stores a climate row (two readings) a CLIMATE frame and an accel row
a sample (its STATUS, TIME and FEATURES rows are not counted). Per step:
readings offered and their rate over the publishing time; readings stored
(counted in the database, never the offered ones) and their rate over the
time from the first publish to the last row stored; the lost ones; the drain
(seconds from the publisher's end to the last row stored: the backlog); for
citynode the PUBACK latency (a message's arrival to its acknowledgement, after
the commit) at p50 and p99 from the collectors' --json summaries, and the CPU
seconds of the collector processes.

Targets (issue 12), the exit status: at rate 1 of 1000 + 100 nodes one
collector keeps up (nothing lost, drained within DRAIN_OK_S); and its best
readings/s over the steps is >= 20 x the naive ingester's best.

PostgreSQL: --pg-url, else citynode.postgres.LocalPostgres (a throwaway
server); the naive ingester writes its own tables in schema `naive` of it.
"""

import argparse
import json
import os
import signal
import subprocess
import sys
import tempfile
import threading
import time
from contextlib import contextmanager
from pathlib import Path
from urllib.parse import quote

REPO = Path(__file__).resolve().parents[1]
sys.path[:0] = [str(REPO / "host"), str(REPO / "protocol"), str(REPO / "bench")]

import _report  # noqa: E402
from citynode.broker import LocalBroker, mosquitto_path  # noqa: E402

ENV = dict(os.environ, PYTHONPATH=os.pathsep.join([str(REPO / "host"), str(REPO / "protocol")]))
FLEET = (1000, 100)
RATES = (0.5, 1.0, 2.0, 0.0)
QUICK_FLEET = (20, 2)
QUICK_RATES = (1.0, 0.0)
TARGET_RATIO = 20.0
STALL_S = 5.0  # no new row for this long after the publisher ended: the ingester is done (or lost the rest)
DRAIN_OK_S = 3.0  # a step was kept up with when its last row was stored within this of the last publish
POLL_S = 0.25
READY_TIMEOUT_S = 30.0
INGESTERS = ("naive", 1, 2)


class Skip(Exception):
    """The benchmark cannot run here (no PostgreSQL, no Mosquitto): said, not failed."""


class Broker(LocalBroker):
    """LocalBroker that also logs subscriptions: a collector is ready once its SUBSCRIBE shows."""

    def _write_config(self):
        conf = super()._write_config()
        conf.write_text(conf.read_text() + "log_type subscribe\n")
        return conf

    def subscribed(self, client_id):
        try:
            text = self.log_path.read_text(errors="replace")
        except OSError:
            return False
        return any(line.split(": ", 1)[-1].startswith(client_id + " ") for line in text.splitlines())


@contextmanager
def postgres(pg_url, folder):
    """(URL, server pid or None): the PostgreSQL given, else a LocalPostgres for the run."""
    if pg_url:
        yield pg_url, None
        return
    from citynode.errors import CitynodeError
    from citynode.postgres import LocalPostgres

    try:
        pg = LocalPostgres(folder).start()
    except CitynodeError as exc:  # no PostgreSQL installed, or it would not start
        raise Skip(str(exc))
    try:
        yield pg.url, pg.proc.pid
    finally:
        pg.close()


def naive_url(pg_url):
    """pg_url with the naive tables' schema first on its search path (its `accel` is not the store's)."""
    import psycopg

    with psycopg.connect(pg_url, autocommit=True) as conn:
        conn.execute("CREATE SCHEMA IF NOT EXISTS naive")
    return pg_url + ("&" if "?" in pg_url else "?") + "options=" + quote("-c search_path=naive")


def fleet_sim(broker, keystore, fleet, seconds, first_node, rate, prefix="citynode", json_peer=False, record=None):
    """Run `citynode fleet-sim` for one step; its JSON summary (with --record FILE, a line a frame published)."""
    argv = [sys.executable, "-m", "citynode", "fleet-sim", "--broker", broker, "--keystore", str(keystore),
            "--climate-nodes", str(fleet[0]), "--bridge-nodes", str(fleet[1]), "--rate", str(rate),
            "--duration", str(seconds), "--first-node", str(first_node), "--prefix", prefix, "--json"]
    if json_peer:
        argv.append("--json-peer")
    if record is not None:
        argv += ["--record", str(record)]
    proc = subprocess.run(argv, env=ENV, capture_output=True, text=True)
    if proc.returncode != 0:
        raise SystemExit("bench_ingest: fleet-sim failed: %s" % proc.stderr.strip())
    return json.loads(proc.stdout)


def _stat(pid):
    """(ppid, user + system CPU seconds) of a live process, from /proc; None once it is gone."""
    try:
        with open("/proc/%s/stat" % pid) as f:
            fields = f.read().rsplit(")", 1)[1].split()
    except OSError:
        return None
    return int(fields[1]), (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def cpu_seconds(pid):
    """User + system CPU seconds of a live process."""
    got = _stat(pid)
    return 0.0 if got is None else got[1]


def tree_cpu(pid):
    """{pid: CPU seconds} of a process and its children (a PostgreSQL server: its backends, its workers)."""
    if pid is None:
        return {}
    out = {}
    for entry in os.listdir("/proc"):
        if entry.isdigit():
            got = _stat(entry)
            if got is not None and (int(entry) == pid or got[0] == pid):
                out[int(entry)] = got[1]
    return out


def cpu_since(before, after):
    """CPU seconds spent between two tree_cpu() readings (a process born in between: all of its)."""
    return sum(cpu - before.get(p, 0.0) for p, cpu in after.items())


class Waiter:
    """Waits, after a publisher ended, until `count()` reaches `expected` or stops growing; when it last grew."""

    def __init__(self, count):
        self.count = count

    def until(self, expected, started, published_s):
        last, changed = self.count(), time.monotonic()
        while last < expected:
            time.sleep(POLL_S)
            now = self.count()
            if now != last:
                last, changed = now, time.monotonic()
            elif time.monotonic() - changed >= STALL_S and time.monotonic() - started >= published_s:
                break
        return last, changed


class NaiveIngester:
    """bench/naive_ingest.py as a process; `rows` follows the count it prints every second."""

    def __init__(self, broker, pg_url):
        self.proc = subprocess.Popen([sys.executable, str(REPO / "bench" / "naive_ingest.py"), "--broker", broker,
                                      "--pg-url", pg_url], stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                                     text=True, env=ENV)
        self.rows = 0
        self.ready = threading.Event()
        threading.Thread(target=self._follow, daemon=True).start()
        if not self.ready.wait(30):
            self.stop()
            raise SystemExit("bench_ingest: naive_ingest.py did not start: %s" % self.proc.stderr.read())

    def _follow(self):
        for line in self.proc.stdout:
            if line.startswith("rows "):
                self.rows = int(line.split()[1])
                self.ready.set()

    def stop(self):
        self.proc.terminate()
        self.proc.wait(10)


def measure_naive(ingester, broker, keystore, fleet, seconds, first_node, rate, pg_pid=None):
    before = ingester.rows
    cpu_before = cpu_seconds(ingester.proc.pid)
    pg_before = tree_cpu(pg_pid)
    started = time.monotonic()
    stats = fleet_sim(broker, keystore, fleet, seconds, first_node, rate, json_peer=True)
    published = time.monotonic() - started
    offered = stats["messages"]  # one reading a JSON message
    stored, last = Waiter(lambda: ingester.rows - before).until(offered, started, published)
    return _result(offered, stored, started, published, last, cpu_seconds(ingester.proc.pid) - cpu_before,
                   pg_cpu_s=cpu_since(pg_before, tree_cpu(pg_pid)) if pg_pid else None)


def _result(offered, stored, started, published, last, cpu_s, latency=None, pg_cpu_s=None):
    end = last if stored else time.monotonic()
    return {"offered": offered, "offered_per_s": offered / max(1e-9, published), "stored": stored,
            "lost": offered - stored, "rows_per_s": stored / max(1e-9, end - started),
            "drain_s": max(0.0, end - started - published), "cpu_s": cpu_s, "wall_s": end - started,
            "latency_ms": latency, "pg_cpu_s": pg_cpu_s}


class Readings:
    """Readings citynode stored for nodes [first, last]: 2 a climate row, 1 an accel row (sample)."""

    def __init__(self, pg_url, first, last):
        import psycopg

        self.conn = psycopg.connect(pg_url, autocommit=True)
        self.span = (first, last)

    def frames(self):
        return self.conn.execute("SELECT count(*) FROM frames WHERE node_id BETWEEN %s AND %s", self.span).fetchone()[0]

    def readings(self):
        climate = self.conn.execute("SELECT count(*) FROM climate WHERE node_id BETWEEN %s AND %s",
                                    self.span).fetchone()[0]
        accel = self.conn.execute("SELECT count(*) FROM accel WHERE node_id BETWEEN %s AND %s", self.span).fetchone()[0]
        return 2 * climate + accel

    def close(self):
        self.conn.close()


def measure_citynode(broker, pg_url, keystore, fleet, seconds, first_node, collectors, rate, step, pg_pid=None):
    """`collectors` `citynode collect` processes in one group writing pg_url, fed by `citynode fleet-sim`
    at this load: readings offered and stored, their rates, the drain, PUBACK latency, CPU."""
    prefix = "bench%d" % step  # a topic prefix a step: the sessions of earlier steps' collectors match nothing
    group = "g%d" % step
    procs = []
    for i in range(collectors):
        procs.append(subprocess.Popen(
            [sys.executable, "-m", "citynode", "collect", "--broker", broker.url, "--keystore", str(keystore),
             "--store", pg_url, "--group", group, "--prefix", prefix, "--instance", str(i), "--json"],
            env=ENV, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True))
    counter = Readings(pg_url, first_node, first_node + sum(fleet) - 1)
    try:
        from citynode.fleet.mqtt_session import default_client_id

        deadline = time.monotonic() + READY_TIMEOUT_S
        while not all(broker.subscribed(default_client_id(group, i)) for i in range(collectors)):
            if time.monotonic() > deadline or any(p.poll() is not None for p in procs):
                raise SystemExit("bench_ingest: a collector did not start: %s" % "".join(
                    p.stderr.read() if p.poll() is not None else "" for p in procs).strip())
            time.sleep(0.1)
        cpu_before = sum(cpu_seconds(p.pid) for p in procs)
        pg_before = tree_cpu(pg_pid)
        started = time.monotonic()
        record = Path(keystore).with_name("published-%d.jsonl" % step)
        stats = fleet_sim(broker.url, keystore, fleet, seconds, first_node, rate, prefix=prefix, record=record)
        published = time.monotonic() - started
        _frames, last = Waiter(counter.frames).until(stats["frames"], started, published)
        cpu = sum(cpu_seconds(p.pid) for p in procs) - cpu_before
        pg_cpu = cpu_since(pg_before, tree_cpu(pg_pid)) if pg_pid else None
        stored = counter.readings()
        offered = stats["samples"] + 2 * _climate_frames(record)
    finally:
        counter.close()
        summaries = _stop(procs)
    latency = _latency(summaries)
    result = _result(offered, stored, started, published, last, cpu, latency, pg_cpu)
    result["frames_offered"] = stats["frames"]
    return result


def _climate_frames(record):
    """CLIMATE frames in a fleet-sim record (two readings each); the file is removed."""
    with open(record) as f:
        count = sum(json.loads(line)["type"] == "climate" for line in f)
    os.unlink(record)
    return count


def _stop(procs):
    summaries = []
    for p in procs:
        if p.poll() is None:
            p.send_signal(signal.SIGTERM)
    for p in procs:
        out, err = p.communicate(timeout=60)
        try:
            summaries.append(json.loads(out))
        except ValueError:
            raise SystemExit("bench_ingest: a collector failed: %s" % err.strip()) from None
    return summaries


def _latency(summaries):
    """The worst collector's p50 and p99 (ms): each collector keeps its own window."""
    got = [s["latency_ms"] for s in summaries if s.get("latency_ms")]
    if not got:
        return None
    return {"p50": max(g["p50"] for g in got), "p99": max(g["p99"] for g in got)}


def main(argv=None):
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--quick", action="store_true", help="a small fleet, short steps (a smoke test)")
    ap.add_argument("--seconds", type=float, help="seconds of node time a step (default 20; --quick 3)")
    ap.add_argument("--naive-seconds", type=float,
                    help="seconds of node time of the naive steps (default 2; --quick as --seconds)")
    ap.add_argument("--ingesters", nargs="+", choices=("naive", "1", "2"), default=["naive", "1", "2"],
                    help="which to run (default: all three)")
    ap.add_argument("--fleet", metavar="C:B", help="climate:bridge nodes (default 1000:100; --quick 20:2)")
    ap.add_argument("--rates", nargs="+", type=float, metavar="X",
                    help="node time per wall time of the steps, 0 flat out (default 0.5 1 2 0; --quick 1 0)")
    ap.add_argument("--pg-url", help="PostgreSQL to write (default: a LocalPostgres for the run)")
    ap.add_argument("--json", metavar="FILE", help="also write every step's figures to FILE")
    args = ap.parse_args(argv)
    if mosquitto_path() is None:
        print("bench_ingest: skipped: mosquitto is not installed")
        return 0
    fleet = tuple(int(x) for x in args.fleet.split(":")) if args.fleet else (QUICK_FLEET if args.quick else FLEET)
    rates = tuple(args.rates) if args.rates else (QUICK_RATES if args.quick else RATES)
    seconds = args.seconds or (3.0 if args.quick else 20.0)
    naive_seconds = args.naive_seconds or (seconds if args.quick else min(seconds, 2.0))
    ingesters = [w if w == "naive" else int(w) for w in args.ingesters]
    print("bench_ingest: %s, %d cores (fleet-sim, Mosquitto, PostgreSQL and the ingesters share them); "
          "%d climate + %d bridge nodes, %g s of node time a step" % (
              _report.cpu_model(), os.cpu_count(), fleet[0], fleet[1], seconds), flush=True)
    try:
        steps = run_steps(args.pg_url, fleet, rates, seconds, naive_seconds, ingesters)
    except Skip as exc:
        print("bench_ingest: skipped: %s" % exc)
        return 0
    if args.json:
        Path(args.json).write_text(json.dumps(steps, indent=1))
    return report(steps, fleet, ingesters)


def run_steps(pg_url, fleet, rates, seconds, naive_seconds, ingesters=INGESTERS):
    """[{"rate", "ingester", figures...}] for every rate and ingester, in the order run."""
    steps = []
    with tempfile.TemporaryDirectory() as tmp, Broker(Path(tmp) / "broker", persistence=False) as broker, \
            postgres(pg_url, Path(tmp) / "pg") as (url, pg_pid):
        keystore = Path(tmp) / "keys.json"
        from citynode.keystore import Keystore

        # every step's keys before any collector starts: a collector reads the keystore once
        Keystore(keystore).new_keys(range(1, 1 + len(rates) * len(INGESTERS) * sum(fleet)))
        ingester = NaiveIngester(broker.url, naive_url(url)) if "naive" in ingesters else None
        try:
            first = 1
            for rate in rates:
                for who in ingesters:
                    if who == "naive":
                        got = measure_naive(ingester, broker.url, keystore, fleet, naive_seconds, first, rate, pg_pid)
                    else:
                        got = measure_citynode(broker, url, keystore, fleet, seconds, first, who, rate, len(steps),
                                               pg_pid)
                    first += sum(fleet)  # fresh node ids a step: no replay window, no frame ledger carries over
                    steps.append(dict(got, rate=rate, ingester=who))
                    print("  rate %s, %s: %.0f readings/s stored of %.0f/s offered" % (
                        _rate(rate), _who(who), got["rows_per_s"], got["offered_per_s"]), flush=True)
        finally:
            if ingester is not None:
                ingester.stop()
    return steps


def report(steps, fleet, ingesters=INGESTERS):
    """Print the table and the verdict; the exit status."""
    rows = []
    for s in steps:
        lat = s["latency_ms"]
        rows.append([_rate(s["rate"]), _who(s["ingester"]), s["offered"], "%.0f" % s["offered_per_s"], s["stored"],
                     "%.0f" % s["rows_per_s"], s["lost"], "%.1f" % s["drain_s"],
                     "yes" if kept_up(s) else "no",
                     "%.0f / %.0f" % (lat["p50"], lat["p99"]) if lat else "-",
                     "%.0f%%" % (100 * s["cpu_s"] / max(1e-9, s["wall_s"])),
                     "-" if s.get("pg_cpu_s") is None else "%.0f%%" % (100 * s["pg_cpu_s"] / max(1e-9, s["wall_s"]))])
    _report.table(["rate", "ingester", "offered", "offered/s", "stored", "stored/s", "lost", "drain s", "kept up",
                   "PUBACK p50 / p99 ms", "ingester CPU", "PostgreSQL CPU"], rows, left=(0, 1))
    print("CPU: % of one core over the step (first publish to last row stored); a step's PostgreSQL CPU is "
          "its whole server's")
    best = {who: max((s["rows_per_s"] for s in steps if s["ingester"] == who), default=0.0) for who in INGESTERS}
    ratio = best[1] / best["naive"] if best["naive"] else None
    growth = best[2] / best[1] if best[1] else None
    if set(ingesters) != set(INGESTERS):
        print("targets: not judged (needs all three ingesters)")
        return 0
    print("best stored readings/s: naive %.0f, citynode 1 collector %.0f, 2 collectors %.0f" % (
        best["naive"], best[1], best[2]))
    if growth is not None:
        print("1 -> 2 collectors: %.2f x (on %d cores shared with fleet-sim, Mosquitto and PostgreSQL)" % (
            growth, os.cpu_count()))
    real = [s for s in steps if s["ingester"] == 1 and s["rate"] == 1.0]
    target_fleet = fleet[0] >= FLEET[0] and fleet[1] >= FLEET[1]
    if not (real and target_fleet):
        print("targets: not judged (needs rate 1 of %d + %d nodes)" % FLEET)
        return 0
    sustained = kept_up(real[0])
    ok_ratio = ratio is not None and ratio >= TARGET_RATIO
    print("target: 1 collector keeps up with %d + %d nodes at real time: %s" % (
        FLEET[0], FLEET[1], "PASS" if sustained else "FAIL"))
    print("target: >= %g x the naive ingester's readings/s: %s (%s)" % (
        TARGET_RATIO, "PASS" if ok_ratio else "FAIL", "n/a" if ratio is None else "%.1f x" % ratio))
    return 0 if sustained and ok_ratio else 1


def kept_up(step):
    return step["lost"] == 0 and step["drain_s"] <= DRAIN_OK_S


def _rate(rate):
    return "flat out" if rate == 0 else "%g x" % rate


def _who(who):
    return "naive" if who == "naive" else "citynode x%d" % who


if __name__ == "__main__":
    sys.exit(main())
