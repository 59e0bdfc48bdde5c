"""`citynode restore --port P DIR`: make a node's config and calibration match a backup.

The backup is checked first (every file against its SHA-256, and in the format
the node loads); `--dry-run` shows what would change and stops there. Files
that differ are written (temp name, rename, SHA-256 read back), files the
backup lacks are removed; the node restarts and must come up as the backup
says; the inventory follows. A node id that another board holds in the
inventory is refused without `--force`.
"""

import json

from citynode.commands.common import add_port_argument, port_of


def add_arguments(parser):
    from citynode import inventory

    add_port_argument(parser)
    inventory.add_argument(parser)
    parser.add_argument("folder", metavar="DIR", help="a folder written by `citynode backup`")
    parser.add_argument("--dry-run", action="store_true", help="show what would change on the node; change nothing")
    parser.add_argument("--force", action="store_true",
                        help="take over a node id the inventory holds for another board")
    parser.add_argument("--json", action="store_true", help="print the plan and the outcome as JSON")


def run(args):
    from citynode import restore
    from citynode.inventory import utc_iso

    args.port = port_of(args)
    plan, info = restore.restore(args.port, args.folder, args.inventory, force=args.force, dry_run=args.dry_run)
    report = plan.as_dict()
    if args.dry_run:
        report["restored"] = False
    else:
        report.update(restored=True, restored_at=utc_iso(), app_hash=info.get("app_hash"))
    _show(args, plan, report, dry=args.dry_run)
    return 0


def _show(args, plan, report, dry):
    if args.json:
        print(json.dumps(report, indent=2, sort_keys=True))
        return
    verb = {"write": "would write" if dry else "written", "remove": "would remove" if dry else "removed"}
    for name, action in plan.changes:
        print("%-16s %s" % (name, verb[action]))
    for name in report["unchanged"]:
        print("%-16s unchanged" % name)
    t = plan.target
    if dry:
        print("dry run: node %s from %s (backup of %s); %d change%s, nothing written" % (
            t["node_id"], args.folder, report["backup_created"], len(plan.changes),
            "" if len(plan.changes) == 1 else "s"))
        if plan.renumbers:
            print("this board is node %s: it would become node %s" % (plan.before["node_id"], t["node_id"]))
        if report["conflict"]:
            print("refused without --force: " + report["conflict"])
        return
    print("node %s restored from %s (backup of %s); inventory updated" % (
        t["node_id"], args.folder, report["backup_created"]))
    if plan.renumbers:
        print("note: this board was node %s; it is node %s now" % (plan.before["node_id"], t["node_id"]))
