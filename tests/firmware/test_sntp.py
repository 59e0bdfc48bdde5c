"""citynode_fw.sntp with a scripted UDP socket: the request, the checks, timeouts and retries."""

import struct

from citynode_fw import sntp

UTC_MS = 1795000000123  # 2026-11-18


class ScriptedUdp:
    def __init__(self):
        self.sent = []
        self.answers = []

    def sendto(self, buf, addr):
        self.sent.append((bytes(buf), addr))

    def recv(self, n):
        if not self.answers:
            raise OSError(sntp.errno.EAGAIN)
        return self.answers.pop(0)

    def close(self):
        pass


def _answer(request, utc_ms=UTC_MS, mode=4, stratum=2, leap=0, origin=None):
    data = bytearray(48)
    data[0] = (leap << 6) | (4 << 3) | mode
    data[1] = stratum
    data[24:32] = request[40:48] if origin is None else origin
    secs = utc_ms // 1000 + sntp.NTP_TO_UNIX_S
    frac = ((utc_ms % 1000) << 32) // 1000 + 1
    struct.pack_into(">II", data, 40, secs, frac)
    return bytes(data)


def _client():
    udp = ScriptedUdp()
    return sntp.Sntp(("192.0.2.1", 123), socket_factory=lambda: udp), udp


def test_request_is_48_bytes_client_mode_version_3_with_a_transmit_time():
    c, udp = _client()
    assert c.poll(0, stamp=0x0102030405060708) is None
    (data, addr), = udp.sent
    assert len(data) == 48 and data[0] == 0x1B and addr == ("192.0.2.1", 123)
    assert data[40:48] == bytes([1, 2, 3, 4, 5, 6, 7, 8]) and data[1:40] == bytes(39)


def test_a_good_answer_gives_utc_plus_half_the_round_trip():
    c, udp = _client()
    c.poll(1000)
    udp.answers.append(_answer(udp.sent[0][0]))
    assert c.poll(1100) == UTC_MS + 50
    assert c.answers == 1 and not c.waiting


def test_answers_that_fail_a_check_are_ignored_until_the_real_one():
    c, udp = _client()
    c.poll(0)
    req = udp.sent[0][0]
    udp.answers += [
        _answer(req, mode=3),  # not a server
        _answer(req, stratum=0),  # kiss-o'-death / unsynchronised
        _answer(req, leap=3),  # alarm: not synchronised
        _answer(req, origin=bytes(8)),  # does not echo our request: stray or forged
        _answer(req, utc_ms=1000),  # 1970: not plausible
        b"\x24" * 20,  # short
        _answer(req),
    ]
    got = [c.poll(10 + i) for i in range(7)]
    assert got[:6] == [None] * 6 and got[6] == UTC_MS + 8
    assert c.rejected == 6


def test_no_answer_times_out_and_retries_with_a_growing_pause():
    c, udp = _client()
    c.poll(0)
    c.poll(sntp.TIMEOUT_MS + 1)
    assert c.timeouts == 1 and c.error.startswith("no answer")
    c.poll(sntp.TIMEOUT_MS + 2)
    assert len(udp.sent) == 1  # not yet: the pause runs
    c.poll(sntp.TIMEOUT_MS + 1 + sntp.RETRY_MIN_MS)
    assert len(udp.sent) == 2
    c.poll(2 * sntp.TIMEOUT_MS + 2 + sntp.RETRY_MIN_MS)
    assert c.retry_ms == 4 * sntp.RETRY_MIN_MS
