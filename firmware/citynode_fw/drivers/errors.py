# Errors raised by the sensor drivers. Every one is an OSError with an errno
# (so `except OSError` in the board layer catches them all) and a message that
# names the part and its I2C address in hex: "sht3x at 0x44: ...".

from micropython import const

EIO = const(5)
ENODEV = const(19)  # what the ESP32 port raises for a NACK
ETIMEDOUT = const(110)


class SensorError(OSError):
    """The sensor did not answer, or its answer made no sense."""


class SensorCRCError(SensorError):
    """A checksum in the sensor's reply did not match the data it covers."""


class SensorTimeout(SensorError):
    """A bounded wait on the sensor ran out."""


class SensorIdentityError(SensorError):
    """Something answers at the address, but it is not the part the driver drives."""


def where(part, address):
    return "%s at 0x%02x" % (part, address)


def bus_error(part, address, exc, doing):
    """An OSError from the bus, as a SensorError naming the part, address and step."""
    code = exc.errno if isinstance(exc.errno, int) else EIO
    if code == ENODEV:
        why = "no ACK"
    else:
        why = "bus error %d" % code
    return SensorError(code, "%s: %s while %s" % (where(part, address), why, doing))
