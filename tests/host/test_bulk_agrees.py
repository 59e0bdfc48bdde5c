"""The bulk decoder (citynode.decode) gives exactly what the reference decoder gives.

Same messages (type, node, seq, time, every field value, extra bytes) in the
same order, and the same counters, link-wide and per node: on every golden
vector, and on random traffic from citynode.traffic with random damage, fed
whole or in random pieces.
"""

import glob
import json
import os
import struct

import numpy as np
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from citynode import traffic
from citynode.decode import BulkDecoder, LAYOUTS, decode_messages
from citynode_protocol import codec, frame, messages, payload
from citynode_protocol.decoder import Decoder, decode_all

VECTORS = os.path.join(os.path.dirname(__file__), "..", "..", "protocol", "vectors")


def _key(m):
    fields = {k: (list(v) if isinstance(v, list) else v) for k, v in m.fields.items()}
    return (m.type, m.name, m.node_id, m.seq, m.time_ms, m.extra_bytes, json.dumps(fields, sort_keys=True))


def _same(data, chunks=None):
    ref, ref_stats = decode_all(data)
    if chunks is None:
        got, stats = decode_messages(data)
    else:
        dec = BulkDecoder()
        got = []
        at = 0
        for size in chunks:
            got.extend(dec.feed(data[at : at + size]).messages())
            at += size
        got.extend(dec.feed(data[at:]).messages())
        dec.flush()
        stats = dec.stats
    assert stats.as_dict() == ref_stats.as_dict()
    assert [_key(m) for m in got] == [_key(m) for m in ref]
    # the per-node sequence state carries on identically
    for nid, ns in ref_stats.nodes.items():
        assert (stats.nodes[nid].last_seq, stats.nodes[nid].last_time) == (ns.last_seq, ns.last_time)


def _vector_cases():
    cases = []
    for path in sorted(glob.glob(os.path.join(VECTORS, "*.json"))):
        with open(path) as f:
            doc = json.load(f)
        items = doc.get("cases", []) if isinstance(doc, dict) else doc
        for case in items:
            if isinstance(case, dict) and "wire_hex" in case:
                cases.append(pytest.param(bytes.fromhex(case["wire_hex"]), id="%s:%s" % (os.path.basename(path), case.get("name"))))
    return cases or [pytest.param(None, id="no-vectors")]


