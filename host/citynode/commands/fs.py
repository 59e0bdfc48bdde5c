"""`citynode fs ls [PATH]` and `citynode fs cat PATH`: the node's files, read through the raw REPL.

The node is soft-reset afterwards so its app runs again.
"""

import sys

from citynode.commands.common import add_port_argument, link_options
from citynode.errors import UsageError


def add_arguments(parser):
    sub = parser.add_subparsers(dest="action", metavar="ACTION")
    ls = sub.add_parser("ls", help="list a folder on the node (default: /)")
    ls.add_argument("path", nargs="?", default="/", metavar="PATH")
    add_port_argument(ls, baud=True)
    cat = sub.add_parser("cat", help="print a file on the node")
    cat.add_argument("path", metavar="PATH")
    add_port_argument(cat, baud=True)
    parser.set_defaults(action=None)


def run(args):
    from citynode import node_shell
    from citynode.serial_link import raw_repl

    if args.action is None:
        raise UsageError("fs ls|cat: say which (`citynode fs ls`, `citynode fs cat /config.json`)")
    port, baud = link_options(args)
    with raw_repl(port, baud) as transport:
        if args.action == "ls":
            entries = node_shell.list_dir(transport, args.path)
        else:
            data = node_shell.read_file(transport, args.path)
    if args.action == "cat":
        sys.stdout.buffer.write(data)
        sys.stdout.flush()
        return 0
    for name, folder, size in entries:
        print("%10s  %s" % ("-" if folder else size, name + ("/" if folder else "")))
    return 0
