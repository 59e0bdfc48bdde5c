"""A throwaway server of ours on a free loopback port, its files in a folder: what LocalBroker
(Mosquitto) and LocalPostgres share.

A subclass sets `name` (for messages), `log_path` and the timeouts, and writes
`start()`: on the first start it picks `free_port()`s and writes its files, then
it starts `self.proc` and calls `_wait_ready(ready, what)`. `stop()` ends the
process (`stop_signal`, then SIGKILL after `stop_timeout_s`), keeping its files;
`restart()` starts it again on the same ports; `close()` (or leaving the block)
stops it for good.
"""

import signal
import socket
import subprocess
import time
from pathlib import Path

from citynode.errors import CitynodeError

READY_POLL_S = 0.02
KILL_WAIT_S = 5.0


def free_port():
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


class LocalService:
    name = "service"
    start_timeout_s = 10.0
    stop_timeout_s = 5.0
    stop_signal = signal.SIGTERM
    ready_poll_s = READY_POLL_S

    def __init__(self, folder):
        self.folder = Path(folder)
        self.folder.mkdir(parents=True, exist_ok=True)
        self.port = None
        self.proc = None
        self.log_path = None

    def __enter__(self):
        self.start()
        return self

    def __exit__(self, *exc):
        self.close()

    def start(self):
        raise NotImplementedError

    def _wait_ready(self, ready, what):
        """Return once ready() is true; CitynodeError if the process exits first or the time runs out."""
        deadline = time.monotonic() + self.start_timeout_s
        while time.monotonic() < deadline:
            if self.proc.poll() is not None:
                raise CitynodeError("%s exited at start: %s" % (self.name, self._exit_reason()))
            if ready():
                return
            time.sleep(self.ready_poll_s)
        self.stop()
        raise CitynodeError("%s did not %s within %.0f s" % (self.name, what, self.start_timeout_s))

    def _exit_reason(self):
        return self._log_tail()

    def stop(self):
        if self.proc is not None and self.proc.poll() is None:
            self.proc.send_signal(self.stop_signal)
            try:
                self.proc.wait(self.stop_timeout_s)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait(KILL_WAIT_S)
        if self.proc is not None and self.proc.stderr:
            self.proc.stderr.close()
        self.proc = None

    def restart(self, down_s=0.0):
        self.stop()
        if down_s:
            time.sleep(down_s)
        return self.start()

    def close(self):
        self.stop()

    def _log_tail(self):
        try:
            return self.log_path.read_text(errors="replace").strip().splitlines()[-1]
        except (OSError, IndexError):
            return "no log"
