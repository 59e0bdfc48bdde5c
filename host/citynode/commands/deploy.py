"""`citynode deploy --port P`: install the app, compiled for the node, copying only what changed."""

import json

from citynode import deploy, serial_link
from citynode.commands.common import add_port_argument, port_of
from citynode.errors import UsageError
from citynode.progress import ProgressBoard


def add_arguments(parser):
    add_port_argument(parser, many=False)
    parser.add_argument("--full", action="store_true", help="send every file, even those already on the node")
    parser.add_argument("--source", action="store_true", help="send .py source files instead of compiled .mpy")
    parser.add_argument("--romfs", action="store_true",
                        help="put the app's packages in the node's ROM partition (a ROMFS image): their code then "
                             "runs from flash, not the heap; needs a MicroPython >= 1.25 built with one")
    parser.add_argument("--json", action="store_true", help="print the result as JSON")
    parser.add_argument("--plain", action="store_true", help="plain progress lines instead of a live bar")


def run(args):
    import time

    from citynode.inventory import utc_iso

    port = port_of(args)
    if args.romfs and args.source:
        raise UsageError("--romfs holds compiled .mpy files: not with --source")
    started_at = utc_iso(time.time())
    with ProgressBoard(plain=args.plain or args.json, quiet=args.json) as board:
        progress = deploy.byte_progress(board.job(port))
        result = deploy.deploy_port(port, full=args.full, progress=progress, source_only=args.source, romfs=args.romfs)
        serial_link.set_clock_when_app_answers(port)  # the restarted app's frames carry UTC
        board.finish(port, True, result.summary())
    if args.json:
        print(json.dumps(dict(result_dict(result), port=port, started_at=started_at,
                              ended_at=utc_iso(time.time())), indent=2))
    else:
        if result.build.note:
            print("note: " + result.build.note)
        print("%s: %s" % (port, result.summary()))
    return 0


def result_dict(result):
    b = result.build
    return {
        "changed": result.changed,
        "app_version": b.app_version,
        "app_hash": b.fingerprint,
        "mpy": b.mpy,
        "compiled": b.compiled,
        "note": b.note,
        "files": len(b.files),
        "sent": result.sent,
        "removed": result.removed,
        "wire_bytes": result.wire_bytes,
        "bundle_bytes": result.bundle_bytes,
        "seconds": round(result.seconds, 3),
        "micropython": result.facts.get("micropython"),
        "platform": result.facts.get("platform"),
    }
