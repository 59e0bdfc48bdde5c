"""One row per node for `citynode fleet`: what the store says of each node's health.

    rows = fleet_health(store, since_us, now_us)            # [NodeHealth], by node id
    rows = fleet_health(store, since_us, now_us, Thresholds(min_app=(1, 4, 0)))

Every figure comes from the store's tables (citynode.fleet.schema), windowed on
`received` (a node that does not know UTC is still seen):

    last seen        the latest `received` in the frames ledger, over all time
    uplink           the latest status's flags: `down` (wire.STATUS_UPLINK_DOWN:
                     configured but not connected, frames wait in the node's ring)
                     or `up`; `utc_known` from wire.STATUS_TIME_ANCHORED
    frames lost      gaps in `seq` of the frames ledger per (node, boot) in the window
    drops            how much `tx_dropped` (frames the node's ring had to drop) rose
                     in the window; the ring's fill is not on the wire (SPEC §4
                     status), so `uplink down` is the sign that it is filling
    free heap, supply, error counters, firmware, app
                     the latest status (counters since the node's boot, saturating
                     at 65535)
    calibration      the latest status's id; its age from the first status row
                     that carried it (so at least that old; id 0: not calibrated)
    QC pass rate     the share of the window's climate rows with qc_flags == 0
                     (rows not yet checked, qc_flags null, are not counted)

The warnings and their thresholds are `Thresholds`, the one place they live.
"""

import dataclasses

import numpy as np
import pyarrow.compute as pc

from citynode.fleet.when import US, iso, span_words
from citynode_protocol import wire

ERROR_COUNTERS = ("sensor_errors", "crc_errors", "timeouts", "fifo_overruns", "command_errors")
# The columns fleet_health reads of each table it reads (frames, status, climate; never
# the per-sample accel table): a store reads no more of its files or partitions.
FRAMES_COLUMNS = ("node_id", "boot", "seq", "received")
STATUS_COLUMNS = ("node_id", "boot", "seq", "received", "uptime_s", "flags", "tx_dropped", "free_heap", "supply_v",
                  "calibration_id", "mpy_major", "mpy_minor", "mpy_patch", "app_major", "app_minor", "app_patch"
                  ) + ERROR_COUNTERS
QC_COLUMNS = ("node_id", "qc_flags")


@dataclasses.dataclass(frozen=True)
class Thresholds:
    """When a node gets a warning; `citynode fleet` has an option for each."""

    silent_min_s: float = 300.0  # silent: no frame for longer than this ...
    silent_periods: float = 5.0  # ... and than this many of the node's usual gaps between frames
    lost_share: float = 0.005  # losing data: more than this share of frames lost, or any dropped
    stale_calibration_days: float = 365.0  # stale calibration: in force for longer than this
    qc_pass_min: float = 0.90  # QC failing: a smaller share of climate rows passes every check
    min_app: tuple = None  # old firmware: app below this; None: below the newest in the fleet

    def as_json(self):
        out = dataclasses.asdict(self)
        out["min_app"] = version_text(self.min_app)
        return out


WARNINGS = {
    "silent": "no frame for longer than max(silent_min_s, silent_periods × the node's usual gap)",
    "losing_data": "frames lost (seq gaps) above lost_share, or frames dropped by the node",
    "not_calibrated": "the node runs without a calibration (calibration id 0)",
    "stale_calibration": "the calibration in force is older than stale_calibration_days",
    "old_firmware": "the app version is below min_app, or below the newest in the fleet",
    "qc_failing": "fewer than qc_pass_min of the climate rows pass QC",
}


@dataclasses.dataclass
class NodeHealth:
    node_id: int
    last_seen_us: int = None
    silent_s: float = None  # how long ago it was last seen
    usual_gap_s: float = None  # median gap between its frames in the window
    frames: int = 0  # frames stored in the window
    frames_lost: int = 0
    lost_share: float = 0.0
    uplink: str = "unknown"  # up, down, unknown (no status)
    utc_known: bool = None
    drops: int = 0  # rise of tx_dropped in the window
    tx_dropped: int = None  # since boot
    free_heap: int = None
    supply_v: float = None
    errors: dict = None  # ERROR_COUNTERS since boot
    boot: int = None
    uptime_s: int = None
    firmware: str = None  # MicroPython
    app: str = None
    calibration_id: int = None
    calibration_since_us: int = None
    calibration_age_days: float = None
    climate_rows: int = 0
    qc_pass_rate: float = None
    warnings: list = dataclasses.field(default_factory=list)  # [(kind, words)]

    def as_json(self):
        out = dataclasses.asdict(self)
        out["last_seen"] = iso(self.last_seen_us)
        out["calibration_since"] = iso(self.calibration_since_us)
        out["warnings"] = [{"kind": k, "text": t} for k, t in self.warnings]
        return out

    def warning_kinds(self):
        return [k for k, _ in self.warnings]


