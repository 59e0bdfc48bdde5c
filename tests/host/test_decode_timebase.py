"""citynode.timebase: node clocks unwrapped per epoch and anchored to UTC; ISO text for tables."""

import numpy as np

from citynode import traffic
from citynode.decode import decode_bytes
from citynode.tables import iso_utc
from citynode.timebase import Timebase
from citynode.traffic import TrafficBuilder

WRAP = 1 << 32


def test_unwraps_across_the_u32_wrap():
    tb = Timebase()
    assert tb.update(1, WRAP - 10) == (0, WRAP - 10, None)
    assert tb.update(1, 5) == (0, WRAP + 5, None)
    assert tb.update(1, 5) == (0, WRAP + 5, None)  # same time: no step
    assert tb.update(1, 2**31) == (0, WRAP + 2**31, None)  # half the range forward is still forward


def test_anchor_applies_from_the_time_message_on_and_is_replaced_by_the_next():
    tb = Timebase()
    assert tb.update(1, 100)[2] is None
    assert tb.update(1, 200, "time", utc_ms=1_000_000) == (0, 200, 1_000_000)
    assert tb.update(1, 1200)[2] == 1_001_000
    assert tb.update(1, 2200, "time", utc_ms=1_002_010)[2] == 1_002_010  # drift corrected
    assert tb.update(1, 3200)[2] == 1_003_010
    assert tb.update(2, 3200)[2] is None  # other nodes are not anchored by it


def test_restart_starts_an_epoch_and_drops_the_anchor():
    tb = Timebase()
    tb.update(1, 50_000, "time", utc_ms=10**12)
    assert tb.update(1, 400) == (1, 400, None)
    assert tb.update(1, 500, "time", utc_ms=2 * 10**12) == (1, 500, 2 * 10**12)


def test_every_kind_moves_the_clock_and_backwards_is_a_restart():
    tb = Timebase()
    tb.update(1, 1000, "time", utc_ms=10**12)
    assert tb.update(1, 10_000, "features") == (0, 10_000, 10**12 + 9000)
    assert tb.update(1, 9_999, "accel") == (1, 9_999, None)


def test_batch_assignment_equals_message_by_message():
    cap = traffic.capture(nodes=(1, 2), duration_s=12, seed=3, start_ms=WRAP - 5000, features_period_s=4, status_period_s=5)
    node = TrafficBuilder(2, seq=500)
    wire = cap.wire + node.climate(30, 1.0, 2.0) + node.time_anchor(40, 10**12) + node.climate(50, 1.0, 2.0)
    batch, _ = decode_bytes(wire)
    got = Timebase().assign(batch)
    one = Timebase()
    rows = []
    for kind, cols in batch.kinds.items():
        for i, o in enumerate(cols["order"].tolist()):
            rows.append((o, kind, i))
    rows.sort()
    for o, kind, i in rows:
        cols = batch.kinds[kind]
        utc = int(cols["utc_ms"][i]) if kind == "time" else None
        epoch, node_ms, at = one.update(int(cols["node_id"][i]), int(cols["time_ms"][i]), kind, utc)
        e, ms, off, anchored = (a[i] for a in got[kind])
        assert (e, ms) == (epoch, node_ms)
        assert bool(anchored) == (at is not None)
        if at is not None:
            assert ms + off == at
    # the node restarted (clock went from ~2^32 back to 30): epoch 1, anchored again by its TIME message
    climate = batch.kinds["climate"]
    last = len(climate["order"]) - 1
    assert got["climate"][0][last] == 1 and got["climate"][3][last]


def test_iso_utc_text():
    us = np.array([0, 1795673544125000, 1795673544125001, 1795673544999999], np.int64)
    assert iso_utc(us) == [
        "1970-01-01T00:00:00.000000Z",
        "2026-11-26T06:12:24.125000Z",
        "2026-11-26T06:12:24.125001Z",
        "2026-11-26T06:12:24.999999Z",
    ]
    assert iso_utc(np.zeros(0, np.int64)) == []
