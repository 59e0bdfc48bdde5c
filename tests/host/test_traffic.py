"""citynode.traffic builds what a node sends: frames decode back to what was built."""

import datetime as dt

import numpy as np
import pytest

from citynode import traffic
from citynode.traffic import TrafficBuilder
from citynode_protocol import codec, messages
from citynode_protocol.decoder import decode_all


def test_builder_frames_decode_to_their_fields():
    node = TrafficBuilder(7)
    wire = node.climate(1500, 21.5, 48.25, status=messages.CLIMATE_CALIBRATED)
    wire += node.time_anchor(1600, "2026-11-26T06:12:24.125Z")
    wire += node.log(1700, "boot ü", level="warning")
    wire += node.reply(1800, 9, code=4, body={"error": "bad argument"})
    wire += node.features(1900, window_s=10.0, n_samples=2000, rms_z_g=0.000512, pitch_deg=-1.25)
    wire += node.status(2000, uptime_s=12, supply_v=5.012)
    msgs, stats = decode_all(wire)
    assert [m.name for m in msgs] == ["climate", "time", "log", "reply", "features", "status"]
    assert [m.seq for m in msgs] == [0, 1, 2, 3, 4, 5]
    assert all(m.node_id == 7 for m in msgs)
    assert msgs[0]["temperature_c"] == 21.5 and msgs[0]["relative_humidity_pct"] == 48.25
    assert msgs[1]["utc_ms"] == 1795673544125
    assert (msgs[2]["level"], msgs[2]["text"]) == (2, "boot ü")
    assert (msgs[3]["request_id"], msgs[3]["code"], msgs[3]["body"]) == (9, 4, {"error": "bad argument"})
    assert msgs[4]["rms_z_g"] == 0.000512 and msgs[4]["pitch_deg"] == -1.25
    assert msgs[5]["supply_v"] == 5.012
    assert stats.frames == 6 and stats.bad_frames == 0
    assert [s.seq for s in node.sent] == [0, 1, 2, 3, 4, 5]


def test_accel_blocks_continue_the_sample_index_and_pick_the_smaller_encoding():
    rng = np.random.default_rng(1)
    node = TrafficBuilder(1)
    quiet = traffic.quiet_accel(200, rng)
    loud = traffic.loud_accel(200, rng)
    wire = node.accel_block(0, quiet) + node.accel_block(1000, loud, range_g=16) + node.accel_block(2000, quiet, encoding=0)
    msgs, _ = decode_all(wire)
    assert [m["first_index"] for m in msgs] == [0, 200, 400]
    assert [m["encoding"] for m in msgs] == [messages.ENCODING_DELTA_BITPACK, messages.ENCODING_RAW, messages.ENCODING_RAW]
    assert msgs[0]["samples"] == quiet.reshape(-1).tolist()
    assert msgs[1]["samples"] == loud.reshape(-1).tolist()
    # a loud block costs the raw size: the encoder fell back
    assert len(node.sent[1].wire) <= len(node.sent[2].wire) + 8


def test_quiet_signal_is_half_a_milli_g_of_noise_on_one_g():
    rng = np.random.default_rng(3)
    s = traffic.quiet_accel(20000, rng, range_g=2).astype(float)
    k = traffic.counts_per_g(2)
    assert abs(s[:, 2].mean() - k) < 5  # 1 g on z
    noise = np.diff(s, axis=0).std(axis=0) / np.sqrt(2)  # the sway barely moves between samples
    assert np.all(np.abs(noise - 8.0) < 0.6), noise
    assert np.all(np.abs(s[:, :2].mean(axis=0) - [120, -85]) < 5)


def test_loud_signal_is_several_g_broadband():
    counts = traffic.loud_accel(5000, np.random.default_rng(4), range_g=16)
    assert np.all((counts / traffic.counts_per_g(16)).std(axis=0) > 2.0)
    # it does not compress: the node sends it raw
    assert codec.encode(counts[:200].reshape(-1).tolist())[0] == messages.ENCODING_RAW


def test_seeded_streams_repeat():
    a = traffic.capture(nodes=(1, 2), duration_s=3, seed=9)
    b = traffic.capture(nodes=(1, 2), duration_s=3, seed=9)
    c = traffic.capture(nodes=(1, 2), duration_s=3, seed=10)
    assert a.wire == b.wire and a.wire != c.wire


