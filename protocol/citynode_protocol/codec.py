"""Accelerometer block encodings.

Samples are int16 counts, ±32768 = ±range_g, for three axes. The node keeps
them interleaved little-endian (x, y, z, x, y, z, ...) as read from the FIFO.

ENCODING_RAW (0): the interleaved int16 bytes as they are: 6 bytes a sample.

ENCODING_DELTA_BITPACK (1), planar per axis:
  first value of x, y, z      3 x int16 LE
  width codes                 one 4-bit code per group of 8 deltas, all groups of
                              x, then y, then z; low nibble first; padded to a byte
  group data                  for each group (x groups, then y, then z): 8 values
                              of `width` bits each, LSB first, i.e. exactly
                              `width` bytes
Deltas are taken modulo 2^16 (int16 wrap-around) and zigzag-mapped
(0, -1, 1, -2, ... -> 0, 1, 2, 3, ...). A short last group is padded with zeros.
Width code w means w bits for w < 15 and 16 bits for w == 15.

The encoder falls back to raw whenever the packed form would be larger, so a
loud signal costs at most the raw size.
"""

try:
    from micropython import const
except ImportError:  # CPython

    def const(value):
        return value


GROUP = const(8)


def raw_size(n):
    return 6 * n


def groups(n):
    """Groups of 8 deltas per axis for a block of n samples."""
    return (n - 1 + GROUP - 1) // GROUP if n > 1 else 0


def _sample(buf, n_axis_index):
    # int16 little-endian at sample-axis index (sample * 3 + axis), no allocation
    i = n_axis_index << 1
    v = buf[i] | (buf[i + 1] << 8)
    return v - 0x10000 if v & 0x8000 else v


def _zigzag_delta(cur, prev):
    d = (cur - prev) & 0xFFFF
    if d & 0x8000:
        d -= 0x10000
    return ((d << 1) ^ (d >> 15)) & 0xFFFF


def _width(v):
    w = 0
    while v:
        v >>= 1
        w += 1
    return w


def _code(width):
    return 15 if width >= 15 else width


def _bits(code):
    return 16 if code == 15 else code


class DeltaEncoder:
    """Encodes blocks of up to max_samples samples without allocating."""

    def __init__(self, max_samples):
        self.max_samples = max_samples
        self._codes = bytearray(3 * groups(max_samples) + 1)
        self.encoding = 0

    def packed_size(self, samples, n):
        """Size of the delta-bitpack form of n samples (fills the width table)."""
        g = groups(n)
        codes = self._codes
        total = 6 + (3 * g + 1) // 2
        axis = 0
        while axis < 3:
            k = 0
            prev = _sample(samples, axis)
            i = 1
            while k < g:
                m = 0
                j = 0
                while j < GROUP:
                    if i < n:
                        cur = _sample(samples, i * 3 + axis)
                        m |= _zigzag_delta(cur, prev)
                        prev = cur
                    i += 1
                    j += 1
                c = _code(_width(m))
                codes[axis * g + k] = c
                total += _bits(c)
                k += 1
            axis += 1
        return total

    def encode_into(self, samples, n, out, off):
        """Write the smaller encoding of n samples (n >= 1) at out[off:].

        Returns the end offset and leaves the encoding used in `self.encoding`
        (no tuple, so nothing is allocated). `out` must hold raw_size(n) bytes.
        """
        if self.packed_size(samples, n) >= raw_size(n):
            end = off + raw_size(n)
            i = 0
            while off + i < end:
                out[off + i] = samples[i]
                i += 1
            self.encoding = 0
            return end
        self.encoding = 1
        return self.pack_into(samples, n, out, off)

    def pack_into(self, samples, n, out, off):
        """Write the delta-bitpack form; call packed_size(samples, n) first."""
        g = groups(n)
        codes = self._codes
        o = off
        axis = 0
        while axis < 3:
            first = _sample(samples, axis) & 0xFFFF
            out[o] = first & 0xFF
            out[o + 1] = first >> 8
            o += 2
            axis += 1
        k = 0
        while k < 3 * g:
            lo = codes[k]
            hi = codes[k + 1] if k + 1 < 3 * g else 0
            out[o] = lo | (hi << 4)
            o += 1
            k += 2
        axis = 0
        while axis < 3:
            prev = _sample(samples, axis)
            i = 1
            k = 0
            while k < g:
                width = _bits(codes[axis * g + k])
                acc = 0
                nbits = 0
                j = 0
                while j < GROUP:
                    if i < n:
                        cur = _sample(samples, i * 3 + axis)
                        v = _zigzag_delta(cur, prev)
                        prev = cur
                    else:
                        v = 0
                    i += 1
                    j += 1
                    if width:
                        acc |= v << nbits
                        nbits += width
                        while nbits >= 8:
                            out[o] = acc & 0xFF
                            o += 1
                            acc >>= 8
                            nbits -= 8
                k += 1
            axis += 1
        return o


