# mypy: disable-error-code="arg-type"
# (viper turns the buffers passed to a ptr8/ptr32 parameter into pointers; the stubs cannot say so)
"""HMAC-SHA256 in viper: auth.Signer's MAC with no heap allocated per frame.

MicroPython's hashlib makes a new object for every hash and a new bytes for
every digest (an object can be neither copied nor updated after digest()), so
HMAC through it allocates per frame. This SHA-256 works on buffers made once:
the key's inner and outer states are compressed once per key (which also
halves the work per frame), and the MAC is written into the frame itself.

Imports only where the port has a native emitter (ESP32: xtensawin; the Unix
port): a source file fails to compile without one, and a .mpy with viper code
is built for one architecture (`mpy-cross -march=...`). uplink.signer(key) picks
this Signer where it imports and auth.Signer (hashlib) elsewhere.

Word size: a viper uint is the machine word, 64 bits on the Unix port, so the
two running sums that are shifted right are masked to 32 bits each round;
everything else is stored through ptr32, which keeps the low 32 bits.
"""

import array

import micropython
from micropython import const
from citynode_protocol import auth

# fmt: off
_K = array.array("I", (
    0x428A2F98, 0x71374491, 0xB5C0FBCF, 0xE9B5DBA5, 0x3956C25B, 0x59F111F1, 0x923F82A4, 0xAB1C5ED5,
    0xD807AA98, 0x12835B01, 0x243185BE, 0x550C7DC3, 0x72BE5D74, 0x80DEB1FE, 0x9BDC06A7, 0xC19BF174,
    0xE49B69C1, 0xEFBE4786, 0x0FC19DC6, 0x240CA1CC, 0x2DE92C6F, 0x4A7484AA, 0x5CB0A9DC, 0x76F988DA,
    0x983E5152, 0xA831C66D, 0xB00327C8, 0xBF597FC7, 0xC6E00BF3, 0xD5A79147, 0x06CA6351, 0x14292967,
    0x27B70A85, 0x2E1B2138, 0x4D2C6DFC, 0x53380D13, 0x650A7354, 0x766A0ABB, 0x81C2C92E, 0x92722C85,
    0xA2BFE8A1, 0xA81A664B, 0xC24B8B70, 0xC76C51A3, 0xD192E819, 0xD6990624, 0xF40E3585, 0x106AA070,
    0x19A4C116, 0x1E376C08, 0x2748774C, 0x34B0BCB5, 0x391C0CB3, 0x4ED8AA4A, 0x5B9CCA4F, 0x682E6FF3,
    0x748F82EE, 0x78A5636F, 0x84C87814, 0x8CC70208, 0x90BEFFFA, 0xA4506CEB, 0xBEF9A3F7, 0xC67178F2,
))
_IV = (0x6A09E667, 0xBB67AE85, 0x3C6EF372, 0xA54FF53A, 0x510E527F, 0x9B05688C, 0x1F83D9AB, 0x5BE0CD19)
# fmt: on

# the context's words: the running state, the message schedule, the key's
# inner and outer states, and 0xFFFFFFFF (a constant too big for a small int
# on a 32-bit port)
_H = const(0)
_W = const(8)
_INNER = const(72)
_OUTER = const(80)
_MASK = const(88)
_WORDS = const(89)
_BLOCK = const(64)


@micropython.viper
def _compress(ctx: ptr32, data: ptr8, off: int):
    """One SHA-256 block, data[off:off + 64], into the state ctx[0:8]."""
    k = ptr32(_K)
    m = uint(ctx[_MASK])
    for i in range(16):
        p = off + 4 * i
        ctx[_W + i] = (uint(data[p]) << 24) | (uint(data[p + 1]) << 16) | (uint(data[p + 2]) << 8) | uint(data[p + 3])
    for i in range(_W + 16, _W + 64):
        x = uint(ctx[i - 15])
        y = uint(ctx[i - 2])
        s0 = ((x >> 7) | (x << 25)) ^ ((x >> 18) | (x << 14)) ^ (x >> 3)
        s1 = ((y >> 17) | (y << 15)) ^ ((y >> 19) | (y << 13)) ^ (y >> 10)
        ctx[i] = uint(ctx[i - 16]) + s0 + uint(ctx[i - 7]) + s1
    a = uint(ctx[0])
    b = uint(ctx[1])
    c = uint(ctx[2])
    d = uint(ctx[3])
    e = uint(ctx[4])
    f = uint(ctx[5])
    g = uint(ctx[6])
    h = uint(ctx[7])
    for i in range(64):
        s1 = ((e >> 6) | (e << 26)) ^ ((e >> 11) | (e << 21)) ^ ((e >> 25) | (e << 7))
        t1 = h + s1 + (g ^ (e & (f ^ g))) + uint(k[i]) + uint(ctx[_W + i])
        s0 = ((a >> 2) | (a << 30)) ^ ((a >> 13) | (a << 19)) ^ ((a >> 22) | (a << 10))
        t2 = s0 + ((a & b) | (c & (a | b)))
        h = g
        g = f
        f = e
        e = (d + t1) & m
        d = c
        c = b
        b = a
        a = (t1 + t2) & m
    ctx[0] = uint(ctx[0]) + a
    ctx[1] = uint(ctx[1]) + b
    ctx[2] = uint(ctx[2]) + c
    ctx[3] = uint(ctx[3]) + d
    ctx[4] = uint(ctx[4]) + e
    ctx[5] = uint(ctx[5]) + f
    ctx[6] = uint(ctx[6]) + g
    ctx[7] = uint(ctx[7]) + h


