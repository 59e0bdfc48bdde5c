"""Node time and sample counters modulo 2^30: small ints on every port.

A 32-bit port's small ints stop at 2^30 - 1; beyond, every result is a long
int on the heap. So node ms (Board.ms) and the sample counter wrap at 2^30, on
every port alike, and are only compared or subtracted through `diff` and
stepped through `add`, whose intermediate values all stay below 2^30 too.
"""

try:
    from micropython import const
except ImportError:  # CPython

    def const(value):
        return value


MASK = const(0x3FFFFFFF)  # 2^30 - 1 (2^30 itself is a long int on a 32-bit port)
_HALF = const(0x20000000)


def diff(a, b):
    """a - b of two values modulo 2^30, as -2^29 .. 2^29 - 1."""
    return (((a - b) & MASK) ^ _HALF) - _HALF


def add(t, d):
    """t + d modulo 2^30, for 0 <= d <= MASK."""
    return (t - MASK - 1 + d) & MASK
