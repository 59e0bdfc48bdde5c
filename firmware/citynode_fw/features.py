"""Per-window vibration features and static tilt, computed on the node.

Over a window of `window_s` seconds of accelerometer samples (int16 counts,
+-32768 = +-range_g, calibrated when calibration is on):

- rms per axis: of the signal minus its window mean;
- peak per axis: max |x - mean|;
- dominant frequency per axis: the largest spectral peak (see below);
- pitch/roll from the mean gravity vector: pitch = atan2(-x, sqrt(y^2 + z^2)),
  roll = atan2(y, z), in degrees, minus the calibration's zero-tilt reference.

Per sample (`add_block`) only integers are used, in preallocated arrays, so the
sampler's hot path does not allocate: sums are taken relative to the previous
window's mean (`ref`), squares are split into a high and a low accumulator so
every intermediate stays a small int on 32-bit ports, and the samples are
box-car decimated by D into a buffer of at most NFFT points per axis.

Dominant frequency: a radix-2 FFT of NFFT = 1024 points over the decimated,
mean-removed, Hann-windowed samples (x and y share one complex FFT as x + iy,
z takes a second), then log-parabolic (Gaussian) interpolation around the peak
bin. D is the smallest integer with window samples / D <= NFFT, so the bin
spacing is fs/(D*NFFT) ~ 1/window_s (0.098 Hz for 10 s at 200 Hz) and the
search covers 3 bins .. fs/(2D) (0.29 .. 50 Hz for 10 s at 200 Hz). For a clean
tone the interpolated estimate is within a few hundredths of a bin; documented
accuracy: +-0.1 Hz for a 10 s window (tests check it). The FFT runs in slices
(`step()`, about BUDGET butterflies each) between FIFO reads, so it never
holds up the sampler for long; results appear some hundred milliseconds after
the window closes.
"""

import array
import math
import struct

from citynode_protocol import messages

NFFT = 1024
_LOG2_NFFT = 10
BUDGET = 128  # butterflies (or points) per step: ~0.4 ms on a PC, ~15-25 ms on an ESP32 (estimate)
MIN_BIN = 3
_FORMAT = messages.BY_NAME["features"][2]
SIZE = struct.calcsize(_FORMAT)
_RAD = 180.0 / math.pi
_CARRY = 0x20000000


def tilt_deg(x, y, z):
    """(pitch, roll) in degrees from a gravity vector in any unit."""
    pitch = math.atan2(-x, math.sqrt(y * y + z * z)) * _RAD
    roll = math.atan2(y, z) * _RAD
    return pitch, roll


def interpolate(a, b, c):
    """Peak offset in bins (-0.5..0.5) from three magnitudes around a maximum b."""
    if a <= 0 or b <= 0 or c <= 0:
        return 0.0
    la = math.log(a)
    lb = math.log(b)
    lc = math.log(c)
    den = la - 2 * lb + lc
    if den >= 0:
        return 0.0
    d = 0.5 * (la - lc) / den
    if d > 0.5:
        return 0.5
    if d < -0.5:
        return -0.5
    return d


