"""Node clocks on the host: unwrap each node's u32 millisecond counter, anchor it to UTC.

A node stamps every frame with `time_ms`, its clock in ms since boot, which
wraps after 2^32 ms (49.7 days). The receiver keeps, per node and per *epoch*
(the run between two restarts, as `NodeStats` counts them: the clock going
backwards), an unwrapped clock: each step forward is `(time − last) mod 2^32`.

A TIME message says "at node time t, UTC was u": from it on, the node's later
messages of the same epoch get `utc = node_ms + (u − t)`. A later TIME message
replaces the offset (drift correction); a restart drops it until the next TIME
message. Messages before the first TIME message of an epoch stay unanchored:
the same row gets the same time whether it was decoded live or from a file.

`Timebase.assign(batch)` does this for a whole `decode.Batch` with numpy;
`Timebase.update(node_id, time_ms)` is the same arithmetic one message at a
time (restarts detected from the times it is given), for live streams.
"""

import numpy as np

WRAP = 1 << 32
HALF = 1 << 31


class NodeClock:
    """The receiver's view of one node's clock."""

    __slots__ = ("epoch", "last_raw", "node_ms", "offset_ms")

    def __init__(self):
        self.epoch = None  # epoch of the last message seen
        self.last_raw = 0  # its time_ms as sent (u32)
        self.node_ms = 0  # its unwrapped node time
        self.offset_ms = None  # utc_ms - node_ms, or None when not anchored


class Timebase:
    def __init__(self):
        self.clocks = {}

    def clock(self, node_id):
        clock = self.clocks.get(node_id)
        if clock is None:
            clock = self.clocks[node_id] = NodeClock()
        return clock

    # -- one message at a time ---------------------------------------------------

    def update(self, node_id, time_ms, epoch=None, utc_ms=None):
        """Account one message; returns (epoch, node_ms, utc_ms or None).

        epoch: the decoder's epoch for this message when known; None detects a
        restart from the clock going backwards, as NodeStats does.
        utc_ms: give it for a TIME message (its field) to anchor the clock.
        """
        clock = self.clock(node_id)
        if clock.epoch is None:
            new_epoch = 0 if epoch is None else epoch
        elif epoch is None:
            back = (clock.last_raw - time_ms) % WRAP
            new_epoch = clock.epoch + 1 if 0 < back < HALF else clock.epoch
        else:
            new_epoch = epoch
        if new_epoch != clock.epoch:
            clock.epoch = new_epoch
            clock.node_ms = time_ms
            clock.offset_ms = None
        else:
            clock.node_ms += (time_ms - clock.last_raw) % WRAP
        clock.last_raw = time_ms
        if utc_ms is not None:
            clock.offset_ms = utc_ms - clock.node_ms
        utc = None if clock.offset_ms is None else clock.node_ms + clock.offset_ms
        return clock.epoch, clock.node_ms, utc

    # -- a whole batch -------------------------------------------------------------

    def assign(self, batch):
        """Times of every message of a `decode.Batch`.

        Returns {kind: (node_ms, utc_offset_ms, anchored)}, three arrays aligned
        with that kind's rows: unwrapped node time in ms (int64), UTC minus node
        time in ms (int64, meaningful where anchored), anchored (bool).
        """
        kinds = [k for k in batch.kinds if len(batch.kinds[k]["order"])]
        if not kinds:
            return {}
        parts = [batch.kinds[k] for k in kinds]
        order = np.concatenate([p["order"] for p in parts])
        node = np.concatenate([p["node_id"] for p in parts])
        epoch = np.concatenate([p["epoch"] for p in parts])
        raw = np.concatenate([p["time_ms"] for p in parts])
        is_time = np.concatenate([np.full(len(p["order"]), k == "time") for k, p in zip(kinds, parts)])
        utc = np.concatenate(
            [p["utc_ms"].astype(np.int64) if k == "time" else np.zeros(len(p["order"]), np.int64) for k, p in zip(kinds, parts)]
        )
        sort = np.argsort(order, kind="stable")
        node, epoch, raw, is_time, utc = node[sort], epoch[sort], raw[sort], is_time[sort], utc[sort]
        node_ms = np.zeros(len(sort), np.int64)
        offset = np.zeros(len(sort), np.int64)
        anchored = np.zeros(len(sort), bool)
        for nid in np.unique(node).tolist():
            idx = np.flatnonzero(node == nid)
            self._node_rows(self.clock(nid), epoch[idx], raw[idx], is_time[idx], utc[idx], idx, node_ms, offset, anchored)
        # back to each kind's rows
        unsort = np.empty_like(sort)
        unsort[sort] = np.arange(len(sort))
        out = {}
        at = 0
        for k, p in zip(kinds, parts):
            n = len(p["order"])
            pos = unsort[at : at + n]
            out[k] = (node_ms[pos], offset[pos], anchored[pos])
            at += n
        return out

    @staticmethod
    def _node_rows(clock, epoch, raw, is_time, utc, idx, node_ms, offset, anchored):
        # runs of one epoch, in order
        cuts = np.flatnonzero(np.diff(epoch)) + 1
        bounds = [0] + cuts.tolist() + [len(epoch)]
        for a, b in zip(bounds[:-1], bounds[1:]):
            ep = int(epoch[a])
            t = raw[a:b]
            if clock.epoch == ep:
                prev, base, off = clock.last_raw, clock.node_ms, clock.offset_ms
            else:
                prev, base, off = int(t[0]), int(t[0]), None
            steps = np.empty(b - a, np.int64)
            steps[0] = (int(t[0]) - prev) % WRAP
            steps[1:] = (t[1:] - t[:-1]) % WRAP
            ms = base + np.cumsum(steps)
            # offset in force at each row: the last TIME row at or before it, else the carried one
            times = np.flatnonzero(is_time[a:b])
            if len(times):
                last = np.full(b - a, -1, np.int64)
                last[times] = times
                np.maximum.accumulate(last, out=last)
                offs = np.where(last >= 0, (utc[a:b] - ms)[np.maximum(last, 0)], 0 if off is None else off)
                anch = (last >= 0) | (off is not None)
            else:
                offs = np.full(b - a, 0 if off is None else off, np.int64)
                anch = np.full(b - a, off is not None)
            rows = idx[a:b]
            node_ms[rows] = ms
            offset[rows] = offs
            anchored[rows] = anch
            clock.epoch = ep
            clock.last_raw = int(t[-1])
            clock.node_ms = int(ms[-1])
            clock.offset_ms = int(offs[-1]) if bool(np.all(anch[-1:])) else None
