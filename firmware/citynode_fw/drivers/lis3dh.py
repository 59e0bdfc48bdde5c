# ST LIS3DH 3-axis accelerometer (I2C).
#
# High-resolution mode (12 bits, left-justified little-endian int16). ST's
# sensitivity in HR mode is 1 / 2 / 4 / 12 mg per 12-bit digit at +-2/4/8/16 g,
# i.e. 16000 / 8000 / 4000 / 1333.3 LSB/g on the int16; the wire wants
# 32768/range_g per g, so the output is raw * 128/125 (raw * 192/125 at 16 g).
#
# FIFO: 32 samples in stream mode. FIFO_SRC_REG: WTM b7, OVRN_FIFO b6 (a slot
# was overwritten), EMPTY b5, FSS[4:0]. FSS is 5 bits, so a full FIFO is taken
# as 32 when OVRN is set. Each sample is one 6-byte read from OUT_X_L with the
# auto-increment bit (0x28 | 0x80); whether a longer read wraps back to OUT_X_L
# in FIFO mode is not settled in the sources at hand, so the driver does not
# rely on it.
#
# Sources: LIS3DH datasheet DocID17530 (FIFO section 5.1, registers, I2C
# auto-increment SUB(7)); STMicroelectronics/lis3dh-pid lis3dh_reg.h/.c
# (sensitivities, ODR codes); adafruit/Adafruit_CircuitPython_LIS3DH.

from micropython import const

from citynode_fw.drivers.accel import Accelerometer

ADDRESSES = (0x18, 0x19)

_WHO_AM_I = const(0x0F)
_WHO_AM_I_VALUE = const(0x33)
_CTRL_REG1 = const(0x20)
_CTRL_REG4 = const(0x23)
_CTRL_REG5 = const(0x24)
_OUT_X_L_INC = const(0xA8)  # OUT_X_L with the auto-increment bit
_FIFO_CTRL_REG = const(0x2E)
_FIFO_SRC_REG = const(0x2F)

_XYZ_EN = const(0x07)  # CTRL_REG1, ODR 0 = power-down
_BDU_HR = const(0x88)  # CTRL_REG4: block data update, high resolution
_BOOT = const(0x80)  # CTRL_REG5
_FIFO_EN = const(0x40)  # CTRL_REG5
_STREAM = const(0x80)  # FIFO_CTRL_REG mode bits
_OVRN = const(0x40)
_EMPTY = const(0x20)

_ODR_CODES = b"\x01\x02\x03\x04\x05\x06\x07\x09"  # CTRL_REG1 ODR for ODRS_MHZ
_SCALE_NUM = (128, 128, 128, 192)  # output = raw * num / 125, per range


def _level(src):
    if src & _EMPTY:
        return 0
    if src & _OVRN:
        return 32
    return src & 0x1F


class LIS3DH(Accelerometer):
    PART = "lis3dh"
    ODRS_MHZ = (1000, 10000, 25000, 50000, 100000, 200000, 400000, 1344000)
    RANGES_G = (2, 4, 8, 16)
    FIFO_DEPTH = 32

    def __init__(self, i2c, address=0x18):
        Accelerometer.__init__(self, i2c, address)
        self._num = 128
        self._odr_code = 0
        self._expect_id("WHO_AM_I", self._read_u8(_WHO_AM_I), _WHO_AM_I_VALUE)
        self._write_u8(_CTRL_REG5, _BOOT)  # reload trimming, registers to defaults
        self._wait_clear(_CTRL_REG5, _BOOT, 20, 1, "reboot")
        self.configure(self.DEFAULT_ODR_MHZ, self.DEFAULT_RANGE_G)

    def configure(self, odr_mhz, range_g):
        """Set rate and range, HR mode, FIFO in stream mode. Leaves the part powered down."""
        odr, rng = self._codes(odr_mhz, range_g)
        self._write_u8(_CTRL_REG1, _XYZ_EN)
        self.running = False
        self._write_u8(_CTRL_REG4, _BDU_HR | (rng << 4))
        self._write_u8(_CTRL_REG5, _FIFO_EN)
        self._flush()
        self._odr_code = _ODR_CODES[odr]
        self._num = _SCALE_NUM[rng]
        self.odr_mhz = odr_mhz
        self.range_g = range_g

    def _flush(self):
        self._write_u8(_FIFO_CTRL_REG, 0)  # bypass mode empties the FIFO
        self._write_u8(_FIFO_CTRL_REG, _STREAM)

    def start(self):
        self._flush()
        self._write_u8(_CTRL_REG1, (self._odr_code << 4) | _XYZ_EN)
        self.running = True

    def stop(self):
        self._write_u8(_CTRL_REG1, _XYZ_EN)
        self.running = False

    def fifo_level(self):
        return _level(self._read_u8(_FIFO_SRC_REG))

    def read_fifo_into(self, buf, max_samples):
        """Move up to max_samples samples from the FIFO into buf; return the count. No allocation."""
        src = self._read_u8(_FIFO_SRC_REG)
        if src & _OVRN:
            self._ovr = True
        n = self._limit(buf, max_samples, _level(src))
        self._read_samples(_OUT_X_L_INC, buf, n, self._num, 125)
        self._count_overrun()
        return n
