# What an accelerometer on the structure feels, sample by sample, in integer
# micro-g: gravity plus vibration modes, through the sensor's scale and bias
# errors, plus Gaussian-ish noise.
#
# Per sample this is integer work only (no floats, no allocation), so a
# simulated node can stream 800 Hz under the interpreter and the drivers'
# no-allocation tests measure the drivers, not the simulation:
# - vibration: a 32-bit phase accumulator per mode into a 1024-entry sine table;
# - noise: a xorshift32 generator indexing a table of 2048 normal deviates
#   (Irwin-Hall sums of 12 uniforms), both seeded, so runs repeat exactly.
# Floats appear only in apply() and set_rate(), when the scenario or the rate
# changes.

import math
from array import array

_MASK32 = 0xFFFFFFFF
_SIN_BITS = 10
_SIN_SHIFT = 32 - _SIN_BITS
_UNIT = 14  # sine table and noise table are scaled by 2**14

SIN = array("i", [int(round(math.sin(2 * math.pi * i / (1 << _SIN_BITS)) * (1 << _UNIT))) for i in range(1 << _SIN_BITS)])


class Rng:
    """xorshift32 (Marsaglia 2003): tiny, repeatable, allocation-free on 64-bit ports."""

    def __init__(self, seed):
        # xorshift mixes a small seed poorly at first: spread it, and discard a few.
        self.x = ((seed * 0x9E3779B1 + 0x7F4A7C15) & _MASK32) or 0x9E3779B9
        for _ in range(8):
            self.next()

    def next(self):
        x = self.x
        x ^= (x << 13) & _MASK32
        x ^= x >> 17
        x ^= (x << 5) & _MASK32
        self.x = x
        return x


def _normal_table(n, seed):
    rng = Rng(seed)
    out = array("i", [0] * n)
    for i in range(n):
        s = 0
        for _ in range(12):
            s += rng.next() >> 16  # 0..65535, mean 32767.5, variance 65536**2/12
        out[i] = (s - 393210) >> 2  # sum of 12 has sd 65536: >> 2 gives sd 2**14
    return out


NOISE = _normal_table(2048, 12345)


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
        self._k = []  # amplitude per mode per axis, ug: k[3*j + axis]
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
        self._k = []
        for m in modes:
            a = m.get("axis", [0.0, 0.0, 1.0])
            length = math.sqrt(a[0] * a[0] + a[1] * a[1] + a[2] * a[2])
            for i in range(3):
                self._k.append(int(round(1e6 * m["amp_g"] * scale[i] * a[i] / length)))
        self._n = n
        self.set_rate(self._odr_mhz)

    def set_rate(self, odr_mhz):
        """Samples come at odr_mhz: phase increments per sample for each mode."""
        self._odr_mhz = odr_mhz
        self._inc = [int(f * 4294967296.0 * 1000.0 / odr_mhz) & _MASK32 for f in self._freqs]

    def skip(self, samples):
        """Advance time by `samples` without computing them (a FIFO that overflowed)."""
        for j in range(self._n):
            self._phase[j] = (self._phase[j] + samples * self._inc[j]) & _MASK32

    def step(self):
        base = self._base
        x = base[0]
        y = base[1]
        z = base[2]
        ph = self._phase
        inc = self._inc
        k = self._k
        for j in range(self._n):
            p = (ph[j] + inc[j]) & _MASK32
            ph[j] = p
            s = SIN[p >> _SIN_SHIFT]
            o = 3 * j
            x += (k[o] * s) >> _UNIT
            y += (k[o + 1] * s) >> _UNIT
            z += (k[o + 2] * s) >> _UNIT
        sd = self._noise
        if sd:
            r = self._rng
            x += (NOISE[r.next() & 2047] * sd) >> _UNIT
            y += (NOISE[r.next() & 2047] * sd) >> _UNIT
            z += (NOISE[r.next() & 2047] * sd) >> _UNIT
        self.ax = x
        self.ay = y
        self.az = z

    def gauss(self):
        """One normal deviate scaled by 2**14 (for the climate parts' noise)."""
        return NOISE[self._rng.next() & 2047]
