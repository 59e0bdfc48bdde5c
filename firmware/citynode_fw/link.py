"""The USB serial link: frames out, armoured command lines in, never blocking.

Out: every frame goes through `send()`, which keeps one sequence counter for the
node across the frame writers (this link's, which the sampler shares, and the
sampler's own for blocks too big for it), and writes with `stream.write(buf, n)` so no slice is allocated. A
write that fails or comes up short is counted in tx_dropped. Frames are
stamped with node time (ms modulo 2^30) and, as bits 30-31 of the header's u32,
the board's count of its wraps then (`time_hi`).

In: `StdinReader` polls sys.stdin with select.poll and reads one byte at a time
into a preallocated 1-byte buffer, only while poll says a byte is waiting, so
the loop never blocks. Nothing here touches micropython.kbd_intr: on a board
the UART/USB interrupt turns 0x03 into KeyboardInterrupt before Python sees it,
and on the Unix port the pty's ISIG does; armoured command lines contain no
control characters, so no command can be mistaken for Ctrl-C.

Lines collect in a preallocated buffer (armour.MAX_LINE); a line that does not
decode (bad armour, CRC, JSON, too long) is answered with REPLY ERR_BAD_LINE
(request id parsed from the line if it can be, else 0) and counted.

A host that gets no reply, or ERR_BAD_LINE, sends the same line again (same
request id). `Answered` keeps the replies to the last few requests that changed
the node, so such a repeat is answered from memory and not applied twice.
"""

import json
import select
import struct
import sys

from citynode_protocol import armour, wire
from citynode_protocol.frame import FrameWriter
from citynode_fw.nodetime import diff

MAX_REPLY = 1800  # JSON body bytes in one REPLY
_COMPACT = (",", ":")  # JSON separators: an uplink node's `info` is near MAX_REPLY with ", " and ": "
_REPLY_HEAD = 3  # "<HB": request id, code
_LF = 10
_CR = 13


class StdinReader:
    """Non-blocking bytes from sys.stdin: `readinto(buf1)` returns 0 or 1."""

    def __init__(self, stream=None):
        self._poll = select.poll()
        self._poll.register(sys.stdin if stream is None else stream, select.POLLIN)
        self._stream = sys.stdin.buffer if stream is None else stream

    def readinto(self, buf):
        for _obj, ev in self._poll.ipoll(0):
            if ev & select.POLLIN:
                return self._stream.readinto(buf)
        return 0


