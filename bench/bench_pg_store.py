"""Rows a second PgStore.write stores into a real PostgreSQL, against psycopg's row-by-row COPY.

    python bench/bench_pg_store.py [--quick] [--seconds N] [--nodes N] [--accel-hz N]

The traffic of one second of a fleet: `--nodes` nodes sending a climate frame
each (the worst case: a reading a second), and `--accel-hz` acceleration samples
a second over all nodes, in blocks of 100 (one frame each, with its
accel_blocks row). Each second is one IngestBatch, as the collector writes it.

- citynode: PgStore.write (day partitions, binary COPY built with numpy, the
  frames ledger, rows joined to the new frames) into the database of
  citynode.postgres.LocalPostgres (fsync off: this measures the store, not the disk).
- citynode, unstamped: the same rows without calibration id and firmware (nodes whose
  boot's status the store does not have): every write locks each boot of the batch and
  looks for stamps to fill in (citynode.fleet.stamps), the worst case of a running fleet.
- peer: the same rows COPYed straight into the same tables with psycopg's
  `copy.write_row`, one Python tuple per row, no ledger: the usual way.

Target: PgStore keeps up with the traffic at least twice over (exit status); timings
are the best of `--reps` runs, each into a fresh database.
"""

import argparse
import sys
import tempfile
import time
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
sys.path[:0] = [str(REPO / "host"), str(REPO / "protocol"), str(REPO / "bench")]

import numpy as np  # noqa: E402
import pyarrow as pa  # noqa: E402

import _report  # noqa: E402
from citynode.fleet import schema  # noqa: E402
from citynode.fleet.store import IngestBatch  # noqa: E402
from citynode.postgres import LocalPostgres, postgres_path  # noqa: E402

TARGET = 2.0
BLOCK = 100
T0 = 1_796_601_600_000_000  # 2026-12-07 00:00 UTC, µs


def _table(name, node, seq, received, sample_index=None):
    n = len(node)
    rng = np.random.default_rng(len(name) + n)
    columns = {"node_id": node, "boot": np.ones(n, np.int64), "seq": seq, "received": received,
               "time": received - 500_000, "sample_index": sample_index}
    arrays = []
    for field in schema.SCHEMAS[name]:
        t = field.type
        if columns.get(field.name) is not None:
            arrays.append(pa.array(columns[field.name], t))
        elif pa.types.is_timestamp(t):
            arrays.append(pa.array(received - 1000, t))
        elif t == pa.string():
            arrays.append(pa.array(["1.22.0/0.4.1"] * n, t))
        elif t == pa.float64():
            arrays.append(pa.array(rng.normal(0, 1, n), t))
        elif t == pa.bool_():
            arrays.append(pa.array(np.ones(n, bool), t))
        else:
            arrays.append(pa.array(rng.integers(0, 1000, n), t))
    return pa.Table.from_arrays(arrays, schema=schema.SCHEMAS[name])


