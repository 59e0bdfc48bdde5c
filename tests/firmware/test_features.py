"""citynode_fw.features on synthetic blocks: RMS, peak, dominant frequency, tilt;
a whole window allocates nothing and no step does more than its bound of work."""

import gc
import math

from citynode_protocol import messages
from citynode_protocol.payload import unpack
from citynode_fw import features, fft
from citynode_fw.features import BUDGET, Features, tilt_deg

COUNTS_PER_G = 16384  # +-2 g range


def _put(buf, i, v):
    v = int(v)
    v = 32767 if v > 32767 else (-32768 if v < -32768 else v)  # saturating, as the drivers do
    v &= 0xFFFF
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


def _blocks(odr, seconds, signal, block):
    """The blocks of _feed made up front (a list of (bytearray, n))."""
    out = []
    total = int(odr * seconds)
    index = 0
    while index < total:
        n = block if total - index >= block else total - index
        buf = bytearray(6 * block)
        for s in range(n):
            x, y, z = signal((index + s) / odr)
            _put(buf, 3 * s, x * COUNTS_PER_G)
            _put(buf, 3 * s + 1, y * COUNTS_PER_G)
            _put(buf, 3 * s + 2, z * COUNTS_PER_G)
        out.append((buf, n))
        index += n
    return out


def _window(f, blocks, first, out):
    """Accumulate the blocks, run every step, pack the result: a node's whole window."""
    k = 0
    index = first
    while k < len(blocks):
        buf, n = blocks[k]
        f.add_block(buf, n, index)
        index += n
        k += 1
    while f.busy:
        f.step()
    return f.pack_into(out, 100)


def test_whole_window_allocates_nothing():
    # 10 s at 200 Hz in blocks of 200, the node's defaults: accumulation, the
    # moments, tilt, both FFT passes and the FEATURES payload, after one window
    # of warm-up
    f = Features()
    f.configure(200000, 10, 2, (0.5, -0.25), messages.ACCEL_CALIBRATED)
    blocks = _blocks(200, 10, lambda t: (_sine(3.37, 0.01, t), 0.1 + _sine(11.9, 0.005, t), 0.99 + _sine(1.23, 0.02, t)), 200)
    out = bytearray(64)
    assert _window(f, blocks, 0, out) == features.SIZE
    gc.collect()
    gc.disable()
    try:
        before = gc.mem_alloc()
        n = _window(f, blocks, 2000, out)
        used = gc.mem_alloc() - before
    finally:
        gc.enable()
    assert used == 0, "a whole window allocated %d bytes" % used
    fields, _extra = unpack(messages.FEATURES, out[:n])
    assert f.windows == 2 and fields["n_samples"] == 2000
    assert abs(fields["dominant_freq_y_hz"] - 11.9) < 0.05 and abs(fields["dominant_freq_z_hz"] - 1.23) < 0.05


