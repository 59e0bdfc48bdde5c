"""The host's end of a node's serial link: ports, commands and replies, live frames, raw REPL.

Ports are opened with `serial.serial_for_url`, so `/dev/ttyUSB0`, a virtual
node's `/dev/pts/N`, `loop://` and `socket://` all work the same. Raw-REPL work
goes through mpremote's transport. Every wait is bounded and ends in a
`TransportError` that says what to try.
"""

import collections
import contextlib
import errno
import random
import time

import serial

from citynode.errors import DeviceError, TransportError
from citynode_protocol import armour, messages
from citynode_protocol.decoder import Decoder

DEFAULT_BAUD = 115200
COMMAND_TIMEOUT_S = 5.0
_READ_SLICE_S = 0.05
_BACKLOG = 20000
_REPL_MARKERS = (b">>> ", b"raw REPL", b"Traceback (most recent call last)")


# A port we just closed can look busy for a moment: a process forked by another
# thread (a compiler, a virtual node's interpreter) holds a copy of our
# descriptor, and so our lock, until it execs. Retry that briefly.
BUSY_RETRY_S = 1.0


def open_serial(port, baudrate=DEFAULT_BAUD, timeout=_READ_SLICE_S, exclusive=True):
    """Open a port or URL; turn the usual failures into one clear line."""
    kwargs = {"baudrate": baudrate, "timeout": timeout, "write_timeout": 10}
    if not port.startswith(("loop://", "socket://", "rfc2217://", "spy://")):
        kwargs["exclusive"] = exclusive
    deadline = time.monotonic() + BUSY_RETRY_S
    while True:
        try:
            return serial.serial_for_url(port, **kwargs)
        except serial.SerialException as exc:
            words = describe_open_error(port, exc)
            if " is busy" in words and time.monotonic() < deadline:
                time.sleep(0.05)
                continue
            raise TransportError(words) from None
        except (OSError, ValueError) as exc:
            raise TransportError("cannot open %s: %s" % (port, exc)) from None


def describe_open_error(port, exc):
    code = getattr(exc, "errno", None)
    text = str(exc)
    if code == errno.ENOENT or "No such file" in text or "could not open port" in text and "[Errno 2]" in text:
        return "no such port %s (is the board plugged in? `citynode ports` lists ports)" % port
    if code in (errno.EBUSY, errno.EAGAIN) or "exclusively lock" in text or "[Errno 16]" in text:
        return "port %s is busy: another program has it open (close it and retry)" % port
    if code == errno.EACCES or "[Errno 13]" in text:
        return "permission denied on %s (add your user to the dialout group)" % port
    return "cannot open %s: %s" % (port, text)


class NodeClient:
    """Talks to the citynode app on a node: armoured commands out, frames in."""

    def __init__(self, port, baudrate=DEFAULT_BAUD, timeout=COMMAND_TIMEOUT_S, link=None):
        self.port = port
        self.timeout = timeout
        self.serial = link if link is not None else open_serial(port, baudrate)
        self.decoder = Decoder()
        self.backlog = collections.deque(maxlen=_BACKLOG)
        self._tail = b""
        self._next_id = random.randint(1, 0xFFF0)
        self.on_bytes = None

    @property
    def stats(self):
        return self.decoder.stats

    def close(self):
        with contextlib.suppress(Exception):
            self.serial.close()

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        self.close()

    def _pump(self):
        """Read what is waiting (at most one short wait); return decoded messages."""
        try:
            waiting = self.serial.in_waiting
            data = self.serial.read(max(1, waiting))
        except (serial.SerialException, OSError) as exc:
            raise TransportError("link to %s lost: %s" % (self.port, exc)) from None
        if not data:
            return []
        self._tail = (self._tail + data)[-512:]
        if self.on_bytes is not None:
            self.on_bytes(data)
        return self.decoder.feed(data)

    def _write(self, data):
        try:
            self.serial.write(data)
            self.serial.flush()
        except (serial.SerialException, OSError) as exc:
            raise TransportError("link to %s lost: %s" % (self.port, exc)) from None

    def _request_id(self):
        self._next_id = self._next_id % 0xFFFF + 1
        return self._next_id

    def command(self, name, timeout=None, retries=2, **args):
        """Send one command and return its reply body; DeviceError on an error code."""
        timeout = self.timeout if timeout is None else timeout
        for _attempt in range(retries + 1):
            rid = self._request_id()
            self._write(armour.encode_command(rid, name, args))
            deadline = time.monotonic() + timeout
            garbled = False
            while time.monotonic() < deadline and not garbled:
                for m in self._pump():
                    if m.name == "reply" and m["request_id"] == rid:
                        return self._reply_body(name, m)
                    if m.name == "reply" and m["request_id"] == 0 and m["code"] == messages.ERR_BAD_LINE:
                        garbled = True  # our line was damaged in transit: send it again
                    else:
                        self.backlog.append(m)
            if not garbled:
                break
        raise TransportError(self._no_reply_message(name, timeout))

    def _reply_body(self, name, m):
        code = m["code"]
        body = m.fields.get("body")
        if code != messages.OK:
            detail = body.get("error") if isinstance(body, dict) else None
            words = messages.reply_word(code)
            raise DeviceError("node refused %s: %s%s" % (name, words, (": " + detail) if detail else ""), code)
        return body if body is not None else {}

    def _no_reply_message(self, name, timeout):
        if any(marker in self._tail for marker in _REPL_MARKERS):
            return (
                "node on %s is at the MicroPython REPL, not running the citynode app "
                "(deploy it with `citynode deploy`, or reset the board)" % self.port
            )
        if not self.decoder.stats.bytes_in:
            return "node on %s did not answer %s within %.0f s (no bytes at all: wrong port or baud rate?)" % (
                self.port,
                name,
                timeout,
            )
        return "node on %s did not answer %s within %.0f s" % (self.port, name, timeout)

    def read_frames(self, seconds=None, stop=None):
        """Yield messages as they arrive (first any held back while waiting for replies).

        Ends after `seconds` (None: forever) or when `stop()` returns true.
        """
        deadline = None if seconds is None else time.monotonic() + seconds
        while self.backlog:
            yield self.backlog.popleft()
        while deadline is None or time.monotonic() < deadline:
            if stop is not None and stop():
                return
            for m in self._pump():
                yield m


