"""Store rows from MQTT messages: verified frames of one or more messages into one IngestBatch.

    taken = take(verifier, "citynode", topic, payload, received_us)   # per message, in arrival order
    batch = RowBuilder(store, qc).build([taken, ...])                 # store.write(batch)

`take` verifies a message's frames (citynode.verifier) and keeps what it
refused; a payload on a topic that is not `<prefix>/<node>/frames` is refused
as `wrong_topic`, an empty one as `malformed`. A message the broker delivers
again (MQTT DUP, after a reconnect) holds frames this process may have
verified already: their `replay` is a redelivery, so they go on to the store,
whose frames ledger drops them.

`build` groups the frames by (node, boot) in (boot, seq) order, decodes them
all with one BulkDecoder and makes decode's columns (citynode.tables), then
the store's front columns (citynode.fleet.schema):

- seq: the frame's 32-bit sequence of that boot, from the signature trailer;
- node_time_s: the node's u32 millisecond clock as the frame carries it (so it
  wraps after 49.7 days of a boot), minus the row's age, plus a sample's offset;
- time: from the latest plausible TIME anchor of that (node, boot) at or
  before the row's frame in this batch, else the latest one known (this
  builder's cache, else `store.anchor`): `utc = anchor_utc + (node_ms -
  anchor_node_ms)`, the difference taken modulo 2^32 ms; null with no anchor;
- calibration_id, firmware: from the latest status of that boot, found the same way;
- received: when the collector took the message off the broker;
- a climate reading whose status says it failed (CLIMATE_SENSOR_ERROR) has null
  temperature and humidity: the zeros on the wire are no values.

A frame that appears twice in one batch is kept once (`duplicates` counts the
rest). One `frames` ledger row per frame; the rows of the `rejects` table for
everything refused. With a `qc` object, climate rows get their flags from
`qc.apply(climate, store.climate_history(nodes, since))`, since being the
batch's earliest row less `qc.history_window_us()`, nodes the batch's and, if
the object has `history_nodes(nodes)`, what it adds (buddies); without, 0.
"""

import collections
import dataclasses
import struct
import time

import numpy as np
import pyarrow as pa

from citynode.decode import BulkDecoder
from citynode.fleet import schema
from citynode.fleet.store import IngestBatch
from citynode.tables import NO_UTC, batch_tables
from citynode.timebase import Timebase, plausible_utc
from citynode.verifier import expand
from citynode_protocol import frame, topics, wire

WRAP_US = (1 << 32) * 1000  # the node's u32 ms clock, in µs
_HEADER = struct.Struct(frame.HEADER_FORMAT)
MISS_RECHECK_S = 2.0  # ask the store again for an anchor or status it did not have after this
REFRESH_S = 60.0  # and for one it had (another collector may have stored a newer one)
CACHE_MAX = 50_000  # (node, boot) entries kept


@dataclasses.dataclass
class Taken:
    """One MQTT message after verification."""

    topic: str
    received_us: int
    verified: list
    rejected: list


def take(verifier, prefix, topic, payload, received_us, redelivered=False):
    """Verify one message of a frames topic; a Taken."""
    from citynode.verifier import Rejected

    payload = bytes(payload)
    where = topics.parse(topic, prefix)
    if where is None or where[1] != "frames":
        return Taken(topic, received_us, [], [Rejected(None, "wrong_topic", None, None, payload)])
    node_id = where[0]
    if not payload.strip(b"\x00"):
        return Taken(topic, received_us, [], [Rejected(node_id, "malformed", None, None, payload)])
    verified, rejected = verifier.check(node_id, payload)
    if redelivered:
        again = [r for r in rejected if r.reason == "replay" and r.boot is not None]
        for r in again:  # a bundle that passed before expands as it did
            verified += expand(r.raw, r.node_id, r.boot, r.seq)
        rejected = [r for r in rejected if not (r.reason == "replay" and r.boot is not None)]
    return Taken(topic, received_us, verified, rejected)


def firmware_of(status):
    """ "M.m.p/A.a.p" (MicroPython / app version) of a decoded status row."""
    return "%d.%d.%d/%d.%d.%d" % tuple(status[k] for k in (
        "mpy_major", "mpy_minor", "mpy_patch", "app_major", "app_minor", "app_patch"))


