"""Progress of long jobs on one or many ports: a live rich bar per port, or plain lines.

Library pipelines (flash, deploy) report `(stage, done, total)` to the
callback of `ProgressBoard.job(port)`; the board turns stages into words.
"""

import sys
import threading


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
    "ca": "writing the broker's CA",
    "provision": "writing config",
    "restart": "restarting node",
    "boot_floor": "raising the boot counter",
    "selftest": "self-test",
    "record": "recording",
}


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