def version_text(version):
    return None if version is None else "%d.%d.%d" % tuple(version)


def parse_version(text):
    """(1, 4, 0) of "1.4.0" or "1.4"; ValueError otherwise."""
    parts = [int(p) for p in text.split(".")]
    if not 1 <= len(parts) <= 3 or any(p < 0 for p in parts):
        raise ValueError(text)
    return tuple(parts + [0] * (3 - len(parts)))


def fleet_health(store, since_us, now_us, thresholds=Thresholds()):
    """[NodeHealth] of every node in the store's frames ledger, by node id."""
    last_seen = store.last_received()
    nodes = {n: NodeHealth(n, last_seen_us=us) for n, us in sorted(last_seen.items())}
    _frames(nodes, store.query_received("frames", start=since_us, columns=FRAMES_COLUMNS))
    status = store.query_received("status", start=since_us, columns=STATUS_COLUMNS)
    unseen = sorted(set(nodes) - set(status["node_id"].to_pylist()))
    _status(nodes, status, since_us)
    if unseen:  # silent for the whole window: what they said last
        _status(nodes, store.query_received("status", nodes=unseen, columns=STATUS_COLUMNS), since_us, window=False)
    _calibration(nodes, store.calibrations_first_seen(nodes=sorted(nodes)), now_us)
    _qc(nodes, store.query_received("climate", start=since_us, columns=QC_COLUMNS))
    newest_app = max((parse_version(h.app) for h in nodes.values() if h.app), default=None)
    for h in nodes.values():
        h.silent_s = (now_us - h.last_seen_us) / US["s"] if h.last_seen_us is not None else None
        h.warnings = _warnings(h, thresholds, newest_app)
    return list(nodes.values())


def _by_node(node):
    """(node ids, start of each one's run) of a sorted node id array."""
    ids, starts = np.unique(node, return_index=True)
    return ids, np.append(starts, len(node))


def _frames(nodes, frames):
    """Frames, lost frames and the usual gap per node, from the ledger's window."""
    node = frames["node_id"].to_numpy(zero_copy_only=False)
    boot = frames["boot"].to_numpy(zero_copy_only=False)
    seq = frames["seq"].to_numpy(zero_copy_only=False)
    received = frames["received"].cast("int64").to_numpy(zero_copy_only=False)
    if not len(node):
        return
    order = np.lexsort((seq, boot, node))
    node, boot, seq = node[order], boot[order], seq[order]
    new_boot = np.r_[True, (node[1:] != node[:-1]) | (boot[1:] != boot[:-1])]
    # per (node, boot): the seq span minus the frames in it
    first = np.flatnonzero(new_boot)
    last = np.append(first[1:], len(seq)) - 1
    lost = np.maximum(seq[last] - seq[first] - (last - first), 0)
    lost_by_node = {}
    for n, gone in zip(node[first].tolist(), lost.tolist()):
        lost_by_node[n] = lost_by_node.get(n, 0) + gone
    by_time = np.lexsort((received, frames["node_id"].to_numpy(zero_copy_only=False)))
    times = received[by_time]
    ids, starts = _by_node(frames["node_id"].to_numpy(zero_copy_only=False)[by_time])
    for i, n in enumerate(ids.tolist()):
        h = nodes.get(n)
        if h is None:
            continue
        mine = times[starts[i]:starts[i + 1]]
        h.frames = len(mine)
        h.frames_lost = lost_by_node[n]
        h.lost_share = h.frames_lost / (h.frames_lost + h.frames)
        if len(mine) > 1:
            h.usual_gap_s = float(np.median(np.diff(mine))) / US["s"]


