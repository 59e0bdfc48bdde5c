# Simulated LIS3DH (register map per datasheet DocID17530).
#
# Modelled: WHO_AM_I; CTRL_REG1 ODR (power-down at 0) and LPen; CTRL_REG4 FS
# and HR (12-bit HR, 10-bit normal, 8-bit low power; left-justified, ST's
# mg/digit sensitivities); CTRL_REG5 BOOT (registers back to defaults, the bit
# clears at once) and FIFO_EN; FIFO_CTRL_REG bypass / FIFO / stream (stream-to-
# FIFO taken as stream) and FTH; FIFO_SRC_REG WTM, OVRN_FIFO (a slot was
# overwritten; cleared when a sample is read), EMPTY, FSS (saturates at 31);
# STATUS_REG ZYXDA; OUT_X_L..OUT_Z_H, a 6-byte read from OUT_X_L popping one
# FIFO sample. Register auto-increment only with bit 7 of the sub-address.
# Not modelled: interrupts, click, ADC, temperature, self test, SPI.

from citynode_sim.accel import Scale, SimSampleFifo

_WHO_AM_I = 0x0F
_CTRL_REG1 = 0x20
_CTRL_REG4 = 0x23
_CTRL_REG5 = 0x24
_STATUS_REG = 0x27
_OUT_X_L = 0x28
_FIFO_CTRL_REG = 0x2E
_FIFO_SRC_REG = 0x2F

_ODR_MHZ = (0, 1000, 10000, 25000, 50000, 100000, 200000, 400000, 1600000, 1344000)
_MG_PER_DIGIT = {12: (1, 2, 4, 12), 10: (4, 8, 16, 48), 8: (16, 32, 64, 192)}


class LIS3DH(SimSampleFifo):
    PART = "lis3dh"
    ADDRESS = 0x18
    FIFO_SAMPLES = 32
    SEED = 3

    def __init__(self, scenario, clock=None):
        SimSampleFifo.__init__(self, scenario, clock)
        self.regs = bytearray(0x40)
        self._scale = Scale(1000, 4, -512, 511)
        self._boot()

    def _boot(self):
        for r in range(len(self.regs)):
            self.regs[r] = 0
        self.regs[_CTRL_REG1] = 0x07
        self._empty()
        self._update()

    def _update(self):
        c1 = self.regs[_CTRL_REG1]
        c4 = self.regs[_CTRL_REG4]
        fs = (c4 >> 4) & 3
        if c1 & 0x08:
            bits = 8
        elif c4 & 0x08:
            bits = 12
        else:
            bits = 10
        self._bits = bits
        self._mg = _MG_PER_DIGIT[bits][fs]
        self._hi = (1 << (bits - 1)) - 1
        self._lo = -(1 << (bits - 1))
        self._scale.set(1000, self._mg, self._lo, self._hi)
        code = c1 >> 4
        odr = _ODR_MHZ[code] if code < len(_ODR_MHZ) else 0
        if code == 9 and c1 & 0x08:
            odr = 5376000
        if odr:
            if odr != self._odr_mhz:
                self._set_rate(odr)
            self._set_running(True)
        else:
            self._set_running(False)

    def _fifo_mode(self):
        if not self.regs[_CTRL_REG5] & 0x40:  # FIFO_EN
            return 0
        return self.regs[_FIFO_CTRL_REG] >> 6  # stream-to-FIFO (3) is taken as stream

    def _counts(self, ug):
        return self._scale.counts(ug) << (16 - self._bits)

    def _reg(self, r):
        if r == _WHO_AM_I:
            return 0x00 if self.bad_id else 0x33
        if _OUT_X_L <= r <= _OUT_X_L + 5:
            return self._out[r - _OUT_X_L]
        if r == _STATUS_REG:
            return 0x08 if self._ready else 0
        if r == _FIFO_SRC_REG:
            v = 31 if self._count >= 31 else self._count
            if self._count == 0:
                v |= 0x20
            if self._overrun:
                v |= 0x40
            if self._count and self._count > (self.regs[_FIFO_CTRL_REG] & 0x1F):
                v |= 0x80
            return v
        return self.regs[r & 0x3F]

    def read_mem(self, reg, buf):
        self.catch_up()
        inc = reg & 0x80
        r = reg & 0x7F
        n = len(buf)
        if r == _OUT_X_L:
            self._pop()
            self._ready = False
        for i in range(n):
            buf[i] = self._reg(r + i if inc else r)

    def write_mem(self, reg, buf):
        self.catch_up()
        inc = reg & 0x80
        r = reg & 0x7F
        for i in range(len(buf)):
            self._write(r + i if inc else r, buf[i])

    def _write(self, r, v):
        if r < 0x1E or r == _STATUS_REG or _OUT_X_L <= r <= _FIFO_SRC_REG and r != _FIFO_CTRL_REG or r > 0x3F:
            return  # read-only or reserved
        self.regs[r] = v
        if r == _CTRL_REG5 and v & 0x80:
            self._boot()  # BOOT: reload, registers to defaults; the bit clears itself
        elif r in (_CTRL_REG1, _CTRL_REG4):
            self._update()
        elif r == _FIFO_CTRL_REG and not v >> 6:
            self._empty()  # bypass empties the FIFO
