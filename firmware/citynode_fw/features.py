"""Per-window vibration features and static tilt, computed on the node.

Over a window of `window_s` seconds of accelerometer samples (int16 counts,
+-32768 = +-range_g, calibrated when calibration is on):

- rms per axis: of the signal minus its window mean;
- peak per axis: max |x - mean|;
- dominant frequency per axis: the largest spectral peak (citynode_fw.fft);
- pitch/roll from the mean gravity vector: pitch = atan2(-x, sqrt(y^2 + z^2)),
  roll = atan2(y, z), in degrees, minus the calibration's zero-tilt reference.

Integers only, in preallocated arrays, every intermediate below 2**30 in
magnitude (a small int on a 32-bit ESP32): a whole window, the per-sample
accumulation and the per-window computation, allocates nothing in steady
state (tests/firmware/test_features.py measures it with gc off).

Per sample (`add_block`): sums are taken relative to the previous window's
mean (`ref`); the sum and the sum of squares are kept as a high and a low
accumulator, folded before every block (at most MAX_BLOCK samples), so each
stays a small int; the samples are box-car decimated by D into a buffer of at
most NFFT points per axis (two buffers: one fills while the spectra of the
last window run in place in the other).

Per window: when a window closes, its mean (1/256 counts) and the next `ref`
are taken at once; the rest runs in `step()` slices between FIFO reads, each
at most BUDGET units of work (about one butterfly each): the moments (variance
by long division of the two-word sums, integer square root; tilt by CORDIC in
micro-degrees), then the spectra (fft.Spectrum). Results appear some tens of
steps after the window closes, in `values` in the wire's units or finer:
rms and peak in ug, frequency in mHz, tilt in micro-degrees.

Dominant frequency: a 1024-point real FFT over the decimated, mean-removed,
Hann-windowed samples of each axis, then log-parabolic (Gaussian)
interpolation around the peak bin. D is the smallest integer with window
samples / D <= NFFT, so the bin spacing is fs/(D*NFFT) ~ 1/window_s (0.098 Hz
for 10 s at 200 Hz) and the search covers 3 bins .. fs/(2D) (0.29 .. 50 Hz for
10 s at 200 Hz). For a clean tone the interpolated estimate is within a few
hundredths of a bin; documented accuracy: +-0.1 Hz for a 10 s window (tests
check it).
"""

import array
import math
import struct

from citynode_fw import fft
from citynode_fw.nodetime import add
from citynode_protocol import wire

NFFT = fft.NFFT
MIN_BIN = fft.MIN_BIN
BUDGET = 128  # units of work per step(), each at most about one butterfly's time
MOMENTS = 48  # units charged for a window's moments and tilt (measured: about 40 butterflies)
MAX_BLOCK = 4096  # samples per add_block: keeps the unfolded accumulators small
_FORMAT = wire.FORMATS[wire.FEATURES]
SIZE = struct.calcsize(_FORMAT)
_RAD = 180.0 / math.pi
_CORDIC = 24  # iterations: the last angle step is 7 micro-degrees
_K_Q15 = 53961  # CORDIC gain prod sqrt(1 + 2^-2i), 1.64676, in Q15
_SNAP = 6  # per axis: sum of squares (hi, lo), |sum| (hi, lo), max, min
_NO_JOB, _MOMENTS_DUE, _SPECTRA = 0, 1, 2


def tilt_deg(x, y, z):
    """(pitch, roll) in degrees from a gravity vector in any unit (floats; the reference)."""
    pitch = math.atan2(-x, math.sqrt(y * y + z * z)) * _RAD
    roll = math.atan2(y, z) * _RAD
    return pitch, roll


def _divpair(hi, lo, n, f):
    """floor((hi * 2**16 + lo) * 2**f / n) for 0 <= hi < 2**30, 0 <= lo < 2**16,
    0 < n < 2**16, when the result is below 2**30: long division by bytes."""
    q = hi // n
    r = hi - q * n
    r = (r << 8) | (lo >> 8)  # r < n: every partial remainder < 2^24
    x = r // n
    q = (q << 8) + x
    r = ((r - x * n) << 8) | (lo & 255)
    x = r // n
    q = (q << 8) + x
    r -= x * n
    while f > 0:
        b = 8 if f > 8 else f
        r <<= b
        x = r // n
        q = (q << b) + x
        r -= x * n
        f -= b
    return q


