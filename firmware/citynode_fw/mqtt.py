"""MQTT 3.1.1 for the node: QoS 0 and 1, one publish in flight, never blocking.

The node loop calls `poll(now)` every pass; nothing else here waits. The socket
is non-blocking from the start, so connecting (TCP, TLS, CONNECT/CONNACK) is a
sequence of states advanced by `poll`, each with a deadline; a failure closes
the socket, records why (`error`), and `poll` tries again after a backoff that
doubles from BACKOFF_MIN_MS to BACKOFF_MAX_MS.

Publishing: `publish()` takes one message when `ready()`; a QoS 1 message stays
in the session's buffer until its PUBACK, and is resent with the DUP flag when
no PUBACK came within `puback_ms` (also after a reconnect). Packet ids run
1..65535 and wrap to 1, never 0 (MQTT-2.3.1-1; umqtt wraps to 0). Incoming
PUBLISH packets (QoS 0 or 1, acknowledged) go to `on_message(topic, payload)`.
Keepalive: a PINGREQ when nothing was sent for `keepalive_s`, and the link is
dropped when the broker has said nothing for 1.5 times that.

Known limits: the broker's address comes from `getaddrinfo`, which blocks on a
board while DNS answers: give the broker as an IP address, or let the caller
resolve it once. A TLS handshake's arithmetic runs inside one write (68 ms on
this PC's Unix port, more on an ESP32): the sampler reads the FIFO before and
after, and an overflow meanwhile is counted like any other. MicroPython's TLS
takes the CA as DER, not PEM. Outgoing packets are at most `max_packet` bytes.
"""

import errno
import struct

from citynode_fw.nodetime import add, diff

DOWN = 0
TCP = 1  # non-blocking connect under way
CONNACK = 2  # CONNECT sent (or being sent), waiting for CONNACK
UP = 3
STATE_WORDS = ("down", "connecting", "waiting for CONNACK", "up")

CONNACK_WORDS = (
    "accepted",
    "refused: protocol version",
    "refused: client id",
    "refused: server unavailable",
    "refused: bad user name or password",
    "refused: not authorised",
)

BACKOFF_MIN_MS = 1000
BACKOFF_MAX_MS = 60000
_CONNECT_MS = 15000  # TCP + TLS + CONNACK
_CTL_SIZE = 64  # PUBACK, PINGREQ, SUBSCRIBE, DISCONNECT
_IN_SIZE = 2048  # largest incoming PUBLISH kept (commands); longer ones are skipped
_AGAIN = (errno.EAGAIN, errno.EINPROGRESS, errno.ETIMEDOUT)


class MqttError(OSError):
    pass


def _varint_into(buf, at, n):
    """MQTT remaining length at buf[at:]; returns the next offset."""
    while True:
        b = n & 0x7F
        n >>= 7
        buf[at] = b | (0x80 if n else 0)
        at += 1
        if not n:
            return at


def _str_into(buf, at, data):
    struct.pack_into(">H", buf, at, len(data))
    at += 2
    buf[at : at + len(data)] = data
    return at + len(data)


def connect_packet(client_id, keepalive_s, user=b"", password=b"", will_topic=b"", will_payload=b"",
                   will_retain=True, clean=True):
    """The CONNECT packet (bytes): MQTT 3.1.1, will at QoS 1 when will_topic is set."""
    flags = 0x02 if clean else 0
    body_len = 10 + 2 + len(client_id)
    if will_topic:
        flags |= 0x04 | 0x08 | (0x20 if will_retain else 0)
        body_len += 4 + len(will_topic) + len(will_payload)
    if user:
        flags |= 0x80
        body_len += 2 + len(user)
    if password:
        flags |= 0x40
        body_len += 2 + len(password)
    buf = bytearray(5 + body_len)
    buf[0] = 0x10
    at = _varint_into(buf, 1, body_len)
    at = _str_into(buf, at, b"MQTT")
    buf[at] = 4  # protocol level 3.1.1
    buf[at + 1] = flags
    struct.pack_into(">H", buf, at + 2, keepalive_s)
    at = _str_into(buf, at + 4, client_id)
    if will_topic:
        at = _str_into(buf, at, will_topic)
        at = _str_into(buf, at, will_payload)
    if user:
        at = _str_into(buf, at, user)
    if password:
        at = _str_into(buf, at, password)
    return bytes(buf[:at])


