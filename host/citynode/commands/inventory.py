"""`citynode inventory`: list, show, export and edit the node inventory."""

import sys

from citynode.errors import UsageError
from citynode.inventory import COLUMNS, EXPORTERS, Inventory, add_argument

_TABLE_FIELDS = ("node_id", "mac", "chip", "micropython", "app_version", "calibration", "site",
                 "recorded_at", "result")


def add_arguments(parser):
    add_argument(parser)
    sub = parser.add_subparsers(dest="action", metavar="ACTION")
    sub.add_parser("list", help="the recorded nodes as a table (the default)")
    show = sub.add_parser("show", help="one node's record and its run history")
    show.add_argument("node_id", type=int)
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
        width = max(len(h) for _, _, h in COLUMNS)
        for name, _, header in COLUMNS:
            print("%-*s  %s" % (width, header, "-" if rec[name] is None else rec[name]))
        runs = inv.runs(args.node_id)
        print("%d run%s recorded:" % (len(runs), "" if len(runs) == 1 else "s"))
        for r in runs:
            print("  %s  %-4s  %s  %s" % (r["recorded_at"], r["result"], r["port"] or "-", r["detail"] or ""))
        return 0
    nodes = inv.nodes()
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
        table.add_row(*["-" if rec[f] is None else str(rec[f]) for f in _TABLE_FIELDS])
    Console().print(table)
    return 0