def test_capture_frames_are_where_it_says_and_losses_are_gaps():
    cap = traffic.capture(nodes=(3, 4), duration_s=30, seed=2, loss=0.05)
    assert cap.lost, "5% of a few hundred frames"
    for s in cap.sent:
        assert cap.wire[s.start : s.end] == s.wire
    msgs, stats = decode_all(cap.wire)
    assert len(msgs) == len(cap.sent)
    lost_by_node = {3: 0, 4: 0}
    for s in cap.lost:
        lost_by_node[s.node_id] += 1
    # frames lost before a node's first or after its last received frame leave no gap
    for nid in (3, 4):
        seqs = [s.seq for s in cap.sent if s.node_id == nid]
        visible = sum(1 for s in cap.lost if s.node_id == nid and min(seqs) < s.seq < max(seqs))
        assert stats.nodes[nid].lost == visible
    assert stats.nodes[3].restarts == stats.nodes[4].restarts == 0
    kinds = {s.name for s in cap.sent}
    assert {"log", "time", "accel", "climate", "features", "status"} <= kinds


def test_streams_send_time_with_status_and_features_of_the_window():
    node = traffic.node_frames(5, 30, seed=1, utc="2026-11-26T06:00:00Z", status_period_s=10, features_period_s=10)
    names = [s.name for s in node.sent]
    assert names[:2] == ["log", "time"]
    for i, name in enumerate(names):
        if name == "status":
            assert names[i + 1] == "time"
    times = [s for s in node.sent if s.name == "time"]
    assert times[1].fields["utc_ms"] - times[0].fields["utc_ms"] == times[1].time_ms - times[0].time_ms
    feats = [s for s in node.sent if s.name == "features"]
    assert len(feats) == 3
    assert all(abs(f.fields["dominant_freq_x_hz"] - 2.1) < 0.2 for f in feats)  # the sway
    assert all(abs(f.fields["window_s"] - 10.0) < 0.01 and f.fields["age_ms"] == 10_000 for f in feats)
    # frame times never go backwards; blocks are sent when full, their first sample block_ms before
    times = [s.time_ms for s in node.sent]
    assert times == sorted(times)
    blocks = [s for s in node.sent if s.name == "accel"]
    assert blocks[0].time_ms - blocks[0].fields["age_ms"] == 1000 and blocks[0].fields["age_ms"] == 250


def test_corrupt_flips_inserts_and_truncates():
    rng = np.random.default_rng(0)
    wire = traffic.capture(duration_s=2, seed=1).wire
    flipped = traffic.corrupt(wire, rng, flips=3)
    assert len(flipped) == len(wire) and flipped != wire
    assert sum(bin(a ^ b).count("1") for a, b in zip(wire, flipped)) <= 3
    longer = traffic.corrupt(wire, rng, junk=2)
    assert len(longer) > len(wire)
    shorter = traffic.corrupt(wire, rng, truncate=True)
    assert wire.startswith(shorter) and len(shorter) < len(wire)


def test_skip_restart_and_unknown_types():
    node = TrafficBuilder(2, seq=65534)
    wire = node.climate(100, 1, 2)
    node.skip(3)
    wire += node.climate(200, 1, 2)  # 65535 .. 1 lost
    node.restart()
    wire += node.climate(5, 1, 2)
    wire += node.unknown(6, 29, b"\x01")
    msgs, stats = decode_all(wire)
    assert [m.seq for m in msgs] == [65534, 2, 0]
    ns = stats.nodes[2]
    assert (ns.lost, ns.restarts, ns.unknown_type) == (3, 1, 1)


@pytest.mark.parametrize(
    "when, ms",
    [
        (1795673544125, 1795673544125),
        ("2026-11-26T06:12:24.125Z", 1795673544125),
        ("2026-11-26T07:12:24.125+01:00", 1795673544125),
        (dt.datetime(2026, 11, 26, 6, 12, 24, 125000), 1795673544125),
    ],
)
def test_utc_ms(when, ms):
    assert traffic.utc_ms(when) == ms


def test_utc_ms_refuses_nonsense():
    with pytest.raises(ValueError):
        traffic.utc_ms("yesterday")
    with pytest.raises(ValueError):
        traffic.utc_ms(True)
    with pytest.raises(ValueError):
        TrafficBuilder(70000)
