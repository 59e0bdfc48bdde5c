# What the Sensirion SHT3x and SHT4x share: the CRC-8 on every 16-bit word, the
# temperature conversion, and the single-shot measurement cycle.
#
# CRC-8: polynomial 0x31 (x^8 + x^5 + x^4 + 1), init 0xFF, no reflection, no
# final XOR. Datasheet example: CRC(0xBE 0xEF) = 0x92 (SHT3x-DIS table 20).
#
# Conversions use the datasheet formulas with exact integer ratios, rounded to
# the nearest 0.01 unit. Sensirion's C drivers use `(21875 * S) >> 13` (milli-
# degrees), whose product reaches 1.4e9: above the 2^30 small-int limit of the
# ESP32 port, so it would allocate a long int on every read. 175/65535 equals
# 3500/13107 for 0.01 degC (65535 = 5 * 13107), and 3500 * S stays below 2.3e8.

from micropython import const
from time import sleep_ms

from citynode_fw.drivers.errors import EIO, ENODEV, ETIMEDOUT, SensorCRCError, SensorTimeout, bus_error, where

_READ_RETRY_MS = const(2)  # a read NACKed while the part measures is tried again this much later...
_READ_SLACK_MS = const(10)  # ...until this long after CONVERSION_MS; then SensorTimeout


def crc8(data, start=0, count=2):
    """Sensirion CRC-8 of data[start:start + count], without slicing."""
    crc = 0xFF
    for i in range(start, start + count):
        crc ^= data[i]
        for _ in range(8):
            if crc & 0x80:
                crc = ((crc << 1) ^ 0x31) & 0xFF
            else:
                crc = (crc << 1) & 0xFF
    return crc


def bad_word(buf, words):
    """Index of the first of `words` (msb, lsb, crc) triples whose CRC fails, or -1."""
    for w in range(words):
        o = 3 * w
        if crc8(buf, o, 2) != buf[o + 2]:
            return w
    return -1


def check_words(buf, words, part, address):
    """Check `words` CRC-protected words at the start of buf, in place; raise SensorCRCError."""
    w = bad_word(buf, words)
    if w >= 0:
        o = 3 * w
        raise SensorCRCError(
            EIO,
            "%s: CRC mismatch in word %d: data 0x%02x%02x crc 0x%02x, expected 0x%02x"
            % (where(part, address), w, buf[o], buf[o + 1], buf[o + 2], crc8(buf, o, 2)),
        )


def word(buf, index):
    """The 16-bit big-endian word number `index` of a (msb, lsb, crc) reply."""
    o = 3 * index
    return (buf[o] << 8) | buf[o + 1]


def temp_centi_c(raw):
    """T = -45 + 175 * raw / 65535 degC, in 0.01 degC, rounded (raw 0..65535)."""
    return -4500 + (3500 * raw + 6553) // 13107


class SensirionTH:
    """Single-shot T/RH cycle over I2C: write a command, wait, read 6 bytes.

    Subclasses set PART, CONVERSION_MS, _MEASURE (the command bytes), _rh()
    and _identify() (called by __init__; raises SensorIdentityError)."""

    PART = "sensirion"
    CONVERSION_MS = 0  # the datasheet's most a measurement takes (+1 ms for a clock that counts whole ms)
    _MEASURE = b""

    def __init__(self, i2c, address):
        self._i2c = i2c
        self.address = address
        self._buf = bytearray(6)
        self._mv3 = memoryview(self._buf)[:3]
        self.result = [0, 0]  # reused by read(): [temp_centi_c, rh_centi_pct]
        self._identify()

    def _identify(self):
        raise NotImplementedError

    def _rh(self, raw):
        raise NotImplementedError

    def _write(self, cmd, doing):
        try:
            self._i2c.writeto(self.address, cmd)
        except OSError as e:
            raise bus_error(self.PART, self.address, e, doing)

    def _read_into(self, buf, doing):
        try:
            self._i2c.readfrom_into(self.address, buf)
        except OSError as e:
            raise bus_error(self.PART, self.address, e, doing)

    def start(self):
        """Trigger one measurement; read() it CONVERSION_MS later."""
        self._write(self._MEASURE, "starting a measurement")

    def read(self, since_ms=-1):
        """[temp_centi_c, rh_centi_pct] of the last start(), in a list reused by every call.

        Copy the values if you keep them. No heap allocation. The part NACKs
        a read header while it measures (and when no result waits: not
        started, already read, or gone). since_ms, the ms since start(), says
        which: within CONVERSION_MS + _READ_SLACK_MS a NACK is the measurement
        still running and read() returns None (read again _READ_RETRY_MS
        later); past it, it raises SensorTimeout. Without since_ms a NACK
        raises SensorError with errno ENODEV. A failed CRC raises SensorCRCError."""
        buf = self._buf
        try:
            self._i2c.readfrom_into(self.address, buf)
        except OSError as e:
            if since_ms < 0 or e.errno != ENODEV:
                raise bus_error(self.PART, self.address, e, "reading a measurement")
            if since_ms < self.CONVERSION_MS + _READ_SLACK_MS:
                return None
            raise SensorTimeout(ETIMEDOUT, "%s: no measurement %d ms after start" % (where(self.PART, self.address), since_ms))
        check_words(buf, 2, self.PART, self.address)
        r = self.result
        r[0] = temp_centi_c((buf[0] << 8) | buf[1])
        r[1] = self._rh((buf[3] << 8) | buf[4])
        return r

    def measure(self):
        """start(), sleep, read(), NACKed reads retried: blocking, for tools, selftest and tests, not for the sampler."""
        self.start()
        ms = self.CONVERSION_MS
        sleep_ms(ms)
        while True:
            r = self.read(ms)
            if r is not None:
                return r
            sleep_ms(_READ_RETRY_MS)
            ms += _READ_RETRY_MS
