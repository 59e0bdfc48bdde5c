# Sensirion SHT30 / SHT31 / SHT35 temperature and humidity sensor (I2C).
#
# Single shot, high repeatability, clock stretching disabled (0x2400): the
# sensor NACKs a read header until the measurement is done, so the bus is never
# held. The caller runs start(), waits CONVERSION_MS (the sampler schedules
# it, it does not sleep), then read(ms since start), which gives None for a
# NACK while the measurement may still run (read again 2 ms later)
# and SensorTimeout once it cannot (sensirion.py).
#
# Identity: the status register (0xF32D) must answer with a valid CRC. The
# SHT3x has no ID register; a status word with a valid CRC is what tells it
# from another device at 0x44/0x45. The three variants differ only in accuracy,
# so the driver cannot (and need not) tell them apart.
#
# Sources: SHT3x-DIS datasheet v5 (commands, CRC, conversion, NACK while
# measuring, 15 ms max at high repeatability); Sensirion/embedded-sht sht3x.c
# (15 ms wait, integer formulas); adafruit/Adafruit_CircuitPython_SHT31D.

from micropython import const
from time import sleep_ms

from citynode_fw.drivers.errors import ENODEV, SensorIdentityError, where
from citynode_fw.drivers.sensirion import SensirionTH, bad_word, check_words, word

ADDRESSES = (0x44, 0x45)

_MEASURE_HIGH = b"\x24\x00"  # single shot, high repeatability, no clock stretching
_STATUS = b"\xf3\x2d"
_CLEAR_STATUS = b"\x30\x41"
_SERIAL = b"\x37\x80"
_SOFT_RESET = b"\x30\xa2"
_HEATER_ON = b"\x30\x6d"
_HEATER_OFF = b"\x30\x66"
_REPLY_MS = const(1)  # time between a command and reading its reply


def rh_centi_pct(raw):
    """RH = 100 * raw / 65535 %RH, in 0.01 %RH, rounded (0..10000 by construction)."""
    return (2000 * raw + 6553) // 13107


class SHT3x(SensirionTH):
    PART = "sht3x"
    CONVERSION_MS = 16  # datasheet max 15 ms at high repeatability, +1: the node's clock counts whole ms
    _MEASURE = _MEASURE_HIGH

    def __init__(self, i2c, address=0x44):
        self.status = 0
        SensirionTH.__init__(self, i2c, address)

    def _rh(self, raw):
        return rh_centi_pct(raw)

    def _identify(self):
        self.read_status()

    def read_status(self):
        """The 16-bit status word (0x8000 alert pending, 0x2000 heater on, 0x0010 reset seen)."""
        self._write(_STATUS, "asking for the status register")
        sleep_ms(_REPLY_MS)
        self._read_into(self._mv3, "reading the status register")
        if bad_word(self._buf, 1) >= 0:
            raise SensorIdentityError(
                ENODEV,
                "%s: status reply 0x%02x%02x 0x%02x has a bad CRC: not an SHT3x, or a noisy bus"
                % (where(self.PART, self.address), self._buf[0], self._buf[1], self._buf[2]),
            )
        self.status = word(self._buf, 0)
        return self.status

    def clear_status(self):
        self._write(_CLEAR_STATUS, "clearing the status register")

    def heater(self, on):
        self._write(_HEATER_ON if on else _HEATER_OFF, "switching the heater")

    def soft_reset(self):
        self._write(_SOFT_RESET, "sending a soft reset")
        sleep_ms(2)  # datasheet: 1.5 ms until the sensor takes commands again

    def serial(self):
        """The 32-bit serial number (0x3780), CRC-checked. Allocates (a long int on the ESP32)."""
        self._write(_SERIAL, "asking for the serial number")
        sleep_ms(_REPLY_MS)
        self._read_into(self._buf, "reading the serial number")
        check_words(self._buf, 2, self.PART, self.address)
        return (word(self._buf, 0) << 16) | word(self._buf, 1)
