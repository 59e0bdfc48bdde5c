"""Node clocks on the host: unwrap each node's u32 millisecond counter, anchor it to UTC.

A node stamps every frame with `time_ms`, its clock in ms since boot, which
wraps after 2^32 ms (49.7 days). The receiver keeps, per node and per *epoch*
(the run between two restarts), an unwrapped clock: each step forward is
`(time − last) mod 2^32`.

A restart is the rule of `NodeStats` (SPEC §5.3): the clock went backwards by
1 … 2^31−1 ms. A running node's frame times never go backwards (SPEC §2.1);
messages about an earlier moment (accel blocks, feature windows) carry their
`age_ms`, which the tables subtract (citynode.tables).

A TIME message says "at node time t, UTC was u": from it on, the node's later
messages of the same epoch get `utc = node_ms + (u − t)`. A later TIME message
replaces the offset (drift correction); a restart drops it until the next TIME
message. Messages before the first TIME message of an epoch stay unanchored:
the same row gets the same time whether it was decoded live or from a file.

Only a plausible UTC anchors (`plausible_utc`, SPEC §6 time): a TIME message
outside `wire.UTC_MIN_MS` … `wire.UTC_MAX_MS` is counted (`implausible_utc`)
and otherwise ignored; the anchor before it, if any, stays. A message whose
UTC would fall outside that range (a node running on past 2100) has no UTC.
All arithmetic is on Python ints; what goes into int64 arrays is in range.
"""

import numpy as np

from citynode_protocol.wire import UTC_MAX_MS, UTC_MIN_MS

WRAP = 1 << 32
HALF = 1 << 31
# An unwrapped clock moves at most 2^31 ms per message: reaching this takes
# 2^32 messages, so it is a bound that keeps the arrays safe, not a real limit.
NODE_MS_MAX = (1 << 63) - 1


def plausible_utc(utc_ms):
    """True for a UTC (ms since 1970) that a node may hold (SPEC §6 time); elementwise for arrays."""
    return (utc_ms >= UTC_MIN_MS) & (utc_ms < UTC_MAX_MS)


class NodeClock:
    """The receiver's view of one node's clock, with what it could not anchor."""

    __slots__ = ("epoch", "last_raw", "node_ms", "offset_ms", "implausible_utc", "without_utc", "epochs_without_utc")

    def __init__(self):
        self.epoch = -1  # no message seen yet
        self.last_raw = 0  # time_ms of the last clock-moving message (u32)
        self.node_ms = 0  # its unwrapped node time
        self.offset_ms = None  # utc_ms - node_ms, or None when not anchored
        self.implausible_utc = 0  # TIME messages refused as anchors
        self.without_utc = 0  # messages that got no UTC
        self.epochs_without_utc = []  # the epochs those messages belong to


class Timebase:
    """Every node's clock; feed messages in stream order."""

    def __init__(self):
        self.clocks = {}

    def clock(self, node_id):
        clock = self.clocks.get(node_id)
        if clock is None:
            clock = self.clocks[node_id] = NodeClock()
        return clock

    def update(self, node_id, time_ms, kind=None, utc_ms=None):
        """Account one message; returns (epoch, node_ms, utc_ms or None).

        kind: the message's name (kept for callers that log it; every kind moves the clock);
        utc_ms: the field of a TIME message, which anchors the clock when plausible.
        """
        clock = self.clock(node_id)
        back = (clock.last_raw - time_ms) % WRAP
        if clock.epoch < 0 or 0 < back < HALF:
            clock.epoch += 1
            clock.node_ms = time_ms
            clock.offset_ms = None
        else:
            clock.node_ms = min(clock.node_ms + (time_ms - clock.last_raw) % WRAP, NODE_MS_MAX)
        clock.last_raw = time_ms
        if utc_ms is not None:
            if plausible_utc(utc_ms):
                clock.offset_ms = utc_ms - clock.node_ms
            else:
                clock.implausible_utc += 1
        utc = None if clock.offset_ms is None else clock.node_ms + clock.offset_ms
        if utc is not None and not plausible_utc(utc):
            utc = None
        if utc is None:
            clock.without_utc += 1
            if not clock.epochs_without_utc or clock.epochs_without_utc[-1] != clock.epoch:
                clock.epochs_without_utc.append(clock.epoch)
        return clock.epoch, clock.node_ms, utc

    def assign(self, batch):
        """Times of every message of a `decode.Batch`, in stream order.

        Returns {kind: (epoch, node_ms, utc_ms, has_utc)}, arrays aligned with
        that kind's rows: epoch (int64), unwrapped node time in ms (int64), UTC
        in ms since 1970 (int64, meaningful where has_utc), has_utc (bool).
        """
        kinds = [k for k in batch.kinds if len(batch.kinds[k]["order"])]
        rows = []
        for k in kinds:
            cols = batch.kinds[k]
            utc = cols["utc_ms"].tolist() if k == "time" else None
            for i, (o, nid, t) in enumerate(zip(cols["order"].tolist(), cols["node_id"].tolist(), cols["time_ms"].tolist())):
                rows.append((o, k, i, nid, t, None if utc is None else utc[i]))
        rows.sort(key=lambda r: r[0])
        out = {}
        for k in kinds:
            n = len(batch.kinds[k]["order"])
            out[k] = (np.zeros(n, np.int64), np.zeros(n, np.int64), np.zeros(n, np.int64), np.zeros(n, bool))
        update = self.update
        for _o, k, i, nid, t, utc in rows:
            epoch, node_ms, at = update(nid, t, k, utc)
            cols = out[k]
            cols[0][i] = epoch
            cols[1][i] = node_ms
            if at is not None:
                cols[2][i] = at
                cols[3][i] = True
        return out

    def stats(self):
        """Per node: {"implausible_utc", "messages_without_utc", "epochs_without_utc"}."""
        return {
            nid: {
                "implausible_utc": c.implausible_utc,
                "messages_without_utc": c.without_utc,
                "epochs_without_utc": list(c.epochs_without_utc),
            }
            for nid, c in self.clocks.items()
        }
