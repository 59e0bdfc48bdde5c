"""What every `citynode` command shares: the port and baud options, the broker options, output
paths, signals.

A command that talks to one node calls `add_port_argument(parser)` in its
`add_arguments` and `port_of(args)` (or `link_options(args)` with `baud=True`)
in its `run`: the option, its defaults (the environment, then the only board
or virtual node plugged in) and its error are written here once. A command
that talks to nodes through the broker calls `add_broker_arguments(parser)`.
"""

import contextlib
import os
import signal
import sys
import threading

from citynode.errors import UsageError

PORT_ENV = "CITYNODE_PORT"
BAUD_ENV = "CITYNODE_BAUD"
HOW_TO_GIVE_A_PORT = "give --port PORT or set %s (`citynode ports` lists them)" % PORT_ENV


def add_port_argument(parser, many=False, baud=False):
    """--port (repeatable when `many`), defaulting from $CITYNODE_PORT, then from the
    only board or virtual node found; --baud too when `baud`."""
    parser.add_argument(
        "--port", "-p", action="append" if many else "store", metavar="PORT", default=None,
        help="serial port or pyserial URL of the node%s (default: $%s, else the only ESP32 board "
        "or virtual node found)" % (", repeat for several" if many else "", PORT_ENV),
    )
    if baud:
        from citynode.serial_link import DEFAULT_BAUD

        parser.add_argument("--baud", type=int, help="baud rate (default: $%s or %d)" % (BAUD_ENV, DEFAULT_BAUD))


def found_ports():
    """[(port, what)] of the boards that look like ESP32s and the running virtual nodes."""
    from citynode.ports import esp32_ports
    from citynode.sim_registry import virtual_ports

    return [(p, "ESP32 board") for p in esp32_ports()] + [(p, "virtual node") for p in virtual_ports()]


def only_port(found=None):
    """The one port when exactly one board or virtual node is there, said on stderr;
    else UsageError naming what was found."""
    found = found_ports() if found is None else found
    if len(found) == 1:
        port, what = found[0]
        print("citynode: using %s, the only %s found" % (port, what), file=sys.stderr, flush=True)
        return port
    if not found:
        raise UsageError("no port: no board that looks like an ESP32 and no virtual node found; "
                         + HOW_TO_GIVE_A_PORT)
    raise UsageError("no port: %d found (%s); %s" % (
        len(found), ", ".join("%s %s" % (port, what) for port, what in found), HOW_TO_GIVE_A_PORT))


def ports_of(args):
    """The ports given with a repeatable --port, else [$CITYNODE_PORT], else the only
    board or virtual node found, else [] (the caller says what to give)."""
    ports = list(args.port or [])
    if not ports and os.environ.get(PORT_ENV):
        ports = [os.environ[PORT_ENV]]
    if not ports:
        found = found_ports()
        if len(found) == 1:
            ports = [only_port(found)]
    return ports


def port_of(args):
    """The one port of a single-node command: --port, else $CITYNODE_PORT, else the only
    board or virtual node found; UsageError naming what was found when none or several."""
    port = args.port[0] if isinstance(args.port, list) and args.port else args.port
    port = port or os.environ.get(PORT_ENV)
    return port or only_port()


def baud_of(args):
    """--baud, else $CITYNODE_BAUD, else the default; UsageError when it is not a positive number."""
    from citynode.serial_link import DEFAULT_BAUD

    baud = getattr(args, "baud", None)
    if baud is None:
        text = os.environ.get(BAUD_ENV) or str(DEFAULT_BAUD)
        try:
            baud = int(text)
        except ValueError:
            raise UsageError("%s=%r is not a number" % (BAUD_ENV, text)) from None
    if baud <= 0:
        raise UsageError("baud rate %d: must be positive" % baud)
    return baud


def link_options(args):
    """(port, baud) of a command added with `add_port_argument(parser, baud=True)`."""
    return port_of(args), baud_of(args)


def add_broker_arguments(parser):
    """--broker URL (required), --ca FILE, --prefix and --keystore: the broker, its topics and the nodes' keys."""
    from citynode import keystore

    parser.add_argument("--broker", required=True, metavar="URL", help="mqtt://[user@]host[:port] or mqtts://...")
    parser.add_argument("--ca", metavar="FILE", help="CA certificate (PEM) for mqtts://")
    parser.add_argument("--prefix", default="citynode", help="topic prefix (default: %(default)s)")
    keystore.add_argument(parser)


def check_output_path(path):
    """UsageError unless `path` can be created: its folder exists and is writable, it is no folder."""
    folder = os.path.dirname(os.path.abspath(path))
    if os.path.isdir(path):
        raise UsageError("output %s is a folder; give a file name" % path)
    if not os.path.isdir(folder):
        raise UsageError("output folder %s does not exist" % folder)
    if not os.access(folder, os.W_OK | os.X_OK):
        raise UsageError("output folder %s is not writable" % folder)


@contextlib.contextmanager
def interrupt_on(*signums):
    """Within the block these signals raise KeyboardInterrupt, as Ctrl-C does, so
    the same clean-up runs (record: SIGTERM finishes the capture). Main thread only."""
    if threading.current_thread() is not threading.main_thread():
        yield
        return

    def interrupt(signum, frame):
        raise KeyboardInterrupt

    previous = {sig: signal.signal(sig, interrupt) for sig in signums}
    try:
        yield
    finally:
        for sig, handler in previous.items():
            signal.signal(sig, handler)


def read_secret(key):
    """A secret typed without echo (or one line from a pipe): never from the command line."""
    import getpass

    if sys.stdin.isatty():
        return getpass.getpass("%s: " % key)
    return sys.stdin.readline().rstrip("\r\n")
