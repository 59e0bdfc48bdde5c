"""`citynode hil [--port P] [PATTERN] [-k NAME]`: the MicroPython tests on a board, reported like pytest.

Runs the modules of tests/both and tests/firmware (those whose path matches
PATTERN, e.g. `test_cobs` or `firmware/test_drivers_*`) through
tests/mp_runner.py on the node, each in a fresh interpreter. The files go to
/hil on the node's flash, copied only when they changed; `--clean` removes
them afterwards. Exit status: the number of failed tests (at most 255).
"""

import sys
import time

from citynode.commands.common import add_port_argument, link_options
from citynode.errors import UsageError


def add_arguments(parser):
    parser.add_argument("pattern", nargs="?", metavar="PATTERN",
                        help="run only modules whose path (both/test_x.py) contains or matches this")
    add_port_argument(parser, baud=True)
    parser.add_argument("-k", dest="keyword", metavar="NAME", help="run only tests whose name contains NAME")
    parser.add_argument("--timeout", type=float, metavar="S",
                        help="give up on a module not finished within S seconds "
                             "(default: its `# mp: timeout=` line, else 300)")
    parser.add_argument("--clean", action="store_true", help="remove /hil from the node afterwards")


def run(args):
    from citynode import hil
    from citynode.serial_link import raw_repl

    if args.timeout is not None and args.timeout <= 0:
        raise UsageError("--timeout %g: must be positive" % args.timeout)
    modules = hil.select_modules(args.pattern)
    files = hil.files_for(modules)
    port, baud = link_options(args)
    started = time.monotonic()
    counts = {"PASS": 0, "FAIL": 0, "SKIP": 0}
    failures = []

    def report(result):
        counts[result.status] += 1
        print("%s %s" % (result.nodeid, hil.VERDICTS[result.status]), flush=True)
        if result.status == "FAIL":
            failures.append(result)

    with raw_repl(port, baud) as transport:
        copied, unchanged = hil.sync(transport, files)
        if any(rel.startswith("firmware/") for rel in modules):
            hil.make_scratch(transport)
        print("hil: %d module%s on %s (%d files copied to %s, %d unchanged)" % (
            len(modules), "" if len(modules) == 1 else "s", port, copied, hil.NODE_ROOT, unchanged), flush=True)
        for rel in modules:
            hil.run_module(transport, rel, args.keyword, args.timeout, report)
        if args.clean:
            hil.remove_tree(transport)
            hil.remove_scratch(transport)
    if failures:
        print("=" * 30 + " FAILURES " + "=" * 30)
        for result in failures:
            print("_" * 10 + " %s " % result.nodeid + "_" * 10)
            print(result.text)
    words = ["%d %s" % (counts[s], w) for s, w in (("FAIL", "failed"), ("PASS", "passed"), ("SKIP", "skipped"))
             if counts[s]]
    print("%s %s in %.2fs %s" % ("=" * 10, ", ".join(words) or "no tests ran", time.monotonic() - started, "=" * 10))
    sys.stdout.flush()
    return min(counts["FAIL"], 255)
