"""The store's tables: names, columns and Arrow types, the one definition both engines follow.

Every data table starts with the same columns:

    node_id         the node
    boot            the node's boot counter from the signature trailer (SPEC §9.1)
    seq             the frame's 32-bit sequence within that boot: seq_hi × 65536 + seq
    time            UTC of the row (µs), from the node's latest TIME anchor of that
                    boot (SPEC §6); null where no anchor of that boot is known yet
    node_time_s     seconds on the node's clock within that boot
    received        UTC when the collector took the message off the broker
    calibration_id  the calibration in force (the latest status of that boot), null if unknown
    firmware        "<mpy major>.<minor>.<patch>/<app major>.<minor>.<patch>" from
                    the latest status of that boot, null if unknown

then the columns `citynode decode` writes for that kind (citynode.tables.SCHEMAS),
except `epoch`, which a store replaces by `boot`. A frame is identified by
(node_id, boot, seq); an accel sample by (node_id, boot, seq, sample_index).
The `frames` ledger has one row per stored frame: a frame is stored once, and
a store drops the rows of a frame already in its ledger (re-delivery, a node's
DUP resend, two collectors). `rejects` keeps what failed verification, with
its reason (citynode.verifier.REASONS, or `duplicate`), never among the data.
"""

import pyarrow as pa

from citynode.tables import SCHEMAS as DECODE_SCHEMAS

TIME = pa.timestamp("us", tz="UTC")
_ARROW = {"int": pa.int64(), "u64": pa.int64(), "float": pa.float64(), "bool": pa.bool_(), "str": pa.string(), "time": TIME}

FRONT = [
    ("node_id", pa.int64()),
    ("boot", pa.int64()),
    ("seq", pa.int64()),
    ("time", TIME),
    ("node_time_s", pa.float64()),
    ("received", TIME),
    ("calibration_id", pa.int64()),
    ("firmware", pa.string()),
]
QC = [("qc_flags", pa.int32()), ("qc_score", pa.int32())]

DATA_TABLES = ("climate", "accel", "accel_blocks", "features", "status", "log", "time")


def _decode_columns(kind):
    front = {name for name, _type in FRONT}  # status's own calibration_id is the front one
    return [(name, _ARROW[kind_]) for name, kind_ in DECODE_SCHEMAS[kind] if name not in front]


SCHEMAS = {kind: pa.schema(FRONT + _decode_columns(kind) + (QC if kind == "climate" else [])) for kind in DATA_TABLES}
SCHEMAS["frames"] = pa.schema([
    ("node_id", pa.int64()), ("boot", pa.int64()), ("seq", pa.int64()), ("type", pa.int32()),
    ("time", TIME), ("received", TIME),
])
SCHEMAS["rejects"] = pa.schema([
    ("received", TIME), ("topic", pa.string()), ("node_id", pa.int64()), ("reason", pa.string()),
    ("boot", pa.int64()), ("seq", pa.int64()), ("frame", pa.binary()),
])
TABLES = tuple(SCHEMAS)

# A row's identity in each table (the ledger's key for frames; samples add their index).
KEYS = {kind: ("node_id", "boot", "seq") for kind in DATA_TABLES}
KEYS["accel"] = ("node_id", "boot", "seq", "sample_index")
KEYS["frames"] = ("node_id", "boot", "seq")


def empty(table):
    return SCHEMAS[table].empty_table()
