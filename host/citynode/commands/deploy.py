"""`citynode deploy --port P`: install the app, compiled for the node, copying only what changed."""

import json
import os
import sys
import threading
import time

from citynode import deploy
from citynode.errors import UsageError

PORT_ENV = "CITYNODE_PORT"

STAGE_WORDS = {
    "check": "checking",
    "connect": "connecting",
    "erase": "erasing flash",
    "write": "writing MicroPython",
    "verify": "verifying flash",
    "mac": "reading MAC",
    "boot": "waiting for MicroPython",
    "probe": "reading the node",
    "compile": "compiling",
    "compare": "comparing files",
    "send": "sending app",
    "install": "installing files",
    "done": "done",
    "provision": "writing config",
    "restart": "restarting node",
    "selftest": "self-test",
    "record": "recording",
}


def add_port_argument(parser, many=True):
    env = os.environ.get(PORT_ENV)
    parser.add_argument(
        "--port", "-p", action="append" if many else "store", metavar="PORT",
        default=None if many else env,
        help="serial port of the node%s (default: $%s)" % (", repeat for several" if many else "", PORT_ENV),
    )


class ProgressBoard:
    """One progress line per port (rich, live), or plain lines when not on a terminal.

    `job(port)` returns a callback `(stage, done=None, total=None)` for that
    port's work; it is safe to call from the port's own thread.
    """

    def __init__(self, plain=False, quiet=False, stream=None):
        self.stream = stream or sys.stderr
        self.quiet = quiet
        self.plain = plain or not self.stream.isatty()
        self._lock = threading.Lock()
        self._tasks = {}
        self._last = {}
        self._progress = None

    def __enter__(self):
        if not self.plain and not self.quiet:
            from rich.console import Console
            from rich.progress import BarColumn, Progress, SpinnerColumn, TextColumn, TimeElapsedColumn

            self._progress = Progress(
                SpinnerColumn(),
                TextColumn("[bold]{task.fields[port]}"),
                TextColumn("{task.description}", style="cyan"),
                BarColumn(bar_width=28),
                TextColumn("{task.percentage:>3.0f}%"),
                TimeElapsedColumn(),
                console=Console(file=self.stream),
                transient=False,
            )
            self._progress.start()
        return self

    def __exit__(self, *exc):
        if self._progress is not None:
            self._progress.stop()
        return False

    def job(self, port):
        with self._lock:
            if self._progress is not None and port not in self._tasks:
                self._tasks[port] = self._progress.add_task("waiting", total=None, port=port)

        def update(stage, done=None, total=None):
            words = STAGE_WORDS.get(stage, stage)
            if self._progress is not None:
                task = self._tasks[port]
                if total:
                    self._progress.update(task, description=words, completed=done or 0, total=total)
                else:
                    self._progress.update(task, description=words, total=None)
            elif not self.quiet:
                with self._lock:
                    if self._last.get(port) != stage:
                        self._last[port] = stage
                        self.stream.write("%s: %s\n" % (port, words))
                        self.stream.flush()

        return update

    def finish(self, port, ok, words):
        if self._progress is not None:
            task = self._tasks.get(port)
            if task is not None:
                self._progress.update(task, description=("[green]" if ok else "[red]") + words,
                                      completed=1, total=1)


def elapsed(since):
    return time.monotonic() - since



def add_arguments(parser):
    add_port_argument(parser, many=False)
    parser.add_argument("--full", action="store_true", help="send every file, even those already on the node")
    parser.add_argument("--source", action="store_true", help="send .py source files instead of compiled .mpy")
    parser.add_argument("--json", action="store_true", help="print the result as JSON")
    parser.add_argument("--plain", action="store_true", help="plain progress lines instead of a live bar")


def run(args):
    port = args.port[0] if isinstance(args.port, list) else args.port
    if not port:
        raise UsageError("--port is required (or set CITYNODE_PORT); `citynode ports` lists them")
    with ProgressBoard(plain=args.plain or args.json, quiet=args.json) as board:
        progress = board.job(port)
        result = deploy.deploy_port(port, full=args.full, progress=progress, source_only=args.source)
        board.finish(port, True, result.summary())
    if args.json:
        print(json.dumps(result_dict(result), indent=2))
    else:
        if result.build.note:
            print("note: " + result.build.note)
        print("%s: %s" % (port, result.summary()))
    return 0


def result_dict(result):
    b = result.build
    return {
        "changed": result.changed,
        "app_version": b.app_version,
        "app_hash": b.fingerprint,
        "mpy": b.mpy,
        "compiled": b.compiled,
        "note": b.note,
        "files": len(b.files),
        "sent": result.sent,
        "removed": result.removed,
        "wire_bytes": result.wire_bytes,
        "bundle_bytes": result.bundle_bytes,
        "seconds": round(result.seconds, 3),
        "micropython": result.facts.get("micropython"),
        "platform": result.facts.get("platform"),
    }
