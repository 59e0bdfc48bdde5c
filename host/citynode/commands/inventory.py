"""`citynode inventory`: list, show, export and edit the node inventory."""

import json
import sys

from citynode.errors import UsageError
from citynode.inventory import COLUMNS, EXPORTERS, FIELDS, Inventory, add_argument, calibration_words

_TABLE_FIELDS = ("node_id", "mac", "chip", "micropython", "app_version", "calibration", "sensors", "site",
                 "recorded_at", "result")
PIPE_WIDTH = 240  # a pipe or a file has no width: room for every column


def add_arguments(parser):
    add_argument(parser)
    parser.add_argument("--json", action="store_true", help="list/show: print JSON instead of a table")
    sub = parser.add_subparsers(dest="action", metavar="ACTION")
    listing = sub.add_parser("list", help="the recorded nodes as a table (the default)")
    listing.add_argument("--json", action="store_true", default=argparse_default(), help="print JSON")
    show = sub.add_parser("show", help="one node's record and its run history")
    show.add_argument("node_id", type=int)
    show.add_argument("--json", action="store_true", default=argparse_default(), help="print JSON")
    export = sub.add_parser("export", help="every record as CSV or JSON")
    export.add_argument("--format", choices=sorted(EXPORTERS), default="csv")
    export.add_argument("-o", "--output", metavar="FILE", help="write here (default: standard output)")
    remove = sub.add_parser("remove", help="forget a node id (its run history stays)")
    remove.add_argument("node_id", type=int)
    sub.add_parser("path", help="print the inventory file's path")


def run(args):
    inv = Inventory(args.inventory)
    action = args.action or "list"
    if action == "path":
        print(inv.path)
        return 0
    if action == "export":
        text = EXPORTERS[args.format](inv.nodes())
        if args.output:
            try:
                with open(args.output, "w", encoding="utf-8", newline="") as f:
                    f.write(text)
            except OSError as exc:
                raise UsageError("cannot write %s: %s" % (args.output, exc.strerror or exc))
        else:
            sys.stdout.write(text)
        return 0
    if action == "remove":
        if not inv.remove(args.node_id):
            raise UsageError("node id %d is not in the inventory %s" % (args.node_id, inv.path))
        print("node id %d removed from %s" % (args.node_id, inv.path))
        return 0
    if action == "show":
        rec = inv.get(args.node_id)
        if rec is None:
            raise UsageError("node id %d is not in the inventory %s" % (args.node_id, inv.path))
        if args.json:
            print(json.dumps({"node": _public(rec), "runs": [_public(r, run=True) for r in inv.runs(args.node_id)]},
                             indent=2))
            return 0
        width = max(len(h) for _, _, h in COLUMNS)
        for name, _, header in COLUMNS:
            value = calibration_words(rec[name]) if name == "calibration" else rec[name]
            print("%-*s  %s" % (width, header, "-" if value is None else value))
        runs = inv.runs(args.node_id)
        print("%d run%s recorded:" % (len(runs), "" if len(runs) == 1 else "s"))
        for r in runs:
            print("  %s  %-4s  %s  %s" % (r["recorded_at"], r["result"], r["port"] or "-", r["detail"] or ""))
        return 0
    nodes = inv.nodes()
    if args.json:
        print(json.dumps([_public(r) for r in nodes], indent=2))
        return 0
    if not nodes:
        print("no nodes recorded yet in %s" % inv.path)
        return 0
    from rich.console import Console
    from rich.table import Table

    headers = dict((n, h) for n, _, h in COLUMNS)
    table = Table(box=None, pad_edge=False)
    for f in _TABLE_FIELDS:
        table.add_column(headers[f])
    for rec in nodes:
        cells = dict(rec, calibration=calibration_words(rec["calibration"]))
        table.add_row(*["-" if cells[f] is None else str(cells[f]) for f in _TABLE_FIELDS])
    console = Console()
    if not console.is_terminal:
        console = Console(width=PIPE_WIDTH)
    console.print(table)
    return 0


def argparse_default():
    import argparse

    return argparse.SUPPRESS  # `inventory --json list` and `inventory list --json` both work


def _public(rec, run=False):
    """A record as JSON: every field, the calibration also in words."""
    out = {f: rec.get(f) for f in FIELDS}
    if run:
        out["run"] = rec.get("run")
    out["calibration_words"] = calibration_words(rec.get("calibration"))
    return out
