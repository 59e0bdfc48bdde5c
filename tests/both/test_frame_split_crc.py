"""FrameWriter's split CRC (the 32-bit ports' path) against binascii, the vectors and crcmod."""

import gc
import sys

from citynode_protocol import PROTOCOL_VERSION, cobs, frame
from golden import load, unhex
from mp_skip import SkipTest

MAX_PAYLOAD = 1300


def _writers(max_payload):
    return frame.FrameWriter(7, max_payload, True), frame.FrameWriter(7, max_payload, False)


def _finish(writer, seq, msg_type, body, time_ms):
    writer.payload[: len(body)] = body
    writer.seq = seq
    n = writer.finish(msg_type, len(body), time_ms)
    return bytes(writer.wire[:n])


def _raw_of(wire):
    return cobs.decode(wire[:-1])


def _frames(wire):
    """The 0x00-terminated pieces of a byte stream."""
    out = []
    start = 0
    for i in range(len(wire)):
        if wire[i] == 0:
            out.append(wire[start : i + 1])
            start = i + 1
    return out


class _Random:
    """A small LCG, the same numbers under both interpreters."""

    def __init__(self, seed):
        self.state = seed

    def below(self, n):
        self.state = (self.state * 1103515245 + 12345) & 0x7FFFFFFF
        return (self.state >> 8) % n

    def u32(self):
        return (self.below(0x10000) << 16) | self.below(0x10000)

    def data(self, n):
        return bytes(self.below(256) for _ in range(n))


def test_split_crc_check_values():
    cases = load("crc.json")["crc32_iso_hdlc"]
    writer = frame.FrameWriter(1, max(len(c["data_hex"]) // 2 for c in cases), True)
    for case in cases:
        data = unhex(case["data_hex"])
        writer.raw[: len(data)] = data
        writer._split_crc_into(len(data))
        got = writer.raw[len(data) : len(data) + 4]
        assert got == bytes((case["crc"] >> s) & 0xFF for s in (0, 8, 16, 24)), case["data_hex"]


def test_split_crc_rebuilds_every_golden_frame():
    split, binascii_path = _writers(frame.MAX_FRAME - frame.OVERHEAD)
    count = 0
    for name in ("frames.json", "corrupt.json"):
        for case in load(name)["cases"]:
            for wire in _frames(unhex(case["wire_hex"])):
                try:
                    version, msg_type, node_id, seq, time_ms, body = frame.parse(_raw_of(wire))
                except (cobs.CobsError, frame.FrameError):
                    continue
                if version != PROTOCOL_VERSION or len(body) > split.max_payload:
                    continue
                split.node_id = binascii_path.node_id = node_id
                body = bytes(body)
                got = _finish(split, seq, msg_type, body, time_ms)
                assert got == wire, (case["name"], seq)
                assert _finish(binascii_path, seq, msg_type, body, time_ms) == wire, (case["name"], seq)
                count += 1
    assert count >= 18, count


def test_split_crc_matches_binascii_for_random_payloads():
    rng = _Random(2024)
    split, binascii_path = _writers(MAX_PAYLOAD)
    lengths = list(range(140)) + [MAX_PAYLOAD - i for i in range(9)]
    lengths += [rng.below(MAX_PAYLOAD + 1) for _ in range(40)]
    for length in lengths:
        body = rng.data(length)
        seq = rng.below(0x10000)
        time_ms = rng.u32() if length & 1 else rng.below(0x400000)
        want = frame.to_wire(frame.build(5, 7, seq, time_ms, body))
        assert _finish(split, seq, 5, body, time_ms) == want, length
        assert _finish(binascii_path, seq, 5, body, time_ms) == want, length
    assert len({n % 8 for n in lengths}) == 8


def test_split_crc_matches_crcmod():
    try:
        import crcmod.predefined
    except ImportError:
        raise SkipTest("crcmod is the host's oracle (CPython only)")
    oracle = crcmod.predefined.mkCrcFun("crc-32")
    rng = _Random(99)
    writer = frame.FrameWriter(1, MAX_PAYLOAD, True)
    for length in list(range(80)) + [rng.below(MAX_PAYLOAD + 1) for _ in range(60)] + [MAX_PAYLOAD]:
        raw = _raw_of(_finish(writer, length, 3, rng.data(length), rng.u32()))
        assert int.from_bytes(raw[-4:], "little") == oracle(raw[:-4]), length


def test_split_crc_finish_allocates_nothing():
    if sys.implementation.name != "micropython":
        raise SkipTest("gc.mem_alloc() is MicroPython's")
    writer = frame.FrameWriter(1, MAX_PAYLOAD, True)
    rng = _Random(5)
    body = rng.data(MAX_PAYLOAD)
    writer.payload[:] = body
    lengths = (0, 1, 7, 8, 55, 56, 64, 119, 500, 591, MAX_PAYLOAD)
    gc.collect()
    gc.disable()
    try:
        before = gc.mem_alloc()
        for length in lengths:
            writer.finish(4, length, 0x3FFFFFFF)
            writer.finish(4, length, length)
            writer.finish(4, length, 0x3FFFFFFF, 3)  # the node after three clock wraps
        used = gc.mem_alloc() - before
    finally:
        gc.enable()
    assert used == 0, used
    assert _raw_of(_finish(writer, 3, 4, body[:100], 9)) == frame.build(4, 1, 3, 9, body[:100])


def test_time_hi_gives_the_u32_header():
    """The node's split time (ms < 2**30 and bits 30-31 apart) packs the same
    header as the whole u32, across every wrap count."""
    a = bytearray(frame.HEADER_SIZE)
    b = bytearray(frame.HEADER_SIZE)
    for hi in (0, 1, 2, 3):
        for ms in (0, 1, 0xFFFF, 0x10000, 123456789, 0x3FFFFFFF):
            frame.pack_header_into(a, 2, 513, 65535, ms, hi)
            frame.pack_header_into(b, 2, 513, 65535, (hi << 30) | ms)
            assert a == b, (hi, ms, bytes(a), bytes(b))
            assert frame.parse(frame.build(2, 513, 0, (hi << 30) | ms, b""))[4] == (hi << 30) | ms
