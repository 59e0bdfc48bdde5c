"""Frame layout: header, payload, CRC-32; COBS-stuffed and 0x00-delimited on the wire.

    offset  size  field
    0       1     version (bits 7-5) | message type (bits 4-0)
    1       2     node id, u16 LE
    3       2     sequence number, u16 LE, per node, wraps
    5       4     node time in ms, u32 LE, wraps
    9       n     payload (messages.py)
    9+n     4     CRC-32/ISO-HDLC (binascii.crc32) of bytes 0 .. 8+n, u32 LE
"""

import binascii
import struct
import sys
from array import array

from citynode_protocol import PROTOCOL_VERSION
from citynode_protocol.cobs import encode_into, max_encoded_length

HEADER_FORMAT = "<BHHI"
_HEADER_SPLIT = "<BHHHH"  # the same bytes, the time as low and high u16
HEADER_SIZE = 9
CRC_SIZE = 4
OVERHEAD = HEADER_SIZE + CRC_SIZE
MAX_TYPE = 31
MAX_FRAME = 4096  # raw frame bytes; longer frames are dropped by the decoder
_CHUNK = 64
# A u32 is a small int only where small ints are wider than 31 bits (not on an ESP32).
SPLIT_CRC = sys.maxsize < 2**32
_crc_low = None  # split CRC tables, made on first use: bytearray(256), array("I") of 256
_crc_high = None


class FrameError(ValueError):
    """A frame that cannot be used; `reason` is one of the decoder's counter names."""

    def __init__(self, reason, message):
        super().__init__(message)
        self.reason = reason


def crc32(data, value=0):
    return binascii.crc32(data, value) & 0xFFFFFFFF


def pack_header_into(buf, msg_type, node_id, seq, time_ms, time_hi=0):
    """The header into buf[0:9]; the time is (time_hi << 30) + time_ms modulo
    2**32. The node passes ms < 2**30 and bits 30-31 apart, and the u32 is
    packed as two u16 halves, so no int a 32-bit port would box is formed."""
    struct.pack_into(
        _HEADER_SPLIT, buf, 0, (PROTOCOL_VERSION << 5) | msg_type, node_id, seq,
        time_ms & 0xFFFF, ((time_ms >> 16) + (time_hi << 14)) & 0xFFFF,
    )


def _split_tables():
    """The CRC-32 byte table as its low 8 and high 24 bits, so every entry is a small int."""
    global _crc_low, _crc_high
    if _crc_low is None:
        low8 = bytearray(256)
        high24 = array("I", range(256))
        for i in range(256):
            low = i
            high = 0
            for _ in range(8):
                carry = low & 1
                low = (low >> 1) | ((high & 1) << 7)
                high >>= 1
                if carry:  # reflected polynomial 0xEDB88320
                    low ^= 0x20
                    high ^= 0xEDB883
            low8[i] = low
            high24[i] = high
        _crc_low = low8
        _crc_high = high24


def build(msg_type, node_id, seq, time_ms, payload):
    """Host convenience: the raw (unstuffed) frame as bytes."""
    if not 0 <= msg_type <= MAX_TYPE:
        raise ValueError("message type %d outside 0..31" % msg_type)
    if not 0 <= node_id <= 0xFFFF:
        raise ValueError("node id %d outside 0..65535" % node_id)
    raw = bytearray(HEADER_SIZE + len(payload) + CRC_SIZE)
    pack_header_into(raw, msg_type, node_id, seq & 0xFFFF, time_ms)
    raw[HEADER_SIZE : HEADER_SIZE + len(payload)] = payload
    n = HEADER_SIZE + len(payload)
    struct.pack_into("<I", raw, n, crc32(memoryview(raw)[:n]))
    return bytes(raw)


def to_wire(raw):
    """COBS-stuff a raw frame and add the 0x00 delimiter."""
    out = bytearray(max_encoded_length(len(raw)) + 1)
    end = encode_into(raw, len(raw), out, 0)
    out[end] = 0
    return bytes(out[: end + 1])


def parse(raw):
    """Split a raw frame: (version, msg_type, node_id, seq, time_ms, payload memoryview).

    Checks length and CRC only; the caller checks version and type.
    """
    n = len(raw)
    if n < OVERHEAD:
        raise FrameError("too_short", "frame of %d bytes is shorter than %d" % (n, OVERHEAD))
    mv = memoryview(raw)
    got = struct.unpack_from("<I", raw, n - CRC_SIZE)[0]
    if crc32(mv[: n - CRC_SIZE]) != got:
        raise FrameError("crc_errors", "CRC mismatch")
    vt, node_id, seq, time_ms = struct.unpack_from(HEADER_FORMAT, raw, 0)
    return vt >> 5, vt & 0x1F, node_id, seq, time_ms, mv[HEADER_SIZE : n - CRC_SIZE]


