"""STATUS messages: the node's health in one fixed-size payload, and its counters."""

import struct
import sys

from citynode_protocol import PROTOCOL_MINOR, wire
from citynode_fw import version

_FORMAT = wire.FORMATS[wire.STATUS]
SIZE = struct.calcsize(_FORMAT)

# error counters, in the order of the STATUS fields
COUNTERS = ("sensor_errors", "crc_errors", "timeouts", "fifo_overruns", "tx_dropped", "command_errors")


class Counters:
    """Error counters; they grow without bound here and saturate at 65535 on the wire."""

    def __init__(self):
        self.sensor_errors = 0
        self.crc_errors = 0
        self.timeouts = 0
        self.fifo_overruns = 0
        self.tx_dropped = 0
        self.command_errors = 0
        self.bad_lines = 0  # also counted in command_errors

    def as_dict(self):
        return {
            "sensor_errors": self.sensor_errors,
            "crc_errors": self.crc_errors,
            "timeouts": self.timeouts,
            "fifo_overruns": self.fifo_overruns,
            "tx_dropped": self.tx_dropped,
            "command_errors": self.command_errors,
            "bad_lines": self.bad_lines,
        }


def _u16(v):
    return 65535 if v > 65535 else v


def mpy_version():
    v = sys.implementation.version
    return v[0], v[1], v[2]


def pack_into(buf, uptime_s, free_heap, fitted, ok, flags, supply_mv, calib_id, counters):
    """The STATUS payload into buf; returns its length."""
    mpy = mpy_version()
    app = version.VERSION
    struct.pack_into(
        _FORMAT,
        buf,
        0,
        uptime_s,
        free_heap,
        mpy[0],
        mpy[1],
        mpy[2],
        app[0],
        app[1],
        app[2],
        PROTOCOL_MINOR,
        fitted,
        ok,
        flags,
        supply_mv if supply_mv < 65535 else 65535,
        calib_id,
        _u16(counters.sensor_errors),
        _u16(counters.crc_errors),
        _u16(counters.timeouts),
        _u16(counters.fifo_overruns),
        _u16(counters.tx_dropped),
        _u16(counters.command_errors),
    )
    return SIZE
