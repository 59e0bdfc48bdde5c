"""The fleet health scenario: a day of rows of eight nodes, each with one thing wrong or none,
built directly as the store's Arrow tables (schema.SCHEMAS) and written into any Store:

    1 climate, healthy          5 climate, calibration first seen 400 days ago
    2 bridge, healthy           6 climate, app 1.2.0 while the fleet runs 1.3.0
    3 climate, silent for 2 h   7 climate, 1 reading in 5 fails QC
    4 climate, 10 frames lost   8 climate, no UTC, uplink down, its ring dropped 3 frames

    store = write_fleet(MemoryStore())      # or a ParquetStore, a PgStore
    fleet_health(store, SINCE, NOW)         # gives EXPECTED's warnings
"""

import pyarrow as pa

from citynode.fleet import schema
from citynode.fleet.store import IngestBatch
from citynode_protocol import wire

NOW = 1_796_644_800_000_000  # 2026-12-07T12:00:00Z, µs
S = 1_000_000
MIN = 60 * S
DAY = 86_400 * S
SINCE = NOW - DAY
EXPECTED = {1: [], 2: [], 3: ["silent"], 4: ["losing_data"], 5: ["stale_calibration"], 6: ["old_firmware"],
            7: ["qc_failing"], 8: ["losing_data"]}


class NodeRows:
    """The rows one node's frames leave in a store: a data row and a ledger row per frame."""

    def __init__(self, node_id, boot=3, boot_began=NOW - 30 * DAY, app=(1, 3, 0), calibration_id=17, utc=True,
                 flags=wire.STATUS_TIME_ANCHORED):
        self.node_id, self.boot, self.boot_began = node_id, boot, boot_began
        self.app, self.calibration_id, self.utc, self.flags = app, calibration_id, utc, flags
        self.seq = 0
        self.rows = {}

    def frame(self, kind, received, **fields):
        row = {
            "node_id": self.node_id, "boot": self.boot, "seq": self.seq,
            "time": received - S // 2 if self.utc else None,
            "node_time_s": (received - self.boot_began) / S, "received": received,
            "calibration_id": self.calibration_id, "firmware": "1.24.1/%d.%d.%d" % self.app,
        }
        row.update(fields)
        self.rows.setdefault(kind, []).append(row)
        self.rows.setdefault("frames", []).append({k: row[k] for k in ("node_id", "boot", "seq", "time", "received")})
        self.rows["frames"][-1]["type"] = {"climate": wire.CLIMATE, "features": wire.FEATURES,
                                           "status": wire.STATUS}[kind]
        self.seq += 1

    def climate(self, received, qc_flags=0, temperature_c=8.5):
        self.frame("climate", received, temperature_c=temperature_c, relative_humidity_pct=81.0,
                   status=wire.CLIMATE_CALIBRATED, qc_flags=qc_flags, qc_score=0 if qc_flags == 0 else 3)

    def features(self, received, k):
        axes = {}
        for axis, f in zip("xyz", (2.1, 2.2, 7.5)):
            axes.update({"rms_%s_g" % axis: 0.01 + 0.001 * (k % 7), "peak_%s_g" % axis: 0.05,
                         "dominant_freq_%s_hz" % axis: f})
        self.frame("features", received, window_s=10.0, age_ms=10_000, n_samples=2000,
                   flags=wire.ACCEL_CALIBRATED | wire.FEATURES_TILT_RELATIVE,
                   pitch_deg=0.2 + 0.001 * k, roll_deg=-0.1, **axes)

    def status(self, received, tx_dropped=0, free_heap=81_000, flags=None):
        self.frame("status", received, uptime_s=(received - self.boot_began) // S, free_heap=free_heap,
                   mpy_major=1, mpy_minor=24, mpy_patch=1, app_major=self.app[0], app_minor=self.app[1],
                   app_patch=self.app[2], protocol_minor=2, sensors_fitted=wire.SENSOR_CLIMATE,
                   sensors_ok=wire.SENSOR_CLIMATE, flags=self.flags if flags is None else flags, supply_v=3.31,
                   sensor_errors=0, crc_errors=1, timeouts=0, fifo_overruns=0, tx_dropped=tx_dropped,
                   command_errors=0)

    def day(self, until=NOW, every=5 * MIN, qc_fail_every=0, skip=(), drops=0):
        """A day of climate readings every `every`, a status every 6th frame, up to `until`."""
        t, k = SINCE + every, 0
        while t <= until:
            if k in skip:
                self.seq += 1  # a frame lost on the way
            if k % 6 == 0:
                self.status(t - S, tx_dropped=drops * k // (DAY // every))
            self.climate(t, qc_flags=1 if qc_fail_every and k % qc_fail_every == 0 else 0,
                         temperature_c=8.5 + (k % 48) / 10)
            t, k = t + every, k + 1

    def table(self, name):
        return pa.Table.from_pylist(self.rows.get(name, []), schema=schema.SCHEMAS[name])

    def batch(self):
        return IngestBatch({name: self.table(name) for name in self.rows})


def write_fleet(store):
    """Write the scenario's rows into `store`, one batch a node and boot; return the store."""
    nodes = {}
    for n in (1, 4, 5, 6, 7):
        nodes[n] = NodeRows(n, app=(1, 2, 0) if n == 6 else (1, 3, 0))
    nodes[1].day()
    nodes[4].day(skip=range(100, 110))
    nodes[6].day()
    nodes[7].day(qc_fail_every=5)
    # node 5 has run calibration 5 since 400 days ago (a status of an earlier boot said so)
    old = NodeRows(5, boot=1, boot_began=NOW - 401 * DAY, calibration_id=5)
    old.status(NOW - 400 * DAY)
    nodes[5].calibration_id = 5
    nodes[5].day()
    nodes[3] = NodeRows(3)
    nodes[3].day(until=NOW - 2 * 3600 * S)
    nodes[8] = NodeRows(8, utc=False, flags=wire.STATUS_UPLINK_DOWN)
    nodes[8].day(drops=4)
    bridge = nodes[2] = NodeRows(2)
    for k, t in enumerate(range(SINCE + 10 * S, NOW, 5 * MIN)):
        if k % 6 == 0:
            bridge.status(t - S, flags=wire.STATUS_TIME_ANCHORED | wire.STATUS_STREAMING)
        bridge.features(t, k)
    # the healthy nodes' calibration 17 was first seen 30 days ago
    first = [NodeRows(n, boot=2, boot_began=NOW - 31 * DAY) for n in (1, 2, 3, 4, 6, 7, 8)]
    for rows in first:
        rows.status(NOW - 30 * DAY)
    for rows in list(nodes.values()) + [old] + first:
        store.write(rows.batch())
    return store
