# What an accelerometer on the structure feels, sample by sample, in integer
# micro-g: gravity plus vibration modes, through the sensor's scale and bias
# errors, plus Gaussian-ish noise.
#
# Per sample this is small-integer work only (no floats, no allocation), so a
# simulated node can stream 800 Hz under the interpreter and the drivers'
# no-allocation tests measure the drivers, not the simulation. Every value and
# intermediate stays below 2**30, the small-int range of a 32-bit port (beyond
# it an int is a heap object), so this holds on 32-bit ports too:
# - vibration: a 28-bit phase accumulator per mode into a 1024-entry sine table;
#   each amplitude is split at 2**14 so that amplitude * sine never overflows;
# - noise: a 16-bit multiply-with-carry generator indexing a table of 2048
#   normal deviates (Irwin-Hall sums of 12 uniforms), each split at 2**7 to be
#   scaled by the rms for the same reason; both seeded, so runs repeat exactly.
# Floats and big ints appear only in apply() and set_rate(), when the scenario
# or the rate changes.

import math
from array import array

_PHASE_BITS = 28
_MASK = (1 << _PHASE_BITS) - 1
_SIN_BITS = 10
_SIN_SHIFT = _PHASE_BITS - _SIN_BITS
_UNIT = 14  # sine table and noise table are scaled by 2**14
_LOW = (1 << _UNIT) - 1

SIN = array("i", [int(round(math.sin(2 * math.pi * i / (1 << _SIN_BITS)) * (1 << _UNIT))) for i in range(1 << _SIN_BITS)])

# Multiply-with-carry, base 2**16 (Marsaglia): p = A * 2**16 - 1 = 1073479679
# and (p - 1) / 2 are both prime, so the period is (p - 1) / 2, about 2**29.
# A = 16380 is the largest A below 2**14 with that property: the state stays
# below p < 2**30.
_A = 16380
_P = _A * 65536 - 1


class Rng:
    """16-bit multiply-with-carry: tiny, repeatable, allocation-free on 32-bit ports."""

    def __init__(self, seed):
        # spread a small seed over the state (1 .. p - 1), and discard a few
        self.x = (seed * 0x9E3779B1 + 0x7F4A7C15) % (_P - 1) + 1
        for _ in range(8):
            self.next()

    def next(self):
        """0 .. 65535"""
        x = _A * (self.x & 0xFFFF) + (self.x >> 16)
        self.x = x
        return x & 0xFFFF


def _normal_table(n, seed):
    rng = Rng(seed)
    out = array("i", [0] * n)
    for i in range(n):
        s = 0
        for _ in range(12):
            s += rng.next()  # 0..65535, mean 32767.5, variance 65536**2/12
        out[i] = (s - 393210) >> 2  # sum of 12 has sd 65536: >> 2 gives sd 2**14
    return out


NOISE = _normal_table(2048, 12345)  # |NOISE| < 6 * 2**14


class Motion:
    """True acceleration for one sensor, in ug: step() sets ax, ay, az."""

    def __init__(self, seed=1):
        self.ax = 0
        self.ay = 0
        self.az = 1000000
        self._rng = Rng(seed)
        self._base = array("i", [0, 0, 1000000])  # scale * gravity + bias, ug
        self._noise = 0  # ug rms
        self._n = 0
        self._freqs = []  # Hz, per mode
        self._phase = []
        self._inc = []
        # amplitude per mode per axis, ug, as kh * 2**14 + kl: kh[3*j + axis], kl[3*j + axis]
        self._kh = []
        self._kl = []
        self._odr_mhz = 100000

    def apply(self, data):
        """Take gravity, vibration, noise and sensor errors from a scenario dict."""
        se = data["sensor_error"]
        scale = se["accel_scale"]
        bias = se["accel_bias_g"]
        g = data["gravity"]
        for i in range(3):
            self._base[i] = int(round(1e6 * (scale[i] * g[i] + bias[i])))
        self._noise = int(round(1e6 * data["noise_g"]))
        modes = data["vibration"]
        n = len(modes)
        old = self._phase
        self._freqs = [float(m["freq_hz"]) for m in modes]
        self._phase = [old[j] if j < len(old) else 0 for j in range(n)]
        self._kh = []
        self._kl = []
        for m in modes:
            a = m.get("axis", [0.0, 0.0, 1.0])
            length = math.sqrt(a[0] * a[0] + a[1] * a[1] + a[2] * a[2])
            for i in range(3):
                k = int(round(1e6 * m["amp_g"] * scale[i] * a[i] / length))
                self._kh.append(k >> _UNIT)
                self._kl.append(k & _LOW)
        self._n = n
        self.set_rate(self._odr_mhz)

    def set_rate(self, odr_mhz):
        """Samples come at odr_mhz: phase increments per sample for each mode."""
        self._odr_mhz = odr_mhz
        self._inc = [int(f * (1 << _PHASE_BITS) * 1000.0 / odr_mhz) & _MASK for f in self._freqs]

    def skip(self, samples):
        """Advance time by `samples` without computing them (a FIFO that overflowed)."""
        s = samples & _MASK  # the phase wraps at 2**28 samples of any increment
        sh = s >> _UNIT
        sl = s & _LOW
        for j in range(self._n):
            inc = self._inc[j]
            ih = inc >> _UNIT
            il = inc & _LOW
            # s * inc mod 2**28, from products below 2**28
            d = (((sh * il + sl * ih) & _LOW) << _UNIT) + sl * il
            self._phase[j] = (self._phase[j] + d) & _MASK

    def step(self):
        base = self._base
        x = base[0]
        y = base[1]
        z = base[2]
        ph = self._phase
        inc = self._inc
        kh = self._kh
        kl = self._kl
        for j in range(self._n):
            p = (ph[j] + inc[j]) & _MASK
            ph[j] = p
            s = SIN[p >> _SIN_SHIFT]
            o = 3 * j
            # (k * s) >> 14, exactly
            x += kh[o] * s + ((kl[o] * s) >> _UNIT)
            y += kh[o + 1] * s + ((kl[o + 1] * s) >> _UNIT)
            z += kh[o + 2] * s + ((kl[o + 2] * s) >> _UNIT)
        sd = self._noise
        if sd:
            r = self._rng
            # (n * sd) >> 14 exactly, n split at 2**7: |n| < 6 * 2**14, sd < 2**20
            n = NOISE[r.next() & 2047]
            x += ((n >> 7) * sd + (((n & 127) * sd) >> 7)) >> 7
            n = NOISE[r.next() & 2047]
            y += ((n >> 7) * sd + (((n & 127) * sd) >> 7)) >> 7
            n = NOISE[r.next() & 2047]
            z += ((n >> 7) * sd + (((n & 127) * sd) >> 7)) >> 7
        self.ax = x
        self.ay = y
        self.az = z

    def gauss(self):
        """One normal deviate scaled by 2**14 (for the climate parts' noise)."""
        return NOISE[self._rng.next() & 2047]
