# What the simulated accelerometers share: samples fall due by elapsed clock
# time at the configured output data rate, and are produced lazily, when the
# driver next touches the part (so an idle node costs nothing, and a sampler
# polling the FIFO sees the bursts a real one would).
#
# Timing is exact over any run length: elapsed microseconds times the rate in
# mHz accumulate in an integer remainder. A FIFO left unread for long only
# computes its last FIFO-full of samples; the rest are skipped (phases advance)
# and counted as lost, so the overrun flags come up as they would.

import time

from citynode_sim.bus import RegisterDevice
from citynode_sim.motion import Motion

_NS_PER_S = 1000000000  # us * mHz per sample


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
        self._odr_mhz = 100000
        self._last = 0
        self._acc = 0

    def apply(self, data):
        self.motion.apply(data)

    def _set_rate(self, odr_mhz):
        self.catch_up()
        self._odr_mhz = odr_mhz
        self._acc = 0
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
        self._acc += dt * self._odr_mhz
        n = self._acc // _NS_PER_S
        if not n:
            return
        self._acc -= n * _NS_PER_S
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


def counts(ug, num, den, lo, hi):
    """ug to sensor counts at num/den counts per g, rounded half up, clipped to lo..hi."""
    d = 2000000 * den
    c = (2 * ug * num + (d >> 1)) // d
    if c < lo:
        return lo
    if c > hi:
        return hi
    return c
