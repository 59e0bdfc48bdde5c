"""crc_algebra.combine against binascii.crc32 of the joined bytes."""

import binascii

from citynode_protocol import crc_algebra


def _crc(data):
    return binascii.crc32(data) & 0xFFFFFFFF


def test_combine_gives_the_crc_of_the_concatenation():
    state = 11
    data = bytearray(700)
    for i in range(len(data)):
        state = (state * 1103515245 + 12345) & 0x7FFFFFFF
        data[i] = state >> 23
    data = bytes(data)
    for cut_a, cut_b in ((0, 0), (0, 5), (3, 3), (1, 300), (299, 700), (0, 700), (650, 700)):
        a = data[:cut_a]
        b = data[cut_a:cut_b]
        assert crc_algebra.combine(_crc(a), _crc(b), len(b)) == _crc(a + b), (cut_a, cut_b)


def test_multiply_by_one_and_the_byte_powers():
    powers = crc_algebra.byte_powers(8)
    assert crc_algebra.multiply(powers[0], 0x12345678) == 0x12345678
    assert crc_algebra.multiply(0x12345678, powers[0]) == 0x12345678
    # x^(8 * 3) * x^(8 * 5) == x^(8 * 8)
    assert crc_algebra.multiply(powers[3], powers[5]) == powers[8]