class FrameWriter:
    """Node side: builds frames in buffers made once, and counts the sequence.

    Fill `payload` (a memoryview), then `finish(msg_type, length, time_ms,
    time_hi=0)` returns the number of wire bytes ready in `wire`, delimiter
    included (time as in pack_header_into). Nothing here allocates after
    construction, on 32-bit ports too given a time_ms below 2**30. Where a
    u32 is not a small int (SPLIT_CRC: 32-bit ports) the CRC is computed in
    Python as its low 8 and high 24 bits and written byte by byte; elsewhere
    binascii.crc32 does it.
    `split_crc` True or False forces either way (tests); None is SPLIT_CRC.
    """

    def __init__(self, node_id, max_payload, split_crc=None, trailer=0):
        if not 0 <= node_id <= 0xFFFF:
            raise ValueError("node id %d outside 0..65535" % node_id)
        self.node_id = node_id
        self.seq = 0
        size = HEADER_SIZE + max_payload + trailer + CRC_SIZE
        self.max_payload = max_payload
        self.raw = bytearray(size)
        raw_view = memoryview(self.raw)
        self.payload = raw_view[HEADER_SIZE : HEADER_SIZE + max_payload]
        self.wire = bytearray(max_encoded_length(size) + 1)
        # Views made once over fixed chunks of the frame: binascii.crc32 takes
        # whole buffers, and iterating a view is the fastest pure-Python loop.
        self._chunks = [raw_view[i : i + _CHUNK] for i in range(0, size - _CHUNK + 1, _CHUNK)]
        self._split = SPLIT_CRC if split_crc is None else split_crc
        if self._split:
            _split_tables()
        else:
            # binascii.crc32 of the tail: a scratch copy and a view for every length.
            self._tail = bytearray(_CHUNK)
            tail_view = memoryview(self._tail)
            self._tails = [tail_view[:r] for r in range(_CHUNK)]

    def _crc(self, n):
        raw = self.raw
        q = n // _CHUNK
        crc = 0
        i = 0
        while i < q:
            crc = binascii.crc32(self._chunks[i], crc)
            i += 1
        base = q * _CHUNK
        r = n - base
        tail = self._tail
        j = 0
        while j < r:
            tail[j] = raw[base + j]
            j += 1
        return binascii.crc32(self._tails[r], crc) & 0xFFFFFFFF

    def _split_crc_into(self, n):
        """CRC-32 of raw[:n] into raw[n : n + 4], never forming the 32-bit value."""
        low8 = _crc_low
        high24 = _crc_high
        raw = self.raw
        chunks = self._chunks
        low = 0xFF  # bits 0-7 of the running CRC
        high = 0xFFFFFF  # bits 8-31
        q = n // _CHUNK
        for c in range(q):
            for b in chunks[c]:
                i = low ^ b
                low = (high & 0xFF) ^ low8[i]
                high = (high >> 8) ^ high24[i]
        for k in range(q * _CHUNK, n):
            i = low ^ raw[k]
            low = (high & 0xFF) ^ low8[i]
            high = (high >> 8) ^ high24[i]
        raw[n] = low ^ 0xFF
        raw[n + 1] = (high & 0xFF) ^ 0xFF
        raw[n + 2] = ((high >> 8) & 0xFF) ^ 0xFF
        raw[n + 3] = (high >> 16) ^ 0xFF

    def finish(self, msg_type, length, time_ms, time_hi=0):
        if length > self.max_payload:
            raise ValueError("payload of %d bytes exceeds %d" % (length, self.max_payload))
        pack_header_into(self.raw, msg_type, self.node_id, self.seq, time_ms, time_hi)
        n = self.seal(HEADER_SIZE + length)
        end = encode_into(self.raw, n, self.wire, 0)
        self.wire[end] = 0
        self.seq = (self.seq + 1) & 0xFFFF
        return end + 1

    def seal(self, n):
        """The CRC of raw[:n] into raw[n : n + 4]; the raw frame's length."""
        if self._split:
            self._split_crc_into(n)
        else:
            struct.pack_into("<I", self.raw, n, self._crc(n))
        return n + CRC_SIZE

    def encode_raw_into(self, n, out, at):
        """raw[:n] COBS-stuffed into out[at:], with its delimiter; the end offset.
        Give out room for max_encoded_length(n) + 1 bytes from `at`."""
        end = encode_into(self.raw, n, out, at)
        out[end] = 0
        return end + 1
