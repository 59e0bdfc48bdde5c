"""CRC-32 of a concatenation from the CRCs of its parts, as zlib's crc32_combine.

crc32(a + b) == combine(crc32(a), crc32(b), len(b)): a CRC is linear over
GF(2), so a prefix's CRC is carried past the suffix by multiplying it with
x^(8 len(b)) modulo the polynomial. The decoder uses it to check every start
position in a damaged piece with constant work each (decoder.frame_in_piece).
Values are in zlib's reflected representation: bit 31 is x^0, bit 0 x^31.
"""

from array import array

_POLY = 0xEDB88320  # the reflected CRC-32 polynomial
_ONE = 0x80000000  # x^0


def _times_x8(v):
    for _ in range(8):
        v = (v >> 1) ^ _POLY if v & 1 else v >> 1
    return v


# BYTE_TABLE[v] is v * x^8, v in the low byte (x^24 .. x^31): the usual CRC-32 table.
BYTE_TABLE = array("I", [_times_x8(v) for v in range(256)])
_powers = array("I", [_ONE])  # _powers[k] is x^(8k) modulo the polynomial, made as needed


def multiply(a, b):
    """a * b modulo the CRC-32 polynomial (zlib's multmodp), a byte of a at a time."""
    b0 = b
    b1 = (b0 >> 1) ^ _POLY if b0 & 1 else b0 >> 1
    b2 = (b1 >> 1) ^ _POLY if b1 & 1 else b1 >> 1
    b3 = (b2 >> 1) ^ _POLY if b2 & 1 else b2 >> 1
    b4 = (b3 >> 1) ^ _POLY if b3 & 1 else b3 >> 1
    b5 = (b4 >> 1) ^ _POLY if b4 & 1 else b4 >> 1
    b6 = (b5 >> 1) ^ _POLY if b5 & 1 else b5 >> 1
    b7 = (b6 >> 1) ^ _POLY if b6 & 1 else b6 >> 1
    table = BYTE_TABLE
    p = 0
    for shift in (0, 8, 16, 24):  # Horner's rule from the highest powers (the low byte) down
        p = (p >> 8) ^ table[p & 0xFF]
        v = (a >> shift) & 0xFF
        if v:
            if v & 0x80:
                p ^= b0
            if v & 0x40:
                p ^= b1
            if v & 0x20:
                p ^= b2
            if v & 0x10:
                p ^= b3
            if v & 0x08:
                p ^= b4
            if v & 0x04:
                p ^= b5
            if v & 0x02:
                p ^= b6
            if v & 0x01:
                p ^= b7
    return p


def byte_powers(k):
    """The table of x^(8i) modulo the polynomial for i = 0 .. at least k (grown on first use)."""
    powers = _powers
    table = BYTE_TABLE
    while len(powers) <= k:
        v = powers[-1]
        powers.append((v >> 8) ^ table[v & 0xFF])
    return powers


def combine(crc_a, crc_b, len_b):
    """crc32(a + b) from crc32(a), crc32(b) and len(b)."""
    if not len_b:
        return crc_a
    return multiply(byte_powers(len_b)[len_b], crc_a) ^ crc_b