def _isqrt(v):
    """floor(sqrt(v)) for 0 <= v < 2**30."""
    r = 0
    b = 1 << 28
    while b > v:
        b >>= 2
    while b:
        if v >= r + b:
            v -= r + b
            r = (r >> 1) + b
        else:
            r >>= 1
        b >>= 2
    return r


def _mulshift(a, b, k):
    """floor(a * b / 2**k) (within 1) for 0 <= a < 2**21, 0 <= b < 2**18, a result < 2**29."""
    x = (a >> 11) * b
    y = (a & 2047) * b
    if k >= 11:
        return (x + (y >> 11)) >> (k - 11)
    return (x << (11 - k)) + (y >> k)


def _udeg(deg):
    return int(deg * 1000000 + 0.5) if deg >= 0 else -int(-deg * 1000000 + 0.5)


class Features:
    def __init__(self):
        self._sum = array.array("i", bytes(12))  # per axis: sum of d = v - ref, low word (folded to 0..65535)
        self._sumh = array.array("i", bytes(12))  # ... high word (units of 65536)
        self._hi = array.array("i", bytes(12))  # sum of d^2: high word (units of 65536)
        self._lo = array.array("i", bytes(12))  # ... low word
        self._max = array.array("i", bytes(12))
        self._min = array.array("i", bytes(12))
        self._ref = array.array("i", bytes(12))
        self._dacc = array.array("i", bytes(12))  # decimation: the group's sum
        self._dsum = array.array("i", bytes(12))  # decimation: the window's sum of decimated points
        self._snap = array.array("i", bytes(4 * 3 * _SNAP))  # the closed window's sums for the moments
        self._mean8 = array.array("i", bytes(12))  # mean of the last window, 1/256 counts
        # the decimated samples: two buffers (6 kB each) of three axes, one
        # filling while the spectra run in the other. Made from a range, which
        # MicroPython sizes at once (from bytes it would copy a temporary); the
        # contents do not matter: a window writes points 0..m-1 before its
        # spectra read them, and the spectra zero the rest
        self._decs = (array.array("h", range(3 * NFFT)), array.array("h", range(3 * NFFT)))
        self._spectrum = fft.Spectrum()
        atan = array.array("i", bytes(4 * _CORDIC))  # atan(2^-i) in micro-degrees
        for i in range(_CORDIC):
            atan[i] = int(math.atan(1.0 / (1 << i)) * _RAD * 1000000 + 0.5)
        self._atan = atan
        self._mag = 0
        self._job = _NO_JOB
        self.step_work = 0  # units done by the last step() (tests)
        self.ready = False  # a finished window waits in `values`
        self.windows = 0
        # the finished window, in the wire's units or finer (ints: nothing boxed):
        # rms xyz (ug), peak xyz (ug), dominant frequency xyz (mHz), pitch, roll (micro-degrees)
        self.values = array.array("i", bytes(4 * 11))
        self.result_samples = 0
        self.result_first = 0
        self.result_flags = 0
        self.result_ms = 0
        self.have_means = False
        self.configure(200000, 10, 2)

    def configure(self, odr_mhz, window_s, range_g, tilt_zero=(0.0, 0.0), flags=0):
        """Start afresh with a new rate, window or range. Drops a window in progress."""
        n = (window_s * odr_mhz + 500) // 1000
        if n > 65535:
            n = 65535
        if n < 2 * MIN_BIN + 2:
            raise ValueError("feature window of %d samples is too short" % n)
        self.odr_mhz = odr_mhz
        self.window_n = n
        self.window_ms = (n * 1000000 + odr_mhz // 2) // odr_mhz
        self.decim = (n + NFFT - 1) // NFFT
        self.range_g = range_g
        self._ug = range_g * 15625  # ug per count * 512 (1e6 / 32768 = 15625 / 512)
        # bin spacing odr / (D * NFFT) in mHz, as a multiple of 2^-fq_shift below 2^18
        per = self.decim * NFFT
        shift = 0
        while shift < 24 and ((odr_mhz << (shift + 1)) + per // 2) // per < 1 << 18:
            shift += 1
        self._fq = ((odr_mhz << shift) + per // 2) // per
        self._fq_shift = shift
        self.set_flags(flags, tilt_zero)
        self._first_set = False
        self.first_index = 0
        self._restart(True)
        self._job = _NO_JOB
        self._spectrum.stop()
        self.ready = False

    def set_flags(self, flags, tilt_zero=(0.0, 0.0)):
        """Flags and tilt reference for windows from now on (calibration changes)."""
        self.flags = flags
        self.tilt_zero = tilt_zero
        self._zero_pitch = _udeg(tilt_zero[0])
        self._zero_roll = _udeg(tilt_zero[1])

    def _restart(self, fresh):
        for a in range(3):
            self._sum[a] = 0
            self._sumh[a] = 0
            self._hi[a] = 0
            self._lo[a] = 0
            self._max[a] = -32768
            self._min[a] = 32767
            self._dacc[a] = 0
            self._dsum[a] = 0
            if fresh:
                self._ref[a] = 0
        self._count = 0
        self._dcount = 0
        self._dn = 0
        self._have_ref = not fresh

    def gap(self):
        """Samples were lost: the window in progress starts again (a closed one still finishes)."""
        self._first_set = False
        self._restart(False)

    # -- per sample ------------------------------------------------------------------------

    def add_block(self, buf, n, first_index):
        """Accumulate n interleaved int16 LE samples (sample counter of the first, modulo 2^30)."""
        if n > MAX_BLOCK:
            raise ValueError("block of %d samples: at most %d" % (n, MAX_BLOCK))
        if n <= 0:
            return
        if not self._have_ref:
            # the first window measures around its first sample
            ref = self._ref
            for a in range(3):
                v = buf[2 * a] | (buf[2 * a + 1] << 8)
                ref[a] = v - 0x10000 if v & 0x8000 else v
            self._have_ref = True
        if not self._first_set:
            self.first_index = first_index
            self._first_set = True
        # fold the low words: within a block they grow by < 2^28
        for a in range(3):
            s = self._sum[a]
            self._sumh[a] += s >> 16
            self._sum[a] = s & 0xFFFF
            s = self._lo[a]
            self._hi[a] += s >> 16
            self._lo[a] = s & 0xFFFF
        i = 0
        end = 6 * n
        while i < end:
            take = 6 * (self.window_n - self._count)
            if take > end - i:
                take = end - i
            self._accumulate(buf, i, i + take)
            i += take
            self._count += take // 6
            if self._count == self.window_n:
                self._close(add(first_index, i // 6))

    def _accumulate(self, buf, i, end):
        """Samples buf[i:end] into the window (none of them closes it): the hot loop,
        the three axes written out so that every accumulator is a local."""
        ref = self._ref
        r0 = ref[0]
        r1 = ref[1]
        r2 = ref[2]
        s = self._sum
        s0 = s[0]
        s1 = s[1]
        s2 = s[2]
        hi = self._hi
        h0 = hi[0]
        h1 = hi[1]
        h2 = hi[2]
        lo = self._lo
        l0 = lo[0]
        l1 = lo[1]
        l2 = lo[2]
        mx = self._max
        x0 = mx[0]
        x1 = mx[1]
        x2 = mx[2]
        mn = self._min
        n0 = mn[0]
        n1 = mn[1]
        n2 = mn[2]
        dacc = self._dacc
        a0 = dacc[0]
        a1 = dacc[1]
        a2 = dacc[2]
        dec = self._decs[self.windows & 1]
        decim = self.decim
        dc = self._dcount
        dn = self._dn
        while i < end:
            v = buf[i] | (buf[i + 1] << 8)
            if v & 0x8000:
                v -= 0x10000
            if v > x0:
                x0 = v
            if v < n0:
                n0 = v
            a0 += v
            v -= r0
            if v > 32767:
                v = 32767
            elif v < -32767:
                v = -32767
            s0 += v
            v *= v  # < 2^30
            h0 += v >> 16
            l0 += v & 0xFFFF
            v = buf[i + 2] | (buf[i + 3] << 8)
            if v & 0x8000:
                v -= 0x10000
            if v > x1:
                x1 = v
            if v < n1:
                n1 = v
            a1 += v
            v -= r1
            if v > 32767:
                v = 32767
            elif v < -32767:
                v = -32767
            s1 += v
            v *= v
            h1 += v >> 16
            l1 += v & 0xFFFF
            v = buf[i + 4] | (buf[i + 5] << 8)
            if v & 0x8000:
                v -= 0x10000
            if v > x2:
                x2 = v
            if v < n2:
                n2 = v
            a2 += v
            v -= r2
            if v > 32767:
                v = 32767
            elif v < -32767:
                v = -32767
            s2 += v
            v *= v
            h2 += v >> 16
            l2 += v & 0xFFFF
            i += 6
            dc += 1
            if dc == decim:
                if dn < NFFT:
                    dsum = self._dsum
                    v = a0 // decim
                    dec[dn] = v
                    dsum[0] += v
                    v = a1 // decim
                    dec[NFFT + dn] = v
                    dsum[1] += v
                    v = a2 // decim
                    dec[2 * NFFT + dn] = v
                    dsum[2] += v
                    dn += 1
                a0 = 0
                a1 = 0
                a2 = 0
                dc = 0
        s[0] = s0
        s[1] = s1
        s[2] = s2
        hi[0] = h0
        hi[1] = h1
        hi[2] = h2
        lo[0] = l0
        lo[1] = l1
        lo[2] = l2
        mx[0] = x0
        mx[1] = x1
        mx[2] = x2
        mn[0] = n0
        mn[1] = n1
        mn[2] = n2
        dacc[0] = a0
        dacc[1] = a1
        dacc[2] = a2
        self._dcount = dc
        self._dn = dn

    # -- per window ------------------------------------------------------------------------

    def _close(self, next_first):
        """A window is complete: its mean and the next reference now, the rest in steps."""
        n = self._count
        snap = self._snap
        for a in range(3):
            s = self._sum[a]
            sh = self._sumh[a] + (s >> 16)
            s &= 0xFFFF
            # |sum| as two words, sh keeps the sign
            if sh >= 0:
                ah = sh
                al = s
            elif s:
                ah = -sh - 1
                al = 65536 - s
            else:
                ah = -sh
                al = 0
            md = (_divpair(ah, al, n, 9) + 1) >> 1  # |mean of d| in 1/256 counts, < 2^23
            mean8 = self._ref[a] * 256 + (md if sh >= 0 else -md)
            self._mean8[a] = mean8
            self._ref[a] = (mean8 + 128) >> 8
            o = _SNAP * a
            s = self._lo[a]
            snap[o] = self._hi[a] + (s >> 16)
            snap[o + 1] = s & 0xFFFF
            snap[o + 2] = ah
            snap[o + 3] = al
            snap[o + 4] = self._max[a]
            snap[o + 5] = self._min[a]
        self.have_means = True
        self.result_samples = n
        self.result_first = self.first_index
        self.result_flags = self.flags
        self.result_ms = self.window_ms
        self.first_index = next_first
        self._spectrum.start(self._decs[self.windows & 1], self._dn, self._dsum, self._max, self._min)
        self._job = _MOMENTS_DUE
        self.windows += 1
        self.ready = False
        self._restart(False)

    def _moments(self):
        """rms, peak and tilt of the closed window into `values`."""
        n = self.result_samples
        snap = self._snap
        vals = self.values
        ug = self._ug
        for a in range(3):
            o = _SNAP * a
            # E[d^2] in Q(f), f even and as large as keeps it below 2^26 (or f = 0)
            e = _divpair(snap[o], snap[o + 1], n, 0)
            f = 0
            while f < 16 and e < 1 << (24 - f):
                f += 2
            var = _divpair(snap[o], snap[o + 1], n, f)
            # minus E[d]^2 in Q(f): E[d] in Q(f/2 + 8) is below 2^23; square it in pieces
            md = _divpair(snap[o + 2], snap[o + 3], n, f // 2 + 8)
            u = md >> 8
            w = md & 255
            var -= u * u + ((2 * u * w) >> 8) + ((w * w) >> 16)
            r = 0
            if var > 0:
                # sqrt in Q(f/2 + 5): the root plus rem / 2 root (rem < 2 root + 1 < 2^16)
                r = _isqrt(var)
                r = (r << 5) + (((var - r * r) << 4) + (r >> 1)) // r
            vals[a] = (_mulshift(r, ug, 13 + f // 2) + 1) >> 1
            mean16 = (self._mean8[a] + 8) >> 4
            peak = snap[o + 4] * 16 - mean16
            if mean16 - snap[o + 5] * 16 > peak:
                peak = mean16 - snap[o + 5] * 16
            vals[3 + a] = (_mulshift(peak, ug, 12) + 1) >> 1
        self._tilt()

    def _tilt(self):
        """pitch = atan2(-x, sqrt(y^2 + z^2)), roll = atan2(y, z) of the mean, in micro-degrees."""
        m = self._mean8
        x = m[0]
        y = m[1]
        z = m[2]
        big = x if x >= 0 else -x
        if y > big or -y > big:
            big = y if y >= 0 else -y
        if z > big or -z > big:
            big = z if z >= 0 else -z
        vals = self.values
        if big == 0:
            vals[9] = -self._zero_pitch
            vals[10] = -self._zero_roll
            return
        while big < 1 << 24:  # |mean8| < 2^23: scale up to 2^24..2^25
            big <<= 1
            x <<= 1
            y <<= 1
            z <<= 1
        roll = self._atan2(y, z)
        # the CORDIC magnitude is sqrt(y^2 + z^2) times its gain: scale x by the gain too
        xa = x if x >= 0 else -x
        xa = ((xa >> 12) * _K_Q15 + (((xa & 4095) * _K_Q15) >> 12)) >> 3
        pitch = self._atan2(xa if x < 0 else -xa, self._mag)
        vals[9] = pitch - self._zero_pitch
        vals[10] = roll - self._zero_roll

    def _atan2(self, y, x):
        """atan2(y, x) in micro-degrees by CORDIC, |x|, |y| < 2**26.5; leaves the
        magnitude times the gain (< 2**28) in self._mag."""
        if x == 0 and y == 0:
            self._mag = 0
            return 0
        turn = 0
        if x < 0:
            turn = 180000000 if y >= 0 else -180000000
            x = -x
            y = -y
        tab = self._atan
        z = 0
        i = 0
        while i < _CORDIC:
            if y > 0:
                x, y = x + (y >> i), y - (x >> i)
                z += tab[i]
            else:
                x, y = x - (y >> i), y + (x >> i)
                z -= tab[i]
            i += 1
        self._mag = x
        return turn + z

    def current_mean(self):
        """Mean counts (x, y, z) of the window so far, else of the last one, else None."""
        n = self._count
        if n > 0:
            return [self._ref[a] + (self._sumh[a] * 65536 + self._sum[a]) / n for a in range(3)]
        if self.have_means:
            return [self._mean8[a] / 256 for a in range(3)]
        return None

    @property
    def busy(self):
        return self._job != _NO_JOB

    def step(self):
        """Run one slice (at most BUDGET units) of pending work; True when a result became ready."""
        if self._job == _NO_JOB:
            return False
        left = BUDGET
        if self._job == _MOMENTS_DUE:
            self._moments()
            left -= MOMENTS
            self._job = _SPECTRA
        sp = self._spectrum
        left = sp.run(left)
        self.step_work = BUDGET - left
        if not sp.done:
            return False
        vals = self.values
        bins = sp.bins
        for a in range(3):
            b = bins[a]
            vals[6 + a] = (_mulshift(b, self._fq, 11 + self._fq_shift) + 1) >> 1 if b else 0
        sp.stop()
        self._job = _NO_JOB
        self.ready = True
        return True

    def finish(self):
        """Run all pending work now (tests, or a node with time to spare)."""
        while self._job != _NO_JOB:
            self.step()
        return self.ready

    @property
    def result(self):
        """The last window as floats: rms xyz, peak xyz (g), frequency xyz (Hz), pitch, roll (deg).
        For tests and tools: it allocates, the node uses `values` and `pack_into`."""
        v = self.values
        return [v[i] / 1e6 for i in range(6)] + [v[i] / 1e3 for i in range(6, 9)] + [v[9] / 1e6, v[10] / 1e6]

    def pack_into(self, buf, age_ms):
        """FEATURES payload of the ready result into buf; returns its length.

        age_ms: from the window's first sample to the frame's time.
        """
        v = self.values
        struct.pack_into(
            _FORMAT,
            buf,
            0,
            self.result_ms,
            age_ms if age_ms > 0 else 0,
            self.result_samples,
            self.result_flags,
            0,
            v[0],
            v[3],
            _centi(v[6], 10, 0, 0xFFFF),
            v[1],
            v[4],
            _centi(v[7], 10, 0, 0xFFFF),
            v[2],
            v[5],
            _centi(v[8], 10, 0, 0xFFFF),
            _centi(v[9], 10000, -32768, 32767),
            _centi(v[10], 10000, -32768, 32767),
        )
        self.ready = False
        return SIZE


def _centi(v, per, lo, hi):
    """v / per rounded half up, clamped to lo..hi."""
    v = (v + per // 2) // per
    return lo if v < lo else (hi if v > hi else v)
