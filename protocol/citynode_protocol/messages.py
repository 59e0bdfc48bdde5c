"""THE message table: type id, name, fixed layout, fields with scale and unit, tail.

Built on wire.py, which holds the ids, bits, codes and layouts: the node
imports wire.py alone and so carries none of the names, scales and words that
only the host needs. Read by the host (to unpack and name columns), SPEC.md's
tables (a test keeps them in step) and the docs.

Each entry: (type id, name, struct format of the fixed part, fields, tail).
A field is (name, scale, unit): the wire integer times scale gives the value in
unit; scale None means the integer is used as it is.
The tail says what follows the fixed part: None (nothing), "text" (UTF-8),
"json" (UTF-8 JSON) or "accel" (samples, see codec.py).
"""

from citynode_protocol.wire import *  # noqa: F401,F403 (ids, bits, codes: re-exported for the host)
from citynode_protocol.wire import (
    ACCEL,
    CLIMATE,
    ERR_BAD_ARGUMENT,
    ERR_BAD_LINE,
    ERR_BAD_REQUEST,
    ERR_BUSY,
    ERR_INTERNAL,
    ERR_NO_SENSOR,
    ERR_NOT_SUPPORTED,
    ERR_REFUSED,
    ERR_STORAGE,
    ERR_UNKNOWN_COMMAND,
    FEATURES,
    FORMATS,
    LOG,
    OK,
    REPLY,
    STATUS,
    TIME,
)

ENCODING_NAMES = {0: "raw-int16", 1: "delta-bitpack8"}

_XYZ_FEATURES = []
for _axis in ("x", "y", "z"):
    _XYZ_FEATURES.append(("rms_%s_g" % _axis, 1e-6, "g"))
    _XYZ_FEATURES.append(("peak_%s_g" % _axis, 1e-6, "g"))
    _XYZ_FEATURES.append(("dominant_freq_%s_hz" % _axis, 0.01, "Hz"))

MESSAGES = (
    (
        CLIMATE,
        "climate",
        FORMATS[CLIMATE],
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
        FORMATS[ACCEL],
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
        FORMATS[FEATURES],
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
        FORMATS[STATUS],
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
    (LOG, "log", FORMATS[LOG], (("level", None, ""),), "text"),
    (TIME, "time", FORMATS[TIME], (("utc_ms", None, "ms"),), None),
    (
        REPLY,
        "reply",
        FORMATS[REPLY],
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
    ERR_REFUSED: "network command refused (not signed, bad signature or replayed)",
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