class _Known:
    """Per (node, boot): the latest anchor or status known, from our batches or the store.

    The store is asked when a batch has none before a frame; again after
    MISS_RECHECK_S if it had none, and after REFRESH_S anyway: another
    collector of the group may have stored a newer one. All the keys of a
    batch are asked in one call."""

    def __init__(self, lookup):
        self.lookup = lookup  # [(node, boot)] -> {(node, boot): value}, those found; may raise StoreError
        self.entries = collections.OrderedDict()  # key -> [seq (-1: from the store), value, when (monotonic)]

    def get_many(self, keys):
        """{key: the value known, or None} for each of keys; the store asked once for the stale ones."""
        now = time.monotonic()
        out = {}
        stale = []
        for key in keys:
            entry = self.entries.get(key)
            if entry is not None and now - entry[2] < (REFRESH_S if entry[1] is not None else MISS_RECHECK_S):
                out[key] = entry[1]
            else:
                stale.append(key)
        found = self.lookup(stale) if stale else {}
        for key in stale:
            value = found.get(key)
            entry = self.entries.get(key)
            if value is None and entry is not None and entry[1] is not None:
                entry[2] = now  # ours, not stored yet (a write being retried)
            else:
                self.entries[key] = entry = [-1, value, now]
            out[key] = entry[1]
        self._trim()
        return out

    def saw(self, key, seq, value):
        """A batch held `value` at 32-bit sequence `seq`."""
        entry = self.entries.get(key)
        if entry is None or entry[1] is None or seq >= entry[0]:
            self.entries[key] = [seq, value, time.monotonic()]
            self.entries.move_to_end(key)
            self._trim()

    def _trim(self):
        while len(self.entries) > CACHE_MAX:
            self.entries.popitem(last=False)


