# Simulated ADXL355 (register map per the datasheet).
#
# Modelled: DEVID_AD / DEVID_MST / PARTID / REVID; STATUS DATA_RDY, FIFO_FULL
# (entries >= FIFO_SAMPLES), FIFO_OVR, NVM_BUSY; FIFO_ENTRIES; TEMP2/TEMP1 from
# the scenario temperature (1885 LSB at 25 degC, -9.05 LSB/degC); XDATA..ZDATA
# (20-bit, left-justified, big-endian); FIFO_DATA: 96 entries of 3 bytes, x
# entries marked by bit 0, an empty FIFO reads with bit 1 set, reads do not
# advance the register address; FILTER ODR (4000 Hz / 2^code); FIFO_SAMPLES;
# RANGE (256000 / 128000 / 64000 LSB/g); POWER_CTL standby; RESET (0x52).
# The FIFO holds entries, not samples: on overflow the oldest entry goes first,
# so a reader that takes part of a sample sees the next read start mid-sample.
#
# Assumptions where the sources at hand are silent: FIFO_OVR stays set until
# STATUS is read; leaving standby empties the FIFO; NVM_BUSY reads set once
# after a reset (a stand-in for the reload time, independent of the clock).
# Not modelled: offsets, activity, high-pass filter, self test, sync, SPI.

from citynode_sim.accel import Scale, SimAccel

_STATUS = 0x04
_FIFO_ENTRIES = 0x05
_TEMP2 = 0x06
_XDATA3 = 0x08
_FIFO_DATA = 0x11
_FILTER = 0x28
_FIFO_SAMPLES = 0x29
_RANGE = 0x2C
_POWER_CTL = 0x2D
_RESET = 0x2F

_ENTRIES = 96
_RESET_VALUES = {0x00: 0xAD, 0x01: 0x1D, 0x02: 0xED, 0x03: 0x01, _FIFO_SAMPLES: 0x60, _RANGE: 0x81, _POWER_CTL: 0x01}
_LO = -(1 << 19)
_HI = (1 << 19) - 1


class ADXL355(SimAccel):
    PART = "adxl355"
    ADDRESS = 0x1D
    FIFO_SAMPLES = _ENTRIES // 3
    SEED = 355

    def __init__(self, scenario, clock=None):
        SimAccel.__init__(self, scenario, clock)
        self.regs = bytearray(0x40)
        self._fifo = bytearray(3 * _ENTRIES)
        self._head = 0  # entry index
        self._count = 0  # entries
        self._xyz = bytearray(9)
        self._temp = 1885
        self._overrun = False
        self._ready = False
        self._nvm_busy = 0
        self._scale = Scale(256000, 1, _LO, _HI)
        self._reset()
        self.apply(scenario.data)

    def _reset(self):
        for r in range(len(self.regs)):
            self.regs[r] = _RESET_VALUES.get(r, 0)
        self._head = 0
        self._count = 0
        self._overrun = False
        self._ready = False
        self._set_running(False)
        self._range()
        self._set_rate(4000000)

    def apply(self, data):
        SimAccel.apply(self, data)
        self._temp = int(round(1885 - 9.05 * (data["temperature_c"] - 25.0)))

    def _range(self):
        code = self.regs[_RANGE] & 3 or 1
        self._per_g = 256000 >> (code - 1)
        self._scale.set(self._per_g, 1, _LO, _HI)

    def _push(self, c, marker):
        if self._count == _ENTRIES:
            self._head = (self._head + 1) % _ENTRIES  # the oldest entry is lost
            self._count -= 1
            self._overrun = True
        i = 3 * ((self._head + self._count) % _ENTRIES)
        self._count += 1
        f = self._fifo
        f[i] = (c >> 12) & 0xFF
        f[i + 1] = (c >> 4) & 0xFF
        f[i + 2] = ((c & 0x0F) << 4) | marker

    def _axis(self, i, ug, marker):
        c = self._scale.counts(ug)
        d = self._xyz
        d[i] = (c >> 12) & 0xFF
        d[i + 1] = (c >> 4) & 0xFF
        d[i + 2] = (c & 0x0F) << 4
        self._push(c, marker)

    def _sample(self, x, y, z):
        self._axis(0, x, 1)
        self._axis(3, y, 0)
        self._axis(6, z, 0)
        self._ready = True

    def _lost(self, n):
        self._overrun = True

    def _reg(self, r):
        if r == 0x02 and self.bad_id:
            return 0xE9  # an ADXL359
        if r == _STATUS:
            v = 0
            if self._ready:
                v |= 0x01
            if self._count >= self.regs[_FIFO_SAMPLES]:
                v |= 0x02
            if self._overrun:
                v |= 0x04
            if self._nvm_busy:
                v |= 0x10
            return v
        if r == _FIFO_ENTRIES:
            return self._count
        if r == _TEMP2:
            return (self._temp >> 8) & 0x0F
        if r == _TEMP2 + 1:
            return self._temp & 0xFF
        if _XDATA3 <= r < _FIFO_DATA:
            return self._xyz[r - _XDATA3]
        if r < len(self.regs):
            return self.regs[r]
        return 0

    def read_mem(self, reg, buf):
        self.catch_up()
        n = len(buf)
        if reg == _FIFO_DATA:  # no auto-increment: pop entries
            f = self._fifo
            for p in range(0, n, 3):
                if self._count:
                    i = 3 * self._head
                    self._head = (self._head + 1) % _ENTRIES
                    self._count -= 1
                    e0 = f[i]
                    e1 = f[i + 1]
                    e2 = f[i + 2]
                else:
                    e0 = 0
                    e1 = 0
                    e2 = 0x02  # empty indicator
                buf[p] = e0
                if p + 1 < n:
                    buf[p + 1] = e1
                if p + 2 < n:
                    buf[p + 2] = e2
            return
        for i in range(n):
            buf[i] = self._reg(reg + i)
        if reg <= _STATUS < reg + n:
            self._overrun = False
            self._ready = False
            if self._nvm_busy:
                self._nvm_busy -= 1

    def write_mem(self, reg, buf):
        self.catch_up()
        for i in range(len(buf)):
            self._write(reg + i, buf[i])

    def _write(self, r, v):
        if r < 0x1E or r > _RESET:
            return  # read-only or reserved
        if r == _RESET:
            if v == 0x52:
                self._reset()
                self._nvm_busy = 1
            return
        self.regs[r] = v
        if r == _FILTER:
            self._set_rate(4000000 >> (v & 0x0F) if (v & 0x0F) <= 10 else 3906)
        elif r == _RANGE:
            self._range()
        elif r == _POWER_CTL:
            on = not v & 0x01
            if on and not self._running:
                self._head = 0
                self._count = 0
            self._set_running(on)
