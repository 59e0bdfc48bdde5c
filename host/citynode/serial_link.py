"""The host's end of a node's serial link: ports, commands and replies, live frames, raw REPL.

Ports are opened with `serial.serial_for_url`, so `/dev/ttyUSB0`, a virtual
node's `/dev/pts/N`, `loop://` and `socket://` all work the same. Raw-REPL work
goes through mpremote's transport. Every wait is bounded and ends in a
`TransportError` that says what to try.

Commands survive a noisy link: a line the node answers as garbled (code 1),
or does not answer, is sent again with the same request id until the
command's deadline. The node applies a change once per request id and answers
a repeat from memory (SPEC.md §7), so only `reboot`, which the node forgets by
resetting, is never resent after silence.

A session sets the node's clock (`set_time`) before its first command, so the
frames it decodes carry UTC; `fresh_start()` also drops what the node sent
before, while nobody read.
"""

import collections
import contextlib
import errno
import os
import random
import stat
import time

import serial

from citynode.errors import DeviceError, TransportError
from citynode_protocol import armour, messages, wire
from citynode_protocol.decoder import Decoder

DEFAULT_BAUD = 115200
COMMAND_TIMEOUT_S = 5.0
RESEND_AFTER_S = 1.0  # this long without a reply, a line is sent again
MAX_ATTEMPTS = 16  # lines sent for one command, within its deadline
NOT_RESENT_AFTER_SILENCE = ("reboot",)  # the node forgets its replies when it resets
_READ_SLICE_S = 0.05
_PROBE_S = 0.5
_BACKLOG = 20000
_REPL_MARKERS = (b">>> ", b"raw REPL", b"Traceback (most recent call last)")
_GARBLED = "garbled"
_ECHO = b'"cmd":"'  # our own line coming back: a REPL echoing what it is typed, not the app
_PORT_HINT = "`citynode ports` lists ports"


# A port we just closed can look busy for a moment: a process forked by another
# thread (a compiler, a virtual node's interpreter) holds a copy of our
# descriptor, and so our lock, until it execs. Retry that briefly.
BUSY_RETRY_S = 1.0


class AppNotRunning(TransportError):
    """The node answers as a MicroPython REPL: the citynode app is not running."""


class PortError(TransportError):
    """The port cannot be opened at all (missing, not a serial port, busy, no permission)."""


def open_serial(port, baudrate=DEFAULT_BAUD, timeout=_READ_SLICE_S, exclusive=True):
    """Open a port or URL; turn the usual failures into one clear line (PortError)."""
    kwargs = {"baudrate": baudrate, "timeout": timeout, "write_timeout": 10}
    is_url = "://" in port
    if not is_url:
        kwargs["exclusive"] = exclusive
        not_a_port = _not_a_port(port)
        if not_a_port:
            raise PortError(not_a_port)
    deadline = time.monotonic() + BUSY_RETRY_S
    while True:
        try:
            return serial.serial_for_url(port, **kwargs)
        except serial.SerialException as exc:
            words = describe_open_error(port, exc)
            if " is busy" in words and time.monotonic() < deadline:
                time.sleep(0.05)
                continue
            raise PortError(words) from None
        except (OSError, ValueError) as exc:
            raise PortError("cannot open %s: %s" % (port, exc)) from None


def _not_a_port(path):
    """Why `path` cannot be a serial port (missing, a folder, a file), or None."""
    try:
        mode = os.stat(path).st_mode
    except FileNotFoundError:
        return "no such port %s (is the board plugged in? %s)" % (path, _PORT_HINT)
    except OSError:
        return None  # let the open say what is wrong
    if stat.S_ISDIR(mode):
        return "%s is a folder, not a serial port (%s)" % (path, _PORT_HINT)
    if stat.S_ISREG(mode):
        return "%s is a file, not a serial port (%s)" % (path, _PORT_HINT)
    return None


