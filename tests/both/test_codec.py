import struct

from citynode_protocol import codec


def _quiet(n, sigma_lsb):
    # deterministic pseudo-noise without `random` so both interpreters agree
    out = []
    state = 12345
    for i in range(n):
        for base in (120, -85, 16384):
            state = (state * 1103515245 + 12345) & 0x7FFFFFFF
            noise = ((state >> 8) % (2 * sigma_lsb + 1)) - sigma_lsb
            out.append(base + noise)
    return out


def test_roundtrip_raw_and_delta():
    samples = _quiet(100, 8)
    for encoding in (0, 1, None):
        used, data = codec.encode(samples, encoding)
        assert codec.decode(used, data, 100) == samples


def test_quiet_block_compresses_below_045():
    samples = _quiet(200, 14)  # uniform +-14 LSB: about 8 LSB standard deviation
    used, data = codec.encode(samples)
    assert used == 1
    assert len(data) <= 0.45 * 1200


def test_loud_block_never_exceeds_raw():
    samples = []
    state = 1
    for _ in range(600):
        state = (state * 1103515245 + 12345) & 0x7FFFFFFF
        samples.append((state >> 8) % 65536 - 32768)
    used, data = codec.encode(samples)
    assert used == 0
    assert len(data) == 1200


def test_extremes_and_wraparound_deltas():
    samples = [32767, -32768, 0, -32768, 32767, 1, 32767, -32768, -1, 0, 0, 0]
    used, data = codec.encode(samples, 1)
    assert codec.decode(1, data, 4) == samples


def test_single_sample_block():
    used, data = codec.encode([5, -6, 7])
    assert codec.decode(used, data, 1) == [5, -6, 7]


def test_layout_first_values_then_width_table():
    samples = [10, 20, 30, 11, 20, 29]  # deltas +1, 0, -1 -> zigzag 2, 0, 1
    used, data = codec.encode(samples, 1)
    assert struct.unpack("<hhh", data[:6]) == (10, 20, 30)
    assert data[6] == 0x02  # x width 2 bits (low nibble), y width 0 (high nibble)
    assert data[7] == 0x01  # z width 1 bit
    assert data[8:10] == b"\x02\x00"  # x group: value 2 in 2-bit slot 0
    assert data[10:11] == b"\x01"  # z group: value 1 in 1-bit slot 0
    assert len(data) == 11


def test_decode_rejects_inconsistent_lengths():
    used, data = codec.encode(_quiet(20, 3), 1)
    for bad in (data[:-1], data + b"\x00"):
        try:
            codec.decode(1, bad, 20)
        except ValueError:
            continue
        assert False, "accepted a block of the wrong length"


def test_decode_rejects_unknown_encoding():
    try:
        codec.decode(7, b"", 0)
    except ValueError:
        return
    assert False


def test_encoder_fills_caller_buffer_at_offset():
    samples = _quiet(50, 4)
    raw = bytearray(300)
    for i in range(150):
        struct.pack_into("<h", raw, 2 * i, samples[i])
    enc = codec.DeltaEncoder(50)
    out = bytearray(320)
    end = enc.encode_into(raw, 50, out, 14)
    assert enc.encoding == 1
    assert codec.decode(1, bytes(out[14:end]), 50) == samples