def second(k, nodes, accel_hz):
    """The batch of second k."""
    received = T0 + k * 1_000_000
    climate_nodes = np.arange(1, nodes + 1, dtype=np.int64)
    climate_seq = np.full(nodes, 2 * k, np.int64)
    blocks = max(1, accel_hz // BLOCK)
    block_nodes = np.arange(blocks, dtype=np.int64) % nodes + 1
    block_seq = np.full(blocks, 2 * k + 1, np.int64) + (np.arange(blocks) // nodes) * 1_000_000
    r_climate = np.full(nodes, received, np.int64) + np.arange(nodes)
    r_blocks = np.full(blocks, received, np.int64) + np.arange(blocks)
    sample_nodes = np.repeat(block_nodes, BLOCK)
    sample_seq = np.repeat(block_seq, BLOCK)
    sample_index = np.tile(np.arange(BLOCK, dtype=np.int64), blocks) + k * BLOCK
    tables = {
        "climate": _table("climate", climate_nodes, climate_seq, r_climate),
        "accel_blocks": _table("accel_blocks", block_nodes, block_seq, r_blocks),
        "accel": _table("accel", sample_nodes, sample_seq, np.repeat(r_blocks, BLOCK), sample_index),
        "frames": _table("frames", np.concatenate([climate_nodes, block_nodes]),
                         np.concatenate([climate_seq, block_seq]), np.concatenate([r_climate, r_blocks])),
    }
    return IngestBatch(tables)


def _unstamped(batch):
    """The batch with the data rows' calibration id and firmware null."""
    tables = {}
    for name, table in batch.tables.items():
        for column in ("calibration_id", "firmware") if name != "frames" else ():
            i = table.schema.get_field_index(column)
            table = table.set_column(i, table.schema.field(i), pa.nulls(table.num_rows, table.schema.field(i).type))
        tables[name] = table
    return IngestBatch(tables)


def peer_write(conn, batch):
    with conn.transaction(), conn.cursor() as cur:
        for name, table in batch.tables.items():
            with cur.copy("COPY %s (%s) FROM STDIN" % (name, ", ".join(table.column_names))) as copy:
                for row in zip(*(c.to_pylist() for c in table.columns)):
                    copy.write_row(row)


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--quick", action="store_true", help="a few seconds of traffic, for a smoke test")
    ap.add_argument("--seconds", type=int, default=20)
    ap.add_argument("--nodes", type=int, default=1000)
    ap.add_argument("--accel-hz", type=int, default=20000)
    ap.add_argument("--reps", type=int, default=3)
    args = ap.parse_args()
    if args.quick:
        args.seconds, args.reps = 3, 1
    if postgres_path() is None:
        print("PostgreSQL 15+ not installed: nothing to measure")
        return 0
    import psycopg

    from citynode.fleet.pg_store import PgStore

    batches = [second(k, args.nodes, args.accel_hz) for k in range(args.seconds)]
    rows = sum(b.rows() for b in batches)
    print("%d s of traffic: %d nodes, %d accel samples/s; %d rows; best of %d; CPU %s" % (
        args.seconds, args.nodes, args.accel_hz, rows, args.reps, _report.cpu_model()))
    unstamped = [_unstamped(b) for b in batches]
    ours = peer = duplicate = bare = float("inf")
    with tempfile.TemporaryDirectory() as folder, LocalPostgres(folder) as pg:
        for rep in range(args.reps):
            with PgStore(pg.create_database("ours")) as store:
                store.write(batches[0])  # partitions and temp tables made, caches warm
                t = time.perf_counter()
                for b in batches[1:]:
                    store.write(b)
                ours = min(ours, time.perf_counter() - t)
                t = time.perf_counter()
                store.write(batches[-1])  # every frame a duplicate
                duplicate = min(duplicate, time.perf_counter() - t)
            with PgStore(pg.create_database("unstamped")) as store:
                store.write(unstamped[0])
                t = time.perf_counter()
                for b in unstamped[1:]:
                    store.write(b)
                bare = min(bare, time.perf_counter() - t)
            url = pg.create_database("peer")
            with PgStore(url) as s:
                s.write(batches[0])  # the same tables and partitions
            with psycopg.connect(url, autocommit=True) as conn:
                t = time.perf_counter()
                for b in batches[1:]:
                    peer_write(conn, b)
                peer = min(peer, time.perf_counter() - t)
    timed_rows = rows - batches[0].rows()
    timed_s = args.seconds - 1
    results = [("citynode PgStore.write", timed_rows / ours, timed_s / ours),
               ("citynode, unstamped", timed_rows / bare, timed_s / bare),
               ("psycopg copy.write_row", timed_rows / peer, timed_s / peer)]
    _report.table(["writer", "rows/s", "x real time"], [(n, "%.0f" % r, "%.1f" % x) for n, r, x in results])
    print("  ratio citynode / peer: %.1f; a batch of duplicates: %.0f ms" % (peer / ours, duplicate * 1000))
    ok = results[0][2] >= TARGET
    print("%s PgStore keeps up %.1f x over (target >= %.0f x)" % ("PASS" if ok else "FAIL", results[0][2], TARGET))
    return 0 if ok else 1


if __name__ == "__main__":
    sys.exit(main())
