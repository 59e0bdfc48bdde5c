"""Stamps a store fills in: `time`, `calibration_id` and `firmware` that a collector left null.

A collector stamps a row from the latest TIME anchor and status of its (node, boot) that it
knows (citynode.fleet.rows). With two collectors in a group, one may take a boot's data
frames while the other has not yet committed the boot's TIME or STATUS frame: the rows are
written with null stamps. A store fills them in from its own `time` and `status` tables, the
same way rows.py does:

- time: from the latest plausible TIME row of that (node, boot) at or before the row's seq,
  `utc = anchor utc + (node ms - anchor node ms)`, the difference taken modulo the node's
  2^32 ms clock; only where that UTC is plausible;
- calibration_id, firmware: from the latest status row of that (node, boot) at or before
  the row's seq, where the row has no firmware;
- the `frames` ledger's time likewise, at the frame's own node time: that of its data row
  (for accel_blocks and features rows, which are about an earlier moment, plus `age_ms`).

PostgreSQL fills in the rows when it writes (pg_store); the Parquet store, whose files are
not rewritten, when it reads. `fill` is the Arrow form, used at read.
"""

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc

from citynode.fleet import schema
from citynode.timebase import plausible_utc

WRAP_US = (1 << 32) * 1000  # the node's u32 ms clock, in µs
STAMPED = schema.DATA_TABLES + ("frames",)
# tables whose rows carry the frame's node time: as node_time_s, or node_time_s + age_ms
FRAME_TIME = {"climate": False, "status": False, "log": False, "time": False, "accel_blocks": True, "features": True}


