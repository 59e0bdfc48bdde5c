"""Store rows for tests: the IngestBatch a collector makes of a node's frames, one kind per frame.

Frame `seq` of a batch carries the kind DATA_TABLES[seq % 7]; an accel frame
carries ACCEL_SAMPLES samples (and one accel_blocks row). Values are what a
node sends: 21-23 °C, ~1 g on z, a status every few frames, plausible TIMEs (implausible ones where not `anchored`).
"""

import pyarrow as pa

from citynode.fleet import schema
from citynode.fleet.store import IngestBatch

ACCEL_SAMPLES = 4
T0_US = 1_796_000_000_000_000  # 2026-11-30T...Z
FIRMWARE = "1.24.1/0.9.0"
_TYPES = {"climate": 1, "accel": 2, "features": 3, "status": 4, "log": 5, "time": 6}


def kind_of(seq):
    return ("climate", "accel", "features", "status", "log", "time", "climate")[seq % 7]


def _front(node, boot, seq, t_us, node_s, received_us):
    return {"node_id": node, "boot": boot, "seq": seq, "time": t_us, "node_time_s": node_s,
            "received": received_us, "calibration_id": 7 if t_us is not None else None,
            "firmware": FIRMWARE if t_us is not None else None}


def batch(node, boot, seqs, t0_us=T0_US, step_us=1_000_000, anchored=True, received_us=None, rejects=0):
    """An IngestBatch of frames `seqs` of (node, boot), one per `step_us` from t0 (null time unless anchored)."""
    rows = {name: [] for name in schema.SCHEMAS}
    for seq in seqs:
        t = t0_us + seq * step_us
        time = t if anchored else None
        node_s = 100.0 + seq * step_us / 1e6
        received = (received_us if received_us is not None else t) + 500_000
        kind = kind_of(seq)
        front = _front(node, boot, seq, time, node_s, received)
        if kind == "climate":
            rows["climate"].append(dict(front, temperature_c=21.0 + (seq % 20) / 10, relative_humidity_pct=48.5,
                                        status=0, qc_flags=0, qc_score=100))
        elif kind == "accel":
            for i in range(ACCEL_SAMPLES):
                rows["accel"].append(dict(front, time=None if time is None else time + i * 10_000,
                                          node_time_s=node_s + i / 100, sample_index=seq * ACCEL_SAMPLES + i,
                                          ax_g=0.001 * i, ay_g=-0.002, az_g=1.0 - 0.0005 * i, segment=0))
            rows["accel_blocks"].append(dict(front, encoding=0, flags=0, range_g=2, odr_hz=100.0,
                                             first_index=seq * ACCEL_SAMPLES, n_samples=ACCEL_SAMPLES, age_ms=40,
                                             gap_before=0, segment=0))
        elif kind == "features":
            values = {c: 0.01 * seq for c in schema.SCHEMAS["features"].names[12:]}
            rows["features"].append(dict(front, **values, window_s=10.0, age_ms=5000, n_samples=1000, flags=0))
        elif kind == "status":
            ints = {c: seq for c in schema.SCHEMAS["status"].names[8:] if c != "supply_v"}
            ints.update(supply_v=3.31, mpy_major=1, mpy_minor=24, mpy_patch=1, calibration_id=7, firmware=FIRMWARE)
            rows["status"].append(dict(front, **ints))
        elif kind == "log":
            rows["log"].append(dict(front, level=2, level_name="warning", text="sht4x: retry, 'crc' \"bad\", ok"))
        elif kind == "time":
            if anchored:
                utc_ms = t // 1000
                rows["time"].append(dict(front, utc_ms=utc_ms, utc=utc_ms * 1000, plausible=True))
            else:  # a node that has no UTC yet: its TIME anchors nothing
                rows["time"].append(dict(front, utc_ms=1000, utc=None, plausible=False))
        rows["frames"].append({"node_id": node, "boot": boot, "seq": seq, "type": _TYPES[kind], "time": time,
                               "received": received})
    for k in range(rejects):
        rows["rejects"].append({"received": t0_us + k, "topic": "city/n%d/frames" % node, "node_id": node,
                                "reason": "bad_mac", "boot": boot, "seq": 10_000 + k, "frame": b"\x01\x02\x03"})
    tables = {name: pa.Table.from_pylist(r, schema=schema.SCHEMAS[name]) for name, r in rows.items()
              if name != "rejects" and (r or name == "frames")}
    return IngestBatch(tables, pa.Table.from_pylist(rows["rejects"], schema=schema.SCHEMAS["rejects"]))


def rows_of(b, table):
    t = b.tables.get(table)
    return 0 if t is None else t.num_rows
