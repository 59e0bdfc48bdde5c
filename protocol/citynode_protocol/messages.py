"""THE message table: type id, name, fixed layout, fields with scale and unit, tail.

Read by the node (to pack), the host (to unpack and name columns), SPEC.md's
tables (a test keeps them in step) and the docs.

Each entry: (type id, name, struct format of the fixed part, fields, tail).
A field is (name, scale, unit): the wire integer times scale gives the value in
unit; scale None means the integer is used as it is.
The tail says what follows the fixed part: None (nothing), "text" (UTF-8),
"json" (UTF-8 JSON) or "accel" (samples, see codec.py).
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

# CLIMATE status bits
CLIMATE_SENSOR_ERROR = const(0x01)  # this reading failed; values are not valid
CLIMATE_CRC_ERROR = const(0x02)  # the sensor answered with a bad CRC
CLIMATE_CALIBRATED = const(0x04)  # the node applied a stored calibration
CLIMATE_CLAMPED = const(0x08)  # humidity was clamped to 0..100 %RH

# ACCEL and FEATURES flag bits
ACCEL_CALIBRATED = const(0x01)  # bias/scale (and mount rotation) applied on the node
ACCEL_UNCALIBRATED_MODE = const(0x02)  # raw-data mode for calibration
ACCEL_OVERRUN = const(0x04)  # the sensor FIFO overflowed before this block
FEATURES_TILT_RELATIVE = const(0x02)  # pitch/roll relative to the mounted zero

# ACCEL encodings
ENCODING_RAW = const(0)
ENCODING_DELTA_BITPACK = const(1)
ENCODING_NAMES = {0: "raw-int16", 1: "delta-bitpack8"}

# STATUS bits
SENSOR_CLIMATE = const(0x01)
SENSOR_ACCEL = const(0x02)
STATUS_CONFIG_FALLBACK = const(0x01)  # config file corrupt or missing: running on defaults
STATUS_CALIB_FALLBACK = const(0x02)  # calibration file corrupt: running uncalibrated
STATUS_TIME_ANCHORED = const(0x04)  # the node knows UTC (a TIME message was sent)
STATUS_STREAMING = const(0x08)  # the accelerometer stream is running

LOG_LEVELS = ("debug", "info", "warning", "error")

_XYZ_FEATURES = []
for _axis in ("x", "y", "z"):
    _XYZ_FEATURES.append(("rms_%s_g" % _axis, 1e-6, "g"))
    _XYZ_FEATURES.append(("peak_%s_g" % _axis, 1e-6, "g"))
    _XYZ_FEATURES.append(("dominant_freq_%s_hz" % _axis, 0.01, "Hz"))

MESSAGES = (
    (
        CLIMATE,
        "climate",
        "<hHB",
        (
            ("temperature_c", 0.01, "degC"),
            ("relative_humidity_pct", 0.01, "%RH"),
            ("status", None, "bits"),
        ),
        None,
    ),
    (
        ACCEL,
        "accel",
        "<BBBBIIHH",
        (
            ("encoding", None, ""),
            ("flags", None, "bits"),
            ("range_g", None, "g"),
            ("reserved", None, ""),
            ("odr_hz", 0.001, "Hz"),
            ("first_index", None, "samples"),
            ("n_samples", None, "samples"),
            ("age_ms", None, "ms"),
        ),
        "accel",
    ),
    (
        FEATURES,
        "features",
        "<IIHBB" + "IIH" * 3 + "hh",
        (
            ("window_s", 0.001, "s"),
            ("age_ms", None, "ms"),
            ("n_samples", None, "samples"),
            ("flags", None, "bits"),
            ("reserved", None, ""),
        )
        + tuple(_XYZ_FEATURES)
        + (
            ("pitch_deg", 0.01, "deg"),
            ("roll_deg", 0.01, "deg"),
        ),
        None,
    ),
    (
        STATUS,
        "status",
        "<IIBBBBBBBBBBHIHHHHHH",
        (
            ("uptime_s", None, "s"),
            ("free_heap", None, "bytes"),
            ("mpy_major", None, ""),
            ("mpy_minor", None, ""),
            ("mpy_patch", None, ""),
            ("app_major", None, ""),
            ("app_minor", None, ""),
            ("app_patch", None, ""),
            ("protocol_minor", None, ""),
            ("sensors_fitted", None, "bits"),
            ("sensors_ok", None, "bits"),
            ("flags", None, "bits"),
            ("supply_v", 0.001, "V"),
            ("calibration_id", None, ""),
            ("sensor_errors", None, "count"),
            ("crc_errors", None, "count"),
            ("timeouts", None, "count"),
            ("fifo_overruns", None, "count"),
            ("tx_dropped", None, "count"),
            ("command_errors", None, "count"),
        ),
        None,
    ),
    (LOG, "log", "<B", (("level", None, ""),), "text"),
    (TIME, "time", "<Q", (("utc_ms", None, "ms"),), None),
    (
        REPLY,
        "reply",
        "<HB",
        (
            ("request_id", None, ""),
            ("code", None, ""),
        ),
        "json",
    ),
)

BY_TYPE = {}
BY_NAME = {}
for _entry in MESSAGES:
    BY_TYPE[_entry[0]] = _entry
    BY_NAME[_entry[1]] = _entry

# Reply codes, turned into words on the host.
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

REPLY_CODES = {
    OK: "ok",
    ERR_BAD_LINE: "command line garbled (bad armour or CRC)",
    ERR_BAD_REQUEST: "request is not valid JSON of the expected shape",
    ERR_UNKNOWN_COMMAND: "unknown command",
    ERR_BAD_ARGUMENT: "bad argument",
    ERR_BUSY: "node busy",
    ERR_NO_SENSOR: "sensor not fitted or not answering",
    ERR_STORAGE: "could not write to the node's flash",
    ERR_NOT_SUPPORTED: "not supported on this node",
    ERR_INTERNAL: "internal error on the node",
}

# Commands the node accepts (host -> node, armoured lines; see armour.py).
COMMANDS = (
    "info",
    "config_get",
    "config_set",
    "stream_start",
    "stream_stop",
    "raw_mode",
    "calib_get",
    "calib_write",
    "calib_rollback",
    "selftest",
    "set_time",
    "status",
    "reboot",
)


def reply_word(code):
    """The host's words for a reply code."""
    return REPLY_CODES.get(code, "unknown error code %d" % code)
