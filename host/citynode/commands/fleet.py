"""`citynode fleet [--store TARGET] [--since -24h] [--json]` and `citynode fleet report -o DIR`.

One row per node from the store (citynode.fleet.health): last seen, uplink,
frames lost, drops, free heap, error counters, versions, calibration, QC pass
rate and plain warnings. `report` writes the same table and per-node plots as
a static HTML page (citynode.fleet.report). The store is only read.
"""

import argparse
import json
import os
import re

from citynode.errors import UsageError

PIPE_WIDTH = 240  # a pipe or a file has no width: room for every column


def _window_and_thresholds(parser, default):
    """The options both `fleet` and `fleet report` take; `default` is SUPPRESS on the
    subcommand so that `fleet --since -7d report` and `fleet report --since -7d` both work."""
    from citynode.fleet.health import Thresholds

    t = Thresholds()
    # `--since -24h`: argparse takes a value that starts with "-" for an option unless it
    # looks like a negative number; teach it that -24h, -30m and -7d are values too
    parser._negative_number_matcher = re.compile(r"^-\d+(\.\d+)?[smhdw]?$|^-\.\d+$")

    def d(value):
        return argparse.SUPPRESS if default is argparse.SUPPRESS else value

    parser.add_argument("--store", metavar="TARGET", default=d(None),
                        help="a store folder or a postgresql:// URL (default: the local store folder)")
    parser.add_argument("--since", metavar="WHEN", default=d("-24h"),
                        help="window start: -24h, -30m, -7d or a UTC time (default: -24h)")
    parser.add_argument("--silent-after", type=float, metavar="S", default=d(t.silent_min_s),
                        help="silent: no frame for S seconds, and for %g of the node's usual gaps "
                        "(default: %g)" % (t.silent_periods, t.silent_min_s))
    parser.add_argument("--stale-days", type=float, metavar="DAYS", default=d(t.stale_calibration_days),
                        help="stale calibration: in force for longer (default: %g)" % t.stale_calibration_days)
    parser.add_argument("--min-app", type=_version, metavar="X.Y.Z", default=d(None),
                        help="old firmware: app below this (default: below the newest in the fleet)")
    parser.add_argument("--qc-min", type=float, metavar="SHARE", default=d(t.qc_pass_min),
                        help="QC failing: less than this share of climate rows passes (default: %g)" % t.qc_pass_min)


def _version(text):
    from citynode.fleet.health import parse_version

    try:
        return parse_version(text)
    except ValueError:
        raise argparse.ArgumentTypeError("%r is not a version like 1.4.0" % text)


def add_arguments(parser):
    _window_and_thresholds(parser, None)
    parser.add_argument("--json", action="store_true", help="print JSON instead of a table")
    sub = parser.add_subparsers(dest="action", metavar="ACTION")
    report = sub.add_parser("report", help="write a static HTML page: the fleet table and per-node plots")
    report.add_argument("-o", "--output", required=True, metavar="DIR", help="the report's folder")
    _window_and_thresholds(report, argparse.SUPPRESS)


def open_fleet_store(target):
    """The store to read; UsageError (one line) for a target that names no store."""
    from citynode.fleet import store

    if target is not None and not target.startswith(("postgresql://", "postgres://")):
        if "://" in target:
            shown = re.sub(r"(://[^/@:]*):[^/@]*@", r"\1:***@", target)  # never a password
            raise UsageError("--store %s: give a store folder or a postgresql:// URL" % shown)
    if target is None or "://" not in target:
        folder = os.path.expanduser(target) if target else store.default_folder()
        if not os.path.isdir(folder):
            raise UsageError("no store at %s (`citynode collect` makes one; --store names another)" % folder)
    return store.open_store(target, create=False)


def run(args):
    from citynode.fleet import when
    from citynode.fleet.health import Thresholds, fleet_health

    now = when.now_us()
    since = when.parse(args.since, now)
    if since >= now:
        raise UsageError("--since %s: the window must start before now" % args.since)
    for name in ("silent_after", "stale_days", "qc_min"):
        if getattr(args, name) < 0:
            raise UsageError("--%s %g: must not be negative" % (name.replace("_", "-"), getattr(args, name)))
    thresholds = Thresholds(silent_min_s=args.silent_after, stale_calibration_days=args.stale_days,
                            qc_pass_min=args.qc_min, min_app=args.min_app)
    if args.action == "report":
        from citynode.fleet.report import check_output, write_report

        check_output(args.output)
        with open_fleet_store(args.store) as store:
            rows, files = write_report(store, args.output, since, now, thresholds)
        print("wrote %s: %s, %d with warnings, %s" % (
            os.path.join(args.output, "index.html"), _count(len(rows), "node"), sum(1 for h in rows if h.warnings),
            _count(len(files), "plot")))
        return 0
    with open_fleet_store(args.store) as store:
        rows = fleet_health(store, since, now, thresholds)
    if args.json:
        print(json.dumps({"since": when.iso(since), "now": when.iso(now), "thresholds": thresholds.as_json(),
                          "nodes": [h.as_json() for h in rows]}, indent=2))
    else:
        print_table(rows, now)
    return 0


def _count(n, word):
    return "%d %s%s" % (n, word, "" if n == 1 else "s")


def print_table(rows, now_us, console=None):
    """A rich table, warnings in red; plain text (no colours, full width) when not a terminal."""
    from rich.console import Console
    from rich.table import Table
    from rich.text import Text

    from citynode.fleet.report import HEADERS, cells

    if console is None:
        console = Console()
        if not console.is_terminal:
            console = Console(width=PIPE_WIDTH)
    if not rows:
        console.print("no nodes in the store yet")
        return
    table = Table(box=None, pad_edge=False)
    for header in HEADERS:
        table.add_column(header, style="bold red" if header == "warnings" else None)
    for h in rows:
        table.add_row(*[Text(c) for c in cells(h, now_us)], style="yellow" if h.warnings else None)
    console.print(table)
