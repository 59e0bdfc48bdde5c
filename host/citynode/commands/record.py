"""`citynode record --port P [--duration S] -o CAPTURE [--json]`: the raw bytes a node sends, as they came.

The recording starts from what the node sends now: first the node's clock is
set (`NodeClient.fresh_start`), and what it had sent before, buffered while
nobody read the port, is dropped and counted. The capture begins with the
node's TIME frame, so its frames decode with UTC, and a STATUS. A node that does not answer
is recorded anyway, with a warning that older data comes first.

The bytes go to CAPTURE.part as they arrive, and nothing on that path decodes
them; the decoder runs beside it, for the progress display and the summary
only. CAPTURE.part becomes CAPTURE at the end, also after Ctrl-C, SIGTERM or a
lost link, so an interrupted recording is a complete capture of what was
received.
"""

import contextlib
import datetime
import json
import os
import signal
import sys
import time

from citynode.commands.common import add_port_argument, check_output_path, interrupt_on, link_options
from citynode.errors import CitynodeError, TransportError, UsageError
from citynode.monitor_view import link_line, lost
from citynode.serial_link import DEFAULT_BAUD, NodeClient

PROGRESS_EVERY_S = 0.25


def add_arguments(parser):
    add_port_argument(parser, baud=True)
    parser.add_argument("--duration", type=float, metavar="S", help="seconds to record (default: until Ctrl-C)")
    parser.add_argument("-o", "--output", required=True, metavar="CAPTURE", help="file for the raw bytes")
    parser.add_argument("--json", action="store_true", help="print the summary as JSON (with UTC start and end)")


def run(args):
    port, baud = link_options(args)
    if args.duration is not None and not args.duration > 0:
        raise UsageError("--duration %g: must be more than 0 seconds" % args.duration)
    check_output_path(args.output)
    progress = None
    if sys.stdout.isatty() and not args.json:
        from rich.console import Console

        progress = LiveProgress(Console(), port, args.output, args.duration)
    rec = record(port, args.output, duration=args.duration, baudrate=baud, progress=progress)
    if rec.warning:
        print("citynode: " + rec.warning, file=sys.stderr)
    if args.json:
        print(json.dumps(rec.as_json(), indent=1))
    else:
        print(rec.summary())
    if rec.seconds > 1.0 and not rec.bytes:
        print("citynode: no bytes came from %s: is the node running the citynode app, at %d baud?"
              % (port, baud), file=sys.stderr)
    # Ctrl-C is how a recording without --duration ends; with one, it cut it short.
    return 130 if rec.interrupted and args.duration is not None else 0


class Recording:
    """What a recording got: bytes written, frames by kind, seconds, the decoder's stats,
    the older bytes dropped before it, and the host's UTC at its start and end."""

    def __init__(self, port, output):
        self.port = port
        self.output = output
        self.bytes = 0
        self.frames = {}
        self.seconds = 0.0
        self.interrupted = False
        self.stats = None
        self.older_bytes = 0
        self.clock_set = False
        self.warning = None
        self.started = self.ended = None  # host UTC, s since 1970

    def as_json(self):
        stats = self.stats
        return {
            "port": self.port, "output": self.output,
            "started_utc": _iso(self.started), "ended_utc": _iso(self.ended), "seconds": round(self.seconds, 3),
            "interrupted": self.interrupted, "bytes": self.bytes, "frames": stats.frames,
            "frames_by_kind": dict(sorted(self.frames.items())), "lost": lost(stats),
            "crc_errors": stats.crc_errors, "bytes_skipped": stats.bytes_skipped,
            "older_bytes_dropped": self.older_bytes, "node_clock_set": self.clock_set,
        }

    def summary(self):
        kinds = ", ".join("%s %d" % (k, self.frames[k]) for k in sorted(self.frames))
        head = "recording interrupted after %.1f s" % self.seconds if self.interrupted else (
            "recorded %.1f s" % self.seconds)
        stats = self.stats
        text = "%s from %s into %s: %d bytes, %d frames%s, %d lost, %d CRC errors, %d bytes skipped" % (
            head, self.port, self.output, self.bytes, stats.frames, " (%s)" % kinds if kinds else "",
            lost(stats), stats.crc_errors, stats.bytes_skipped)
        if self.older_bytes:
            text += "; %d older bytes, buffered before the recording, dropped" % self.older_bytes
        return text


def _iso(t):
    if t is None:
        return None
    return datetime.datetime.fromtimestamp(t, datetime.timezone.utc).isoformat(timespec="milliseconds")[:-6] + "Z"


def start_fresh(client, rec, timeout=None):
    """Set the node's clock and drop what it buffered before (NodeClient.fresh_start); a node
    that does not answer is recorded from the first byte, with rec.warning saying so."""
    try:
        rec.older_bytes = client.fresh_start(timeout)
        rec.clock_set = client.clock_set
    except TransportError as exc:
        rec.warning = ("%s: recording anyway; its first frames may be older, buffered while nobody read, "
                       "and carry node time only" % exc)


def record(port, output, duration=None, baudrate=DEFAULT_BAUD, progress=None, answer_timeout=None):
    """Record into `output` for `duration` seconds (None: until Ctrl-C); returns a Recording.

    `progress(rec)` is called every PROGRESS_EVERY_S; answer_timeout: seconds for
    the node to answer the fresh start (default the command timeout)."""
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
        failure = None
        try:
            with f, interrupt_on(signal.SIGTERM), progress or contextlib.nullcontext():
                start_fresh(client, rec, answer_timeout)
                rec.stats = client.stats  # from the fresh start on
                start = time.monotonic()
                rec.started = time.time()
                deadline = None if duration is None else start + duration
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
            rec.ended = time.time()
            rec.stats = client.stats
            os.replace(part, output)
    if failure is not None:
        raise type(failure)("%s; the %d bytes received before are in %s" % (failure, rec.bytes, output))
    return rec


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
