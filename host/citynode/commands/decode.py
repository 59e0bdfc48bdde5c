"""`citynode decode CAPTURE`: a raw capture into one table per message kind, with link statistics.

A capture is the bytes as they came off a serial port (or concatenated UDP
datagrams: with COBS framing these are the same thing), for example from
`citynode record`. Tables go to `--out-dir`, by default `<capture without its
extension>-tables/` beside the capture; see citynode.tables for the columns.
Writing is atomic: tables are written in a staging folder and moved into
place only when the whole capture has been decoded, so a failure leaves
nothing half-written.
"""

import json
import os
import stat
import sys
import time

from citynode.errors import CitynodeError, UsageError
from citynode.table_formats import FORMATS, TIME_FORMATS
from citynode_protocol.wire import UTC_MAX_MS, UTC_MIN_MS

READ_CHUNK = 2 << 20  # bounds the rows (and their text) of one batch
# the plausible UTC of SPEC §6 time, in words: "2020..2100"
PLAUSIBLE_YEARS = "%d..%d" % tuple(time.gmtime(ms // 1000).tm_year for ms in (UTC_MIN_MS, UTC_MAX_MS))


EPILOG = """\
tables: one file per message kind present (climate, accel, accel_blocks,
features, status, log, time, reply), each starting with
  node_id      the node
  time         UTC, once a plausible TIME message anchored the node's clock
               since its last restart; empty (null) where the node had no UTC.
               CSV/JSONL: ISO 8601 (2026-11-26T06:12:24.125000Z) or, with
               --time-format epoch-us, µs since 1970; Parquet: timestamp (UTC)
  node_time_s  node clock in seconds, unwrapped across its 2^32 ms wrap (always)
  epoch        restarts of the node seen so far (node_time_s restarts with it)
  seq          frame sequence number
accel has one row per sample, at t0 + i / odr_hz from the block's first sample,
in g (counts x range_g / 32768). time keeps utc_ms as sent and says whether it
was plausible (%s); an implausible one anchors nothing. Floats are the
shortest text that reads back as the same number. --format jsonl also writes
messages.jsonl: every message in stream order, as `citynode encode` reads it.
--stats and --json give per-node counters (frames, lost, duplicates, restarts,
implausible UTC, messages without UTC, ...) and link totals (CRC failures,
bytes skipped, ...).
""" % PLAUSIBLE_YEARS


def add_arguments(parser):
    import argparse

    parser.formatter_class = argparse.RawDescriptionHelpFormatter
    parser.epilog = EPILOG
    parser.add_argument("capture", metavar="CAPTURE", help="raw capture file (bytes as received from a node)")
    parser.add_argument(
        "--out-dir",
        metavar="DIR",
        help="folder for the tables (default: CAPTURE without its extension, plus '-tables', beside it)",
    )
    parser.add_argument(
        "--format",
        default="csv",
        metavar="{%s}" % ",".join(FORMATS),
        help="table format (default csv)",
    )
    parser.add_argument(
        "--time-format",
        metavar="{%s}" % ",".join(TIME_FORMATS),
        help="how CSV and JSONL write UTC: iso (default, 2026-11-26T06:12:24.125000Z) or epoch-us "
        "(µs since 1970, compact); Parquet always has a timestamp type",
    )
    parser.add_argument("--stats", action="store_true", help="print link statistics per node and in total")
    parser.add_argument("--json", action="store_true", help="print the statistics as JSON on stdout, and nothing else")


def default_out_dir(capture):
    folder, name = os.path.split(os.path.abspath(capture))
    stem = os.path.splitext(name)[0] or name
    return os.path.join(folder, stem + "-tables")


def _open_capture(path):
    if not os.path.lexists(path):
        raise UsageError("%s: no such file" % path)
    if os.path.isdir(path):
        raise UsageError("%s: is a folder, not a capture file" % path)
    try:
        f = open(path, "rb")
    except PermissionError:
        raise UsageError("%s: permission denied" % path) from None
    except OSError as exc:
        raise UsageError("%s: cannot read (%s)" % (path, exc.strerror or exc)) from None
    st = os.fstat(f.fileno())
    if stat.S_ISREG(st.st_mode) and st.st_size == 0:
        f.close()
        raise UsageError("%s: empty file, not a capture" % path)
    return f


def decode_capture(f, tables=None, chunk=READ_CHUNK, messages=None):
    """Decode an open capture file in chunks; returns (stats, messages per node, bytes read, timebase).

    With `tables` (a TableSet), every batch's rows are written as they come;
    with `messages` (a text file), every message as a line `citynode encode` reads.
    """
    from citynode.decode import BulkDecoder
    from citynode.message_lines import message_line
    from citynode.tables import batch_tables
    from citynode.timebase import Timebase

    decoder = BulkDecoder()
    timebase = Timebase()
    per_node = {}
    total = 0
    while True:
        try:
            data = f.read(chunk)
        except OSError as exc:
            raise CitynodeError("%s: read failed after %d bytes (%s)" % (f.name, total, exc.strerror or exc)) from None
        if not data:
            break
        total += len(data)
        batch = decoder.feed(data)
        _count_messages(batch, per_node)
        if tables is not None and len(batch):
            tables.append(batch_tables(batch, timebase))
        elif len(batch):
            timebase.assign(batch)
        if messages is not None and len(batch):
            messages.write("".join(message_line(m) + "\n" for m in batch.messages()))
    decoder.flush()
    return decoder.stats, per_node, total, timebase


def _count_messages(batch, per_node):
    import numpy as np

    for cols in batch.kinds.values():
        ids, counts = np.unique(cols["node_id"], return_counts=True)
        for nid, c in zip(ids.tolist(), counts.tolist()):
            per_node[nid] = per_node.get(nid, 0) + c


MESSAGES_FILE = "messages.jsonl"


def run(args):
    import signal

    from citynode.commands.common import interrupt_on

    if args.format not in FORMATS:
        raise UsageError("unknown table format %r; choose from %s" % (args.format, ", ".join(FORMATS)))
    if args.time_format is not None and args.time_format not in TIME_FORMATS:
        raise UsageError("unknown time format %r; choose from %s" % (args.time_format, ", ".join(TIME_FORMATS)))
    if args.time_format is not None and args.format == "parquet":
        raise UsageError("--time-format is for csv and jsonl; parquet times are a timestamp type")
    try:
        from citynode.tables import require_format

        require_format(args.format)
    except ImportError:
        raise CitynodeError("citynode decode needs pyarrow, which is not installed: pip install pyarrow") from None
    from citynode.tables import StagedDir, TableSet

    out_dir = args.out_dir or default_out_dir(args.capture)
    with _open_capture(args.capture) as f, interrupt_on(signal.SIGTERM, signal.SIGHUP):
        try:
            staged = StagedDir(out_dir)
        except OSError as exc:
            raise CitynodeError("cannot create output folder %s: %s" % (out_dir, exc.strerror or exc)) from None
        tables = TableSet(staged.path, args.format, args.time_format or "iso")
        messages = None
        try:
            if args.format == "jsonl":
                messages = open(os.path.join(staged.path, MESSAGES_FILE), "w", encoding="utf-8")
            stats, per_node, total, timebase = decode_capture(f, tables, messages=messages)
            tables.close()
            if messages is not None:
                messages.close()
            if total == 0:
                raise UsageError("%s: empty file, not a capture" % args.capture)
            if not any(ns.frames for ns in stats.nodes.values()):
                raise CitynodeError("not a citynode capture: no valid frame in %d bytes" % total)
            files = tables.files()
            if files:
                staged.commit(files + ([MESSAGES_FILE] if messages is not None else []))
            else:
                staged.abort()
        except OSError as exc:
            _abort(staged, tables, messages)
            where = exc.filename or out_dir
            raise CitynodeError("cannot write tables to %s: %s" % (where, exc.strerror or exc)) from None
        except BaseException:
            _abort(staged, tables, messages)
            raise
    report = stats_report(args.capture, total, stats, per_node, out_dir if files else None, tables, timebase)
    if args.json:
        json.dump(report, sys.stdout, indent=1, sort_keys=False)
        sys.stdout.write("\n")
        return 0
    if args.stats:
        print_stats(report, sys.stdout)
    _print_summary(report, sys.stdout)
    return 0


def _abort(staged, tables, messages):
    """Close what is open and remove the staging folder, whatever happens while closing."""
    try:
        for closing in (tables, messages):
            try:
                if closing is not None:
                    closing.close()
            except Exception:  # the original error is the one to report
                pass
    finally:
        staged.abort()


def stats_report(capture, total, stats, per_node, out_dir, tables, timebase):
    link = stats.as_dict()
    nodes = link.pop("nodes")
    clocks = timebase.stats()
    for nid, counters in nodes.items():
        counters["messages"] = per_node.get(int(nid), 0)
        clock = clocks.get(int(nid), {"implausible_utc": 0, "messages_without_utc": 0, "epochs_without_utc": []})
        counters.update(clock)
    return {
        "capture": os.path.abspath(capture),
        "bytes": total,
        "link": link,
        "nodes": nodes,
        "out_dir": out_dir,
        "tables": {
            name: {"file": os.path.basename(tables.path(name)), "rows": tables.rows[name]}
            for name in tables.rows
        }
        if out_dir
        else {},
        "rows_without_utc": tables.without_utc if out_dir else 0,
    }


NODE_COLUMNS = (
    ("messages", "messages"),
    ("frames", "frames"),
    ("lost", "lost"),
    ("duplicates", "dup"),
    ("out_of_order", "out of order"),
    ("restarts", "restarts"),
    ("unknown_type", "unknown type"),
    ("bad_length", "bad length"),
    ("newer_minor", "newer minor"),
    ("implausible_utc", "bad UTC"),
    ("messages_without_utc", "no UTC"),
)

LINK_ROWS = (
    ("bytes_in", "bytes in"),
    ("bytes_skipped", "bytes skipped"),
    ("frames", "messages decoded"),
    ("bad_frames", "bad frames"),
    ("crc_errors", "CRC failures"),
    ("cobs_errors", "COBS errors"),
    ("too_short", "too short"),
    ("too_long", "too long"),
    ("unsupported_version", "unsupported version"),
    ("unknown_type", "unknown type"),
    ("unknown_encoding", "unknown encoding"),
    ("bad_length", "bad length"),
    ("newer_minor", "newer minor"),
    ("duplicates", "duplicates"),
)


def _table(header, rows):
    widths = [max(len(str(r[i])) for r in [header] + rows) for i in range(len(header))]
    lines = []
    for k, row in enumerate([header] + rows):
        cells = [str(c).rjust(w) if k and i else str(c).ljust(w) for i, (c, w) in enumerate(zip(row, widths))]
        lines.append("  ".join(cells).rstrip())
        if k == 0:
            lines.append("  ".join("-" * w for w in widths))
    return "\n".join(lines)


def print_stats(report, out):
    """The statistics as two plain-text tables: per node, then the whole link."""
    header = ["node"] + [label for _, label in NODE_COLUMNS]
    rows = [[nid] + [c[key] for key, _ in NODE_COLUMNS] for nid, c in report["nodes"].items()]
    if rows:
        totals = ["all"] + [sum(c[key] for c in report["nodes"].values()) for key, _ in NODE_COLUMNS]
        rows.append(totals)
    out.write("Per node (frames: good CRC, duplicates excluded; lost: sequence gaps; bad UTC: TIME messages\n"
              "outside %s, not used; no UTC: messages before a usable TIME message since a restart)\n" % PLAUSIBLE_YEARS)
    out.write((_table(header, rows) if rows else "  (no node seen)") + "\n\n")
    out.write("Link (the whole capture; CRC failures and skipped bytes cannot be told apart by node)\n")
    out.write(_table(["counter", "count"], [[label, report["link"][key]] for key, label in LINK_ROWS]) + "\n\n")


def _print_summary(report, out):
    link = report["link"]
    if report["tables"]:
        parts = ["%s (%d rows)" % (t["file"], t["rows"]) for t in report["tables"].values()]
        where = report["out_dir"]
        out.write("decoded %d messages from %d node(s) into %s: %s\n" % (link["frames"], len(report["nodes"]), where, ", ".join(parts)))
    else:
        out.write("no messages to write: %d frame(s) with a good CRC, none of a known type and length\n"
                  % sum(c["frames"] for c in report["nodes"].values()))
    without = [(nid, c["epochs_without_utc"]) for nid, c in report["nodes"].items() if c["messages_without_utc"]]
    if report["tables"] and report["rows_without_utc"]:
        where = "; ".join("node %s epoch %s" % (nid, ", ".join(map(str, epochs))) for nid, epochs in without)
        out.write("note: %d row(s) have no UTC, their node not (yet) anchored by a plausible TIME message (%s): "
                  "their time is empty, node_time_s is there\n" % (report["rows_without_utc"], where))
    bad = sum(c["implausible_utc"] for c in report["nodes"].values())
    if bad:
        out.write("note: %d TIME message(s) with an implausible UTC (outside %s) anchored nothing; "
                  "see time.plausible\n" % (bad, PLAUSIBLE_YEARS))
    if link["bad_frames"] or link["bytes_skipped"]:
        out.write("skipped %d bytes in %d bad frame(s); --stats for details\n" % (link["bytes_skipped"], link["bad_frames"]))
