"""`citynode monitor --port P [--duration S]`: live values, link statistics, a plot of acceleration.

On a terminal: a rich live view (monitor_view.render). Otherwise one line per
message (monitor_view.message_line), so the output can be piped, grepped and
tested. Both end with a line of link statistics; Ctrl-C, or `q` typed on the
terminal, ends a monitor without --duration normally.

Like `record`, it starts from what the node sends now: the node's clock is set
and what it had buffered while nobody read is dropped (NodeClient.fresh_start);
a node that does not answer is shown anyway, with a note that older data may
come first.
"""

import contextlib
import os
import select
import sys
import time

from citynode import monitor_view
from citynode.commands.common import add_port_argument, link_options
from citynode.errors import TransportError, UsageError
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
    keys = QuitKey(sys.stdin.fileno()) if sys.stdin.isatty() else None
    with keys or contextlib.nullcontext():
        monitor(port, baudrate=baud, duration=args.duration, window_s=args.window, console=console, keys=keys)
    return 0


class QuitKey:
    """`q` typed on a terminal: stdin in cbreak mode (no echo, no Enter needed, Ctrl-C still
    works) while the monitor runs, restored after."""

    def __init__(self, fd):
        self.fd = fd
        self._saved = None

    def __enter__(self):
        import termios
        import tty

        self._saved = termios.tcgetattr(self.fd)
        tty.setcbreak(self.fd)
        return self

    def __exit__(self, *exc):
        import termios

        termios.tcsetattr(self.fd, termios.TCSADRAIN, self._saved)

    def pressed(self):
        """True once q (or Q) was typed; other keys are ignored."""
        while select.select([self.fd], [], [], 0)[0]:
            ch = os.read(self.fd, 1)
            if not ch:
                return False  # the terminal went away
            if ch in (b"q", b"Q"):
                return True
        return False


def monitor(port, baudrate=DEFAULT_BAUD, duration=None, window_s=monitor_view.DEFAULT_WINDOW_S,
            console=None, out=None, keys=None, answer_timeout=None):
    """Run the monitor; a rich live view on `console`, else lines to `out` (stdout).

    keys: something with `pressed()`, true when the user asked to quit (QuitKey).
    Returns the decoder's statistics."""
    out = out or sys.stdout
    state = monitor_view.MonitorState(window_s)
    title = "citynode monitor  %s" % port
    view = None
    if console is not None:
        from rich.live import Live

        view = Live(console=console, auto_refresh=False, redirect_stderr=False)
    quit_asked = [False]

    def stop():
        if keys is not None and not quit_asked[0] and keys.pressed():
            quit_asked[0] = True
        return quit_asked[0]

    deadline = None if duration is None else time.monotonic() + duration
    with NodeClient(port, baudrate) as client, view or contextlib.nullcontext():
        try:
            if view is not None:
                state.note = "setting the node's clock and skipping what it sent before..."
                view.update(monitor_view.render(state, client.stats, title, console.width), refresh=True)
            state.older_bytes, state.note = start_fresh(client, answer_timeout)
            if state.note and view is None:
                print("citynode: " + state.note, file=sys.stderr, flush=True)
            while not stop() and (deadline is None or time.monotonic() < deadline):
                step = REFRESH_S if deadline is None else max(0.0, min(REFRESH_S, deadline - time.monotonic()))
                for m in client.read_frames(step, stop=stop):
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


def start_fresh(client, timeout=None):
    """Set the clock and drop older buffered data: (bytes dropped, a note for the user or None)."""
    try:
        dropped = client.fresh_start(timeout)
    except TransportError as exc:
        return 0, "%s: showing what comes; the first frames may be older, buffered while nobody read" % exc
    return dropped, None if client.clock_set else "the node did not take the host's clock: times are node time"