class Link:
    def __init__(self, node_id, counters, out=None, reader=None, board=None):
        self.out = sys.stdout.buffer if out is None else out
        self.board = board  # its wraps_at(t) for time_hi; None: no wraps
        self.reader = StdinReader() if reader is None else reader
        self.counters = counters
        self.seq = 0
        # room for a signed frame's trailer: the uplink signs frames in place
        self.writer = FrameWriter(node_id, _REPLY_HEAD + MAX_REPLY, trailer=wire.SIGNED_TRAILER)
        self.uplink = None  # uplink.Uplink when the node sends over the network too
        self.node_id = node_id
        self._line = bytearray(armour.MAX_LINE)
        self._n = 0
        self._overflow = False
        self._byte = bytearray(1)
        self.answered = Answered()

    # -- out ---------------------------------------------------------------------

    def send(self, writer, msg_type, length, time_ms):
        """Finish the frame in writer's payload and write it; False if dropped."""
        writer.seq = self.seq
        n = writer.finish(msg_type, length, time_ms, self.time_hi(time_ms))
        self.seq = writer.seq
        try:
            done = self.out.write(writer.wire, n)
        except OSError:
            done = 0
        if self.uplink is not None:  # every frame, replies too: the network sees the node's sequence whole
            self.uplink.put(writer, msg_type, length, time_ms)
        if done is not None and done != n:
            self.counters.tx_dropped += 1
            return False
        return True

    def time_hi(self, t):
        """Bits 30-31 of the frame time of node time t (the header's u32 ms)."""
        return 0 if self.board is None else self.board.wraps_at(t) & 3

    def log(self, level, text, time_ms):
        """A LOG message (level index into wire.LOG_LEVELS)."""
        p = self.writer.payload
        p[0] = level
        data = _utf8(text)
        n = len(data)
        if n > MAX_REPLY:
            n = MAX_REPLY
        p[1 : 1 + n] = data[:n]
        return self.send(self.writer, wire.LOG, 1 + n, time_ms)

    def reply(self, request_id, code, body, time_ms):
        text = _utf8(json.dumps(body, separators=_COMPACT) if body is not None else "")
        if len(text) > MAX_REPLY:
            code = wire.ERR_INTERNAL
            text = b'{"error":"reply too long"}'
        p = self.writer.payload
        struct.pack_into("<HB", p, 0, request_id & 0xFFFF, code)
        p[_REPLY_HEAD : _REPLY_HEAD + len(text)] = text
        return self.send(self.writer, wire.REPLY, _REPLY_HEAD + len(text), time_ms)

    # -- in ----------------------------------------------------------------------

    def poll_line(self, max_bytes=256):
        """Read what is waiting (up to max_bytes); a complete line as bytes, else None.

        A line too long for the buffer comes back as b"" (so it can be refused).
        """
        reader = self.reader
        b = self._byte
        line = self._line
        size = len(line)
        k = 0
        while k < max_bytes:
            if not reader.readinto(b):
                return None
            k += 1
            c = b[0]
            if c == _LF:
                n = self._n
                over = self._overflow
                self._n = 0
                self._overflow = False
                if over:
                    return b""
                if n == 0:
                    continue  # empty line: a host flushing the line
                return bytes(line[:n])
            if c == _CR:
                continue
            if self._n < size:
                line[self._n] = c
                self._n += 1
            else:
                self._overflow = True
        return None

    def decode(self, line):
        """(request_id, command, args) or (request_id guess, None, error text)."""
        try:
            return armour.decode_command(line)
        except armour.ArmourError as exc:
            return guess_id(line), None, str(exc) if line else "line too long"


class Answered:
    """The replies to the last SIZE changing requests, keyed by request id and the
    line's CRC digits, for KEEP_MS of node time: a host resends within its
    command's deadline, and a later session that happens to send the same line
    (ids start at random) is a new request."""

    SIZE = 4
    KEEP_MS = 60000

    def __init__(self):
        self._keys = [None] * self.SIZE  # type: list
        self._replies = [None] * self.SIZE  # type: list
        self._next = 0

    def find(self, request_id, line, now):
        """(code, body) answered to this very line within KEEP_MS before node time now, else None."""
        crc = line[-8:]
        for i in range(self.SIZE):
            key = self._keys[i]
            if key is not None and key[0] == request_id and key[1] == crc and diff(now, key[2]) < self.KEEP_MS:
                return self._replies[i]
        return None

    def keep(self, request_id, line, code, body, now):
        i = self._next
        self._keys[i] = (request_id, line[-8:], now)
        self._replies[i] = (code, body)
        self._next = (i + 1) % self.SIZE


def _utf8(text):
    """A str's UTF-8 bytes as a view, not a copy (MicroPython's str has the buffer protocol):
    an `info` reply would otherwise be on the heap twice."""
    try:
        return memoryview(text)  # type: ignore[arg-type]
    except TypeError:  # CPython
        return text.encode()


def guess_id(line):
    """The request id of a garbled line when it can still be read, else 0.

    The host writes "id" first; a line from elsewhere may not, so the first
    '"id":' anywhere is taken. A guess only: the line failed its checks.
    """
    key = b'"id":'
    at = line.find(key) if line.startswith(b">") else -1
    if at < 0:
        return 0
    v = 0
    i = at + len(key)
    end = i + 5
    while i < len(line) and i < end and 48 <= line[i] <= 57:
        v = v * 10 + line[i] - 48
        i += 1
    if i < len(line) and 48 <= line[i] <= 57:
        return 0  # more than 5 digits: not a u16
    return v if v <= 0xFFFF else 0
