"""`citynode restore --port P DIR`: put a backup's config and calibration back on a node.

The backup is checked first (every file against its SHA-256, and in the format
the node loads); each file is written under a temp name and renamed, read back
by SHA-256, then the node restarts and must come up on the restored config.
"""

from citynode.commands.common import add_port_argument, port_of
from citynode.errors import CitynodeError


def add_arguments(parser):
    from citynode import inventory

    add_port_argument(parser)
    inventory.add_argument(parser)
    parser.add_argument("folder", metavar="DIR", help="a folder written by `citynode backup`")


def run(args):
    from citynode import provision, serial_link

    args.port = port_of(args)
    manifest, files = provision.load_backup(args.folder)  # refuses a damaged backup before touching the node
    ident = provision.node_identity(files)
    with serial_link.raw_repl(args.port) as transport:
        before = provision.node_identity(provision.read_node_files(transport))
        provision.write_node_files(transport, files)
    client, info = provision.wait_for_app(args.port)
    client.close()
    if info.get("config_fallback"):
        raise CitynodeError("restored, but the node reports a config fallback: %s" % info["config_fallback"])
    if info.get("node_id") != ident["node_id"]:
        raise CitynodeError("restored, but the node reports node id %s, not %s" % (info.get("node_id"), ident["node_id"]))
    cal = info.get("calibration") or {}
    if ident["calibration_id"] is not None and cal.get("id") != ident["calibration_id"]:
        raise CitynodeError("restored, but the node reports calibration %s, not %s"
                            % (cal.get("id"), ident["calibration_id"]))
    provision.sync_inventory(args.port, args.inventory)
    for name in sorted(files):
        print("%-16s restored (sha256 %s)" % (name, manifest["files"][name]["sha256"][:16]))
    print("node %s restored from %s (backup of %s)" % (ident["node_id"], args.folder, manifest.get("created")))
    if before["node_id"] is not None and before["node_id"] != ident["node_id"]:
        print("note: this board was node %s; it is node %s now. Record it with `citynode flash --app-only "
              "--port %s --node-id %s --force`" % (before["node_id"], ident["node_id"], args.port, ident["node_id"]))
    return 0
