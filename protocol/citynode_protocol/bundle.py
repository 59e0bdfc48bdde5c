"""Bundles (SPEC.md §4, type 8): several frames of a node made while it lingered,
as records of one frame, so they share one header, trailer and CRC.

A record:

    u8 type (bit 7: DELTA) | u8 body length | u8 seq_back | u24 time_back_ms | body

seq_back and time_back count back from the bundle's header, whose seq and
time_ms are those of its last record. A body is the record's payload, or with
DELTA the payload as a byte delta against the previous record of the same type
in the same bundle: a bitmap of ceil(len / 8) bytes (bit i of byte i // 8, low
bit first: payload byte i differs) and then the bytes that differ, in order.

`Writer` (node side) appends records into a buffer made once, with no
allocation per record, and finishes the bundle as an unsigned frame's header
and payload for auth.sign_writer. `expand` (receivers) gives the records back
as (type, seq, time_ms, payload) or raises BundleError; never anything else.
"""

import binascii
import struct

from citynode_protocol import PROTOCOL_VERSION, frame, wire

BUNDLE = wire.BUNDLE
DELTA = 0x80
RECORD_HEAD = 6  # type, body length, seq_back, time_back (u24)
MAX_BODY = 255
MAX_SEQ_BACK = 255
MAX_TIME_BACK = 0xFFFFFF
_TYPE_BITS = 0x1F
PREV_MAX = 48  # the writer keeps payloads up to this long as delta bases
_BASES = 8  # types 0..7 have a delta base slot


class BundleError(ValueError):
    """A bundle that does not parse; receivers drop it and count `bad_bundle`."""


def bundled(msg_type, length):
    """Whether a frame of this type and payload length may go into a bundle:
    never a REPLY (someone awaits it alone) or ACCEL block, never a bundle,
    never a payload longer than a record's body can hold."""
    return (0 < msg_type < wire.SIGNED and msg_type != wire.REPLY and msg_type != wire.ACCEL
            and msg_type != BUNDLE and length <= MAX_BODY)


def expand(payload, seq, time_ms, seq_mask=0xFFFFFFFF):
    """The records of a bundle's payload: [(msg_type, seq, time_ms, payload bytes)], in order.

    seq and time_ms are the bundle's (its header's, seq widened to 32 bits by
    a signed frame's seq_hi); seq_mask 0xFFFF for a receiver that has only
    the header's u16. Raises BundleError for a record that runs past the end, a
    delta with no previous record of its type or of another length, a bitmap
    that does not match its bytes, records out of order, a last record that
    is not the header's, a record of a type that is never bundled, or a
    sequence number below 0."""
    mv = memoryview(payload)
    n = len(mv)
    out = []
    at = 0
    last_seq_back = -1
    last_time_back = 0
    bases = {}
    while at < n:
        if at + RECORD_HEAD > n:
            raise BundleError("record header runs past the end")
        kind = mv[at]
        size = mv[at + 1]
        seq_back = mv[at + 2]
        time_back = mv[at + 3] | (mv[at + 4] << 8) | (mv[at + 5] << 16)
        msg_type = kind & _TYPE_BITS
        at += RECORD_HEAD
        if at + size > n:
            raise BundleError("record body runs past the end")
        if kind & 0x60 or not bundled(msg_type, 0):
            raise BundleError("record of type 0x%02x cannot be bundled" % kind)
        if last_seq_back >= 0 and (seq_back >= last_seq_back or time_back > last_time_back):
            raise BundleError("records out of order")
        if seq_back > seq and seq_mask == 0xFFFFFFFF:
            raise BundleError("record sequence below 0")
        body = mv[at : at + size]
        at += size
        if kind & DELTA:
            base = bases.get(msg_type)
            if base is None:
                raise BundleError("delta with no previous record of type %d" % msg_type)
            body = undelta(base, body)
        else:
            body = bytes(body)
        bases[msg_type] = body
        out.append((msg_type, (seq - seq_back) & seq_mask, (time_ms - time_back) & 0xFFFFFFFF, body))
        last_seq_back = seq_back
        last_time_back = time_back
    if not out:
        raise BundleError("a bundle without records")
    if last_seq_back or last_time_back:
        raise BundleError("the last record is not the bundle's header")
    return out


def undelta(base, body):
    """The payload a delta body makes of base (same length); BundleError if it does not fit."""
    length = len(base)
    nmap = (length + 7) // 8
    if len(body) < nmap:
        raise BundleError("delta shorter than its bitmap")
    out = bytearray(base)
    at = nmap
    for i in range(length):
        if body[i >> 3] >> (i & 7) & 1:
            if at >= len(body):
                raise BundleError("delta runs past its body")
            out[i] = body[at]
            at += 1
    if at != len(body) or (length & 7 and body[nmap - 1] >> (length & 7)):
        raise BundleError("delta bitmap does not match its bytes")
    return bytes(out)