_PROMPTS = (b">>> ", b"raw REPL; CTRL-B to exit\r\n>")


def wake_repl(port, baudrate=DEFAULT_BAUD, attempts=4):
    """Ctrl-C until the MicroPython prompt shows, with bounded waits; one clear line if it never does.

    A node that is booting (right after esptool, a deploy or a reboot) may swallow
    the first Ctrl-C or the Ctrl-A of mpremote's own sequence; waking it first
    makes that sequence meet an idle prompt. Ctrl-B also gets a node out of a raw
    REPL another tool left it in.
    """
    ser = open_serial(port, baudrate)
    seen = b""
    try:
        for attempt in range(attempts):
            ser.write(b"\r\x03" if attempt % 2 == 0 else b"\r\x02\r\x03")
            ser.flush()
            deadline = time.monotonic() + 0.3 * (attempt + 1)
            while time.monotonic() < deadline:
                try:
                    data = ser.read(max(1, ser.in_waiting))
                except (serial.SerialException, OSError) as exc:
                    raise TransportError("link to %s lost: %s" % (port, exc)) from None
                seen = (seen + data)[-512:]
                if seen.endswith(_PROMPTS):
                    return
    finally:
        ser.close()
    raise TransportError(
        "could not enter raw REPL on %s: no MicroPython prompt after Ctrl-C%s (is it a "
        "MicroPython board? unplug and replug it, close other programs on the port)"
        % (port, "" if seen else ", no bytes at all")
    )


@contextlib.contextmanager
def raw_repl(port, baudrate=DEFAULT_BAUD, restart_app=True, timeout=10):
    """Interrupt whatever runs, yield an mpremote SerialTransport in raw REPL.

    On exit the node is soft-reset so its app starts again (unless restart_app
    is False). Every read has a timeout: a node that never answers ends in a
    TransportError, not a hang.
    """
    from mpremote.transport import TransportError as MpremoteTransportError
    from mpremote.transport_serial import SerialTransport

    wake_repl(port, baudrate)
    deadline = time.monotonic() + BUSY_RETRY_S
    while True:
        try:
            transport = SerialTransport(port, baudrate=baudrate, timeout=1)
            break
        except MpremoteTransportError:
            if time.monotonic() < deadline:
                time.sleep(0.05)  # a forked process may hold our lock for a moment (see BUSY_RETRY_S)
                continue
            # mpremote hides the reason: open the port ourselves to get it
            open_serial(port, baudrate).close()
            raise TransportError("cannot open %s" % port) from None
    try:
        try:
            transport.enter_raw_repl(soft_reset=False, timeout_overall=timeout)
        except MpremoteTransportError:
            raise TransportError(
                "could not enter raw REPL on %s: is it a MicroPython board? "
                "(unplug and replug it; close other programs using the port)" % port
            ) from None
        yield transport
    finally:
        try:
            if transport.in_raw_repl:
                transport.exit_raw_repl()
                if restart_app:
                    transport.serial.write(b"\x04")
                    transport.serial.flush()
        except (serial.SerialException, OSError):
            pass
        close_transport(transport)


def close_transport(transport):
    """Close an mpremote transport for sure: its close() can raise while clearing
    RTS/DTR (on a pty that hung up, say) before it closes the port, and a port
    left open keeps its exclusive lock, so the next open says busy."""
    with contextlib.suppress(Exception):
        transport.close()
    with contextlib.suppress(Exception):
        transport.serial.close()

