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

from citynode_sim.accel import Scale, SimSampleFifo

_DEVID = 0x00
_BW_RATE = 0x2C
_POWER_CTL = 0x2D
_INT_SOURCE = 0x30
_DATA_FORMAT = 0x31
_DATAX0 = 0x32
_FIFO_CTL = 0x38
_FIFO_STATUS = 0x39


class ADXL345(SimSampleFifo):
    PART = "adxl345"
    ADDRESS = 0x53
    FIFO_SAMPLES = 32
    SEED = 345
    FULL_IS_OVERRUN = True  # INT_SOURCE overrun comes up as the FIFO fills

    def __init__(self, scenario, clock=None):
        SimSampleFifo.__init__(self, scenario, clock)
        self.regs = bytearray(0x40)
        self.regs[_DEVID] = 0xE5
        self.regs[_BW_RATE] = 0x0A
        self._per_g = 256
        self._lo = -512
        self._hi = 511
        self._scale = Scale(256, 1, -512, 511)
        self._left = 0  # JUSTIFY shift
        self._set_rate(100000)

    def _fifo_mode(self):
        return self.regs[_FIFO_CTL] >> 6  # trigger mode (3) is taken as stream

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
        self._scale.set(self._per_g, 1, self._lo, self._hi)
        self._left = 16 - bits if f & 0x04 else 0

    def _counts(self, ug):
        return self._scale.counts(ug) << self._left

    def _reg(self, r):
        if r == _DEVID:
            return 0x00 if self.bad_id else 0xE5
        if _DATAX0 <= r <= _DATAX0 + 5:
            return self._out[r - _DATAX0]
        if r == _INT_SOURCE:
            v = 0
            if self._ready or self._count:
                v |= 0x80
            if self._fifo_mode() and self._count >= (self.regs[_FIFO_CTL] & 0x1F):
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
            self._empty()  # bypass empties the FIFO
