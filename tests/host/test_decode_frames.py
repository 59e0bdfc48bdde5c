"""BulkDecoder.feed_frames (raw frames already cut and unstuffed, as the collector has them after
verifying) gives what feed gives for their wire form: the same messages in the same order, the
same counters, the same per-node sequence state."""

import numpy as np
import pytest

from citynode import traffic
from citynode.decode import BulkDecoder
from citynode_protocol import PROTOCOL_VERSION, frame

from test_bulk_agrees import _key, _odd_frames


def _unstuff(wire):
    from citynode_protocol import cobs

    return cobs.decode(wire.rstrip(b"\x00"))


def _agree(raws, feeds=1, fast=True):
    by_frames, by_wire = BulkDecoder(), BulkDecoder()
    got, want = [], []
    for part in np.array_split(np.arange(len(raws)), feeds):
        chunk = [raws[i] for i in part.tolist()]
        got += by_frames.feed_frames(chunk).messages()
        want += by_wire.feed(b"".join(frame.to_wire(r) for r in chunk)).messages()
    a, b = by_frames.stats.as_dict(), by_wire.stats.as_dict()
    # the frames' own bytes when the vectorised path took them, their wire bytes when feed did
    assert a["bytes_in"] == (sum(map(len, raws)) if fast else b["bytes_in"])
    a.pop("bytes_in")
    b.pop("bytes_in")
    assert a == b
    assert [_key(m) for m in got] == [_key(m) for m in want]
    assert {n: (s.last_seq, s.last_time) for n, s in by_frames.stats.nodes.items()} == {
        n: (s.last_seq, s.last_time) for n, s in by_wire.stats.nodes.items()}
    return got


@pytest.mark.parametrize("encoding", [None, 0, 1])
def test_healthy_traffic_in_one_call_and_in_several(encoding):
    cap = traffic.capture(nodes=(3, 9), duration_s=3, seed=2, loss=0.1, block_samples=40, encoding=encoding,
                          climate_period_s=0.3, status_period_s=0.5, utc="2026-11-26T06:00:00Z")
    raws = [_unstuff(s.wire) for s in cap.sent]
    assert len(_agree(raws)) == len(raws)
    _agree(raws, feeds=4)


def test_odd_frames_and_duplicates_take_the_same_paths():
    rng = np.random.default_rng(7)
    raws = []
    for node in (1, 2, 3):
        for wire in _odd_frames(node, rng):
            piece = wire.rstrip(b"\x00")
            if b"\x00" not in piece and len(piece) < 4000:
                raw = _unstuff(wire)
                if len(raw) >= frame.OVERHEAD and raw[0] >> 5 == PROTOCOL_VERSION:  # else feed would decide
                    raws.append(raw)
    cap = traffic.capture(nodes=(1,), duration_s=1, seed=3, block_samples=9)
    healthy = [_unstuff(s.wire) for s in cap.sent]
    raws += healthy + healthy[:3]  # a repeat: duplicates
    _agree(raws)


def test_damaged_frames_fall_back_to_the_wire_path():
    cap = traffic.capture(nodes=(4,), duration_s=1, seed=4, block_samples=17)
    raws = [_unstuff(s.wire) for s in cap.sent]
    bad = bytearray(raws[2])
    bad[5] ^= 0x10  # the CRC no longer holds
    raws[2] = bytes(bad)
    raws.insert(4, b"\x21\x01")  # too short for a frame
    got = _agree(raws, fast=False)
    assert len(got) == len(raws) - 2


def test_nothing_in_nothing_out():
    dec = BulkDecoder()
    assert len(dec.feed_frames([])) == 0
    assert dec.stats.frames == 0
