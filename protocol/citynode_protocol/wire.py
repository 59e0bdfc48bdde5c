"""What the node needs of the message table: type ids, flag bits, codes, layouts.

The node imports this module alone; `messages.py` builds the full table (field
names, scales, units, words) on top of it for the host, so the layouts here are
the only ones there are.
"""

try:
    from micropython import const
except ImportError:  # CPython

    def const(value):
        return value


CLIMATE = const(1)
ACCEL = const(2)
FEATURES = const(3)
STATUS = const(4)
LOG = const(5)
TIME = const(6)
REPLY = const(7)
BUNDLE = const(8)  # records of several frames (SPEC.md §4, protocol 1.1)

# CLIMATE status bits
CLIMATE_SENSOR_ERROR = const(0x01)  # this reading failed; values are not valid
CLIMATE_CRC_ERROR = const(0x02)  # the sensor answered with a bad CRC
CLIMATE_CALIBRATED = const(0x04)  # the node applied a stored calibration
CLIMATE_CLAMPED = const(0x08)  # humidity was clamped to 0..100 %RH

# ACCEL and FEATURES flag bits
ACCEL_CALIBRATED = const(0x01)  # bias/scale (and mount rotation) applied on the node
ACCEL_UNCALIBRATED_MODE = const(0x02)  # raw-data mode for calibration
ACCEL_OVERRUN = const(0x04)  # the sensor FIFO overflowed before this block
ACCEL_GAP_ESTIMATED = const(0x08)  # first_index skips the samples lost before it: an estimate
FEATURES_TILT_RELATIVE = const(0x02)  # pitch/roll relative to the mounted zero

# Signed frames (network links, SPEC.md §9): a type bit and a trailer inside the CRC
SIGNED = const(0x10)
SIGNED_TRAILER = const(14)  # boot u32, seq_hi u16, MAC 8 bytes

# ACCEL encodings
ENCODING_RAW = const(0)
ENCODING_DELTA_BITPACK = const(1)

# STATUS bits
SENSOR_CLIMATE = const(0x01)
SENSOR_ACCEL = const(0x02)
STATUS_CONFIG_FALLBACK = const(0x01)  # config not loaded as saved (defaults, or a recovered copy): see info
STATUS_CALIB_FALLBACK = const(0x02)  # calibration not loaded as saved (previous, recovered, or none): see info
STATUS_TIME_ANCHORED = const(0x04)  # the node knows UTC (a TIME message was sent)
STATUS_STREAMING = const(0x08)  # the accelerometer stream is running
STATUS_UPLINK_DOWN = const(0x10)  # the network uplink is configured but not connected: frames wait in the ring

LOG_LEVELS = ("debug", "info", "warning", "error")

# The UTC a node may take (set_time, SNTP) and a receiver trusts in a TIME
# message: 2020-01-01T00:00:00Z up to, not including, 2100-01-01T00:00:00Z, in
# ms since 1970. Outside it the clock that sent it is wrong (or sent µs or ns).
UTC_MIN_MS = 1577836800000
UTC_MAX_MS = 4102444800000

# Reply codes (messages.REPLY_CODES has their words for the host)
OK = const(0)
ERR_BAD_LINE = const(1)
ERR_BAD_REQUEST = const(2)
ERR_UNKNOWN_COMMAND = const(3)
ERR_BAD_ARGUMENT = const(4)
ERR_BUSY = const(5)
ERR_NO_SENSOR = const(6)
ERR_STORAGE = const(7)
ERR_NOT_SUPPORTED = const(8)
ERR_INTERNAL = const(9)
ERR_REFUSED = const(10)  # a network command not signed right, or replayed (SPEC §9.4)

# Struct format of each message's fixed part (the rest of the payload is its tail).
FORMATS = {
    CLIMATE: "<hHB",
    ACCEL: "<BBBBIIHH",
    FEATURES: "<IIHBB" + "IIH" * 3 + "hh",
    STATUS: "<IIBBBBBBBBBBHIHHHHHH",
    LOG: "<B",
    TIME: "<Q",
    REPLY: "<HB",
}
