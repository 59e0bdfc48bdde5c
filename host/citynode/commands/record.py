"""`citynode record --port P [--duration S] -o CAPTURE`: the raw bytes a node sends, as they came.

The bytes go to CAPTURE.part as they arrive, and nothing on that path decodes
them; the decoder runs beside it, for the progress display and the summary
only. CAPTURE.part becomes CAPTURE at the end, also after Ctrl-C, SIGTERM or a
lost link, so an interrupted recording is a complete capture of what was
received.
"""

import contextlib
import os
import signal
import sys
import threading
import time

from citynode.errors import CitynodeError, TransportError, UsageError
from citynode.monitor_view import link_line, lost
from citynode.serial_link import DEFAULT_BAUD, NodeClient

PROGRESS_EVERY_S = 0.25


def add_link_arguments(parser):
    """--port and --baud, defaulting from CITYNODE_PORT and CITYNODE_BAUD."""
    parser.add_argument("--port", help="serial port or pyserial URL (default: $CITYNODE_PORT)")
    parser.add_argument("--baud", type=int, help="baud rate (default: $CITYNODE_BAUD or %d)" % DEFAULT_BAUD)


def link_options(args):
    """(port, baud) from the arguments or the environment; UsageError when there is no port."""
    port = args.port or os.environ.get("CITYNODE_PORT")
    if not port:
        raise UsageError("no port: give --port PORT or set CITYNODE_PORT (`citynode ports` lists them)")
    baud = args.baud
    if baud is None:
        text = os.environ.get("CITYNODE_BAUD") or str(DEFAULT_BAUD)
        try:
            baud = int(text)
        except ValueError:
            raise UsageError("CITYNODE_BAUD=%r is not a number" % text) from None
    if baud <= 0:
        raise UsageError("baud rate %d: must be positive" % baud)
    return port, baud


def check_output_path(path):
    """UsageError unless `path` can be created: its folder exists and is writable, it is no folder."""
    folder = os.path.dirname(os.path.abspath(path))
    if os.path.isdir(path):
        raise UsageError("output %s is a folder; give a file name" % path)
    if not os.path.isdir(folder):
        raise UsageError("output folder %s does not exist" % folder)
    if not os.access(folder, os.W_OK | os.X_OK):
        raise UsageError("output folder %s is not writable" % folder)


def add_arguments(parser):
    add_link_arguments(parser)
    parser.add_argument("--duration", type=float, metavar="S", help="seconds to record (default: until Ctrl-C)")
    parser.add_argument("-o", "--output", required=True, metavar="CAPTURE", help="file for the raw bytes")


def run(args):
    port, baud = link_options(args)
    if args.duration is not None and not args.duration > 0:
        raise UsageError("--duration %g: must be more than 0 seconds" % args.duration)
    check_output_path(args.output)
    progress = None
    if sys.stdout.isatty():
        from rich.console import Console

        progress = LiveProgress(Console(), port, args.output, args.duration)
    rec = record(port, args.output, duration=args.duration, baudrate=baud, progress=progress)
    print(rec.summary())
    if rec.seconds > 1.0 and not rec.bytes:
        print("citynode: no bytes came from %s: is the node running the citynode app, at %d baud?"
              % (port, baud), file=sys.stderr)
    # Ctrl-C is how a recording without --duration ends; with one, it cut it short.
    return 130 if rec.interrupted and args.duration is not None else 0


class Recording:
    """What a recording got: bytes written, frames by kind, seconds, the decoder's stats."""

    def __init__(self, port, output):
        self.port = port
        self.output = output
        self.bytes = 0
        self.frames = {}
        self.seconds = 0.0
        self.interrupted = False
        self.stats = None

    def summary(self):
        kinds = ", ".join("%s %d" % (k, self.frames[k]) for k in sorted(self.frames))
        head = "recording interrupted after %.1f s" % self.seconds if self.interrupted else (
            "recorded %.1f s" % self.seconds)
        stats = self.stats
        return "%s from %s into %s: %d bytes, %d frames%s, %d lost, %d CRC errors, %d bytes skipped" % (
            head, self.port, self.output, self.bytes, stats.frames, " (%s)" % kinds if kinds else "",
            lost(stats), stats.crc_errors, stats.bytes_skipped)


def record(port, output, duration=None, baudrate=DEFAULT_BAUD, progress=None):
    """Record into `output` for `duration` seconds (None: until Ctrl-C); returns a Recording.

    `progress(rec)` is called every PROGRESS_EVERY_S."""
    part = output + ".part"
    rec = Recording(port, output)
    with NodeClient(port, baudrate) as client:
        rec.stats = client.stats
        try:
            f = open(part, "wb")
        except OSError as exc:
            raise UsageError("cannot write %s: %s" % (part, exc.strerror or exc)) from None

        def write(data):
            f.write(data)
            rec.bytes += len(data)

        client.on_bytes = write
        start = time.monotonic()
        deadline = None if duration is None else start + duration
        failure = None
        try:
            with f, interrupt_on(signal.SIGTERM), progress or contextlib.nullcontext():
                while deadline is None or time.monotonic() < deadline:
                    step = PROGRESS_EVERY_S if deadline is None else min(PROGRESS_EVERY_S, deadline - time.monotonic())
                    for m in client.read_frames(max(0.0, step)):
                        rec.frames[m.name] = rec.frames.get(m.name, 0) + 1
                    rec.seconds = time.monotonic() - start
                    if progress is not None:
                        progress(rec)
        except KeyboardInterrupt:
            rec.interrupted = True
        except TransportError as exc:
            failure = exc
        except OSError as exc:  # the capture's disk, not the link
            failure = CitynodeError("cannot write %s: %s" % (part, exc.strerror or exc))
        finally:
            client.on_bytes = None
            rec.seconds = time.monotonic() - start
            os.replace(part, output)
    if failure is not None:
        raise type(failure)("%s; the %d bytes received before are in %s" % (failure, rec.bytes, output))
    return rec


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


class LiveProgress:
    """Progress on a terminal: a rich Live panel, refreshed from the recording loop."""

    def __init__(self, console, port, output, duration):
        self.console = console
        self.port = port
        self.output = output
        self.duration = duration
        self.live = None

    def __enter__(self):
        from rich.live import Live

        self.live = Live(console=self.console, auto_refresh=False, transient=True)
        self.live.__enter__()
        return self

    def __exit__(self, *exc):
        self.live.__exit__(*exc)

    def __call__(self, rec):
        self.live.update(self.renderable(rec), refresh=True)

    def renderable(self, rec):
        from rich.console import Group
        from rich.text import Text

        head = Text("recording %s → %s   " % (self.port, self.output), style="bold")
        if self.duration:
            head.append("%.1f / %.1f s" % (rec.seconds, self.duration))
        else:
            head.append("%.1f s (Ctrl-C to stop)" % rec.seconds)
        rate = rec.bytes / rec.seconds if rec.seconds > 0 else 0.0
        kinds = " · ".join("%s %d" % (k, rec.frames[k]) for k in sorted(rec.frames)) or "none yet"
        parts = [head]
        if self.duration:
            done = int(round(50 * min(1.0, rec.seconds / self.duration)))
            bar = Text("━" * done, style="green")
            bar.append("━" * (50 - done), style="dim")
            parts.append(bar)
        parts.append(Text("%d bytes (%.0f B/s)   frames: %s" % (rec.bytes, rate, kinds)))
        parts.append(Text("link: " + link_line(rec.stats)))
        return Group(*parts)