class Features:
    def __init__(self):
        self._sum = array.array("i", [0, 0, 0])
        self._hi = array.array("i", [0, 0, 0])
        self._lo = array.array("i", [0, 0, 0])
        self._max = array.array("i", [0, 0, 0])
        self._min = array.array("i", [0, 0, 0])
        self._ref = array.array("i", [0, 0, 0])
        self._dacc = array.array("i", [0, 0, 0])
        self._decs = (array.array("h", bytearray(6 * NFFT)), array.array("h", bytearray(6 * NFFT)))
        self._re = array.array("f", bytearray(4 * NFFT))
        self._im = array.array("f", bytearray(4 * NFFT))
        half = NFFT // 2
        self._cos = array.array("f", [math.cos(2 * math.pi * k / NFFT) for k in range(half)])
        self._sin = array.array("f", [math.sin(2 * math.pi * k / NFFT) for k in range(half)])
        self._job = None
        # peak bins and offsets found by _peaks (arrays: nothing boxed is retained)
        self._pk = array.array("i", [0, 0])
        self._pd = array.array("f", [0.0, 0.0])
        self.ready = False  # a finished window waits in `result`
        self.windows = 0
        # the finished window: floats in g / Hz / degrees, filled by the steps
        # (array('f'): floats stored unboxed, so a result retains no heap objects)
        self.result = array.array("f", bytearray(4 * 11))  # rms xyz, peak xyz, freq xyz, pitch, roll
        self.result_samples = 0
        self.result_first = 0
        self.result_flags = 0
        self.means = array.array("f", bytearray(12))  # mean counts of the last window (x, y, z)
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
        self.decim = (n + NFFT - 1) // NFFT
        self.range_g = range_g
        self.tilt_zero = tilt_zero
        self.flags = flags
        self._first_set = False
        self.first_index = 0
        self._restart(True)
        self._job = None
        self.ready = False

    def set_flags(self, flags, tilt_zero=(0.0, 0.0)):
        """Flags and tilt reference for windows from now on (calibration changes)."""
        self.flags = flags
        self.tilt_zero = tilt_zero

    def _restart(self, fresh):
        for a in range(3):
            self._sum[a] = 0
            self._hi[a] = 0
            self._lo[a] = 0
            self._max[a] = -32768
            self._min[a] = 32767
            self._dacc[a] = 0
            if fresh:
                self._ref[a] = 0
        self._count = 0
        self._dcount = 0
        self._dn = 0
        self._have_ref = not fresh

    def add_block(self, buf, n, first_index):
        """Accumulate n interleaved int16 LE samples (sample counter of the first)."""
        if not self._have_ref and n > 0:
            # the first window measures around its first sample
            ref = self._ref
            for a in range(3):
                v = buf[2 * a] | (buf[2 * a + 1] << 8)
                ref[a] = v - 0x10000 if v & 0x8000 else v
            self._have_ref = True
        if not self._first_set:
            self.first_index = first_index
            self._first_set = True
        s = self._sum
        hi = self._hi
        lo = self._lo
        mx = self._max
        mn = self._min
        ref = self._ref
        dacc = self._dacc
        dec = self._decs[self.windows & 1]
        decim = self.decim
        window_n = self.window_n
        count = self._count
        dcount = self._dcount
        dn = self._dn
        i = 0
        end = 6 * n
        while i < end:
            a = 0
            while a < 3:
                j = i + a + a
                v = buf[j] | (buf[j + 1] << 8)
                if v & 0x8000:
                    v -= 0x10000
                if v > mx[a]:
                    mx[a] = v
                if v < mn[a]:
                    mn[a] = v
                d = v - ref[a]
                if d > 32767:
                    d = 32767
                elif d < -32767:
                    d = -32767
                s[a] += d
                sq = d * d
                hi[a] += sq >> 16
                low = lo[a] + (sq & 0xFFFF)
                if low >= _CARRY:
                    hi[a] += low >> 16
                    low &= 0xFFFF
                lo[a] = low
                dacc[a] += v
                a += 1
            i += 6
            dcount += 1
            if dcount == decim:
                if dn < NFFT:
                    dec[dn] = dacc[0] // decim
                    dec[NFFT + dn] = dacc[1] // decim
                    dec[2 * NFFT + dn] = dacc[2] // decim
                    dn += 1
                dacc[0] = 0
                dacc[1] = 0
                dacc[2] = 0
                dcount = 0
            count += 1
            if count == window_n:
                self._count = count
                self._dn = dn
                self._close(first_index + i // 6)
                dec = self._decs[self.windows & 1]
                count = 0
                dcount = 0
                dn = 0
        self._count = count
        self._dcount = dcount
        self._dn = dn

    def _close(self, next_first):
        """A window is complete: the moments now, the spectra in later steps."""
        n = self._count
        r = self.result
        scale = self.range_g / 32768.0
        means = [0.0, 0.0, 0.0]
        for a in range(3):
            md = self._sum[a] / n
            mean = self._ref[a] + md
            means[a] = mean
            var = (self._hi[a] * 65536.0 + self._lo[a]) / n - md * md
            r[a] = math.sqrt(var) * scale if var > 0 else 0.0
            peak = self._max[a] - mean
            if mean - self._min[a] > peak:
                peak = mean - self._min[a]
            r[3 + a] = peak * scale
            self._ref[a] = int(mean + 0.5) if mean >= 0 else -int(-mean + 0.5)
        self.means[0] = means[0]
        self.means[1] = means[1]
        self.means[2] = means[2]
        self.have_means = True
        pitch, roll = tilt_deg(means[0], means[1], means[2])
        r[9] = pitch - self.tilt_zero[0]
        r[10] = roll - self.tilt_zero[1]
        self.result_samples = n
        self.result_first = self.first_index
        self.result_flags = self.flags
        self.first_index = next_first
        self._job = self._spectra(self._decs[self.windows & 1], self._dn, means)
        self.windows += 1
        self.ready = False
        self._restart(False)

    def current_mean(self):
        """Mean counts (x, y, z) of the window so far, else of the last one, else None."""
        n = self._count
        if n > 0:
            return [self._ref[a] + self._sum[a] / n for a in range(3)]
        if self.have_means:
            return [self.means[0], self.means[1], self.means[2]]
        return None

    @property
    def busy(self):
        return self._job is not None

    def step(self):
        """Run one slice of pending spectrum work; True when a result became ready."""
        job = self._job
        if job is None:
            return False
        try:
            next(job)
        except StopIteration:
            self._job = None
            self.ready = True
            return True
        return False

    def finish(self):
        """Run all pending work now (tests, or a node with time to spare)."""
        while self._job is not None:
            self.step()
        return self.ready

    def _spectra(self, dec, m, means):
        fs = self.odr_mhz / 1000.0 / self.decim
        yield from self._fill(dec, 0, NFFT, m)
        yield from self._fft()
        yield from self._peaks(True)
        pk = self._pk
        pd = self._pd
        self.result[6] = (pk[0] + pd[0]) * fs / NFFT if pk[0] else 0.0
        self.result[7] = (pk[1] + pd[1]) * fs / NFFT if pk[1] else 0.0
        yield
        yield from self._fill(dec, 2 * NFFT, -1, m)
        yield from self._fft()
        yield from self._peaks(False)
        self.result[8] = (pk[0] + pd[0]) * fs / NFFT if pk[0] else 0.0

    def _fill(self, dec, off_re, off_im, m):
        """Mean-removed, Hann-windowed data into re (and im, or zeros), zero-padded."""
        re = self._re
        im = self._im
        if m < 2:
            m = 2
        mean_re = 0
        mean_im = 0
        for i in range(m):
            mean_re += dec[off_re + i]
            if off_im >= 0:
                mean_im += dec[off_im + i]
            if not (i + 1) & (BUDGET - 1):
                yield
        mean_re /= m
        mean_im /= m
        w = 2 * math.pi / (m - 1)
        done = 0
        for i in range(NFFT):
            if i < m:
                h = 0.5 - 0.5 * math.cos(w * i)
                re[i] = (dec[off_re + i] - mean_re) * h
                im[i] = (dec[off_im + i] - mean_im) * h if off_im >= 0 else 0.0
            else:
                re[i] = 0.0
                im[i] = 0.0
            done += 1
            if done == BUDGET:
                done = 0
                yield

    def _fft(self):
        """In-place iterative radix-2 FFT of re + i*im, in slices."""
        re = self._re
        im = self._im
        cos_t = self._cos
        sin_t = self._sin
        n = NFFT
        j = 0
        for i in range(1, n):
            bit = n >> 1
            while j & bit:
                j ^= bit
                bit >>= 1
            j |= bit
            if i < j:
                t = re[i]
                re[i] = re[j]
                re[j] = t
                t = im[i]
                im[i] = im[j]
                im[j] = t
            if not i & (BUDGET - 1):
                yield
        yield
        done = 0
        size = 2
        while size <= n:
            half = size >> 1
            stride = n // size
            start = 0
            while start < n:
                k = 0
                a = start
                b = start + half
                while a < start + half:
                    wr = cos_t[k]
                    wi = -sin_t[k]
                    rb = re[b]
                    ib = im[b]
                    tr = wr * rb - wi * ib
                    ti = wr * ib + wi * rb
                    ra = re[a]
                    ia = im[a]
                    re[b] = ra - tr
                    im[b] = ia - ti
                    re[a] = ra + tr
                    im[a] = ia + ti
                    k += stride
                    a += 1
                    b += 1
                done += half
                if done >= BUDGET:
                    done = 0
                    yield
                start += size
            size <<= 1

    def _mag2(self, k, first):
        """|X_k|^2 (first) or |Y_k|^2 from the FFT of x + iy; plain |Z_k|^2 for z."""
        re = self._re
        im = self._im
        nk = (NFFT - k) % NFFT
        if first is None:
            return re[k] * re[k] + im[k] * im[k]
        if first:
            a = re[k] + re[nk]
            b = im[k] - im[nk]
        else:
            a = im[k] + im[nk]
            b = re[nk] - re[k]
        return a * a + b * b

    def _peaks(self, packed):
        """Find the largest peak for x and y (packed) or for z, in slices; the
        bins land in self._pk, the offsets in self._pd."""
        top = NFFT // 2
        which_a = True if packed else None
        best_a = 0.0
        ka = 0
        best_b = 0.0
        kb = 0
        k = MIN_BIN
        while k < top:
            v = self._mag2(k, which_a)
            if v > best_a:
                best_a = v
                ka = k
            if packed:
                v = self._mag2(k, False)
                if v > best_b:
                    best_b = v
                    kb = k
            k += 1
            if not k & (BUDGET // 2 - 1):
                yield
        self._pk[0] = ka
        self._pk[1] = kb
        self._pd[0] = self._offset(ka, which_a)
        self._pd[1] = self._offset(kb, False) if packed else 0.0

    def _offset(self, k, which):
        if k <= 0 or k >= NFFT // 2 - 1:
            return 0.0
        # log-parabolic interpolation on magnitudes (log of |.|^2 halves out)
        return interpolate(self._mag2(k - 1, which), self._mag2(k, which), self._mag2(k + 1, which))

    def pack_into(self, buf, age_ms):
        """FEATURES payload of the ready result into buf; returns its length.

        age_ms: from the window's first sample to the frame's time.
        """
        r = self.result
        window_ms = (self.result_samples * 1000000 + self.odr_mhz // 2) // self.odr_mhz
        struct.pack_into(
            _FORMAT,
            buf,
            0,
            window_ms,
            age_ms if age_ms > 0 else 0,
            self.result_samples,
            self.result_flags,
            0,
            _u32(r[0] * 1e6),
            _u32(r[3] * 1e6),
            _u16(r[6] * 100),
            _u32(r[1] * 1e6),
            _u32(r[4] * 1e6),
            _u16(r[7] * 100),
            _u32(r[2] * 1e6),
            _u32(r[5] * 1e6),
            _u16(r[8] * 100),
            _i16(r[9] * 100),
            _i16(r[10] * 100),
        )
        self.ready = False
        return SIZE


def _u32(v):
    v = int(v + 0.5)
    return 0 if v < 0 else (0xFFFFFFFF if v > 0xFFFFFFFF else v)


def _u16(v):
    v = int(v + 0.5)
    return 0 if v < 0 else (0xFFFF if v > 0xFFFF else v)


def _i16(v):
    v = int(v + 0.5) if v >= 0 else -int(-v + 0.5)
    return -32768 if v < -32768 else (32767 if v > 32767 else v)
