# What the simulated accelerometers share: samples fall due by elapsed clock
# time at the configured output data rate, and are produced lazily, when the
# driver next touches the part (so an idle node costs nothing, and a sampler
# polling the FIFO sees the bursts a real one would).
#
# Timing is exact over any run length: the rate, reduced to a / b samples per
# microsecond, makes elapsed microseconds times a accumulate in an integer
# remainder below b. A FIFO left unread for long only computes its last
# FIFO-full of samples; the rest are skipped (phases advance) and counted as
# lost, so the overrun flags come up as they would.
#
# Like motion.py, the per-sample path keeps every int below 2**30, so it
# allocates nothing on a 32-bit port either: the remainder advances in chunks
# of time small enough for that, and counts() clips micro-g to the sensor's
# range before scaling it by a reduced fraction.

import time

from citynode_sim.bus import RegisterDevice
from citynode_sim.motion import Motion

_NS_PER_S = 1000000000  # us * mHz per sample
_SMALL = (1 << 30) - 1  # the largest small int on a 32-bit port


def _gcd(a, b):
    while b:
        a, b = b, a % b
    return a


class SimAccel(RegisterDevice):
    PART = "accel"
    FIFO_SAMPLES = 32  # how many samples the FIFO holds (for skipping)
    SEED = 0

    def __init__(self, scenario, clock=None):
        RegisterDevice.__init__(self)
        self._clock = clock or time.ticks_us
        self.motion = Motion(scenario.data["seed"] * 7919 + self.SEED)
        self.motion.apply(scenario.data)
        self.variant = self.PART
        self.bad_id = False
        self.samples = 0  # samples produced since power-up (for tests)
        self._running = False
        self._last = 0
        self._rate(100000)

    def apply(self, data):
        self.motion.apply(data)

    def _rate(self, odr_mhz):
        self._odr_mhz = odr_mhz
        g = _gcd(odr_mhz, _NS_PER_S)
        self._a = odr_mhz // g  # a samples every b us
        self._b = _NS_PER_S // g
        self._chunk = (_SMALL - self._b) // self._a  # us that fit in _acc at once
        self._acc = 0  # us * a since the last sample, below b

    def _set_rate(self, odr_mhz):
        self.catch_up()
        self._rate(odr_mhz)
        self.motion.set_rate(odr_mhz)

    def _set_running(self, on):
        if on and not self._running:
            self._last = self._clock()
            self._acc = 0
        elif not on and self._running:
            self.catch_up()
        self._running = on

    def catch_up(self):
        """Produce the samples that fell due since the last look."""
        if not self._running:
            return
        now = self._clock()
        dt = time.ticks_diff(now, self._last)
        if dt <= 0:
            return
        self._last = now
        a = self._a
        b = self._b
        chunk = self._chunk
        acc = self._acc
        n = 0
        while dt > chunk:
            acc += chunk * a
            n += acc // b
            acc %= b
            dt -= chunk
        acc += dt * a
        n += acc // b
        self._acc = acc % b
        if not n:
            return
        keep = self.FIFO_SAMPLES + 1
        if n > keep:
            self.motion.skip(n - keep)
            self._lost(n - keep)
            self.samples += n - keep
            n = keep
        m = self.motion
        for _ in range(n):
            m.step()
            self._sample(m.ax, m.ay, m.az)
        self.samples += n

    def _sample(self, x, y, z):
        """A new sample, in ug, at the output data rate."""
        raise NotImplementedError

    def _lost(self, n):
        """n samples went by unseen (a FIFO that was not read)."""
        raise NotImplementedError


class SimSampleFifo(SimAccel):
    """A part whose FIFO holds whole samples: 6 bytes, x, y, z as little-endian
    int16 counts (the ADXL345, the LIS3DH). A read from the first data register
    pops the oldest into the data registers (_pop). The part says how its FIFO
    is set (_fifo_mode: 0 bypass, the data registers hold the newest sample;
    1 FIFO, collecting stops when full; 2 or 3 stream, the oldest is dropped)
    and how a value becomes counts (_counts)."""

    FULL_IS_OVERRUN = False  # True: the overrun flag comes up when the FIFO fills, not when a sample is lost

    def __init__(self, scenario, clock=None):
        SimAccel.__init__(self, scenario, clock)
        self._fifo = bytearray(6 * self.FIFO_SAMPLES)
        self._head = 0
        self._count = 0
        self._out = bytearray(6)  # the data registers
        self._overrun = False
        self._ready = False

    def _fifo_mode(self):
        raise NotImplementedError

    def _counts(self, ug):
        """ug to the int16 the data registers hold."""
        raise NotImplementedError

    def _empty(self):
        self._head = 0
        self._count = 0
        self._overrun = False

    def _sample(self, x, y, z):
        mode = self._fifo_mode()
        if mode == 0:  # bypass: the data registers hold the newest sample
            d = self._out
            i = 0
        else:
            depth = self.FIFO_SAMPLES
            if self._count == depth:
                if mode == 1:  # FIFO mode: stop collecting when full
                    return
                self._head = (self._head + 1) % depth  # stream: drop the oldest
                self._count -= 1
                self._overrun = True
            d = self._fifo
            i = 6 * ((self._head + self._count) % depth)
            self._count += 1
            if self._count == depth and self.FULL_IS_OVERRUN:
                self._overrun = True
        self._put(d, i, x)
        self._put(d, i + 2, y)
        self._put(d, i + 4, z)
        self._ready = True

    def _put(self, d, i, ug):
        c = self._counts(ug)
        d[i] = c & 0xFF
        d[i + 1] = (c >> 8) & 0xFF

    def _lost(self, n):
        if self._fifo_mode():
            self._overrun = True

    def _pop(self):
        if not self._fifo_mode() or not self._count:
            return
        i = 6 * self._head
        out = self._out
        f = self._fifo
        for j in range(6):
            out[j] = f[i + j]
        self._head = (self._head + 1) % self.FIFO_SAMPLES
        self._count -= 1
        self._overrun = False


class Scale:
    """ug to sensor counts at num/den counts per g, rounded half up, clipped to lo..hi.

    set() when the range or format changes; counts() per sample. num/den per g
    is kept as p/q per ug in lowest terms, and ug is clipped to the range in
    ug first, so 2 * ug * p + q stays a small int."""

    def __init__(self, num, den, lo, hi):
        self.set(num, den, lo, hi)

    def set(self, num, den, lo, hi):
        d = 1000000 * den
        g = _gcd(num, d)
        p = num // g
        q = d // g
        self._p2 = 2 * p
        self._q = q
        self._q2 = 2 * q
        self._lo = lo
        self._hi = hi
        self._ulo = lo * q // p  # counts at or below lo
        self._uhi = -(-hi * q // p)  # counts at or above hi
        if (max(-self._ulo, self._uhi) * 2 + 1) * p + q > _SMALL:
            raise ValueError("scale %d/%d per g over %d..%d needs big ints" % (num, den, lo, hi))

    def counts(self, ug):
        if ug < self._ulo:
            ug = self._ulo
        elif ug > self._uhi:
            ug = self._uhi
        c = (ug * self._p2 + self._q) // self._q2
        if c < self._lo:
            return self._lo
        if c > self._hi:
            return self._hi
        return c