def _butterflies(sp):
    """Butterflies the spectrum has done so far, read from its loop state (span,
    twiddle index k, point j; stages in order, k outer, j inner), not from its
    own work count."""
    per_axis = 9 * 256
    if sp._phase < fft._FFT:
        return 0
    if sp._phase > fft._FFT:
        return (sp._axis + 1) * per_axis if sp._phase < fft._DONE else 3 * per_axis
    span = sp._span
    stage = 0
    while (1 << stage) < span:
        stage += 1
    return sp._axis * per_axis + 256 * stage + sp._k * (256 // span) + (sp._j - sp._k) // (2 * span)


def test_every_step_is_bounded():
    f = Features()
    f.configure(200000, 10, 2)
    _feed(f, 200, 10, lambda t: (_sine(5.0, 0.01, t), _sine(7.0, 0.3, t), 1.0 + _sine(2.0, 0.001, t)))
    sp = f._spectrum
    m = sp._m
    steps = 0
    units = 0
    most_units = 0
    most_butterflies = 0
    done = 0
    while f.busy:
        f.step()
        steps += 1
        units += f.step_work
        most_units = max(most_units, f.step_work)
        now = _butterflies(sp) if f.busy else 3 * 9 * 256
        most_butterflies = max(most_butterflies, now - done)
        done = now
    assert f.ready and m == 1000
    assert done == 3 * 9 * 256  # three 512-point complex FFTs
    assert most_butterflies <= BUDGET, most_butterflies
    assert most_units <= BUDGET, most_units
    # the work a window is, counted from the algorithm's shape: moments, fill
    # (a unit a point), zero padding (a unit per two), 240 swaps of the 9-bit
    # reversal (two units each), then per axis the butterflies, the bins
    # searched and the interpolation
    expected = features.MOMENTS + m + (fft.NFFT - m) // 2 + 2 * 240 + 3 * (9 * 256 + (512 - fft.MIN_BIN) + fft.INTERP)
    assert units == expected, (units, expected)
    assert steps == (expected + BUDGET - 1) // BUDGET, steps


def test_full_scale_signals_do_not_overflow():
    # +-2 g tones on a +-2 g range (clipped at the rails): the int16 FFT stages
    # and the two-word sums must hold them
    f = Features()
    f.configure(200000, 10, 2)
    _feed(f, 200, 10, lambda t: (_sine(13.0, 2.0, t), _sine(0.7, 1.999, t), _sine(41.1, 2.0, t)))
    f.finish()
    r = f.result
    for axis, freq in ((0, 13.0), (1, 0.7), (2, 41.1)):
        assert abs(r[6 + axis] - freq) < 0.05, (axis, r[6 + axis])
        assert abs(r[axis] - 2.0 / math.sqrt(2)) < 0.02, (axis, r[axis])
        assert abs(r[3 + axis] - 2.0) < 0.01, (axis, r[3 + axis])


def test_a_quiet_axis_keeps_its_frequency_beside_a_loud_one():
    # each axis is scaled on its own: 0.5 mg on y next to 1.5 g on x
    f = Features()
    f.configure(200000, 10, 2)
    _feed(f, 200, 10, lambda t: (_sine(7.77, 1.5, t), _sine(2.05, 0.0005, t), 1.0 + _sine(33.3, 0.8, t)))
    f.finish()
    r = f.result
    assert abs(r[6] - 7.77) < 0.05 and abs(r[7] - 2.05) < 0.05 and abs(r[8] - 33.3) < 0.05, r[6:9]
    assert abs(r[1] - 0.0005 / math.sqrt(2)) < 0.00007, r[1]  # within a count of quantisation


def test_integer_tilt_matches_the_float_formula():
    cases = []
    for g in ((0.0, 0.0, 1.0), (0.0, 0.0, -1.0), (1.0, 0.0, 0.0), (-1.0, 0.0, 0.0), (0.0, -1.0, 0.0)):
        cases.append(g)
    for k in range(24):
        a = 0.3 + 0.55 * k
        b = 1.1 - 0.37 * k
        cases.append((math.sin(a) * math.cos(b), math.sin(b), math.cos(a) * math.cos(b)))
    for rng in (2, 16):
        for g in cases:
            f = Features()
            f.configure(100000, 1, rng)
            per_g = 32768 // rng
            _feed(f, 100, 1, lambda t: (g[0] * per_g / COUNTS_PER_G, g[1] * per_g / COUNTS_PER_G, g[2] * per_g / COUNTS_PER_G))
            f.finish()
            # the reference from the same integer counts the node saw
            c = [int(v * per_g) for v in g]
            c = [32767 if v > 32767 else v for v in c]
            p, r = tilt_deg(c[0], c[1], c[2])
            got_p = f.result[9]
            got_r = f.result[10]
            dr = abs(got_r - r)
            dr = min(dr, 360 - dr)  # roll wraps at +-180
            assert abs(got_p - p) < 0.001 and dr < 0.001, (rng, g, got_p, p, got_r, r)


def test_integer_helpers_against_exact_arithmetic():
    # the 64-bit port's ints are exact here; the node's stay below 2^30
    for hi, lo, n, f in ((0, 1, 1, 0), (1073725440, 65535, 65535, 0), (12345, 54321, 2000, 16), (0, 40000, 3, 8), (32767, 65535, 65535, 9)):
        assert features._divpair(hi, lo, n, f) == ((hi * 65536 + lo) << f) // n, (hi, lo, n, f)
    for v in (0, 1, 2, 3, 4, 15, 16, 17, 99, 1 << 20, (1 << 30) - 1, 1073676289, 123456789):
        r = features._isqrt(v)
        assert r * r <= v < (r + 1) * (r + 1), v
    for a, b, k in ((0, 5, 3), (2097151, 250000, 13), (32768, 31250, 9), (1000, 250000, 20), (2095104, 262143, 27)):
        exact = (a * b) >> k
        assert exact - 1 <= features._mulshift(a, b, k) <= exact, (a, b, k)
