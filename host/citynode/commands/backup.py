"""`citynode backup --port P -o DIR`: save the node's config and calibration, with hashes."""

import json

from citynode.commands.common import add_port_argument, port_of
from citynode.errors import UsageError


def add_arguments(parser):
    add_port_argument(parser)
    parser.add_argument("-o", "--output", required=True, metavar="DIR", help="new folder for the backup")
    parser.add_argument("--json", action="store_true", help="print the manifest as JSON")


def run(args):
    from citynode import backups, node_files, serial_link

    args.port = port_of(args)
    backups.check_folder(args.output)  # a bad destination stops us before the node is touched
    with serial_link.raw_repl(args.port) as transport:
        files = node_files.read(transport)
    serial_link.set_clock_when_app_answers(args.port)  # the restarted app's frames carry UTC
    if "config.json" not in files and "calib.json" not in files:
        raise UsageError("the node on %s has no config.json and no calib.json: nothing to back up" % args.port)
    manifest = backups.save(args.output, files, node_files.identity(files))
    if args.json:
        print(json.dumps(dict(manifest, folder=str(args.output), port=args.port), indent=2, sort_keys=True))
        return 0
    for name, meta in sorted(manifest["files"].items()):
        note = "" if meta["status"] == "ok" else "  WARNING: the node would not load it (%s)" % meta["status"]
        print("%-16s %6d bytes  sha256 %s%s" % (name, meta["size"], meta["sha256"][:16], note))
    ident = manifest["node"]
    print("node %s backed up to %s (files readable by you only: the config holds secrets)"
          % (ident.get("node_id"), args.output))
    return 0
