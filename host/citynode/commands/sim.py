"""`citynode sim`: run a virtual node until interrupted; host tools open the printed port.

While it runs it is registered (citynode.sim_registry), so `citynode ports`
lists it and a command given no port finds it when it is the only node.
"""

import shutil
import signal
import sys
import tempfile
import threading
from pathlib import Path

from citynode.errors import CitynodeError
from citynode.sim_registry import registered
from citynode.virtual_node import DEFAULT_HEAP, VirtualNode


def add_arguments(parser):
    parser.add_argument(
        "--root", type=Path, metavar="DIR",
        help="folder that plays the node's flash (default: a new temporary folder, removed on exit)",
    )
    parser.add_argument(
        "--scenario", type=Path, metavar="FILE",
        help="scenario JSON for the simulated sensors; edits are picked up while running",
    )
    parser.add_argument(
        "--baud", type=int, metavar="N",
        help="throttle both directions to N/10 bytes per second, like a UART (default: unthrottled)",
    )
    parser.add_argument("--with-app", action="store_true", help="install the current firmware into the root first")
    parser.add_argument(
        "--heap", default=DEFAULT_HEAP, metavar="SIZE",
        help="MicroPython heap, e.g. 512k (default: %(default)s; the board runtime keeps about 18k of it)",
    )


def run(args):
    made_root = args.root is None
    root = Path(tempfile.mkdtemp(prefix="citynode-node-")) if made_root else args.root
    stop = threading.Event()

    def on_signal(signum, frame):
        stop.set()

    def log(line):
        print("citynode: %s" % line, file=sys.stderr, flush=True)

    old = {sig: signal.signal(sig, on_signal) for sig in (signal.SIGINT, signal.SIGTERM)}
    node = VirtualNode(root, scenario=args.scenario, baud=args.baud, heap=args.heap,
                       with_app=args.with_app, log=log)
    try:
        port = node.start()
        with registered(port, root):
            print("root: %s" % root)
            print("port: %s" % port, flush=True)
            while not stop.wait(0.5):
                if not node.alive:
                    raise CitynodeError("virtual node stopped unexpectedly")
    finally:
        node.stop()
        for sig, handler in old.items():
            signal.signal(sig, handler)
        if made_root:
            shutil.rmtree(root, ignore_errors=True)
    return 0
