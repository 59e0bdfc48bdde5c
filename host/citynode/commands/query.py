"""`citynode query -o OUT`: rows of the store as tables, the files `citynode decode` writes.

The columns are decode's (citynode.tables), `epoch` counted from the boots in
the result, then the store's: boot, received, calibration_id, firmware
(climate: qc_flags, qc_score). The files are written in a staging folder and
moved into place only when every table is written, as decode does.
"""

import os
import re

from citynode.errors import CitynodeError, UsageError
from citynode.table_formats import FORMATS, TIME_FORMATS

TABLES = ("climate", "accel", "accel_blocks", "features", "status", "log", "time")  # fleet.schema.DATA_TABLES
_UNITS_S = {"s": 1, "m": 60, "h": 3600, "d": 86400, "w": 7 * 86400}
TIME_HELP = "ISO 8601 UTC (2026-12-07T06:00:00Z, 2026-12-07) or relative to now (-24h, -7d, -30m)"


def add_arguments(parser):
    # `--from -24h`: argparse takes what looks like a negative number for a value, not an option;
    # -24h and -7d look like one here (this parser has no option of that shape)
    parser._negative_number_matcher = re.compile(r"^-\d+(\.\d+)?[A-Za-z]*$")
    parser.add_argument("--store", metavar="TARGET",
                        help="store folder or postgresql:// URL (default: the default folder of `citynode collect`)")
    parser.add_argument("--from", dest="start", metavar="TIME", help="rows at or after TIME: " + TIME_HELP)
    parser.add_argument("--to", dest="end", metavar="TIME", help="rows before TIME")
    parser.add_argument("--node", type=int, action="append", metavar="N", help="only node N (repeat for several)")
    parser.add_argument("--table", default="all", choices=TABLES + ("all",), help="one table or all (default)")
    parser.add_argument("-o", "--out-dir", dest="out", required=True, metavar="OUT", help="folder for the tables")
    parser.add_argument("--format", default="csv", choices=FORMATS, help="table format (default csv)")
    parser.add_argument("--time-format", choices=TIME_FORMATS,
                        help="how CSV and JSONL write UTC: iso (default) or epoch-us; Parquet has a timestamp type")


def parse_time(text, now_us=None):
    """µs since 1970 of an ISO 8601 UTC time or a time relative to now (-24h); UsageError if neither."""
    import datetime
    import time

    relative = re.fullmatch(r"\s*-\s*(\d+(?:\.\d+)?)\s*([smhdw])\s*", text)
    if relative:
        now_us = time.time_ns() // 1000 if now_us is None else now_us
        return now_us - round(float(relative.group(1)) * _UNITS_S[relative.group(2)] * 1_000_000)
    try:
        when = datetime.datetime.fromisoformat(text.strip())
    except ValueError:
        raise UsageError("bad time %r: give %s" % (text, TIME_HELP)) from None
    if when.tzinfo is None:
        if len(text.strip()) > 10:  # a date and time with no zone: local or UTC? say it
            raise UsageError("bad time %r: give the time zone (2026-12-07T06:00:00Z)" % text)
        when = when.replace(tzinfo=datetime.timezone.utc)
    epoch = datetime.datetime(1970, 1, 1, tzinfo=datetime.timezone.utc)
    return (when - epoch) // datetime.timedelta(microseconds=1)


def run(args):
    import signal

    from citynode.commands.common import interrupt_on

    if args.time_format is not None and args.format == "parquet":
        raise UsageError("--time-format is for csv and jsonl; parquet times are a timestamp type")
    start = parse_time(args.start) if args.start else None
    end = parse_time(args.end) if args.end else None
    if start is not None and end is not None and end <= start:
        raise UsageError("--to must be after --from")
    try:
        from citynode.fleet.query_rows import decode_rows, output_columns
        from citynode.fleet.store import open_store
        from citynode.tables import StagedDir, TableSet
    except ImportError as exc:
        raise CitynodeError("citynode query needs pyarrow and duckdb (%s): pip install 'citynode[fleet]'" % exc) from None

    tables = TABLES if args.table == "all" else (args.table,)
    with open_store(args.store, create=False) as store, interrupt_on(signal.SIGTERM, signal.SIGHUP):
        results = {}
        for name in tables:  # read everything first: a store error leaves no output folder
            rows = store.query(name, start=start, end=end, nodes=args.node)
            if rows.num_rows:
                results[name] = rows
        where = store.target
    if not results:
        print("no rows in %s for that time range and those nodes; nothing written" % where)
        return 0
    try:
        staged = StagedDir(args.out)
    except OSError as exc:
        raise CitynodeError("cannot create output folder %s: %s" % (args.out, exc.strerror or exc)) from None
    out = TableSet(staged.path, args.format, args.time_format or "iso", columns=output_columns)
    try:
        for name, rows in results.items():
            out.append({name: decode_rows(name, rows)})
        out.close()
        staged.commit(out.files())
    except OSError as exc:
        _abort(staged, out)
        raise CitynodeError("cannot write tables to %s: %s" % (exc.filename or args.out, exc.strerror or exc)) from None
    except BaseException:
        _abort(staged, out)
        raise
    parts = ["%s (%d rows)" % (os.path.basename(out.path(name)), out.rows[name]) for name in results]
    print("%d table(s) from %s into %s: %s" % (len(parts), where, args.out, ", ".join(parts)))
    return 0


def _abort(staged, out):
    try:
        out.close()
    except Exception:  # the original error is the one to report
        pass
    finally:
        staged.abort()
