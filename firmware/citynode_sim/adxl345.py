# Simulated ADXL345 (register map per the datasheet).
#
# Modelled: DEVID; BW_RATE rate code (3200 Hz / 2^(15 - code)); POWER_CTL
# measure bit; DATA_FORMAT range, FULL_RES (256 LSB/g, 10..13 bits) or 10-bit
# (512/range LSB/g), JUSTIFY; FIFO_CTL bypass / FIFO / stream (trigger is taken
# as stream), samples bits (watermark); FIFO_STATUS entries; INT_SOURCE
# DATA_READY, watermark and overrun (set when the FIFO fills, cleared when an
# entry is read, as the datasheet says for FIFO modes). A read starting at
# DATAX0 pops one FIFO entry into the data registers.
# Not modelled: taps, activity, free fall, offsets, low power, SPI.

from citynode_sim.accel import SimAccel, counts

_DEVID = 0x00
_BW_RATE = 0x2C
_POWER_CTL = 0x2D
_INT_SOURCE = 0x30
_DATA_FORMAT = 0x31
_DATAX0 = 0x32
_FIFO_CTL = 0x38
_FIFO_STATUS = 0x39

_DEPTH = 32


class ADXL345(SimAccel):
    PART = "adxl345"
    ADDRESS = 0x53
    FIFO_SAMPLES = _DEPTH
    SEED = 345

    def __init__(self, scenario, clock=None):
        SimAccel.__init__(self, scenario, clock)
        self.regs = bytearray(0x40)
        self.regs[_DEVID] = 0xE5
        self.regs[_BW_RATE] = 0x0A
        self._fifo = bytearray(6 * _DEPTH)
        self._head = 0
        self._count = 0
        self._out = bytearray(6)  # DATAX0..DATAZ1
        self._overrun = False
        self._ready = False
        self._per_g = 256
        self._lo = -512
        self._hi = 511
        self._left = 0  # JUSTIFY shift
        self._set_rate(100000)

    def _mode(self):
        return self.regs[_FIFO_CTL] >> 6

    def _format(self):
        f = self.regs[_DATA_FORMAT]
        rng = f & 3
        if f & 0x08:  # FULL_RES: 256 LSB/g, 10 bits at 2 g up to 13 bits at 16 g
            bits = 10 + rng
            self._per_g = 256
        else:
            bits = 10
            self._per_g = 512 >> (rng + 1)
        self._hi = (1 << (bits - 1)) - 1
        self._lo = -(1 << (bits - 1))
        self._left = 16 - bits if f & 0x04 else 0

    def _sample(self, x, y, z):
        if self._mode() == 0:  # bypass: the data registers hold the newest sample
            d = self._out
            i = 0
        else:
            if self._count == _DEPTH:
                if self._mode() == 1:  # FIFO mode: stop collecting when full
                    return
                self._head = (self._head + 1) % _DEPTH  # stream: drop the oldest
                self._count -= 1
            d = self._fifo
            i = 6 * ((self._head + self._count) % _DEPTH)
            self._count += 1
            if self._count == _DEPTH:
                self._overrun = True
        self._put(d, i, x)
        self._put(d, i + 2, y)
        self._put(d, i + 4, z)
        self._ready = True

    def _put(self, d, i, ug):
        c = counts(ug, self._per_g, 1, self._lo, self._hi) << self._left
        d[i] = c & 0xFF
        d[i + 1] = (c >> 8) & 0xFF

    def _lost(self, n):
        if self._mode() != 0:
            self._overrun = True

    def _pop(self):
        if self._mode() == 0 or not self._count:
            return
        i = 6 * self._head
        out = self._out
        f = self._fifo
        for j in range(6):
            out[j] = f[i + j]
        self._head = (self._head + 1) % _DEPTH
        self._count -= 1
        self._overrun = False

    def _reg(self, r):
        if r == _DEVID:
            return 0x00 if self.bad_id else 0xE5
        if _DATAX0 <= r <= _DATAX0 + 5:
            return self._out[r - _DATAX0]
        if r == _INT_SOURCE:
            v = 0
            if self._ready or self._count:
                v |= 0x80
            if self._mode() and self._count >= (self.regs[_FIFO_CTL] & 0x1F):
                v |= 0x02
            if self._overrun:
                v |= 0x01
            return v
        if r == _FIFO_STATUS:
            return self._count
        return self.regs[r & 0x3F]

    def read_mem(self, reg, buf):
        self.catch_up()
        n = len(buf)
        if reg <= _DATAX0 < reg + n:
            self._pop()
            self._ready = False
        for i in range(n):
            buf[i] = self._reg(reg + i)

    def write_mem(self, reg, buf):
        self.catch_up()
        for i in range(len(buf)):
            self._write(reg + i, buf[i])

    def _write(self, r, v):
        if r == _DEVID or r == _INT_SOURCE or r == _FIFO_STATUS or _DATAX0 <= r <= _DATAX0 + 5 or r > 0x39:
            return  # read-only or reserved
        self.regs[r] = v
        if r == _BW_RATE:
            code = v & 0x0F
            self._set_rate(3200000 >> (15 - code))
        elif r == _POWER_CTL:
            self._set_running(bool(v & 0x08))
        elif r == _DATA_FORMAT:
            self._format()
        elif r == _FIFO_CTL and not v >> 6:
            self._head = 0  # bypass empties the FIFO
            self._count = 0
            self._overrun = False
