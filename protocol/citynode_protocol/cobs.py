"""Consistent Overhead Byte Stuffing into caller-supplied buffers.

The encoder makes no allocation, so the node can frame in its sampling path.
Output matches the reference encoder (PyPI `cobs`): a block of 254 non-zero
bytes at the very end is not followed by an empty block.
"""


class CobsError(ValueError):
    pass


def max_encoded_length(n):
    """Worst-case encoded size of n bytes (without the 0x00 delimiter)."""
    return n + 1 + n // 254


def encode_into(src, n, dst, start=0):
    """Encode src[0:n] into dst starting at dst[start]; return the end index."""
    code_at = start
    out = start + 1
    code = 1
    i = 0
    while i < n:
        b = src[i]
        i += 1
        if b:
            dst[out] = b
            out += 1
            code += 1
            if code == 0xFF:
                dst[code_at] = 0xFF
                if i == n:
                    return out
                code_at = out
                out += 1
                code = 1
        else:
            dst[code_at] = code
            code_at = out
            out += 1
            code = 1
    dst[code_at] = code
    return out


def decode_into(src, dst):
    """Decode one whole COBS frame (bytes or bytearray, no delimiter) into dst.

    Returns the decoded length. Raises CobsError on a zero byte or on a length
    code that runs past the end.
    """
    n = len(src)
    if b"\x00" in src:
        raise CobsError("zero byte in COBS data")
    i = 0
    out = 0
    while i < n:
        code = src[i]
        end = i + code
        if end > n:
            raise CobsError("COBS code runs past the end of the frame")
        k = code - 1
        dst[out : out + k] = src[i + 1 : end]
        out += k
        i = end
        if code != 0xFF and i < n:
            dst[out] = 0
            out += 1
    return out


def encode(data):
    """Convenience: bytes in, encoded bytes out (no delimiter)."""
    buf = bytearray(max_encoded_length(len(data)))
    return bytes(buf[: encode_into(data, len(data), buf)])


def decode(data):
    """Convenience: encoded bytes in (no delimiter), decoded bytes out."""
    buf = bytearray(len(data))
    return bytes(buf[: decode_into(data, buf)])


def chain_ends(src, n):
    """Positions i in src[0:n] from which a chain of COBS codes lands exactly on n.

    A frame can only start at such a position; the decoder uses this to find a
    good frame glued behind junk. Returned in increasing order.
    """
    ok = bytearray(n + 1)
    ok[n] = 1
    i = n - 1
    while i >= 0:
        code = src[i]
        if code and i + code <= n and ok[i + code]:
            ok[i] = 1
        i -= 1
    starts = []
    i = 0
    while i < n:
        if ok[i]:
            starts.append(i)
        i += 1
    return starts
