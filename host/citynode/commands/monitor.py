"""`citynode monitor --port P [--duration S]`: live values, link statistics, a plot of acceleration.

On a terminal: a rich live view (monitor_view.render). Otherwise one line per
message (monitor_view.message_line), so the output can be piped, grepped and
tested. Both end with a line of link statistics; Ctrl-C ends a monitor
without --duration normally.
"""

import contextlib
import sys
import time

from citynode import monitor_view
from citynode.commands.common import add_port_argument, link_options
from citynode.errors import UsageError
from citynode.serial_link import DEFAULT_BAUD, NodeClient

REFRESH_S = 0.2  # the live view is redrawn at least this often, frames or not


def add_arguments(parser):
    add_port_argument(parser, baud=True)
    parser.add_argument("--duration", type=float, metavar="S", help="stop after S seconds (default: until Ctrl-C)")
    parser.add_argument("--window", type=float, default=monitor_view.DEFAULT_WINDOW_S, metavar="S",
                        help="seconds of acceleration in the plot (default: %(default)g)")


def run(args):
    port, baud = link_options(args)
    if args.duration is not None and not args.duration > 0:
        raise UsageError("--duration %g: must be more than 0 seconds" % args.duration)
    if not args.window > 0:
        raise UsageError("--window %g: must be more than 0 seconds" % args.window)
    console = None
    if sys.stdout.isatty():
        from rich.console import Console

        console = Console()
    monitor(port, baudrate=baud, duration=args.duration, window_s=args.window, console=console)
    return 0


def monitor(port, baudrate=DEFAULT_BAUD, duration=None, window_s=monitor_view.DEFAULT_WINDOW_S,
            console=None, out=None):
    """Run the monitor; a rich live view on `console`, else lines to `out` (stdout).

    Returns the decoder's statistics."""
    out = out or sys.stdout
    state = monitor_view.MonitorState(window_s)
    title = "citynode monitor  %s" % port
    view = None
    if console is not None:
        from rich.live import Live

        view = Live(console=console, auto_refresh=False, redirect_stderr=False)
    deadline = None if duration is None else time.monotonic() + duration
    with NodeClient(port, baudrate) as client, view or contextlib.nullcontext():
        try:
            while deadline is None or time.monotonic() < deadline:
                step = REFRESH_S if deadline is None else max(0.0, min(REFRESH_S, deadline - time.monotonic()))
                for m in client.read_frames(step):
                    state.add(m)
                    if view is None:
                        print(monitor_view.message_line(m), file=out, flush=True)
                if view is not None:
                    view.update(monitor_view.render(state, client.stats, title, console.width), refresh=True)
        except KeyboardInterrupt:
            pass  # how a monitor without --duration ends
    line = "link: " + monitor_view.link_line(client.stats)
    if view is not None:
        console.print(line)
    else:
        print(line, file=out, flush=True)
    return client.stats