class RowBuilder:
    """Builds IngestBatches; keeps node clocks, anchors and status across batches."""

    def __init__(self, store, qc=None, now_us=None):
        self.store = store
        self.qc = qc
        self.now_us = now_us or (lambda: time.time_ns() // 1000)
        self.timebase = Timebase()  # accel runs (segment, gap_before) from batch to batch
        self.anchors = _Known(lambda keys: {k: _tuple(a) for k, a in self.store.anchors(keys).items()})
        self.status = _Known(lambda keys: {k: _status_tuple(v) for k, v in self.store.latest_statuses(keys).items()})
        self.duplicates = 0  # frames met twice within the last batch prepared

    def build(self, taken):
        """One IngestBatch from a list of Taken, QC flags included (`flag`).

        May raise StoreError (lookups in the store); `prepare` and `flag` are
        its two steps, for a caller that retries each on its own."""
        return self.flag(self.prepare(taken))

    def prepare(self, taken):
        """The batch without QC flags. The store is asked before any clock moves: after a
        StoreError the same messages can be given again; `duplicates` is this batch's count."""
        frames, received, self.duplicates = _frames(taken)
        f = _FrameColumns(frames, received)
        decoded = BulkDecoder().feed_frames([v.raw for v in frames]) if frames else None
        anchors = self._anchor_per_frame(f, decoded)
        status = self._status_per_frame(f, decoded)
        cols = batch_tables(decoded, self.timebase) if frames else {}
        tables = {"frames": _ledger(f, anchors)}
        for kind, table in cols.items():
            if kind not in schema.DATA_TABLES:
                continue  # replies are not stored (only their ledger rows)
            order = decoded.kinds["accel" if kind.startswith("accel") else kind]["order"]
            if kind == "accel":
                order = np.repeat(order, decoded.kinds["accel"]["n_samples"])
            tables[kind] = _data_table(kind, table, order, f, anchors, status)
        return IngestBatch(tables, _rejects(taken))

    def flag(self, batch):
        """The batch with its climate rows' QC flags (none without a qc step); asks the store for history."""
        climate = batch.tables.get("climate")
        if self.qc is None or climate is None or not climate.num_rows:
            return batch
        times = climate["time"].cast(pa.int64()).drop_null().to_numpy()
        first = int(times.min()) if len(times) else self.now_us()
        since = min(first, self.now_us()) - self.qc.history_window_us()
        nodes = sorted(set(climate["node_id"].to_pylist()))
        if hasattr(self.qc, "history_nodes"):  # the buddy check also needs the neighbours' history
            nodes = self.qc.history_nodes(nodes)
        flagged = self.qc.apply(climate, self.store.climate_history(nodes, since))
        return IngestBatch(dict(batch.tables, climate=flagged), batch.rejects)

    def _anchor_per_frame(self, f, decoded):
        """(values, has) per frame: the (node_ms, utc_ms) anchor in force at that frame."""
        found = collections.defaultdict(list)  # (node, boot) -> [(seq, (node_ms, utc_ms))] in seq order
        if decoded is not None and "time" in decoded.kinds:
            t = decoded.kinds["time"]
            for i, utc in zip(t["order"].tolist(), t["utc_ms"].tolist()):
                if plausible_utc(utc):
                    found[(f.node[i], f.boot[i])].append((f.seq[i], (f.time_ms[i], utc)))
        return _per_frame(f, found, self.anchors, (0, 0))

    def _status_per_frame(self, f, decoded):
        """(values, has) per frame: (calibration_id, firmware) of the latest status at that frame."""
        found = collections.defaultdict(list)
        if decoded is not None and "status" in decoded.kinds:
            s = decoded.kinds["status"]
            names = ("calibration_id", "mpy_major", "mpy_minor", "mpy_patch", "app_major", "app_minor", "app_patch")
            lists = {k: s[k].tolist() for k in names}
            for row, i in enumerate(s["order"].tolist()):
                status = {k: lists[k][row] for k in names}
                found[(f.node[i], f.boot[i])].append((f.seq[i], (status["calibration_id"], firmware_of(status))))
        return _per_frame(f, found, self.status, (0, None))


def _frames(taken):
    """Verified frames in (node, boot, seq) order, each once, with when their message came,
    and how many were there twice."""
    seen = {}
    twice = 0
    for t in taken:
        for v in t.verified:
            key = (v.node_id, v.boot, v.seq)
            if key in seen:
                twice += 1
            else:
                seen[key] = (v, t.received_us)
    keys = sorted(seen)
    return [seen[k][0] for k in keys], [seen[k][1] for k in keys], twice


def _tuple(anchor):
    return None if anchor is None else (int(anchor[0]), int(anchor[1]))


def _status_tuple(status):
    return None if status is None else (status["calibration_id"], status["firmware"])


def _per_frame(f, found, known, empty):
    """For every frame, the latest value found in this batch at or before it, else the one
    `known`; (values, has). Tells `known` the newest value found of each (node, boot)."""
    values = [empty] * len(f)
    has = np.zeros(len(f), bool)
    places = {}
    for key, (start, end) in f.groups.items():
        mine = found.get(key)
        if mine is None:
            places[key] = None  # none in this batch: every frame takes the one known
        else:
            places[key] = np.searchsorted(np.array([m[0] for m in mine], np.int64), f.seq_array[start:end],
                                          side="right") - 1
    fallbacks = known.get_many([k for k, p in places.items() if p is None or p[0] < 0])
    for key, (start, end) in f.groups.items():
        place = places[key]
        fallback = fallbacks.get(key)
        if place is None:
            if fallback is not None:
                values[start:end] = [fallback] * (end - start)
                has[start:end] = True
            continue
        mine = found[key]
        for j, p in enumerate(place.tolist()):
            value = mine[p][1] if p >= 0 else fallback
            if value is not None:
                values[start + j], has[start + j] = value, True
        if mine:
            known.saw(key, *mine[-1])
    return values, has


class _FrameColumns:
    """Per-frame arrays (all frames of the batch, grouped by (node, boot), seq ascending)."""

    def __init__(self, frames, received):
        self.node = [v.node_id for v in frames]
        self.boot = [v.boot for v in frames]
        self.seq = [v.seq for v in frames]
        headers = [_HEADER.unpack_from(v.raw, 0) for v in frames]
        self.type = [h[0] & 0x1F for h in headers]
        self.time_ms = [h[3] for h in headers]
        self.seq_array = np.array(self.seq, np.int64)
        self.received = np.array(received, np.int64)
        self.groups = {}
        for i, key in enumerate(zip(self.node, self.boot)):
            start, _end = self.groups.get(key, (i, i))
            self.groups[key] = (start, i + 1)

    def __len__(self):
        return len(self.node)


def _utc_array(node_us, idx, anchors):
    """UTC (timestamp µs, null where no anchor) of rows at node time node_us (µs, u32 ms clock)."""
    values, has = anchors
    a_node = np.array([v[0] for v in values], np.int64)[idx] * 1000
    a_utc = np.array([v[1] for v in values], np.int64)[idx] * 1000
    delta = (node_us - a_node + WRAP_US // 2) % WRAP_US - WRAP_US // 2
    utc = a_utc + delta
    valid = has[idx] & plausible_utc(utc // 1000)
    return pa.array(np.where(valid, utc, 0), schema.TIME, mask=~valid)


def _ledger(f, anchors):
    n = len(f)
    idx = np.arange(n)
    node_us = np.array(f.time_ms, np.int64) * 1000
    return pa.Table.from_arrays([
        pa.array(f.node, pa.int64()), pa.array(f.boot, pa.int64()), pa.array(f.seq, pa.int64()),
        pa.array(f.type, pa.int32()), _utc_array(node_us, idx, anchors) if n else pa.array([], schema.TIME),
        pa.array(f.received, schema.TIME),
    ], schema=schema.SCHEMAS["frames"])


def _data_table(kind, table, idx, f, anchors, status):
    node_s = np.asarray(table["node_time_s"], np.float64)
    node_us = np.rint(node_s * 1e6).astype(np.int64) % WRAP_US
    cal_values, cal_has = status
    front = {
        "node_id": pa.array(np.asarray(f.node, np.int64)[idx]),
        "boot": pa.array(np.asarray(f.boot, np.int64)[idx]),
        "seq": pa.array(f.seq_array[idx]),
        "time": _utc_array(node_us, idx, anchors),
        "node_time_s": pa.array(node_us / 1e6),
        "received": pa.array(f.received[idx], schema.TIME),
        "calibration_id": pa.array(np.array([v[0] for v in cal_values], np.int64)[idx], mask=~cal_has[idx]),
        "firmware": pa.array([v[1] for v in cal_values], pa.string()).take(pa.array(idx)),
    }
    # a reading the node says failed has no values (they are zeros on the wire): null, so that no
    # check, average or QC history takes them for a temperature
    failed = (np.asarray(table["status"]) & wire.CLIMATE_SENSOR_ERROR) != 0 if kind == "climate" else None
    arrays = []
    for field in schema.SCHEMAS[kind]:
        if field.name in front:
            arrays.append(front[field.name])
        elif field.name in ("qc_flags", "qc_score"):
            arrays.append(pa.array(np.zeros(len(idx), np.int32)))
        elif failed is not None and failed.any() and field.name in ("temperature_c", "relative_humidity_pct"):
            arrays.append(pa.array(np.asarray(table[field.name], np.float64), field.type, mask=failed))
        else:
            arrays.append(_column(table[field.name], field.type))
    return pa.Table.from_arrays(arrays, schema=schema.SCHEMAS[kind])


def _column(values, arrow_type):
    if arrow_type == schema.TIME:
        us = np.asarray(values, np.int64)
        missing = us == NO_UTC
        return pa.array(np.where(missing, 0, us), arrow_type, mask=missing if missing.any() else None)
    if arrow_type == pa.string():
        return pa.array(list(values), arrow_type)
    array = np.asarray(values)
    if array.dtype == np.uint64:  # a u64 from the wire (utc_ms): kept where it fits int64
        array = np.minimum(array, np.iinfo(np.int64).max).astype(np.int64)
    return pa.array(array, arrow_type)


def replays(taken, stored_before):
    """`rejects` rows (reason replay, the frame unsigned; a bundle one row, as received) of the
    verified frames of `taken` whose (node, boot, seq) is in stored_before: frames another
    collector of the group had stored, so this one's verifier took them for new. Give only
    messages sent once (not DUP redeliveries)."""
    stored_before = set(stored_before)
    found = []
    carriers = set()  # a bundle replayed is one piece of traffic: one row, as the verifier gives it
    for t in taken:
        for v in t.verified:
            if (v.node_id, v.boot, v.seq) not in stored_before:
                continue
            if v.carrier is None:
                found.append((t.received_us, t.topic, v.node_id, "replay", v.boot, v.seq, bytes(v.raw)))
            elif (t.received_us, v.carrier) not in carriers:
                carriers.add((t.received_us, v.carrier))
                found.append((t.received_us, t.topic, v.node_id, "replay", v.boot, v.carrier[1], v.carrier[0]))
    return _rejects_table(found)


def _rejects(taken):
    return _rejects_table([(t.received_us, t.topic, r.node_id, r.reason, r.boot, r.seq, bytes(r.raw))
                           for t in taken for r in t.rejected])


def _rejects_table(rows):
    if not rows:
        return schema.empty("rejects")
    columns = list(zip(*rows))
    return pa.Table.from_arrays([pa.array(c, field.type) for c, field in zip(columns, schema.SCHEMAS["rejects"])],
                                schema=schema.SCHEMAS["rejects"])
