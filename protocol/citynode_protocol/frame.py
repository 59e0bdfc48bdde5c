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

from citynode_protocol import PROTOCOL_VERSION
from citynode_protocol.cobs import encode_into, max_encoded_length

HEADER_FORMAT = "<BHHI"
HEADER_SIZE = 9
CRC_SIZE = 4
OVERHEAD = HEADER_SIZE + CRC_SIZE
MAX_TYPE = 31
MAX_FRAME = 4096  # raw frame bytes; longer frames are dropped by the decoder
_CHUNK = 64


class FrameError(ValueError):
    """A frame that cannot be used; `reason` is one of the decoder's counter names."""

    def __init__(self, reason, message):
        super().__init__(message)
        self.reason = reason


def crc32(data, value=0):
    return binascii.crc32(data, value) & 0xFFFFFFFF


def pack_header_into(buf, msg_type, node_id, seq, time_ms):
    struct.pack_into(
        HEADER_FORMAT, buf, 0, (PROTOCOL_VERSION << 5) | msg_type, node_id, seq, time_ms & 0xFFFFFFFF
    )


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

    Fill `payload` (a memoryview), then `finish(msg_type, length, time_ms)`
    returns the number of wire bytes ready in `wire`, delimiter included.
    Nothing here allocates after construction (on 64-bit ports; on 32-bit ports
    a CRC value above 2**30 is a boxed integer).
    """

    def __init__(self, node_id, max_payload):
        if not 0 <= node_id <= 0xFFFF:
            raise ValueError("node id %d outside 0..65535" % node_id)
        self.node_id = node_id
        self.seq = 0
        size = HEADER_SIZE + max_payload + CRC_SIZE
        self.max_payload = max_payload
        self.raw = bytearray(size)
        raw_view = memoryview(self.raw)
        self.payload = raw_view[HEADER_SIZE : HEADER_SIZE + max_payload]
        self.wire = bytearray(max_encoded_length(size) + 1)
        # binascii.crc32 takes whole buffers: views made once, fixed chunks of
        # the frame plus every tail length of a small scratch copy.
        self._chunks = [raw_view[i : i + _CHUNK] for i in range(0, size - _CHUNK + 1, _CHUNK)]
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

    def finish(self, msg_type, length, time_ms):
        if length > self.max_payload:
            raise ValueError("payload of %d bytes exceeds %d" % (length, self.max_payload))
        raw = self.raw
        pack_header_into(raw, msg_type, self.node_id, self.seq, time_ms)
        n = HEADER_SIZE + length
        struct.pack_into("<I", raw, n, self._crc(n))
        end = encode_into(raw, n + CRC_SIZE, self.wire, 0)
        self.wire[end] = 0
        self.seq = (self.seq + 1) & 0xFFFF
        return end + 1
