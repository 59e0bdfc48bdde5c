"""Dominant frequencies of a feature window: a fixed-point FFT in bounded steps.

For citynode_fw.features. Integers only, every intermediate below 2**30 in
magnitude (a small int on a 32-bit ESP32: nothing is boxed, nothing allocates),
preallocated arrays, no generators: the state between steps is a few ints.

Input: three axes of m <= NFFT = 1024 decimated int16 samples, in the three
1024-entry regions of one array('h') of 3 * NFFT. Each region is transformed in place and
read as 512 complex values x[2n] + i*x[2n+1]: a 1024-point real FFT through a
512-point complex FFT and the split step, so |X[k]|^2 is formed only for the
bins searched, and each axis has its own scaling.

`run(left)` does at most `left` units of work; a unit costs at most about one
butterfly's time (measured on the Unix port, each phase 0.5..1.0 of one):
1. fill, all three axes: mean removed, scaled so that the largest possible
   value is 2^12..2^13 (block floating point, from the window's extremes),
   Hann-windowed over the m points (sin^2 from the sine table, linearly
   interpolated, Q14). One unit a point: m.
2. zero padding, points m..1023: one unit per two points.
3. bit-reversed order, swaps only: two units per swap, 480.
4. per axis, a radix-2 decimation-in-time FFT: 9 stages of 256 butterflies,
   Q14 twiddles. Block floating point: each butterfly's outputs are OR-ed
   into a bound, and the next stage's inputs are shifted right 0..2 bits so
   that they stay within +-2^13; a butterfly then gives at most
   2^13 (1 + sqrt 2) < 2^15, so int16 holds every stage. One unit a
   butterfly: 2304.
5. per axis, the peak search over bins MIN_BIN..511 (X from Z by the split
   step, after a shift bringing Z within +-2^12 so that |2X|^2 < 2^30). One
   unit a bin: 509.
6. per axis, log-parabolic (Gaussian) interpolation around the peak on
   log2 |X|^2 (Q16, fixed point); the bin lands in `bins` in Q12 (0: no
   peak). INTERP units.
About 10 000 units a window (m = 1000: 9979).

The sine table: a quarter wave plus one entry, 258 Q14 values (516 bytes),
computed entry by entry at construction.
"""

import array
import math

NFFT = 1024  # real points
MIN_BIN = 3
INTERP = 16  # units charged for one axis's interpolation (two |X|^2, three log2: measured about 16 butterflies)
_HALF = 512  # complex points
_QUARTER = 256
_FILL, _ZERO, _REVERSE, _FFT, _SEARCH, _INTERP, _DONE = 1, 2, 3, 4, 5, 6, 7


def _log2_q16(v):
    """log2(v) in Q16 for 0 < v < 2**30 (about 12 good fraction bits)."""
    r = 14 << 16
    while v >= 32768:
        v >>= 1
        r += 65536
    while v < 16384:
        v <<= 1
        r -= 65536
    b = 32768
    while b:
        v = (v * v) >> 14  # v in [2^14, 2^15): v*v < 2^30
        if v >= 32768:
            v >>= 1
            r += b
        b >>= 1
    return r


