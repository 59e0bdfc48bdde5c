"""`citynode exec [--port P] CODE`: run Python code on the node and print its output.

The app is interrupted, the code runs in the raw REPL, and the node is
soft-reset afterwards so the app runs again. An exception on the node is one
line on stderr and exit status 1.
"""

import sys

from citynode.commands.common import add_port_argument, link_options
from citynode.errors import CitynodeError, UsageError
from citynode.node_shell import DEFAULT_EXEC_TIMEOUT_S, run_code


def add_arguments(parser):
    parser.add_argument("code", metavar="CODE", help="Python code to run on the node; - reads it from standard input")
    add_port_argument(parser, baud=True)
    parser.add_argument("--timeout", type=float, default=DEFAULT_EXEC_TIMEOUT_S, metavar="S",
                        help="give up when the code prints nothing for S seconds (default %(default)g)")


class NodeRaised(CitynodeError):
    """The code raised on the node."""


def run(args):
    from citynode.serial_link import raw_repl

    code = sys.stdin.read() if args.code == "-" else args.code
    if not code.strip():
        raise UsageError("exec: no code to run")
    if args.timeout <= 0:
        raise UsageError("--timeout %g: must be positive" % args.timeout)
    port, baud = link_options(args)
    out = sys.stdout.buffer

    def show(data):
        out.write(data)
        out.flush()

    with raw_repl(port, baud) as transport:
        error = run_code(transport, code, args.timeout, show)
    if error:
        raise NodeRaised("the node raised %s" % error)
    return 0