def _status(nodes, status, since_us, window=True):
    """The latest status of each node, and how far tx_dropped rose in the window."""
    status = status.sort_by([("node_id", "ascending"), ("received", "ascending"), ("boot", "ascending"),
                             ("seq", "ascending")])
    rows = status.to_pylist()
    by_node = {}
    for row in rows:
        by_node.setdefault(row["node_id"], []).append(row)
    for n, mine in by_node.items():
        if n not in nodes:
            continue
        h, last = nodes[n], mine[-1]
        h.uplink = "down" if last["flags"] & wire.STATUS_UPLINK_DOWN else "up"
        h.utc_known = bool(last["flags"] & wire.STATUS_TIME_ANCHORED)
        h.tx_dropped, h.free_heap, h.supply_v = last["tx_dropped"], last["free_heap"], last["supply_v"]
        h.errors = {c: last[c] for c in ERROR_COUNTERS}
        h.boot, h.uptime_s, h.calibration_id = last["boot"], last["uptime_s"], last["calibration_id"]
        h.firmware = "%d.%d.%d" % (last["mpy_major"], last["mpy_minor"], last["mpy_patch"])
        h.app = "%d.%d.%d" % (last["app_major"], last["app_minor"], last["app_patch"])
        if window:
            h.drops = _rise(mine, "tx_dropped", since_us)


def _rise(rows, counter, since_us):
    """How much a since-boot counter rose over these status rows (of one node, in
    order): per boot, from its first row in the window, or from 0 when the boot
    itself began in the window (its uptime says so)."""
    first, last = {}, {}
    for row in rows:
        boot = row["boot"]
        if boot not in first:
            began_us = round(row["received"].timestamp() * US["s"]) - row["uptime_s"] * US["s"]
            first[boot] = 0 if began_us >= since_us else row[counter]
        last[boot] = row[counter]
    return sum(max(0, last[b] - first[b]) for b in first)


def _calibration(nodes, first_seen, now_us):
    for h in nodes.values():
        if h.calibration_id:
            h.calibration_since_us = first_seen.get((h.node_id, h.calibration_id))
        if h.calibration_since_us is not None:
            h.calibration_age_days = (now_us - h.calibration_since_us) / US["d"]


def _qc(nodes, climate):
    checked = climate.filter(climate["qc_flags"].is_valid())
    node = checked["node_id"].to_numpy(zero_copy_only=False)
    passed = pc.equal(checked["qc_flags"], 0).to_numpy(zero_copy_only=False)
    ids, index = np.unique(node, return_inverse=True)
    rows = np.bincount(index, minlength=len(ids))
    passes = np.bincount(index, weights=passed, minlength=len(ids))
    for n, count, good in zip(ids.tolist(), rows.tolist(), passes.tolist()):
        if n in nodes:
            nodes[n].climate_rows = count
            nodes[n].qc_pass_rate = good / count


def _warnings(h, t, newest_app):
    """[(kind, words)] for one node; kinds are WARNINGS's keys."""
    out = []
    limit_s = max(t.silent_min_s, t.silent_periods * (h.usual_gap_s or 0.0))
    if h.silent_s is not None and h.silent_s > limit_s:
        usual = " (it sends every %s)" % span_words(h.usual_gap_s) if h.usual_gap_s else ""
        out.append(("silent", "silent for %s%s" % (span_words(h.silent_s), usual)))
    losses = []
    if h.frames_lost and h.lost_share > t.lost_share:
        losses.append("%d frames lost (%.1f %%)" % (h.frames_lost, 100 * h.lost_share))
    if h.drops > 0:
        losses.append("%d frames dropped by the node" % h.drops)
    if losses:
        out.append(("losing_data", "losing data: " + ", ".join(losses)))
    if h.calibration_id == 0:
        out.append(("not_calibrated", "not calibrated"))
    elif h.calibration_age_days is not None and h.calibration_age_days > t.stale_calibration_days:
        out.append(("stale_calibration", "stale calibration: id %d in force for %d days"
                    % (h.calibration_id, h.calibration_age_days)))
    if h.app:
        app = parse_version(h.app)
        if t.min_app is not None and app < tuple(t.min_app):
            out.append(("old_firmware", "old firmware: app %s, below %s" % (h.app, version_text(t.min_app))))
        elif t.min_app is None and newest_app is not None and app < newest_app:
            out.append(("old_firmware", "old firmware: app %s, the fleet's newest is %s"
                        % (h.app, version_text(newest_app))))
    if h.qc_pass_rate is not None and h.qc_pass_rate < t.qc_pass_min:
        out.append(("qc_failing", "QC failing: %.1f %% of %d climate readings pass"
                    % (100 * h.qc_pass_rate, h.climate_rows)))
    return out
