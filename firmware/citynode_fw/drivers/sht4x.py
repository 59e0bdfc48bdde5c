# Sensirion SHT40 / SHT41 / SHT45 temperature and humidity sensor (I2C).
#
# One-byte commands. 0xFD measures at high precision (datasheet max 8.3 ms;
# Sensirion's and Adafruit's drivers wait 10 ms). The sensor NACKs a read header
# while it is measuring, as the SHT3x does.
#
# Identity: the serial number (0x89) must come back as two words with valid
# CRCs. RH follows the SHT4x formula -6 + 125 * S / 65535, which runs past
# 0..100 %RH at the ends; the datasheet says to crop it, and read() does.
#
# Sources: Sensirion/embedded-i2c-sht4x sht4x_i2c.c/.h (commands, waits,
# formulas); adafruit/Adafruit_CircuitPython_SHT4x (serial read, 10 ms).

from micropython import const
from time import sleep_ms

from citynode_fw.drivers.errors import ENODEV, SensorIdentityError, where
from citynode_fw.drivers.sensirion import SensirionTH, bad_word, word

ADDRESSES = (0x44, 0x45, 0x46)

_MEASURE_HIGH = b"\xfd"
_SERIAL = b"\x89"
_SOFT_RESET = b"\x94"
_SERIAL_MS = const(10)


def rh_centi_pct(raw):
    """RH = -6 + 125 * raw / 65535 %RH in 0.01 %RH, rounded, then cropped to 0..10000."""
    rh = -600 + (2500 * raw + 6553) // 13107
    if rh < 0:
        return 0
    if rh > 10000:
        return 10000
    return rh


class SHT4x(SensirionTH):
    PART = "sht4x"
    CONVERSION_MS = 10
    _MEASURE = _MEASURE_HIGH

    def __init__(self, i2c, address=0x44):
        self.serial = 0
        SensirionTH.__init__(self, i2c, address)

    def _rh(self, raw):
        return rh_centi_pct(raw)

    def _identify(self):
        self._write(_SERIAL, "asking for the serial number")
        sleep_ms(_SERIAL_MS)
        self._read_into(self._buf, "reading the serial number")
        w = bad_word(self._buf, 2)
        if w >= 0:
            raise SensorIdentityError(
                ENODEV,
                "%s: serial number word %d has a bad CRC: not an SHT4x, or a noisy bus" % (where(self.PART, self.address), w),
            )
        self.serial = (word(self._buf, 0) << 16) | word(self._buf, 1)

    def soft_reset(self):
        self._write(_SOFT_RESET, "sending a soft reset")
        sleep_ms(1)
