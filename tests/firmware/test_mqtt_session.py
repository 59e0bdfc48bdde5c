"""citynode_fw.mqtt with a scripted socket: packet bytes, ids, DUP resends, keepalive,
and no allocation per published message once running (on both word sizes)."""

import gc
import struct

from citynode_fw import mqtt


class ScriptedSocket:
    """Takes every write whole, hands out scripted incoming bytes, allocates nothing per call."""

    def __init__(self):
        self.sent = bytearray(8192)
        self.n_sent = 0
        self.incoming = bytearray(256)
        self.n_in = 0
        self.at_in = 0

    def write(self, buf, off=0, n=-1):
        if n < 0:
            n = len(buf) - off
        if self.n_sent + n > len(self.sent):
            self.n_sent = 0  # a ring: the steady-state test only counts
        for i in range(n):
            self.sent[self.n_sent + i] = buf[off + i]
        self.n_sent += n
        return n

    def readinto(self, buf, n=-1):
        if self.at_in >= self.n_in:
            return None
        buf[0] = self.incoming[self.at_in]
        self.at_in += 1
        return 1

    def feed(self, data):
        for b in data:
            self.incoming[self.n_in] = b
            self.n_in += 1

    def take(self):
        out = bytes(self.sent[: self.n_sent])
        self.n_sent = 0
        return out

    def close(self):
        pass


def _up(**kw):
    s = mqtt.Session(b"n7", keepalive_s=kw.pop("keepalive_s", 60), **kw)
    sock = ScriptedSocket()
    s._sock = sock
    s.state = mqtt.CONNACK
    s.addr = ("x", 1)
    s.poll(0)
    assert sock.take() == s.connect_bytes
    sock.feed(b"\x20\x02\x00\x00")
    s.poll(1)
    assert s.state == mqtt.UP and s.connects == 1
    return s, sock


def _reset_reader(sock):
    sock.n_in = sock.at_in = 0


def test_connect_packet_layout():
    p = mqtt.connect_packet(b"n7", 60, b"u", b"pw", b"citynode/7/status", b"offline")
    assert p[0] == 0x10 and p[1] == len(p) - 2
    assert p[2:8] == b"\x00\x04MQTT" and p[8] == 4
    assert p[9] == 0x80 | 0x40 | 0x20 | 0x08 | 0x04 | 0x02  # user, password, will retain, will QoS 1, will, clean
    assert p[10:12] == b"\x00\x3c"
    assert p[12:16] == b"\x00\x02n7"
    assert p[16:35] == b"\x00\x11citynode/7/status"
    assert p[35:44] == b"\x00\x07offline"
    assert p[44:] == b"\x00\x01u\x00\x02pw"


def test_remaining_length_at_its_boundaries():
    buf = bytearray(4)
    for n, want in ((0, b"\x00"), (127, b"\x7f"), (128, b"\x80\x01"), (16383, b"\xff\x7f"), (16384, b"\x80\x80\x01")):
        end = mqtt._varint_into(buf, 0, n)
        assert bytes(buf[:end]) == want, n


def test_publish_qos1_bytes_and_puback():
    s, sock = _up()
    pid = s.publish(b"t/d", b"abc")
    s.poll(2)
    assert sock.take() == b"\x32\x0a\x00\x03t/d\x00\x01abc" and pid == 1
    assert not s.ready() and s.in_flight() == 1
    sock.feed(b"\x40\x02\x00\x02")  # a PUBACK for another id changes nothing
    s.poll(3)
    assert s.in_flight() == 1
    sock.feed(b"\x40\x02\x00\x01")
    s.poll(4)
    assert s.ready() and s.acked == 1


def test_ids_wrap_to_1_and_skip_0():
    s, sock = _up()
    s.pid = 65534
    ids = []
    for t in range(3):
        ids.append(s.publish(b"t", b"x"))
        s.poll(10 + t)
        sock.feed(struct.pack(">BBH", 0x40, 2, ids[-1]))
        s.poll(10 + t)
    assert ids == [65535, 1, 2]


def test_no_puback_in_time_resends_with_dup_and_the_same_id():
    s, sock = _up(puback_ms=100)
    s.publish(b"t", b"x")
    s.poll(10)
    first = sock.take()
    s.poll(100)
    assert sock.take() == b""  # not yet
    s.poll(111)
    s.poll(112)
    again = sock.take()
    assert again[0] == first[0] | 0x08 and again[1:] == first[1:] and s.resends == 1


def test_a_reconnect_sends_the_unacknowledged_message_again_with_dup():
    s, sock = _up()
    s.publish(b"t", b"x")
    s.poll(5)
    first = sock.take()
    s._fail("test", 5)
    assert s.state == mqtt.DOWN and s.failures == 1 and s.error == "test"
    s._sock = sock
    s.state = mqtt.CONNACK
    s.poll(6)
    sock.take()
    sock.feed(b"\x20\x02\x00\x00")
    s.poll(7)
    s.poll(8)
    assert sock.take() == bytes([first[0] | 0x08]) + first[1:]


def test_a_refused_connect_names_the_reason():
    s = mqtt.Session(b"n7")
    sock = ScriptedSocket()
    s._sock, s.state, s.addr = sock, mqtt.CONNACK, ("x", 1)
    sock.feed(b"\x20\x02\x00\x05")
    s.poll(0)
    assert s.state == mqtt.DOWN and s.refused == 5 and s.error == "refused: not authorised"


def test_keepalive_pings_and_drops_a_silent_broker():
    s, sock = _up(keepalive_s=4)
    s.poll(3001)
    s.poll(3002)
    assert sock.take() == b"\xc0\x00"
    sock.feed(b"\xd0\x00")
    s.poll(3003)
    assert s.state == mqtt.UP
    s.poll(9100)
    assert s.state == mqtt.DOWN and s.error == "broker silent for 1.5 keepalives"


def test_incoming_qos1_publish_is_delivered_and_acknowledged():
    got = []
    s, sock = _up(on_message=lambda t, p: got.append((t, p)))
    sock.feed(b"\x32\x0c\x00\x05c/cmd\x12\x34hi!")
    s.poll(5)
    assert got == [(b"c/cmd", b"hi!")]
    s.poll(6)
    assert sock.take() == b"\x40\x02\x12\x34"


def test_a_message_over_the_buffer_is_refused():
    s, _sock = _up(max_packet=64)
    try:
        s.publish(b"t", bytes(64))
    except OSError:
        pass
    else:
        assert False, "expected an OSError"
    assert s.ready()


def test_publishing_allocates_nothing_once_running():
    s, sock = _up()
    payload = bytearray(600)
    topic = b"citynode/7/data"
    puback = bytearray(b"\x40\x02\x00\x00")

    def one(t):
        pid = s.publish(topic, payload)
        s.poll(t)
        puback[2] = pid >> 8
        puback[3] = pid & 0xFF
        _reset_reader(sock)
        for i in range(4):
            sock.incoming[i] = puback[i]
        sock.n_in = 4
        s.poll(t)

    for t in range(20):  # warm up
        one(t)
    gc.collect()
    before = gc.mem_alloc()
    for t in range(20, 220):
        one(t)
    grew = gc.mem_alloc() - before
    assert s.acked == 220
    assert grew == 0, "%d bytes allocated over 200 publishes" % grew
