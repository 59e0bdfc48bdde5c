"""UTC from an SNTP server (RFC 4330), asked without blocking the node loop.

`poll(now)` sends a 48-byte request when one is due, and reads an answer if one
has come; it returns the UTC in ms at node time `now` once an answer passes
the checks, else None. An answer counts only if it is a server's (mode 4), is
synchronised (leap indicator not 3, stratum 1..15), echoes our request's
transmit time (so a stray or forged datagram is not taken), and gives a UTC
inside wire.UTC_MIN_MS..UTC_MAX_MS. The UTC is the server's transmit time plus
half the round trip measured on the node's clock.

`socket_factory` makes the UDP socket (tests pass a scripted one); the
server address comes from socket.getaddrinfo.
"""

import errno
import random
import struct

from citynode_protocol import wire
from citynode_fw.nodetime import add, diff

NTP_TO_UNIX_S = 2208988800  # 1900-01-01 to 1970-01-01
PACKET = 48
TIMEOUT_MS = 2000
RETRY_MIN_MS = 4000
RETRY_MAX_MS = 300000


class Sntp:
    def __init__(self, addr, socket_factory=None):
        self.addr = addr
        self.socket_factory = socket_factory
        self.sock = None
        self.buf = bytearray(PACKET)
        self.sent_at = 0
        self.waiting = False
        self.next_at = 0
        self.retry_ms = RETRY_MIN_MS
        self.stamp = 0  # the transmit time we sent, as (s << 32 | fraction), echoed by the server
        self.answers = 0
        self.rejected = 0
        self.timeouts = 0
        self.error = ""

    def _socket(self):
        if self.sock is None:
            if self.socket_factory is not None:
                self.sock = self.socket_factory()
            else:
                import socket

                self.sock = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
                self.sock.setblocking(False)
        return self.sock

    def close(self):
        if self.sock is not None:
            self.sock.close()
            self.sock = None
        self.waiting = False

    def poll(self, now, stamp=0):
        """UTC ms at `now` from an answer that arrived, or None. The request carries a
        random transmit time (or `stamp`, for tests) that the answer must echo."""
        try:
            if self.waiting:
                got = self._receive(now)
                if got is not None:
                    return got
                if diff(now, self.sent_at) > TIMEOUT_MS:
                    self.timeouts += 1
                    self._retry(now, "no answer within %d ms" % TIMEOUT_MS)
            elif diff(now, self.next_at) >= 0:
                self._send(now, stamp)
        except OSError as exc:
            self.close()
            self._retry(now, "socket error %s" % (exc.args[0] if exc.args else exc))
        return None

    def _send(self, now, stamp):
        buf = self.buf
        for i in range(PACKET):
            buf[i] = 0
        buf[0] = 0x1B  # LI 0, version 3, mode 3 (client)
        self.stamp = stamp or (random.getrandbits(32) << 32 | random.getrandbits(32)) or 1
        struct.pack_into(">Q", buf, 40, self.stamp)
        self._socket().sendto(buf, self.addr)
        self.sent_at = now
        self.waiting = True

    def _receive(self, now):
        try:
            data = self.sock.recv(PACKET + 16)
        except OSError as exc:
            if exc.args and exc.args[0] == errno.EAGAIN:  # nothing yet
                return None
            raise
        if data is None or not data:
            return None
        utc = self._check(data, diff(now, self.sent_at))
        if utc is None:
            self.rejected += 1
            return None  # keep waiting for the real answer until the timeout
        self.waiting = False
        self.answers += 1
        self.retry_ms = RETRY_MIN_MS
        self.error = ""
        return utc

    def _check(self, data, rtt_ms):
        if len(data) < PACKET:
            return None
        mode = data[0] & 7
        leap = data[0] >> 6
        stratum = data[1]
        if mode != 4 or leap == 3 or not 1 <= stratum <= 15:
            return None
        origin = struct.unpack_from(">Q", data, 24)[0]
        if origin != self.stamp:
            return None
        secs, frac = struct.unpack_from(">II", data, 40)
        if not secs:
            return None
        utc = (secs - NTP_TO_UNIX_S) * 1000 + (frac * 1000 >> 32) + max(0, rtt_ms) // 2
        if not wire.UTC_MIN_MS <= utc < wire.UTC_MAX_MS:
            return None
        return utc

    def _retry(self, now, why):
        self.waiting = False
        self.error = why
        self.next_at = add(now, self.retry_ms)
        self.retry_ms = min(RETRY_MAX_MS, self.retry_ms * 2)

    def again_in(self, now, ms):
        """Ask again after ms (the uplink re-syncs the clock every few hours)."""
        self.next_at = add(now, ms)