def decode(encoding, data, n):
    """Decode a block into a flat list [x0, y0, z0, x1, ...] of int16 counts.

    Raises ValueError when the data do not match n samples of that encoding.
    """
    if n < 1:
        raise ValueError("a block holds at least one sample")
    if encoding == 0:
        if len(data) != 6 * n:
            raise ValueError("raw block of %d samples needs %d bytes, has %d" % (n, 6 * n, len(data)))
        return [_sample(data, i) for i in range(3 * n)]
    if encoding != 1:
        raise ValueError("unknown accel encoding %d" % encoding)
    g = groups(n)
    table = 6 + (3 * g + 1) // 2
    if len(data) < table:
        raise ValueError("delta block shorter than its width table")
    codes = []
    for k in range(3 * g):
        b = data[6 + (k >> 1)]
        codes.append((b >> 4) if k & 1 else (b & 0x0F))
    expected = table
    for c in codes:
        expected += _bits(c)
    if expected != len(data):
        raise ValueError("delta block is %d bytes, its width table says %d" % (len(data), expected))
    out = [0] * (3 * n)
    o = table
    for axis in range(3):
        v = _sample(data, axis)
        out[axis] = v
        i = 1
        for k in range(g):
            width = _bits(codes[axis * g + k])
            acc = 0
            nbits = 0
            for _ in range(GROUP):
                if width:
                    while nbits < width:
                        acc |= data[o] << nbits
                        o += 1
                        nbits += 8
                    u = acc & ((1 << width) - 1)
                    acc >>= width
                    nbits -= width
                else:
                    u = 0
                if i < n:
                    d = (u >> 1) ^ -(u & 1)
                    v = ((v + d + 0x8000) & 0xFFFF) - 0x8000
                    out[i * 3 + axis] = v
                elif u:
                    raise ValueError("non-zero padding in the last group")
                i += 1
    return out


def encode(samples_flat, encoding=None):
    """Host convenience: flat list of counts in, (encoding, bytes) out.

    encoding None picks the smaller form, as the node does.
    """
    n = len(samples_flat) // 3
    raw = bytearray(6 * n)
    for i in range(3 * n):
        v = samples_flat[i]
        if v < -32768 or v > 32767:
            raise ValueError("sample %d out of int16 range" % v)
        v &= 0xFFFF
        raw[2 * i] = v & 0xFF
        raw[2 * i + 1] = v >> 8
    if encoding == 0:
        return 0, bytes(raw)
    if n < 1:
        raise ValueError("a block holds at least one sample")
    enc = DeltaEncoder(n)
    size = enc.packed_size(raw, n)
    out = bytearray(max(size, raw_size(n)))
    if encoding == 1:
        return 1, bytes(out[: enc.pack_into(raw, n, out, 0)])
    end = enc.encode_into(raw, n, out, 0)
    return enc.encoding, bytes(out[:end])