class Spectrum:
    """The bounded-step spectrum of three axes; `done` when `bins` holds the peaks."""

    def __init__(self):
        q = array.array("h", bytes(2 * (_QUARTER + 2)))  # one past the quarter: the Hann interpolates up to it
        for i in range(_QUARTER + 2):
            q[i] = int(math.floor(16384 * math.sin(math.pi * i / 512) + 0.5))
        self._q = q
        self.bins = array.array("i", bytes(12))  # peak bin per axis, Q12 (4096 = one bin); 0: none
        # per axis, the fill's scaling: ((16 x - mean) * mul >> shr) is within +-2^13
        self._mul = array.array("i", bytes(12))
        self._mean = array.array("i", bytes(12))
        self._shr = array.array("i", bytes(12))
        # the state between steps: every attribute made here, so that none is
        # added later (a growing instance dict would allocate)
        self._buf = None
        self._m = 0
        self._hstep = 0
        self._n = 0  # fill: complex point, and its bit reversal in _j
        self._axis = 0
        self._off = 0
        self._span = 0  # FFT: stage (complex points between a butterfly's inputs), twiddle k, point j
        self._k = 0
        self._j = 0
        self._sh = 0  # FFT: this stage's input shift; _acc: OR of its outputs' magnitudes
        self._acc = 0
        self._sx = 0  # search: the shift of Z; best |2X|^2 and its bin
        self._best = 0
        self._kbest = 0
        self._phase = 0
        self.done = False

    def start(self, buf, m, dsum, vmax, vmin):
        """Begin the spectra of buf (three axes of NFFT, m points each); dsum,
        vmax, vmin: per axis, the sum of the m points and bounds of every point
        (the window's sample extremes do)."""
        self._buf = buf
        self._m = m
        self._hstep = ((1 << 25) + (m - 1) // 2) // (m - 1)  # half the Hann phase per point: Q16 1024ths of a turn
        for a in range(3):
            mean16 = (dsum[a] * 16 + m // 2) // m  # |dsum| <= 2^25
            bound = vmax[a] * 16 - mean16
            if mean16 - vmin[a] * 16 > bound:
                bound = mean16 - vmin[a] * 16
            shl = 0
            shr = 0
            if bound > 0:
                while bound >= 8192:
                    bound >>= 1
                    shr += 1
                while bound < 4096:
                    bound <<= 1
                    shl += 1
            self._mul[a] = 1 << shl
            self._mean[a] = mean16
            self._shr[a] = shr
            self.bins[a] = 0
        self._n = 0
        self._j = 0
        self._phase = _FILL
        self.done = False

    def stop(self):
        self._phase = 0
        self.done = False

    def run(self, left):
        """Do at most `left` units of work; returns the units left over."""
        while left > 0:
            ph = self._phase
            was = left
            if ph == _FFT:
                left = self._fft(left)
            elif ph == _SEARCH:
                left = self._search(left)
            elif ph == _FILL:
                left = self._fill(left)
            elif ph == _ZERO:
                left = self._zero(left)
            elif ph == _REVERSE:
                left = self._reverse(left)
            elif ph == _INTERP:
                if left < INTERP:
                    break
                left -= INTERP
                self._interpolate()
            else:
                break
            if left == was and self._phase == ph:
                break  # too little left for this phase's next item
        return left

    # -- 1. fill -------------------------------------------------------------------------

    def _fill(self, left):
        """Window points i and m-1-i (one Hann value serves both) of all three axes, in place."""
        buf = self._buf
        q = self._q
        m = self._m
        hstep = self._hstep
        mul = self._mul
        mean = self._mean
        shr = self._shr
        mul0 = mul[0]
        mul1 = mul[1]
        mul2 = mul[2]
        mu0 = mean[0]
        mu1 = mean[1]
        mu2 = mean[2]
        sr0 = shr[0]
        sr1 = shr[1]
        sr2 = shr[2]
        i = self._n
        while left >= 2 and i + i < m:
            # Hann: sin^2(pi i / (m-1)), the sine from the table, linearly interpolated
            p = i * hstep  # 1024ths of a turn in Q16, <= 256 * 2^16
            t = p >> 16
            h = q[t]
            h += ((q[t + 1] - h) * (p & 0xFFFF)) >> 16
            h = (h * h + 8192) >> 14
            o = i
            r = m - 1 - i  # == o at the middle point of an odd m: written twice, same value
            # 16 x - mean16 (within +-bound) scaled into +-2^13, times h
            a = (((buf[o] * 16 - mu0) * mul0 >> sr0) * h + 8192) >> 14
            b = (((buf[r] * 16 - mu0) * mul0 >> sr0) * h + 8192) >> 14
            buf[o] = a
            buf[r] = b
            o += NFFT
            r += NFFT
            a = (((buf[o] * 16 - mu1) * mul1 >> sr1) * h + 8192) >> 14
            b = (((buf[r] * 16 - mu1) * mul1 >> sr1) * h + 8192) >> 14
            buf[o] = a
            buf[r] = b
            o += NFFT
            r += NFFT
            a = (((buf[o] * 16 - mu2) * mul2 >> sr2) * h + 8192) >> 14
            b = (((buf[r] * 16 - mu2) * mul2 >> sr2) * h + 8192) >> 14
            buf[o] = a
            buf[r] = b
            i += 1
            left -= 2
        self._n = i
        if i + i >= m:
            self._n = m
            self._phase = _ZERO
        return left

    def _zero(self, left):
        """Zero padding: points m..NFFT-1 of the three axes."""
        buf = self._buf
        o = self._n
        end = NFFT
        if (end - o) & 1:  # odd m: one point alone, then pairs
            buf[o] = 0
            buf[o + NFFT] = 0
            buf[o + 2 * NFFT] = 0
            o += 1
        while left > 0 and o < end:
            buf[o] = 0
            buf[o + NFFT] = 0
            buf[o + 2 * NFFT] = 0
            buf[o + 1] = 0
            buf[o + NFFT + 1] = 0
            buf[o + 2 * NFFT + 1] = 0
            o += 2
            left -= 1
        self._n = o
        if o >= end:
            self._n = 0
            self._j = 0
            self._phase = _REVERSE
        return left

    def _reverse(self, left):
        """The three axes' complex points into bit-reversed order (swaps only)."""
        buf = self._buf
        n = self._n
        j = self._j
        while left >= 2 and n < _HALF:
            if n < j:
                o = n + n
                r = j + j
                a = 0
                while a < 3:
                    v = buf[o]
                    buf[o] = buf[r]
                    buf[r] = v
                    v = buf[o + 1]
                    buf[o + 1] = buf[r + 1]
                    buf[r + 1] = v
                    o += NFFT
                    r += NFFT
                    a += 1
                left -= 2
            n += 1
            bit = _QUARTER
            while j & bit:
                j ^= bit
                bit >>= 1
            j |= bit
        self._n = n
        self._j = j
        if n == _HALF:
            self._axis = 0
            self._begin_fft()
        return left

    # -- 2. FFT --------------------------------------------------------------------------

    def _begin_fft(self):
        self._off = self._axis * NFFT
        self._span = 1  # complex points between a butterfly's inputs
        self._k = 0
        self._j = 0
        self._sh = 0  # the fill leaves every value within +-2^13
        self._acc = 0
        self._phase = _FFT

    def _fft(self, left):
        buf = self._buf
        q = self._q
        off = self._off
        span = self._span
        size = span + span
        k = self._k
        j = self._j
        sh = self._sh
        acc = self._acc
        tstep = _HALF // span
        t = k * tstep
        if t <= _QUARTER:
            c = q[_QUARTER - t]
            s = q[t]
        else:
            c = -q[t - _QUARTER]
            s = q[_HALF - t]
        while left > 0:
            # X_a, X_b = a + W b, a - W b with W = c - i s (Q14), inputs shifted by sh
            ia = off + j + j
            ib = ia + span + span
            br = buf[ib] >> sh
            bi = buf[ib + 1] >> sh
            tr = (c * br + s * bi + 8192) >> 14
            ti = (c * bi - s * br + 8192) >> 14
            ar = buf[ia] >> sh
            ai = buf[ia + 1] >> sh
            v = ar + tr
            buf[ia] = v
            acc |= v ^ (v >> 15)  # |v| (minus one when negative): the OR bounds the largest
            v = ai + ti
            buf[ia + 1] = v
            acc |= v ^ (v >> 15)
            v = ar - tr
            buf[ib] = v
            acc |= v ^ (v >> 15)
            v = ai - ti
            buf[ib + 1] = v
            acc |= v ^ (v >> 15)
            left -= 1
            j += size
            if j >= _HALF:
                k += 1
                if k == span:
                    # stage done: the next one's inputs within +-2^13
                    span = size
                    size += size
                    k = 0
                    sh = 0 if acc < 8192 else (1 if acc < 16384 else 2)
                    if span == _HALF:
                        self._begin_search(acc)
                        return left
                    acc = 0
                    tstep = _HALF // span
                j = k
                t = k * tstep
                if t <= _QUARTER:
                    c = q[_QUARTER - t]
                    s = q[t]
                else:
                    c = -q[t - _QUARTER]
                    s = q[_HALF - t]
        self._span = span
        self._k = k
        self._j = j
        self._sh = sh
        self._acc = acc
        return left

    # -- 3. peak search ----------------------------------------------------------------

    def _begin_search(self, acc):
        sx = 0
        while acc >= 4096:
            acc >>= 1
            sx += 1
        self._sx = sx  # Z within +-2^12 after this shift
        self._k = MIN_BIN
        self._best = 0
        self._kbest = 0
        self._phase = _SEARCH

    def _mag2(self, k):
        """|2 X[k]|^2 (shifted by sx) from Z: 2X = Z[k] + Z*[M-k] + W^k (Z[k] - Z*[M-k]) / i."""
        buf = self._buf
        q = self._q
        sx = self._sx
        o = self._off + k + k
        zr = buf[o] >> sx
        zi = buf[o + 1] >> sx
        o = self._off + 2 * (_HALF - k)
        yr = buf[o] >> sx
        yi = buf[o + 1] >> sx
        dr = zr - yr
        di = zi + yi
        if k <= _QUARTER:
            c = q[_QUARTER - k]
            s = q[k]
        else:
            c = -q[k - _QUARTER]
            s = q[_HALF - k]
        xr = zr + yr + ((c * di - s * dr + 8192) >> 14)
        xi = zi - yi - ((c * dr + s * di + 8192) >> 14)
        return xr * xr + xi * xi  # each within 2^12 (2 + 2 sqrt 2) < 19778: the sum < 2^30

    def _search(self, left):
        k = self._k
        best = self._best
        kbest = self._kbest
        while left > 0 and k < _HALF:
            v = self._mag2(k)
            if v > best:
                best = v
                kbest = k
            k += 1
            left -= 1
        self._k = k
        self._best = best
        self._kbest = kbest
        if k == _HALF:
            self._phase = _INTERP
        return left

    # -- 4. interpolation --------------------------------------------------------------

    def _interpolate(self):
        k = self._kbest
        d = 0
        if k and k < _HALF - 1:
            a = self._mag2(k - 1)
            b = self._best
            c = self._mag2(k + 1)
            if a > 0 and c > 0:
                la = _log2_q16(a)
                lc = _log2_q16(c)
                num = la - lc
                den = 2 * _log2_q16(b) - la - lc  # > 0 at a true maximum
                if den > 0:
                    # d = num / (2 den) bins, in Q12, within +-1/2
                    mag = num if num >= 0 else -num
                    if mag >= den:
                        d = 2048
                    else:
                        while den >= 1 << 18:
                            den >>= 1
                            mag >>= 1
                        d = (mag * 2048 + (den >> 1)) // den
                    if num > 0:  # the left neighbour is the larger: the peak is below k
                        d = -d
        self.bins[self._axis] = (k << 12) + d if k else 0
        if self._axis < 2:
            self._axis += 1
            self._begin_fft()
        else:
            self._phase = _DONE
            self.done = True
