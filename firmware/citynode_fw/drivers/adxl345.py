# Analog Devices ADXL345 3-axis accelerometer (I2C).
#
# Full-resolution mode (256 LSB/g in every range, 10 to 13 bits), right-
# justified little-endian int16 in DATAX0..DATAZ1. Output: raw << (6 - range
# code), so that +-32768 is +-range_g (256 LSB/g * 128/range = 32768/range).
#
# FIFO: 32 entries in stream mode. Each entry is popped by one 6-byte read from
# DATAX0 (a longer read would run into FIFO_CTL, so each sample is its own
# burst; the datasheet also wants >= 5 us between them, far less than one call
# takes in MicroPython). INT_SOURCE bit 0 (overrun) is set when the FIFO fills
# and clears when it is read; it is sampled before each burst.
#
# Output data rates 3.125 Hz .. 800 Hz. 1600 and 3200 Hz are left out: the
# datasheet recommends them only with SPI >= 2 MHz, and this driver is I2C.
#
# Sources: ADXL345 datasheet (register map, FIFO, INT_SOURCE); zephyr
# drivers/sensor/adi/adxl345/adxl345.h; adafruit/Adafruit_CircuitPython_ADXL34x.

from micropython import const

from citynode_fw.drivers.accel import Accelerometer

ADDRESSES = (0x53, 0x1D)

_DEVID = const(0x00)
_DEVID_VALUE = const(0xE5)
_BW_RATE = const(0x2C)
_POWER_CTL = const(0x2D)
_INT_ENABLE = const(0x2E)
_INT_SOURCE = const(0x30)
_DATA_FORMAT = const(0x31)
_DATAX0 = const(0x32)
_FIFO_CTL = const(0x38)
_FIFO_STATUS = const(0x39)

_MEASURE = const(0x08)  # POWER_CTL
_FULL_RES = const(0x08)  # DATA_FORMAT
_STREAM = const(0x80)  # FIFO_CTL mode bits
_WATERMARK = const(16)  # FIFO_CTL samples bits (not used for interrupts here)
_OVERRUN = const(0x01)  # INT_SOURCE
_RATE_CODE0 = const(5)  # BW_RATE code of ODRS_MHZ[0]


class ADXL345(Accelerometer):
    PART = "adxl345"
    ODRS_MHZ = (3125, 6250, 12500, 25000, 50000, 100000, 200000, 400000, 800000)  # BW_RATE 5..13
    RANGES_G = (2, 4, 8, 16)  # DATA_FORMAT range 0..3
    FIFO_DEPTH = 32

    def __init__(self, i2c, address=0x53):
        Accelerometer.__init__(self, i2c, address)
        self._num = 64  # output per count: 1 << (6 - range code)
        self._expect_id("DEVID", self._read_u8(_DEVID), _DEVID_VALUE)
        self._write_u8(_INT_ENABLE, 0)
        self.configure(self.DEFAULT_ODR_MHZ, self.DEFAULT_RANGE_G)

    def configure(self, odr_mhz, range_g):
        """Set rate and range, FIFO in stream mode. Leaves the part stopped (standby)."""
        odr, rng = self._codes(odr_mhz, range_g)
        self._write_u8(_POWER_CTL, 0)
        self.running = False
        self._write_u8(_BW_RATE, _RATE_CODE0 + odr)
        self._write_u8(_DATA_FORMAT, _FULL_RES | rng)
        self._flush()
        self._num = 64 >> rng
        self.odr_mhz = odr_mhz
        self.range_g = range_g

    def _flush(self):
        self._write_u8(_FIFO_CTL, 0)  # bypass mode empties the FIFO
        self._write_u8(_FIFO_CTL, _STREAM | _WATERMARK)

    def start(self):
        self._flush()
        self._write_u8(_POWER_CTL, _MEASURE)
        self.running = True

    def stop(self):
        self._write_u8(_POWER_CTL, 0)
        self.running = False

    def fifo_level(self):
        return self._read_u8(_FIFO_STATUS) & 0x3F

    def read_fifo_into(self, buf, max_samples):
        """Move up to max_samples samples from the FIFO into buf; return the count. No allocation."""
        if self._read_u8(_INT_SOURCE) & _OVERRUN:
            self._ovr = True
        n = self._limit(buf, max_samples, self._read_u8(_FIFO_STATUS) & 0x3F)
        self._read_samples(_DATAX0, buf, n, self._num, 1)
        self._count_overrun()
        return n
