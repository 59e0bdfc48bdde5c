"""`citynode reset [--port P] [--hard]`: restart the node.

Soft (the default): the MicroPython soft reset, as Ctrl-D at the REPL; the
interpreter starts afresh and runs boot.py and main.py. `--hard`: the chip
itself restarts through `machine.reset()`, as after power-on; the USB port
may go away for a moment.
"""

from citynode.commands.common import add_port_argument, link_options
from citynode.errors import CitynodeError


def add_arguments(parser):
    add_port_argument(parser, baud=True)
    parser.add_argument("--hard", action="store_true", help="restart the chip (machine.reset()), not only the interpreter")


def run(args):
    from citynode.serial_link import raw_repl

    port, baud = link_options(args)
    if not args.hard:
        with raw_repl(port, baud):  # leaving it soft-resets the node
            pass
        print("node on %s soft-reset: the app starts again" % port)
        return 0
    with raw_repl(port, baud) as transport:  # restarts the app unless the chip itself resets
        answer = transport.exec("try:\n import machine\n print(hasattr(machine, 'reset'))\n"
                                "except ImportError:\n print(False)")
        if answer.strip() != b"True":
            raise CitynodeError("node on %s has no machine.reset() (a virtual node?): "
                                "only a soft reset, without --hard" % port)
        transport.exec_raw_no_follow("import machine\nmachine.reset()")
        transport.in_raw_repl = False  # the chip is restarting: nothing more to say to it
    print("node on %s reset: the chip restarts" % port)
    return 0
