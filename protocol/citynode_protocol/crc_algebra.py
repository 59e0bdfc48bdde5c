"""CRC-32 of a concatenation from the CRCs of its parts, as zlib's crc32_combine.

crc32(a + b) == combine(crc32(a), crc32(b), len(b)): a CRC is linear over
GF(2), so a prefix's CRC is carried past the suffix by multiplying it with
x^(8 len(b)) modulo the polynomial. The decoder uses it to check every start
position in a damaged piece with constant work each (decoder.frame_in_piece).
Values are in zlib's reflected representation: bit 31 is x^0.
"""

from array import array

_POLY = 0xEDB88320  # the reflected CRC-32 polynomial
_ONE = 0x80000000  # x^0

_powers = array("I", [_ONE])  # _powers[k] is x^(8k) modulo the polynomial, made as needed


def multiply(a, b):
    """a * b modulo the CRC-32 polynomial (zlib's multmodp)."""
    m = _ONE
    p = 0
    while a:
        if a & m:
            p ^= b
            a ^= m
        m >>= 1
        b = (b >> 1) ^ _POLY if b & 1 else b >> 1
    return p


def byte_power(k):
    """x^(8k) modulo the polynomial; the table grows to k on first use."""
    powers = _powers
    while len(powers) <= k:
        v = powers[-1]
        for _ in range(8):
            v = (v >> 1) ^ _POLY if v & 1 else v >> 1
        powers.append(v)
    return powers[k]


def combine(crc_a, crc_b, len_b):
    """crc32(a + b) from crc32(a), crc32(b) and len(b)."""
    if not len_b:
        return crc_a
    return multiply(byte_power(len_b), crc_a) ^ crc_b