@pytest.mark.parametrize("wire", _vector_cases())
def test_golden_vectors(wire):
    if wire is None:
        pytest.skip("no golden vectors with wire_hex in protocol/vectors/")
    _same(wire)
    _same(wire, chunks=[1] * min(len(wire), 50))
    _same(wire, chunks=[7] * (len(wire) // 7))


def test_scaling_matches_payload_unpack_for_every_16_bit_value():
    # the bulk path divides by 10**n; the reference rounds v * scale to n digits
    from citynode_protocol.payload import _scaled

    values = np.arange(-32768, 65536, dtype=np.int64)
    for scale, digits in ((0.01, 2), (0.001, 3), (1e-06, 6)):
        got = (values.astype(np.float64) / 10**digits).tolist()
        want = [_scaled(v, scale) for v in values.tolist()]
        assert got == want, scale
    big = np.array([2**32 - 1, 2**31, 4294967, 123456789, 999999999], np.int64)
    for scale, digits in ((0.001, 3), (1e-06, 6)):
        assert (big / 10**digits).tolist() == [_scaled(v, scale) for v in big.tolist()]


def test_layouts_cover_the_message_table():
    for entry in messages.MESSAGES:
        assert LAYOUTS[entry[0]].size == struct.calcsize(entry[2])


# -- random traffic -------------------------------------------------------------


def _odd_frames(node_id, rng):
    """Frames a healthy stream rarely has: each exercises one receiver rule."""
    b = traffic.TrafficBuilder(node_id, seq=int(rng.integers(0, 0x10000)))
    out = []
    t = int(rng.integers(0, 2**32))
    samples = traffic.quiet_accel(int(rng.integers(1, 30)), rng).reshape(-1).tolist()
    enc, tail = codec.encode(samples, 1) if len(samples) > 3 else (0, b"")
    fixed = _accel_head(1, len(samples) // 3)
    kinds = {
        "unknown": lambda: b.unknown(t, 29, b"\x01\x02"),
        "newer_minor": lambda: _frame(b, 1, t, payload.pack("climate", {"temperature_c": 1.5})[1] + b"\xaa\xbb"),
        "short": lambda: _frame(b, 1, t, b"\x01\x02"),
        "bad_encoding": lambda: _frame(b, 2, t, _accel_head(7, 1) + b"\x00" * 6),
        "raw_wrong_length": lambda: _frame(b, 2, t, _accel_head(0, 2) + b"\x01" * 6),
        "delta_bad_table": lambda: _frame(b, 2, t, fixed + (tail[:-1] if tail else b"")),
        "delta_padding": lambda: _frame(b, 2, t, fixed + _dirty_padding(tail, len(samples) // 3)),
        "delta_zero_samples": lambda: _frame(b, 2, t, _accel_head(1, 0) + b"\x00" * 6),
        "raw_zero_samples": lambda: _frame(b, 2, t, _accel_head(0, 0)),
        "bad_utf8_log": lambda: _frame(b, 5, t, b"\x01\xff\xfe"),
        "bad_json_reply": lambda: _frame(b, 7, t, b"\x01\x00\x00{nope"),
        "empty_reply": lambda: _frame(b, 7, t, b"\x01\x00\x00"),
        "version2": lambda: frame.to_wire(_with_crc(bytes([0x41]) + frame.build(1, node_id, 0, t, b"\x00" * 5)[1:-4])),
        "too_short": lambda: frame.to_wire(b"\x21\x01\x00\x00"),
        "oversize": lambda: b"\x01" * 4200 + b"\x00",
        "long_ok": lambda: b.accel_block(t, traffic.loud_accel(600, rng), encoding=0),
    }
    names = sorted(kinds)
    for _ in range(int(rng.integers(1, 5))):
        out.append(kinds[names[int(rng.integers(0, len(names)))]]())
    return out


def _accel_head(encoding, n):
    """The fixed part of an accel payload, from the message table's layout."""
    values = {"encoding": encoding, "range_g": 2, "odr_hz": 200000, "n_samples": n}
    fields = messages.BY_NAME["accel"][3]
    return struct.pack(messages.BY_NAME["accel"][2], *[values.get(f[0], 0) for f in fields])


def _with_crc(raw):
    return raw + struct.pack("<I", frame.crc32(raw))


def _frame(builder, msg_type, t, body):
    return builder._emit("raw", msg_type, body, t, {}, None)


def _dirty_padding(tail, n):
    if not tail or (n - 1) % 8 == 0:
        return tail
    data = bytearray(tail)
    data[-1] |= 0x80  # the last value of the last group is padding
    return bytes(data)


@st.composite
def damaged_traffic(draw):
    seed = draw(st.integers(0, 2**31))
    rng = np.random.default_rng(seed)
    nodes = draw(st.lists(st.integers(0, 0xFFFF), min_size=1, max_size=3, unique=True))
    cap = traffic.capture(
        nodes=tuple(nodes),
        duration_s=draw(st.sampled_from([0.2, 0.6, 1.5])),
        seed=seed,
        loss=draw(st.sampled_from([0.0, 0.2])),
        loud=draw(st.booleans()),
        encoding=draw(st.sampled_from([None, 0, 1])),
        block_samples=draw(st.sampled_from([1, 2, 8, 9, 17, 40])),
        climate_period_s=0.3,
        features_period_s=0.5,
        status_period_s=0.5,
        start_ms=draw(st.sampled_from([0, 1000, 2**32 - 700])),
        utc=draw(st.sampled_from([None, "2026-11-26T06:00:00Z"])),
    )
    pieces = [s.wire for s in cap.sent]
    # odd frames, duplicates and restarts at random places
    for _ in range(draw(st.integers(0, 4))):
        at = int(rng.integers(0, len(pieces) + 1))
        what = draw(st.sampled_from(["odd", "dup", "restart"]))
        if what == "odd":
            pieces[at:at] = _odd_frames(nodes[0], rng)
        elif what == "dup" and pieces:
            pieces.insert(at, pieces[min(at, len(pieces) - 1)])
        else:
            b = traffic.TrafficBuilder(nodes[-1])
            pieces.insert(at, b.climate(int(rng.integers(0, 50)), 20.0, 50.0))
    if draw(st.booleans()):
        pieces.insert(0, b"\x00\x00")  # empty frames between delimiters
    wire = b"".join(pieces)
    wire = traffic.corrupt(
        wire,
        rng,
        flips=draw(st.integers(0, 6)),
        junk=draw(st.integers(0, 3)),
        truncate=draw(st.booleans()),
    )
    return wire


@given(damaged_traffic(), st.lists(st.integers(1, 3000), max_size=6))
@settings(max_examples=120, deadline=None, suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large])
def test_random_damaged_traffic(wire, chunks):
    _same(wire)
    if chunks:
        _same(wire, chunks)


@given(st.binary(max_size=600), st.lists(st.integers(1, 100), max_size=4))
@settings(max_examples=150, deadline=None)
def test_random_bytes(data, chunks):
    _same(data)
    _same(data, chunks)


def test_large_capture_in_one_feed_and_in_pieces():
    cap = traffic.capture(nodes=(1, 2, 3), duration_s=20, seed=5, loss=0.01, block_samples=100)
    rng = np.random.default_rng(5)
    wire = traffic.corrupt(cap.wire, rng, flips=20, junk=5)
    _same(wire)
    _same(wire, chunks=[10_000] * 20)
    # and with a small internal step, so one feed is decoded in many numpy runs
    ref, ref_stats = decode_all(wire)
    dec = BulkDecoder(chunk=4096)
    got = dec.feed(wire).messages()
    dec.flush()
    assert dec.stats.as_dict() == ref_stats.as_dict()
    assert [_key(m) for m in got] == [_key(m) for m in ref]


def test_a_deeply_nested_reply_body_is_counted_not_raised():
    node = traffic.TrafficBuilder(1)
    wire = _frame(node, messages.REPLY, 0, b"\x01\x00\x00" + b"[" * 3000)
    assert Decoder().feed(wire) == []
    got, stats = decode_messages(wire)
    assert got == [] and stats.bad_length == 1


def _dense_chain(n, rng, lo=0x21, hi=0x3F):
    """n non-zero bytes from which almost every start's COBS chain lands on the end
    (with codes lo..hi; 0x21..0x3F also carry version 1 in the next byte)."""
    out = bytearray(n)
    for i in range(n - 1, -1, -1):
        room = n - i
        out[i] = 1 if room < lo else int(rng.integers(lo, min(hi, room) + 1))
    return bytes(out)


@pytest.mark.parametrize("lo,hi", [(0x21, 0x3F), (0xC0, 0xFF), (1, 4)])
def test_batched_search_finds_the_reference_start(lo, hi):
    from citynode.decode import first_frame_starts
    from citynode_protocol.decoder import first_frame_start

    rng = np.random.default_rng(lo)
    node = traffic.TrafficBuilder(9)
    pieces = []
    junk_sizes = []
    for k in range(12):
        junk = _dense_chain(int(rng.integers(1, 300)), rng, lo, hi)
        good = node.log(1000 + k, "x" * int(rng.integers(0, 400)))[:-1]
        pieces += [junk + good, junk, good[5:], _dense_chain(int(rng.integers(14, 4113)), rng, lo, hi)]
        junk_sizes.append(len(junk))
    data = b"\x00".join(pieces) + b"\x00"
    a = np.frombuffer(data, np.uint8)
    ends = np.flatnonzero(a == 0)
    starts = np.concatenate([[0], ends[:-1] + 1])
    got = first_frame_starts(a, starts, ends).tolist()
    assert got == [first_frame_start(p) for p in pieces]
    assert got[0::4] == junk_sizes  # the frame behind the junk, never a start inside the junk
    assert not any(got[1::4])


def test_dense_junk_pieces_decode_alike():
    rng = np.random.default_rng(2)
    node = traffic.TrafficBuilder(4)
    wire = b"".join(_dense_chain(int(rng.integers(14, 4113)), rng) + b"\x00" + node.climate(1000 * k, 20.0, 50.0) for k in range(30))
    _same(wire)
    _same(wire, chunks=[5000] * 30)


def test_frames_behind_overlong_junk_decode_alike_in_any_pieces():
    rng = np.random.default_rng(8)
    node = traffic.TrafficBuilder(6)
    parts = []
    for k in range(12):
        size = int(rng.choice([4000, 4113, 4114, 4200, 9000, 20000]))
        junk = rng.integers(1, 256, size).astype(np.uint8).tobytes() if k % 3 else _dense_chain(size, rng)
        parts.append(junk + node.climate(100 * k, 20.0, 50.0))
    wire = b"".join(parts) + b"\x41" * 5000
    ref, stats = decode_all(wire)
    assert len(ref) == 12 and stats.too_long >= 9
    _same(wire)
    _same(wire, chunks=[1000] * 120)
    _same(wire, chunks=[4113, 1, 4114, 7, 9000])
