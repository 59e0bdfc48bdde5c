"""citynode_fw.features on synthetic blocks: RMS, peak, dominant frequency, tilt."""

import gc
import math

from citynode_protocol import messages
from citynode_protocol.payload import unpack
from citynode_fw.features import Features, tilt_deg

COUNTS_PER_G = 16384  # +-2 g range


def _put(buf, i, v):
    v = int(v) & 0xFFFF
    buf[2 * i] = v & 0xFF
    buf[2 * i + 1] = v >> 8


def _feed(f, odr, seconds, signal, block=100):
    """signal(t) -> (x, y, z) in g; fed in blocks; returns the sample count."""
    buf = bytearray(6 * block)
    total = int(odr * seconds)
    index = 0
    while index < total:
        n = block if total - index >= block else total - index
        for s in range(n):
            x, y, z = signal((index + s) / odr)
            _put(buf, 3 * s, x * COUNTS_PER_G)
            _put(buf, 3 * s + 1, y * COUNTS_PER_G)
            _put(buf, 3 * s + 2, z * COUNTS_PER_G)
        f.add_block(buf, n, index)
        index += n
    return index


def _sine(freq, amp, t):
    return amp * math.sin(2 * math.pi * freq * t)


def test_sine_rms_peak_and_frequency():
    f = Features()
    f.configure(200000, 10, 2)

    def signal(t):
        return (_sine(3.37, 0.01, t), 0.002 + _sine(11.9, 0.005, t), 1.0 + _sine(1.23, 0.02, t))

    _feed(f, 200, 10, signal)
    assert f.busy and not f.ready
    assert f.finish()
    r = f.result
    for axis, amp, freq in ((0, 0.01, 3.37), (1, 0.005, 11.9), (2, 0.02, 1.23)):
        rms = r[axis]
        peak = r[3 + axis]
        got = r[6 + axis]
        assert abs(rms - amp / math.sqrt(2)) < 0.01 * amp, (axis, rms)
        # the window mean of a non-whole number of cycles is off by up to amp/(pi*cycles)
        assert abs(peak - amp) < 0.03 * amp, (axis, peak)
        # documented: +-0.1 Hz for a 10 s window; a clean tone does far better
        assert abs(got - freq) < 0.05, (axis, got, freq)
    assert f.result_samples == 2000 and f.result_first == 0


def test_frequency_resolution_over_the_band():
    f = Features()
    for freq in (0.5, 2.05, 7.77, 24.9, 45.0):
        f.configure(200000, 10, 2)
        _feed(f, 200, 10, lambda t: (0.0, 0.0, 1.0 + _sine(freq, 0.003, t)))
        f.finish()
        assert abs(f.result[8] - freq) < 0.1, (freq, f.result[8])


def test_tilt_from_known_gravity_vectors():
    s30 = math.sin(math.radians(30))
    c30 = math.cos(math.radians(30))
    s20 = math.sin(math.radians(20))
    c20 = math.cos(math.radians(20))
    cases = (
        ((0.0, 0.0, 1.0), 0.0, 0.0),
        ((0.0, s30, c30), 0.0, 30.0),
        ((-s20, 0.0, c20), 20.0, 0.0),
        ((s20, 0.0, c20), -20.0, 0.0),
        ((0.0, 1.0, 0.0), 0.0, 90.0),
    )
    for g, pitch, roll in cases:
        p, r = tilt_deg(g[0], g[1], g[2])
        assert abs(p - pitch) < 1e-6 and abs(r - roll) < 1e-6, (g, p, r)
        f = Features()
        f.configure(100000, 2, 2)
        _feed(f, 100, 2, lambda t: g)
        f.finish()
        assert abs(f.result[9] - pitch) < 0.01 and abs(f.result[10] - roll) < 0.01, (g, f.result[9:])


def test_tilt_relative_to_zero_reference_and_flags():
    f = Features()
    f.configure(100000, 2, 2, (1.5, -2.0), messages.ACCEL_CALIBRATED | messages.FEATURES_TILT_RELATIVE)
    _feed(f, 100, 2, lambda t: (0.0, 0.0, 1.0))
    f.finish()
    assert abs(f.result[9] + 1.5) < 0.01 and abs(f.result[10] - 2.0) < 0.01
    buf = bytearray(64)
    n = f.pack_into(buf, 250)
    fields, extra = unpack(messages.FEATURES, buf[:n])
    assert extra == 0
    assert fields["flags"] == messages.ACCEL_CALIBRATED | messages.FEATURES_TILT_RELATIVE
    assert fields["pitch_deg"] == -1.5 and fields["roll_deg"] == 2.0
    assert fields["window_s"] == 2.0 and fields["n_samples"] == 200


def test_windows_follow_each_other_across_blocks():
    f = Features()
    f.configure(100000, 1, 2)  # 100-sample windows, fed in blocks of 30
    _feed(f, 100, 1.2, lambda t: (0.0, 0.0, 1.0), block=30)
    assert f.windows == 1 and f.result_first == 0
    f.finish()
    _feed_from = 120
    buf = bytearray(6 * 30)
    for s in range(30):
        _put(buf, 3 * s + 2, COUNTS_PER_G)
    for k in range(3):
        f.add_block(buf, 30, _feed_from + 30 * k)
    assert f.windows == 2 and f.result_first == 100


def test_pack_into_scales_to_the_wire():
    f = Features()
    f.configure(200000, 10, 2)
    _feed(f, 200, 10, lambda t: (_sine(5.0, 0.01, t), 0.0, 1.0))
    f.finish()
    buf = bytearray(64)
    fields, _extra = unpack(messages.FEATURES, buf[: f.pack_into(buf, 250)])
    assert abs(fields["rms_x_g"] - 0.01 / math.sqrt(2)) < 1e-4
    assert abs(fields["peak_x_g"] - 0.01) < 2e-4
    assert abs(fields["dominant_freq_x_hz"] - 5.0) < 0.05
    assert fields["rms_y_g"] == 0 and fields["window_s"] == 10.0


def test_add_block_does_not_allocate():
    f = Features()
    f.configure(200000, 60, 2)
    buf = bytearray(600)
    for s in range(100):
        _put(buf, 3 * s, (s % 7) * 50 - 150)
        _put(buf, 3 * s + 1, -(s % 5) * 70)
        _put(buf, 3 * s + 2, COUNTS_PER_G + (s % 3) * 9)
    f.add_block(buf, 100, 0)
    gc.collect()
    gc.disable()
    try:
        before = gc.mem_alloc()
        for k in range(1, 11):
            f.add_block(buf, 100, 100 * k)
        used = gc.mem_alloc() - before
    finally:
        gc.enable()
    assert used == 0, "add_block allocated %d bytes over 1000 samples" % used
