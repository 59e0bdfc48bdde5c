"""citynode.timebase: node clocks unwrapped per epoch and anchored to UTC; ISO text for tables."""

import numpy as np
import pytest

from citynode import traffic
from citynode.decode import decode_bytes
from citynode.tables import NO_UTC, batch_tables, iso_utc
from citynode.timebase import NODE_MS_MAX, Timebase, plausible_utc
from citynode.traffic import TrafficBuilder
from citynode_protocol.wire import UTC_MAX_MS, UTC_MIN_MS

WRAP = 1 << 32
HALF = 1 << 31
U = 1_795_673_544_000  # 2026-11-26T06:12:24Z


def test_unwraps_across_the_u32_wrap():
    tb = Timebase()
    assert tb.update(1, WRAP - 10) == (0, WRAP - 10, None)
    assert tb.update(1, 5) == (0, WRAP + 5, None)
    assert tb.update(1, 5) == (0, WRAP + 5, None)  # same time: no step
    assert tb.update(1, 2**31) == (0, WRAP + 2**31, None)  # half the range forward is still forward


def test_anchor_applies_from_the_time_message_on_and_is_replaced_by_the_next():
    tb = Timebase()
    assert tb.update(1, 100)[2] is None
    assert tb.update(1, 200, "time", utc_ms=U) == (0, 200, U)
    assert tb.update(1, 1200)[2] == U + 1000
    assert tb.update(1, 2200, "time", utc_ms=U + 2010)[2] == U + 2010  # drift corrected
    assert tb.update(1, 3200)[2] == U + 3010
    assert tb.update(2, 3200)[2] is None  # other nodes are not anchored by it


def test_restart_starts_an_epoch_and_drops_the_anchor():
    tb = Timebase()
    tb.update(1, 50_000, "time", utc_ms=U)
    assert tb.update(1, 400) == (1, 400, None)
    assert tb.update(1, 500, "time", utc_ms=U + 10**9) == (1, 500, U + 10**9)


def test_every_kind_moves_the_clock_and_backwards_is_a_restart():
    tb = Timebase()
    tb.update(1, 1000, "time", utc_ms=U)
    assert tb.update(1, 10_000, "features") == (0, 10_000, U + 9000)
    assert tb.update(1, 9_999, "accel") == (1, 9_999, None)


def test_batch_assignment_equals_message_by_message():
    cap = traffic.capture(nodes=(1, 2), duration_s=12, seed=3, start_ms=WRAP - 5000, features_period_s=4, status_period_s=5)
    node = TrafficBuilder(2, seq=500)
    wire = cap.wire + node.climate(30, 1.0, 2.0) + node.time_anchor(40, U) + node.climate(50, 1.0, 2.0)
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
        e, ms, utc, has_utc = (a[i] for a in got[kind])
        assert (e, ms) == (epoch, node_ms)
        assert bool(has_utc) == (at is not None)
        if at is not None:
            assert utc == at
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


def test_plausible_utc_is_the_spec_range():
    assert plausible_utc(UTC_MIN_MS) and plausible_utc(UTC_MAX_MS - 1)
    assert not plausible_utc(UTC_MIN_MS - 1) and not plausible_utc(UTC_MAX_MS)
    assert not plausible_utc(U * 1_000_000) and not plausible_utc(2**64 - 1)


@pytest.mark.parametrize("bad", [0, UTC_MIN_MS - 1, UTC_MAX_MS, U * 1000, U * 1_000_000, 2**63, 2**64 - 1])
def test_an_implausible_time_message_anchors_nothing_and_is_counted(bad):
    tb = Timebase()
    assert tb.update(1, 100, "time", utc_ms=bad) == (0, 100, None)
    assert tb.update(1, 200) == (0, 200, None)
    tb.update(1, 300, "time", utc_ms=U)
    assert tb.update(1, 400, "time", utc_ms=bad) == (0, 400, U + 100)  # the anchor before it stays
    assert tb.update(1, 500)[2] == U + 200
    assert tb.stats() == {1: {"implausible_utc": 2, "messages_without_utc": 2, "epochs_without_utc": [0]}}


def test_a_node_running_past_the_plausible_range_has_no_utc_there():
    tb = Timebase()
    tb.update(1, 0, "time", utc_ms=UTC_MAX_MS - 1000)
    assert tb.update(1, 999)[2] == UTC_MAX_MS - 1
    assert tb.update(1, 1000)[2] is None


def test_a_huge_node_clock_saturates_instead_of_wrapping():
    tb = Timebase()
    tb.update(1, 0, "time", utc_ms=U)
    clock = tb.clock(1)
    clock.node_ms = NODE_MS_MAX - 10  # as if after 2^32 messages each 2^31 ms apart
    epoch, node_ms, utc = tb.update(1, HALF)
    assert (epoch, node_ms, utc) == (0, NODE_MS_MAX, None)  # UTC past 2100: none


def test_tables_of_a_huge_node_clock_and_an_absurd_time_are_sane():
    """Node times far past int64 µs and TIME messages up to 2^64 - 1: no wrap, no crash (issue 10)."""
    node = TrafficBuilder(1)
    wire = node.time_anchor(1000, 2**64 - 1) + node.time_anchor(1500, 2**63) + node.climate(2000, 20.0, 50.0)
    wire += node.accel_block(2500, np.zeros((3, 3), int), odr_hz=100.0, age_ms=10)
    batch, _ = decode_bytes(wire)
    tb = Timebase()
    tb.update(1, 0)
    tb.clock(1).node_ms = 2**62  # µs of this overflow int64
    got = batch_tables(batch, tb)
    assert got["time"]["plausible"].tolist() == [False, False]
    assert got["time"]["utc_ms"].tolist() == [2**64 - 1, 2**63]
    for name in ("time", "climate", "accel", "accel_blocks"):
        assert (got[name]["time"] == NO_UTC).all(), name
        assert (got[name]["node_time_s"] > 4.6e15).all(), name  # 2^62 ms and a little, as seconds
    s = got["accel"]["node_time_s"]
    assert s[0] == (2**62 + 2490) / 1e3 and (np.diff(s) >= 0).all()  # ms and µs added as doubles
    assert tb.stats()[1]["implausible_utc"] == 2
