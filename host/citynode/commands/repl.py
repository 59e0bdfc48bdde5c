"""`citynode repl [--port P]`: the node's MicroPython REPL in this terminal, as `mpremote repl`.

The app is interrupted and the terminal handed over (mpremote's console and
loop): what you type goes to the node, what it prints comes here. Ctrl-]
(or Ctrl-X) leaves; the node is then soft-reset so its app runs again, unless
--no-restart leaves it at the prompt.
"""

import sys

from citynode.commands.common import add_port_argument, link_options
from citynode.errors import UsageError


def add_arguments(parser):
    add_port_argument(parser, baud=True)
    parser.add_argument("--no-restart", action="store_true",
                        help="leave the node at the REPL on exit instead of restarting its app")


class _Session:
    """What mpremote's REPL loop reads from its `state`: the transport."""

    def __init__(self, transport):
        self.transport = transport


def run(args):
    from mpremote.console import Console
    from mpremote.repl import do_repl_main_loop

    from citynode.serial_link import raw_repl

    if not sys.stdin.isatty():
        raise UsageError("repl needs a terminal, and standard input is not one "
                         "(for scripts: `citynode exec CODE` or `citynode exec -`)")
    port, baud = link_options(args)
    with raw_repl(port, baud, restart_app=False) as transport:
        transport.exit_raw_repl()
        transport.serial.write(b"\r")  # a fresh prompt to start from
        print("connected to MicroPython on %s; Ctrl-] leaves%s" % (
            port, "" if args.no_restart else " and restarts the app"), flush=True)
        console = Console()
        console.enter()
        try:
            gone = do_repl_main_loop(_Session(transport), console, console.write, escape_non_printable=False,
                                     code_to_inject=None, file_to_inject=None)
        finally:
            console.exit()
        if gone:
            print("\ncitynode: node on %s went away" % port, file=sys.stderr)
            return 1
        if not args.no_restart:
            transport.serial.write(b"\x03\x04")  # clear the line, then soft reset: the app runs again
            transport.serial.flush()
    print()
    return 0