def delta(base, payload):
    """Host side: the delta body of payload against base (same length)."""
    bitmap = bytearray((len(payload) + 7) // 8)
    changed = bytearray()
    for i in range(len(payload)):
        if payload[i] != base[i]:
            bitmap[i >> 3] |= 1 << (i & 7)
            changed.append(payload[i])
    return bytes(bitmap) + bytes(changed)


class Writer:
    """Node side: one open bundle in a buffer made once.

    `add(src, length)` takes a frame a FrameWriter has just finished (its
    header and payload in `src`, payload of length bytes) as the next record,
    or returns False when it does not fit (finish this bundle first). Record
    times and sequence numbers are kept forward from the first record while the
    bundle is open and turned into seq_back/time_back by `finish`, which writes
    the bundle's header into `raw` and returns its payload length; sign with
    auth.sign_writer(writer, n, ...) (it calls `seal`), send with
    `encode_raw_into`, then `clear()`. Times are read as two u16 halves, so a
    32-bit port never forms a boxed int here.
    """

    def __init__(self, node_id, capacity=1024, trailer=wire.SIGNED_TRAILER):
        self.node_id = node_id
        self.capacity = capacity  # bytes of records
        self.raw = bytearray(frame.HEADER_SIZE + capacity + trailer + frame.CRC_SIZE)
        self._view = memoryview(self.raw)
        self._bases = bytearray(_BASES * PREV_MAX)
        self._base_len = bytearray(_BASES)  # 0: no base of that type yet
        self.used = 0
        self.count = 0
        self.first_seq = self.first_lo = self.first_hi = 0
        self.last_seq = self.last_lo = self.last_hi = 0
        self.last_seq_fwd = self.last_time_fwd = 0

    def clear(self):
        self.used = 0
        self.count = 0
        for i in range(_BASES):
            self._base_len[i] = 0

    def add(self, src, length):
        """The frame in src (header, payload of length bytes) as the next record; False if it does not fit."""
        msg_type = src[0] & _TYPE_BITS
        seq = src[3] | (src[4] << 8)
        lo = src[5] | (src[6] << 8)
        hi = src[7] | (src[8] << 8)
        if self.count == 0:
            self.first_seq, self.first_lo, self.first_hi = seq, lo, hi
            seq_fwd = time_fwd = 0
        else:
            seq_fwd = (seq - self.first_seq) & 0xFFFF
            up = (hi - self.first_hi) & 0xFFFF
            if seq_fwd > MAX_SEQ_BACK or seq_fwd <= self.last_seq_fwd or up > 0xFF:
                return False
            time_fwd = (up << 16) + lo - self.first_lo
            if time_fwd > MAX_TIME_BACK or time_fwd < self.last_time_fwd:
                return False
        body = length
        base = msg_type * PREV_MAX
        use_delta = msg_type < _BASES and self._base_len[msg_type] == length
        if use_delta:
            body = (length + 7) >> 3
            bases = self._bases
            for i in range(length):
                if src[frame.HEADER_SIZE + i] != bases[base + i]:
                    body += 1
            use_delta = body < length
            if not use_delta:
                body = length
        at = frame.HEADER_SIZE + self.used
        if self.used + RECORD_HEAD + body > self.capacity:
            return False
        raw = self.raw
        raw[at] = msg_type | (DELTA if use_delta else 0)
        raw[at + 1] = body
        raw[at + 2] = seq_fwd  # made seq_back by finish()
        raw[at + 3] = time_fwd & 0xFF
        raw[at + 4] = (time_fwd >> 8) & 0xFF
        raw[at + 5] = time_fwd >> 16
        at += RECORD_HEAD
        if use_delta:
            bases = self._bases
            nmap = (length + 7) >> 3
            for i in range(nmap):
                raw[at + i] = 0
            out = at + nmap
            for i in range(length):
                b = src[frame.HEADER_SIZE + i]
                if b != bases[base + i]:
                    raw[at + (i >> 3)] |= 1 << (i & 7)
                    raw[out] = b
                    out += 1
        else:
            for i in range(length):
                raw[at + i] = src[frame.HEADER_SIZE + i]
        if msg_type < _BASES:
            self._base_len[msg_type] = 0  # a payload too long to keep is no one's base
            if length <= PREV_MAX:
                bases = self._bases
                for i in range(length):
                    bases[base + i] = src[frame.HEADER_SIZE + i]
                self._base_len[msg_type] = length
        self.used += RECORD_HEAD + body
        self.count += 1
        self.last_seq, self.last_lo, self.last_hi = seq, lo, hi
        self.last_seq_fwd, self.last_time_fwd = seq_fwd, time_fwd
        return True

    def finish(self):
        """The records' counts made backwards from the last, the bundle's header
        (type 8, the last record's seq and time) into raw; the payload's length."""
        raw = self.raw
        at = frame.HEADER_SIZE
        end = at + self.used
        while at < end:
            raw[at + 2] = self.last_seq_fwd - raw[at + 2]
            back = self.last_time_fwd - (raw[at + 3] | (raw[at + 4] << 8) | (raw[at + 5] << 16))
            raw[at + 3] = back & 0xFF
            raw[at + 4] = (back >> 8) & 0xFF
            raw[at + 5] = back >> 16
            at += RECORD_HEAD + raw[at + 1]
        struct.pack_into("<BHHHH", raw, 0, (PROTOCOL_VERSION << 5) | BUNDLE, self.node_id, self.last_seq, self.last_lo,
                         self.last_hi)
        return self.used

    def seal(self, n):
        """The CRC of raw[:n] into raw[n : n + 4], byte by byte; the raw frame's length."""
        crc = binascii.crc32(self._view[:n])
        low = crc & 0xFFFF
        high = (crc >> 16) & 0xFFFF
        raw = self.raw
        raw[n] = low & 0xFF
        raw[n + 1] = low >> 8
        raw[n + 2] = high & 0xFF
        raw[n + 3] = high >> 8
        return n + frame.CRC_SIZE

    def encode_raw_into(self, n, out, at):
        """raw[:n] COBS-stuffed into out[at:], with its delimiter; the end offset."""
        from citynode_protocol.cobs import encode_into

        end = encode_into(self.raw, n, out, at)
        out[end] = 0
        return end + 1