def utc_us(node_us, anchor_node_ms, anchor_utc_ms):
    """(UTC µs, valid) of node times (µs on the u32 ms clock) by anchors, as rows.py computes them."""
    delta = (node_us - anchor_node_ms * 1000 + WRAP_US // 2) % WRAP_US - WRAP_US // 2
    utc = anchor_utc_ms * 1000 + delta
    return utc, plausible_utc(utc // 1000)


def needs(table, rows):
    """A boolean numpy mask of the rows with a stamp to fill in."""
    missing = rows["time"].is_null()
    if table != "frames" and "firmware" in rows.column_names:
        missing = pc.or_(missing, rows["firmware"].is_null())
    return missing.to_numpy(zero_copy_only=False)


def fill(table, rows, anchors, statuses=None, frame_node_us=None):
    """The rows (a table of schema.SCHEMAS[table]'s columns, or some of them) with their null
    stamps filled in. anchors: node_id, boot, seq, node_time_s, utc_ms of plausible TIME rows;
    statuses: node_id, boot, seq, calibration_id, firmware of status rows; frame_node_us (for
    `frames`): node_id, boot, seq, node_us of the frames' data rows (see frame_times), or a
    function of the (node, boot, seq) arrays of the frames that need them giving those."""
    if table not in STAMPED or not rows.num_rows:
        return rows
    todo = np.flatnonzero(needs(table, rows))
    if not len(todo):
        return rows
    node = _ints(rows, "node_id")[todo]
    boot = _ints(rows, "boot")[todo]
    seq = _ints(rows, "seq")[todo]
    if "time" in rows.column_names:
        if table == "frames":
            _at, anchored = _latest_at_or_before(node, boot, seq, anchors)
            if not anchored.any():  # frames before their boot's first TIME: nothing to look up
                return rows
            if callable(frame_node_us):
                frame_node_us = frame_node_us(node[anchored], boot[anchored], seq[anchored])
            node_us, has_node = _node_us_of_frames(node, boot, seq, frame_node_us)
        else:
            node_s = rows["node_time_s"].take(pa.array(todo))
            has_node = node_s.is_valid().to_numpy(zero_copy_only=False)
            node_us = np.rint(node_s.fill_null(0).to_numpy(zero_copy_only=False) * 1e6).astype(np.int64)
        rows = _fill_time(rows, todo, node, boot, seq, node_us, has_node, anchors)
    if statuses is not None and table != "frames" and "firmware" in rows.column_names:
        rows = _fill_status(rows, todo, node, boot, seq, statuses)
    return rows


def _ints(table, column):
    return table[column].fill_null(-1).to_numpy(zero_copy_only=False).astype(np.int64)


def _latest_at_or_before(node, boot, seq, found):
    """(index into `found`, found?) of the row of `found` with the same (node, boot) and the
    highest seq at or before each `seq`."""
    if found is None or not found.num_rows:
        return np.zeros(len(seq), np.int64), np.zeros(len(seq), bool)
    f_node, f_boot, f_seq = (_ints(found, c) for c in ("node_id", "boot", "seq"))
    pairs = np.concatenate([np.stack([f_node, f_boot], 1), np.stack([node, boot], 1)])
    _, group = np.unique(pairs, axis=0, return_inverse=True)
    group = group.reshape(-1).astype(np.int64)
    # (group, seq) as one sortable number: seq is 32 bits
    f_key = group[:len(f_seq)] * (1 << 34) + f_seq
    r_key = group[len(f_seq):] * (1 << 34) + seq
    order = np.argsort(f_key, kind="stable")
    pos = np.searchsorted(f_key[order], r_key, side="right") - 1
    at = order[np.maximum(pos, 0)]
    return at, (pos >= 0) & (group[:len(f_seq)][at] == group[len(f_seq):])


def _node_us_of_frames(node, boot, seq, frame_node_us):
    at, found = _latest_at_or_before(node, boot, seq, frame_node_us)
    if not found.any():
        return np.zeros(len(seq), np.int64), found
    same = found & (_ints(frame_node_us, "seq")[at] == seq)
    return _ints(frame_node_us, "node_us")[at], same


def _fill_time(rows, todo, node, boot, seq, node_us, has_node, anchors):
    at, found = _latest_at_or_before(node, boot, seq, anchors)
    missing = rows["time"].take(pa.array(todo)).is_null().to_numpy(zero_copy_only=False)
    if not (found & missing & has_node).any():
        return rows
    a_node_ms = np.rint(anchors["node_time_s"].to_numpy(zero_copy_only=False) * 1000).astype(np.int64)[at]
    a_utc_ms = _ints(anchors, "utc_ms")[at]
    utc, plausible = utc_us(node_us, a_node_ms, a_utc_ms)
    put = found & missing & has_node & plausible
    us = rows["time"].cast(pa.int64()).fill_null(0).to_numpy(zero_copy_only=False).astype(np.int64)
    valid = rows["time"].is_valid().to_numpy(zero_copy_only=False)
    us[todo[put]] = utc[put]
    valid[todo[put]] = True
    column = pa.array(us, schema.TIME, mask=~valid)
    return rows.set_column(rows.column_names.index("time"), "time", column)


def _fill_status(rows, todo, node, boot, seq, statuses):
    at, found = _latest_at_or_before(node, boot, seq, statuses)
    if not found.any():
        return rows
    missing = rows["firmware"].take(pa.array(todo)).is_null().to_numpy(zero_copy_only=False)
    has_firmware = statuses["firmware"].is_valid().to_numpy(zero_copy_only=False)[at]
    put = found & missing & has_firmware
    if not put.any():
        return rows
    source = np.full(rows.num_rows, -1, np.int64)
    source[todo[put]] = at[put]
    take = pa.array(source, pa.int64(), mask=source < 0)
    chosen = pa.array(source >= 0)
    for column in ("firmware", "calibration_id"):
        if column in rows.column_names:
            new = pc.if_else(chosen, statuses[column].take(take), rows[column])
            rows = rows.set_column(rows.column_names.index(column), column, new.cast(rows.schema.field(column).type))
    return rows


def frame_times(parts):
    """node_id, boot, seq, node_us of frames, from {table: its rows (node_id, boot, seq,
    node_time_s and, for accel_blocks and features, age_ms)} of FRAME_TIME's tables."""
    tables = []
    for name, rows in parts.items():
        valid = rows["node_time_s"].is_valid()
        if FRAME_TIME[name]:
            valid = pc.and_(valid, rows["age_ms"].is_valid())
        rows = rows.filter(valid)
        node_us = np.rint(rows["node_time_s"].to_numpy(zero_copy_only=False) * 1e6).astype(np.int64)
        if FRAME_TIME[name]:
            node_us = node_us + _ints(rows, "age_ms") * 1000
        tables.append(pa.table({c: rows[c].cast(pa.int64()) for c in ("node_id", "boot", "seq")} | {"node_us": node_us}))
    return pa.concat_tables(tables) if tables else None
