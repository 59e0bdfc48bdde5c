"""Signed frames for network links (SPEC.md §9): a trailer with the node's boot
counter, the high half of a 32-bit sequence number and a truncated HMAC-SHA256.

A signed frame is a raw frame (frame.py) whose type carries the SIGNED bit and
whose payload is followed by the trailer, inside the CRC:

    header (9) | payload (n) | boot u32 | seq_hi u16 | mac (8) | crc u32

The MAC is the first 8 bytes of HMAC-SHA256(node key, every byte before it):
the header (version, type, node id, seq, time), the payload, boot and seq_hi.
(boot, seq_hi << 16 | seq) grows with every frame a node signs, so a receiver
recognises a replay by it (ReplayWindow).

HMAC is RFC 2104 over hashlib.sha256, which every MicroPython port has (its
`hmac` module is not on every port); the tests hold it to CPython's hmac.
"""

import hashlib
import struct

from citynode_protocol import frame, wire

SIGNED = wire.SIGNED  # type bit: the frame carries the trailer
KEY_SIZE = 32
MAC_SIZE = 8
_COUNTERS = "<IH"  # boot, seq_hi
TRAILER_SIZE = wire.SIGNED_TRAILER  # the counters (6 bytes), then the MAC
MIN_SIGNED = frame.OVERHEAD + TRAILER_SIZE
WINDOW = 64  # sequence numbers below the newest that a receiver still accepts once
_BLOCK = 64  # SHA-256 block size


class Signer:
    """HMAC-SHA256 with one node's key, its padded keys made once."""

    def __init__(self, key):
        if len(key) != KEY_SIZE:
            raise ValueError("a node key is %d bytes, not %d" % (KEY_SIZE, len(key)))
        padded = bytes(key) + bytes(_BLOCK - KEY_SIZE)
        self._inner = bytes([b ^ 0x36 for b in padded])
        self._outer = bytes([b ^ 0x5C for b in padded])

    def digest(self, data):
        """The whole HMAC-SHA256 of data (32 bytes)."""
        inner = hashlib.sha256(self._inner)
        inner.update(data)
        outer = hashlib.sha256(self._outer)
        outer.update(inner.digest())
        return outer.digest()

    def mac(self, data):
        """The truncated MAC of data: the digest's first MAC_SIZE bytes."""
        return self.digest(data)[:MAC_SIZE]

    def mac_into(self, buf, length, at):
        """Write the MAC of buf[:length] into buf[at:at + MAC_SIZE]. Here through
        hashlib, which allocates; a port's own Signer may do it without."""
        digest = self.digest(memoryview(buf)[:length])
        for i in range(MAC_SIZE):  # byte by byte: no slice or truncated copy to allocate
            buf[at + i] = digest[i]


def sequence(boot, seq_hi, seq):
    """The order of a signed frame among all its node's frames: (boot, 32-bit sequence)."""
    return boot, (seq_hi << 16) | seq


def sign(raw, signer, boot, seq_hi):
    """The signed form of an unsigned raw frame (header, payload, CRC)."""
    raw = bytes(raw)
    if len(raw) < frame.OVERHEAD or raw[0] & SIGNED:
        raise frame.FrameError("bad_length", "not an unsigned raw frame")
    if len(raw) + TRAILER_SIZE > frame.MAX_FRAME:
        raise frame.FrameError("too_long", "signed frame over %d bytes" % frame.MAX_FRAME)
    body = bytearray(raw[: -frame.CRC_SIZE])
    body[0] |= SIGNED
    body += struct.pack(_COUNTERS, boot, seq_hi)
    body += signer.mac(body)
    return bytes(body) + struct.pack("<I", frame.crc32(body))


def sign_writer(writer, length, signer, boot, seq_hi):
    """Sign, in place, the frame a FrameWriter (made with trailer=TRAILER_SIZE) has
    just finished with a payload of length bytes; the signed raw frame's length.
    Its wire form is then `writer.encode_raw_into(n, out, at)`."""
    raw = writer.raw
    end = frame.HEADER_SIZE + length
    raw[0] |= SIGNED
    struct.pack_into("<HHH", raw, end, boot & 0xFFFF, boot >> 16, seq_hi)  # u32 in halves: no long int
    mac_at = end + 6
    signer.mac_into(raw, mac_at, mac_at)
    return writer.seal(mac_at + MAC_SIZE)


def is_signed(raw):
    return len(raw) > 0 and bool(raw[0] & SIGNED)


def trailer(raw):
    """(boot, seq_hi, mac) of a signed raw frame whose CRC was checked."""
    if len(raw) < MIN_SIGNED or not is_signed(raw):
        raise frame.FrameError("bad_length", "not a signed frame")
    end = len(raw) - frame.CRC_SIZE
    boot, seq_hi = struct.unpack_from(_COUNTERS, raw, end - TRAILER_SIZE)
    return boot, seq_hi, bytes(raw[end - MAC_SIZE : end])


def verify(raw, signer):
    """True when the signed raw frame's MAC is right for this key (compared in constant time)."""
    boot, seq_hi, mac = trailer(raw)
    want = signer.mac(memoryview(raw)[: len(raw) - frame.CRC_SIZE - MAC_SIZE])
    diff = 0
    for a, b in zip(mac, want):
        diff |= a ^ b
    return diff == 0


def unsign(raw):
    """The unsigned raw frame a signed one carries (SIGNED bit cleared, trailer
    dropped, CRC made anew), for the decoder; verify first."""
    trailer(raw)
    body = bytearray(raw[: len(raw) - frame.CRC_SIZE - TRAILER_SIZE])
    body[0] &= ~SIGNED & 0xFF
    return bytes(body) + struct.pack("<I", frame.crc32(body))


class ReplayWindow:
    """Which (boot, 32-bit sequence) of one node were accepted: the newest, and
    the WINDOW below it, as on an IPsec link, so frames a little out of order
    pass once and a repeat or anything older is refused."""

    def __init__(self):
        self.boot = -1
        self.top = -1
        self._seen = 0  # bit i: top - i was accepted

    def check(self, boot, seq32):
        """"new", "replay" (seen, or older than the window) or "old_boot"; records a new one."""
        if boot < self.boot:
            return "old_boot"
        if boot > self.boot:
            self.boot, self.top, self._seen = boot, seq32, 1
            return "new"
        if seq32 > self.top:
            shift = seq32 - self.top
            self._seen = ((self._seen << shift) | 1) & ((1 << WINDOW) - 1) if shift < WINDOW else 1
            self.top = seq32
            return "new"
        back = self.top - seq32
        if back >= WINDOW or self._seen >> back & 1:
            return "replay"
        self._seen |= 1 << back
        return "new"