class Session:
    def __init__(self, client_id, keepalive_s=60, user=b"", password=b"", will_topic=b"", will_payload=b"",
                 max_packet=4096, puback_ms=5000, ssl_context=None, server_hostname=None, on_message=None):
        self.connect_bytes = connect_packet(client_id, keepalive_s, user, password, will_topic, will_payload)
        self.keepalive_ms = keepalive_s * 1000
        self.puback_ms = puback_ms
        self.ssl_context = ssl_context
        self.server_hostname = server_hostname
        self.on_message = on_message
        self.on_puback = None  # called with the packet id when a QoS 1 message is acknowledged
        self.state = DOWN
        self.error = ""  # why the last connection failed or ended
        self.refused = 0  # the last CONNACK's refusal code, 0 if none
        self.addr = None
        self.subscriptions = []  # [(topic, qos)], sent again on every connect
        self._sock = None
        self._poll = None  # select.poll while a TCP connect is under way
        self._since = 0  # when the current state began
        self._retry_at = 0
        self._backoff = 0
        self._connect_at = 0  # bytes of CONNECT written
        # the message being published: QoS 1 stays until its PUBACK
        self._pub = bytearray(max_packet)
        self._pub_n = 0  # bytes of the packet; 0: none
        self._pub_at = 0  # bytes written of this attempt
        self._pub_pid = 0
        self._pub_qos = 0
        self._pub_tries = 0  # attempts written whole
        self._pub_sent = 0  # when the last attempt went out whole
        self.pid = 0
        # control packets, written between publishes
        self._ctl = bytearray(_CTL_SIZE)
        self._ctl_n = 0
        self._ctl_at = 0
        # incoming: one packet at a time
        self._in = bytearray(_IN_SIZE)
        self._in_mv = memoryview(self._in)
        self._b1 = bytearray(1)
        self._head = 0  # first byte of the packet being read; 0: none
        self._length = 0
        self._shift = 0
        self._need = -1  # its remaining length; -1 while that is being read
        self._got = 0
        self._last_in = 0
        self._last_out = 0
        self._ping_out = False
        # counters
        self.connects = 0
        self.failures = 0
        self.resends = 0
        self.published = 0
        self.acked = 0

    # -- state ---------------------------------------------------------------------

    def ready(self):
        """True when publish() would take a message now."""
        return self.state == UP and not self._pub_n

    def in_flight(self):
        """The packet id of the QoS 1 message waiting for its PUBACK, or 0."""
        return self._pub_pid if self._pub_n and self._pub_qos else 0

    def start(self, addr, now):
        """Connect to addr (from socket.getaddrinfo) as soon as poll() runs."""
        self.addr = addr
        self._retry_at = now
        self._backoff = 0

    def subscribe(self, topic, qos=1):
        self.subscriptions.append((topic, qos))
        if self.state == UP:
            self._queue_subscribe(topic, qos)

    def stop(self):
        """DISCONNECT (so the broker does not publish the will) and close; no reconnect."""
        if self.state == UP:
            try:
                self._sock.write(b"\xe0\x00")
            except OSError:
                pass
        self._drop("stopped")
        self.addr = None

    def lost(self, why, now):
        """The network under the connection is gone: close it, reconnect after the backoff."""
        if self.state != DOWN:
            self._fail(why, now)

    def _drop(self, why):
        self._poll = None
        if self._sock is not None:
            try:
                self._sock.close()
            except OSError:
                pass
        self._sock = None
        if self.state != DOWN:
            self.error = why
            self.failures += 1
        self.state = DOWN
        self._pub_at = 0  # a message in flight goes out again, with DUP, after the reconnect
        self._ctl_n = self._ctl_at = 0
        self._head, self._need, self._got = 0, -1, 0
        self._ping_out = False

    def _fail(self, why, now):
        self._drop(why)
        self._backoff = min(BACKOFF_MAX_MS, max(BACKOFF_MIN_MS, self._backoff * 2))
        self._retry_at = add(now, self._backoff)

    # -- queueing --------------------------------------------------------------------

    def publish(self, topic, payload, n=-1, qos=1, retain=False, off=0):
        """Take one message (topic bytes, n bytes of a payload buffer from off); its
        packet id (0 for QoS 0). Raises MqttError when not ready() or when it does not fit."""
        if not self.ready():
            raise MqttError(errno.EAGAIN, "mqtt: not ready to publish")
        if n < 0:
            n = len(payload) - off
        remaining = 2 + len(topic) + (2 if qos else 0) + n
        if remaining + 5 > len(self._pub):
            raise MqttError(errno.ENOBUFS, "mqtt: message of %d bytes over the %d-byte buffer" % (n, len(self._pub)))
        buf = self._pub
        buf[0] = 0x30 | (qos << 1) | (1 if retain else 0)
        at = _varint_into(buf, 1, remaining)
        at = _str_into(buf, at, topic)
        pid = 0
        if qos:
            self.pid = self.pid % 65535 + 1
            pid = self.pid
            struct.pack_into(">H", buf, at, pid)
            at += 2
        if off == 0 and n == len(payload):
            buf[at : at + n] = payload
        else:
            for i in range(n):  # no view to make: nothing allocated
                buf[at + i] = payload[off + i]
        self._pub_n = at + n
        self._pub_at = 0
        self._pub_pid = pid
        self._pub_qos = qos
        self._pub_tries = 0
        self.published += 1
        return pid

    def _queue_ctl(self, data):
        if self._ctl_n + len(data) > _CTL_SIZE:
            return False
        self._ctl[self._ctl_n : self._ctl_n + len(data)] = data
        self._ctl_n += len(data)
        return True

    def _queue_puback(self, pid):
        at = self._ctl_n
        if at + 4 <= _CTL_SIZE:
            self._ctl[at] = 0x40
            self._ctl[at + 1] = 2
            struct.pack_into(">H", self._ctl, at + 2, pid)
            self._ctl_n = at + 4

    def _queue_subscribe(self, topic, qos):
        self.pid = self.pid % 65535 + 1
        packet = bytearray(8 + len(topic))
        packet[0] = 0x82
        at = _varint_into(packet, 1, 5 + len(topic))
        struct.pack_into(">H", packet, at, self.pid)
        at = _str_into(packet, at + 2, topic)
        packet[at] = qos
        self._queue_ctl(packet[: at + 1])

    # -- the loop --------------------------------------------------------------------

    def poll(self, now):
        """Advance connecting, writing, reading, keepalive and resends; never blocks."""
        if self.state == DOWN:
            if self.addr is not None and diff(now, self._retry_at) >= 0:
                self._open(now)
            return
        if self.state != UP and diff(now, self._since) > _CONNECT_MS:
            self._fail("timed out %s" % STATE_WORDS[self.state], now)
            return
        try:
            if self.state == TCP:
                self._finish_tcp()
            if self.state >= CONNACK:
                self._write(now)
                self._read(now)
            if self.state == UP:
                self._keepalive(now)
                self._resend(now)
        except OSError as exc:
            self._fail(_words(exc), now)
        except ValueError as exc:  # MicroPython's TLS layer: a certificate or handshake failure
            self._fail("TLS: " + " ".join(str(exc).split()), now)

    def _open(self, now):
        self._since = now
        self._last_in = self._last_out = now
        self.state = TCP
        import select
        import socket

        try:
            sock = socket.socket()
            self._sock = sock
            sock.setblocking(False)
            try:
                sock.connect(self.addr)
            except OSError as exc:
                if exc.args[0] not in _AGAIN:
                    raise
            self._poll = select.poll()
            self._poll.register(sock, select.POLLOUT)
        except OSError as exc:
            self._fail("connect: " + _words(exc), now)

    def _finish_tcp(self):
        import select

        for _obj, ev in self._poll.ipoll(0):
            if ev & (select.POLLERR | select.POLLHUP):
                raise OSError(errno.ECONNREFUSED)
            if not ev & select.POLLOUT:
                return
            break
        else:
            return
        self._poll = None  # from here on reads and writes just try
        if self.ssl_context is not None:
            self._sock = self.ssl_context.wrap_socket(
                self._sock, server_hostname=self.server_hostname, do_handshake_on_connect=False)
        self.state = CONNACK
        self.refused = 0
        self._connect_at = 0

    def _write(self, now):
        sock = self._sock
        if self.state == CONNACK:
            data = self.connect_bytes
            while self._connect_at < len(data):
                n = sock.write(data, self._connect_at, len(data) - self._connect_at)
                if not n:
                    return
                self._connect_at += n
                self._last_out = now
            return
        while True:
            if self._pub_at and self._pub_at < self._pub_n:  # a publish partly out: finish it
                buf, at, end = self._pub, self._pub_at, self._pub_n
            elif self._ctl_n:
                buf, at, end = self._ctl, self._ctl_at, self._ctl_n
            elif self._pub_n and not self._pub_at:
                if self._pub_tries:
                    self._pub[0] |= 0x08  # DUP: this message went out before
                buf, at, end = self._pub, 0, self._pub_n
            else:
                return
            n = sock.write(buf, at, end - at)
            if not n:
                return
            self._last_out = now
            if buf is self._ctl:
                self._ctl_at += n
                if self._ctl_at == self._ctl_n:
                    self._ctl_n = self._ctl_at = 0
                continue
            self._pub_at += n
            if self._pub_at == self._pub_n:
                self._pub_tries += 1
                self._pub_sent = now
                if not self._pub_qos:
                    self._pub_n = self._pub_at = 0
                return  # QoS 1: stays until its PUBACK

    def _byte(self):
        """One byte read, or -1 when none is waiting."""
        n = self._sock.readinto(self._b1, 1)
        if n is None:
            return -1
        if n == 0:
            raise OSError(errno.ECONNRESET, "broker closed the connection")
        return self._b1[0]

    def _read(self, now):
        while True:
            if not self._head:
                b = self._byte()
                if b < 0:
                    return
                self._head = b
                self._length = self._shift = self._got = 0
                self._need = -1
            if self._need < 0:
                b = self._byte()
                if b < 0:
                    return
                self._length |= (b & 0x7F) << self._shift
                self._shift += 7
                if b & 0x80:
                    if self._shift > 21:
                        raise OSError(errno.EIO, "bad packet length from broker")
                    continue
                self._need = self._length
            while self._got < self._need:
                if self._got >= _IN_SIZE or self._need - self._got <= 4:
                    b = self._byte()  # small packets byte by byte: no view to make
                    if b < 0:
                        return
                    if self._got < _IN_SIZE:
                        self._in[self._got] = b
                    self._got += 1
                else:
                    n = self._sock.readinto(self._in_mv[self._got : min(self._need, _IN_SIZE)])
                    if n is None:
                        return
                    if n == 0:
                        raise OSError(errno.ECONNRESET, "broker closed the connection")
                    self._got += n
            self._last_in = now
            self._packet(self._head, self._need)
            self._head = 0

    def _packet(self, head, length):
        kind = head >> 4
        buf = self._in
        if kind == 2:  # CONNACK
            code = buf[1] if length >= 2 else 255
            if code:
                self.refused = code
                raise OSError(errno.ECONNREFUSED, CONNACK_WORDS[code] if code < len(CONNACK_WORDS) else "refused")
            self.state = UP
            self.connects += 1
            self.error = ""
            self._backoff = 0
            for topic, qos in self.subscriptions:
                self._queue_subscribe(topic, qos)
        elif kind == 4 and length >= 2:  # PUBACK
            pid = (buf[0] << 8) | buf[1]
            if self._pub_qos and pid == self._pub_pid and self._pub_n and self._pub_at == self._pub_n:
                self._pub_n = self._pub_at = self._pub_pid = self._pub_tries = 0
                self.acked += 1
                if self.on_puback is not None:
                    self.on_puback(pid)
        elif kind == 3:  # PUBLISH
            self._incoming(head, length)
        elif kind == 13:  # PINGRESP
            self._ping_out = False
        elif kind == 9 and length >= 3 and buf[2] == 0x80:  # SUBACK refused
            self.error = "subscription refused"

    def _incoming(self, head, length):
        buf = self._in
        if length > _IN_SIZE or length < 2:
            return
        qos = (head >> 1) & 3
        tlen = (buf[0] << 8) | buf[1]
        at = 2 + tlen + (2 if qos else 0)
        if at > length:
            return
        if qos == 1:
            self._queue_puback((buf[at - 2] << 8) | buf[at - 1])
        if self.on_message is not None:
            self.on_message(bytes(buf[2 : 2 + tlen]), bytes(buf[at:length]))

    def _keepalive(self, now):
        if not self.keepalive_ms:
            return
        if diff(now, self._last_in) > self.keepalive_ms * 3 // 2:
            raise OSError(errno.ETIMEDOUT, "broker silent for 1.5 keepalives")
        if not self._ping_out and diff(now, self._last_out) >= self.keepalive_ms * 3 // 4:
            self._ping_out = self._queue_ctl(b"\xc0\x00")

    def _resend(self, now):
        if self._pub_qos and self._pub_n and self._pub_at == self._pub_n and diff(now, self._pub_sent) > self.puback_ms:
            self._pub_at = 0
            self.resends += 1


def _words(exc):
    """An OSError as words: its text, else errno's name for its number."""
    if len(exc.args) > 1:
        return str(exc.args[1])
    code = exc.args[0] if exc.args else 0
    return "%s (%s)" % (errno.errorcode.get(code, "error"), code) if isinstance(code, int) else str(code)