def describe_open_error(port, exc):
    code = getattr(exc, "errno", None)
    text = str(exc)
    if code == errno.ENOENT or "No such file" in text or "could not open port" in text and "[Errno 2]" in text:
        return "no such port %s (is the board plugged in? %s)" % (port, _PORT_HINT)
    if code in (errno.EBUSY, errno.EAGAIN) or "exclusively lock" in text or "[Errno 16]" in text:
        return "port %s is busy: another program has it open (close it and retry)" % port
    if code == errno.EACCES or "[Errno 13]" in text:
        return "permission denied on %s (add your user to the dialout group, then log in again)" % port
    if code == errno.EISDIR or "[Errno 21]" in text:
        return "%s is a folder, not a serial port (%s)" % (port, _PORT_HINT)
    if code == errno.ENOTTY or "(25," in text or "[Errno 25]" in text:
        return "%s is not a serial port (%s)" % (port, _PORT_HINT)
    return "cannot open %s: %s" % (port, text)


def host_utc_ms(clock=time.time):
    """The host's UTC in ms, or None when it is outside the plausible range (a wrong clock)."""
    utc = int(clock() * 1000)
    return utc if wire.UTC_MIN_MS <= utc < wire.UTC_MAX_MS else None


class NodeClient:
    """Talks to the citynode app on a node: armoured commands out, frames in.

    set_clock: send `set_time` (the host's UTC) before the first command of
    the session, so the node's frames carry UTC from then on.
    """

    def __init__(self, port, baudrate=DEFAULT_BAUD, timeout=COMMAND_TIMEOUT_S, link=None, set_clock=True):
        self.port = port
        self.timeout = timeout
        self.serial = link if link is not None else open_serial(port, baudrate)
        self.decoder = Decoder()
        self.backlog = collections.deque(maxlen=_BACKLOG)
        self.on_bytes = None
        self.clock_set = False  # the node took our UTC in this session
        self._clock_due = set_clock
        self._tail = b""
        self._pending = b""  # read but not yet decoded: what follows a reply in its chunk
        self._next_id = random.randint(1, 0xFFF0)
        self._sent_ids = collections.deque(maxlen=32)

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

    # -- bytes -------------------------------------------------------------------

    def _read(self):
        """What is waiting (at most one short wait), held bytes first."""
        if self._pending:
            data, self._pending = self._pending, b""
            return data
        try:
            return self.serial.read(max(1, self.serial.in_waiting))
        except (serial.SerialException, OSError) as exc:
            raise TransportError("link to %s lost: %s" % (self.port, exc)) from None

    def _consume(self, data):
        """Decode data (after on_bytes has seen it); the messages in it."""
        self._tail = (self._tail + data)[-512:]
        if self.on_bytes is not None:
            self.on_bytes(data)
        return self.decoder.feed(data)

    def _pump(self):
        data = self._read()
        return self._consume(data) if data else []

    def _write(self, data):
        try:
            self.serial.write(data)
            self.serial.flush()
        except (serial.SerialException, OSError) as exc:
            raise TransportError("link to %s lost: %s" % (self.port, exc)) from None

    def _request_id(self):
        self._next_id = self._next_id % 0xFFFF + 1
        self._sent_ids.append(self._next_id)
        return self._next_id

    def _late_reply(self, m):
        """A reply to a request of ours already done (an answer to a resent line)."""
        return m.name == "reply" and m["request_id"] in self._sent_ids

    # -- commands ----------------------------------------------------------------

    def command(self, name, timeout=None, retries=None, **args):
        """Send one command and return its reply body; DeviceError on an error code.

        The line is sent again when the node says it arrived garbled, or after
        RESEND_AFTER_S of silence, at most 1 + retries times (default
        MAX_ATTEMPTS in all) within `timeout` seconds.
        """
        timeout = self.timeout if timeout is None else timeout
        if self._clock_due:
            self.set_clock(timeout, what=name)
        return self._reply_body(name, self._exchange(name, args, timeout, retries))

    def set_clock(self, timeout=None, what="set_time"):
        """Send the host's UTC to the node (once per session is enough); True if it took it.

        Not sent when the host's own clock is implausible; a node that refuses
        it is left as it is. TransportError when the node does not answer."""
        utc = host_utc_ms()
        if utc is None:
            self._clock_due = False
            return False
        m = self._exchange("set_time", {"utc_ms": utc}, self.timeout if timeout is None else timeout, what=what)
        self._clock_due = False
        self.clock_set = m["code"] == messages.OK
        return self.clock_set

    def fresh_start(self, timeout=None):
        """Set the node's clock and drop everything it sent before; returns the bytes dropped.

        A node whose port nobody read has minutes of old frames waiting in
        USB and OS buffers. The node answers a command after all of them, so
        what it sends from its answer on is new: the TIME frame it sends
        while taking `set_time` (or, when the host clock is implausible, the
        reply to `status`) starts the session; older bytes are decoded,
        counted and dropped, and the statistics start from zero. A `status`
        follows, so the node's STATUS comes first too. on_bytes sees only the
        new bytes. TransportError when the node does not answer (the
        bytes read meanwhile went to on_bytes and the statistics)."""
        self._clock_due = False
        timeout = self.timeout if timeout is None else timeout
        utc = host_utc_ms()
        name, args = ("set_time", {"utc_ms": utc}) if utc is not None else ("status", {})
        kept = bytearray()
        start = [False]
        frame = bytearray()  # the bytes since the last delimiter: a frame may come in several reads

        def watch(piece, msgs):
            if frame.endswith(b"\x00"):
                frame[:] = b""
            frame.extend(piece)
            for m in msgs:
                if m.name == "time" and m["utc_ms"] == utc:
                    start[0] = True
                    kept[:] = frame
                    return
            if start[0]:
                kept.extend(piece)

        def on_reply(piece):
            if not start[0]:
                kept[:] = frame

        held = bytearray()
        on_bytes, self.on_bytes = self.on_bytes, held.extend
        try:
            m = self._exchange(name, args, timeout, watch=watch, on_reply=on_reply)
        except TransportError:
            if on_bytes is not None and held:
                on_bytes(bytes(held))
            raise
        finally:
            self.on_bytes = on_bytes
        self.clock_set = name == "set_time" and m["code"] == messages.OK
        dropped = self.decoder.stats.bytes_in - len(kept)
        self.decoder = Decoder()
        self.backlog.clear()
        self._tail = b""
        self._pending = bytes(kept) + self._pending
        if name == "set_time":
            with contextlib.suppress(TransportError):  # a STATUS now, not at the end of the node's period
                self._exchange("status", {}, timeout)
        return dropped

    def _exchange(self, name, args, timeout, retries=None, what=None, watch=None, on_reply=None):
        """The reply message to `name` (any code); resends as `command` says."""
        rid = self._request_id()
        line = armour.encode_command(rid, name, args)
        attempts = MAX_ATTEMPTS if retries is None else retries + 1
        resend_after = RESEND_AFTER_S
        deadline = time.monotonic() + timeout
        sent = garbled = 0
        self._tail = b""
        while True:
            self._write(line)
            sent += 1
            last = sent >= attempts or name in NOT_RESENT_AFTER_SILENCE
            got = self._await_reply(rid, deadline if last else min(deadline, time.monotonic() + resend_after),
                                    watch, on_reply)
            if got is _GARBLED:
                garbled += 1
            elif got is not None:
                return got
            if sent >= attempts or time.monotonic() >= deadline or _ECHO in self._tail:
                break
        words = self._no_reply_message(what or name, timeout, sent, garbled)
        raise (AppNotRunning if self._at_repl() else TransportError)(words)

    def _await_reply(self, rid, until, watch=None, on_reply=None):
        """The reply to rid, _GARBLED when the node says the line came garbled, or None at `until`.

        Reads frame by frame, so the bytes after the reply stay unread (in
        _pending) for whoever reads next."""
        while time.monotonic() < until:
            data = self._read()
            if not data:
                continue
            pieces = _after_each_delimiter(data)
            for i, piece in enumerate(pieces):
                found = None
                msgs = self._consume(piece)
                if watch is not None:
                    watch(piece, msgs)
                for m in msgs:
                    if m.name == "reply" and (m["request_id"] == rid or m["request_id"] == 0):
                        if m["code"] == messages.ERR_BAD_LINE:
                            found = _GARBLED  # the line reached the node damaged: nothing was applied
                        elif m["request_id"] == rid:
                            found = m
                            if on_reply is not None:
                                on_reply(piece)
                    elif not self._late_reply(m):
                        self.backlog.append(m)
                if found is not None:
                    self._pending = b"".join(pieces[i + 1 :]) + self._pending
                    return found
            if _ECHO in self._tail:
                return None  # no app will answer: say so now (see _no_reply_message)
        return None

    def _reply_body(self, name, m):
        code = m["code"]
        body = m.fields.get("body")
        if code != messages.OK:
            detail = body.get("error") if isinstance(body, dict) else None
            words = messages.reply_word(code)
            raise DeviceError("node refused %s: %s%s" % (name, words, (": " + detail) if detail else ""), code)
        return body if body is not None else {}

    def _at_repl(self):
        return any(marker in self._tail for marker in _REPL_MARKERS + (_ECHO,))

    def _no_reply_message(self, name, timeout, sent, garbled):
        """One line on why a command got no reply, after a look at what the node is doing."""
        if not self._at_repl() and not garbled:
            self._probe_repl()
        if self._at_repl():
            return ("node on %s is at the MicroPython REPL: the citynode app is not running "
                    "(no app? run `citynode deploy --port %s`; else reset the board)" % (self.port, self.port))
        head = "node on %s did not answer %s within %g s" % (self.port, name, round(timeout, 1))
        stats = self.decoder.stats
        if garbled:
            return "%s: %d of %d lines arrived garbled (a noisy cable or link? try another cable or port)" % (
                head, garbled, sent)
        if not stats.bytes_in:
            return "%s and sent nothing at all (wrong port? is the board powered? reset it)" % head
        if not stats.frames:
            return "%s: %d bytes came but no citynode frame (wrong baud rate? not running the citynode app?)" % (
                head, stats.bytes_in)
        return "%s, though it sends frames (busy or hung: reset the board)" % head

    def restart_app(self):
        """Ctrl-B (out of a raw REPL) then Ctrl-D at the friendly REPL: a soft reset,
        after which boot.py and main.py run, so an installed app starts."""
        with contextlib.suppress(TransportError):
            self._write(b"\r\x02")
            time.sleep(0.2)
            self._write(b"\x04")
        self._tail = b""

    def _probe_repl(self):
        """Ctrl-B (leave a raw REPL, show the banner) and Enter: a REPL answers with a prompt;
        the app takes them as one bad line, which it refuses."""
        with contextlib.suppress(TransportError):
            self._write(b"\x02\r\n")
            until = time.monotonic() + _PROBE_S
            while time.monotonic() < until and not any(marker in self._tail for marker in _REPL_MARKERS):
                for m in self._pump():
                    if not self._late_reply(m) and not (m.name == "reply" and m["request_id"] == 0):
                        self.backlog.append(m)

    def read_frames(self, seconds=None, stop=None):
        """Yield messages as they arrive (first any held back while waiting for replies).

        Ends after `seconds` (None: forever) or when `stop()` returns true.
        Late replies to this session's own commands are left out.
        """
        deadline = None if seconds is None else time.monotonic() + seconds
        while self.backlog:
            yield self.backlog.popleft()
        while deadline is None or time.monotonic() < deadline:
            if stop is not None and stop():
                return
            for m in self._pump():
                if not self._late_reply(m):
                    yield m


def _after_each_delimiter(data):
    """data cut after each frame delimiter (0x00), so the end of a reply can be found in it."""
    pieces = []
    start = 0
    while True:
        i = data.find(b"\x00", start)
        if i < 0:
            break
        pieces.append(data[start : i + 1])
        start = i + 1
    if start < len(data):
        pieces.append(data[start:])
    return pieces


APP_START_S = 10.0  # for the app to answer after a soft reset


def set_clock_when_app_answers(port, baudrate=DEFAULT_BAUD, timeout=APP_START_S):
    """After raw-REPL work (deploy, backup) the app starts again without the time:
    send it the host's UTC once it answers. True if it took it; False, never an
    error, when the port cannot be opened or the app does not answer in `timeout` s."""
    try:
        with NodeClient(port, baudrate, timeout=timeout) as client:
            return client.set_clock(timeout)
    except (TransportError, DeviceError):
        return False


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