@micropython.viper
def _copy_state(ctx: ptr32, dst: int, src: int):
    for i in range(8):
        ctx[dst + i] = ctx[src + i]


@micropython.viper
def _last_block(blk: ptr8, data: ptr8, off: int, n: int, more: int) -> int:
    """Into blk: data[off:off + n] (n < 64), the 0x80 byte and zeros; the length
    field (`more` = bytes hashed before data[0], plus data's length) when it fits.
    0 when it did; else 1: compress blk, then call again with n = -1."""
    if n >= 0:
        for i in range(n):
            blk[i] = data[off + i]
        blk[n] = 0x80
        i = n + 1
    else:
        i = 0
    while i < _BLOCK:
        blk[i] = 0
        i += 1
    if n >= 56:
        return 1
    bits = uint(more) << 3  # a frame is far below 2**29 bytes: the 4 bytes above stay 0
    for i in range(4):
        blk[63 - i] = bits >> (8 * i)
    return 0


@micropython.viper
def _digest_block(ctx: ptr32, blk: ptr8):
    """Into blk: the inner digest (the state, big-endian) padded as the outer hash's
    second and last block (64 + 32 bytes hashed)."""
    for i in range(8):
        w = uint(ctx[i])
        blk[4 * i] = w >> 24
        blk[4 * i + 1] = w >> 16
        blk[4 * i + 2] = w >> 8
        blk[4 * i + 3] = w
    blk[32] = 0x80
    for i in range(33, 62):
        blk[i] = 0
    blk[62] = 3  # (64 + 32) * 8 = 768 bits: 0x0300
    blk[63] = 0


@micropython.viper
def _write_state(ctx: ptr32, out: ptr8, at: int, n: int):
    """The first n bytes of the state, big-endian, into out[at:at + n]."""
    for i in range(n):
        out[at + i] = uint(ctx[i >> 2]) >> (24 - 8 * (i & 3))


class Signer(auth.Signer):
    """auth.Signer with its MAC computed here: mac_into allocates nothing."""

    def __init__(self, key):
        super().__init__(key)
        ctx = self._ctx = array.array("I", bytes(4 * _WORDS))
        ctx[_MASK] = 0xFFFFFFFF
        self._blk = bytearray(_BLOCK)
        for at, pad in ((_INNER, self._inner), (_OUTER, self._outer)):
            for i in range(8):
                ctx[i] = _IV[i]
            _compress(ctx, pad, 0)
            _copy_state(ctx, at, _H)

    def _hmac(self, data, length, out, at, n):
        ctx, blk = self._ctx, self._blk
        _copy_state(ctx, _H, _INNER)
        full = length - (length & 63)
        for off in range(0, full, _BLOCK):
            _compress(ctx, data, off)
        if _last_block(blk, data, full, length - full, _BLOCK + length):
            _compress(ctx, blk, 0)
            _last_block(blk, data, 0, -1, _BLOCK + length)
        _compress(ctx, blk, 0)
        _digest_block(ctx, blk)
        _copy_state(ctx, _H, _OUTER)
        _compress(ctx, blk, 0)
        _write_state(ctx, out, at, n)

    def digest(self, data):
        out = bytearray(32)
        self._hmac(data, len(data), out, 0, 32)
        return bytes(out)

    def mac_into(self, buf, length, at):
        self._hmac(buf, length, buf, at, auth.MAC_SIZE)
