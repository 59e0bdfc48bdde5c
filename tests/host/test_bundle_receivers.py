"""Bundles at the receivers: the verifier (the one place signed frames come in)
expands each into the frames it carries, seqs and times whole; a bundle that
does not parse is refused as `bad_bundle`, never raised; what comes out decodes
the same in the bulk and the reference decoder."""

import json
from pathlib import Path

from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from citynode.decode import decode_messages
from citynode.fleet.rows import RowBuilder, take
from citynode.verifier import Verifier
from citynode_protocol import auth, bundle, frame
from citynode_protocol.decoder import decode_all

ROOT = Path(__file__).resolve().parents[2]
VECTORS = json.loads((ROOT / "protocol/vectors/bundle.json").read_text())


class Keys:
    def __init__(self, keys):
        self.keys = keys

    def key(self, node_id):
        return self.keys.get(node_id)


def _keys():
    return Keys({c["node_id"]: bytes.fromhex(c["key_hex"]) for c in VECTORS["bundles"]})


def _signed_bundle(key, node_id, seq32, time_ms, body, boot=5):
    raw = frame.build(bundle.BUNDLE, node_id, seq32 & 0xFFFF, time_ms, body)
    return frame.to_wire(auth.sign(raw, auth.Signer(key), boot, seq32 >> 16))


def test_the_verifier_expands_every_vector_into_its_frames():
    verifier = Verifier(_keys())
    for case in VECTORS["bundles"]:
        got, rejected = verifier.check(case["node_id"], bytes.fromhex(case["signed_wire_hex"]))
        assert rejected == []
        assert [(bytes(v.raw).hex(), v.node_id, v.boot, v.seq) for v in got] == [
            (r["raw_hex"], case["node_id"], case["boot"], r["seq"]) for r in case["records"]]
    assert verifier.accepted == sum(len(c["records"]) for c in VECTORS["bundles"])


def test_a_repeated_bundle_is_a_replay_and_a_redelivered_one_expands_again():
    case = VECTORS["bundles"][0]
    data = bytes.fromhex(case["signed_wire_hex"])
    verifier = Verifier(_keys())
    assert len(verifier.check(7, data)[0]) == len(case["records"])
    again, rejected = verifier.check(7, data)
    assert again == [] and [r.reason for r in rejected] == ["replay"]
    taken = take(verifier, "citynode", "citynode/7/frames", data, 0, redelivered=True)
    assert [v.seq for v in taken.verified] == [r["seq"] for r in case["records"]] and taken.rejected == []


def test_a_bad_bundle_is_refused_and_counted_and_the_frames_around_it_pass():
    key = bytes.fromhex(VECTORS["bundles"][0]["key_hex"])
    good = bytes.fromhex(VECTORS["bundles"][0]["signed_wire_hex"])
    for case in VECTORS["bad"]:
        verifier = Verifier(Keys({7: key}))
        data = _signed_bundle(key, 7, case["seq"], case["time_ms"], bytes.fromhex(case["payload_hex"]))
        got, rejected = verifier.check(7, good + data + _signed_bundle(key, 7, 2000, 9000, bytes.fromhex(
            VECTORS["bundles"][2]["payload_hex"])))  # boot 3, then the bad one and a good one of boot 5
        assert [r.reason for r in rejected] == ["bad_bundle"], case["name"]
        assert verifier.rejected["bad_bundle"] == 1
        assert [v.seq for v in got] == [r["seq"] for r in VECTORS["bundles"][0]["records"]] + [2000]
        # its MAC was good: the node signed it, so it holds its place in the replay window
        assert verifier.check(7, data)[1][0].reason == "replay"


@settings(max_examples=300, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(body=st.binary(max_size=120), seq=st.integers(0, 2**32 - 1), time_ms=st.integers(0, 2**32 - 1))
def test_random_bundles_are_expanded_or_refused_never_raised(body, seq, time_ms):
    key = bytes(range(32))
    verifier = Verifier(Keys({3: key}))
    got, rejected = verifier.check(3, _signed_bundle(key, 3, seq, time_ms, body))
    assert len(got) + len(rejected) >= 1
    assert all(r.reason == "bad_bundle" for r in rejected)
    for v in got:  # each an ordinary frame that parses, of the bundle's node
        _ver, msg_type, node_id, _seq, _t, _p = frame.parse(v.raw)
        assert node_id == 3 and msg_type != bundle.BUNDLE and v.seq <= seq


def test_damaged_vectors_never_raise():
    case = VECTORS["bundles"][0]
    key = bytes.fromhex(case["key_hex"])
    signed = bytes.fromhex(case["signed_raw_hex"])
    payload = bytes.fromhex(case["payload_hex"])
    for cut in range(len(payload)):  # a record cut short, signed right: a sender's bug
        verifier = Verifier(Keys({7: key}))
        _got, rejected = verifier.check(7, _signed_bundle(key, 7, 45, 150000, payload[:cut], boot=3))
        assert [r.reason for r in rejected] == ["bad_bundle"], cut
    for i in range(len(signed)):  # a byte damaged in transit: CRC or MAC catches it
        bad = bytearray(signed)
        bad[i] ^= 0x40
        verifier = Verifier(Keys({7: key}))
        got, rejected = verifier.check(7, frame.to_wire(bytes(bad)))
        assert got == [] and len(rejected) == 1


def test_bulk_and_reference_decoders_agree_on_expanded_bundles_and_on_a_bare_one():
    verifier = Verifier(_keys())
    wire = b""
    for case in VECTORS["bundles"]:
        wire += b"".join(frame.to_wire(raw) for raw in verifier.feed(case["node_id"], bytes.fromhex(
            case["signed_wire_hex"])))
    bare = b"".join(frame.to_wire(bytes.fromhex(c["unsigned_raw_hex"])) for c in VECTORS["bundles"])
    for data in (wire, bare):
        ref, ref_stats = decode_all(data)
        got, stats = decode_messages(data)
        assert stats.as_dict() == ref_stats.as_dict()
        key = lambda m: (m.type, m.node_id, m.seq, m.time_ms, json.dumps(m.fields, sort_keys=True, default=str))  # noqa: E731
        assert [key(m) for m in got] == [key(m) for m in ref]
    assert len(decode_all(wire)[0]) == sum(len(c["records"]) for c in VECTORS["bundles"])
    assert decode_all(wire)[1].nodes[7].lost == 0
    # a bundle is never on an unsigned link: a decoder of one skips it as a type it does not know
    assert decode_all(bare)[1].unknown_type == len(VECTORS["bundles"])


def test_the_store_gets_one_row_per_record_with_the_nodes_seqs():
    from fleet_memory_store import MemoryStore

    case = VECTORS["bundles"][0]
    data = bytes.fromhex(case["signed_wire_hex"])
    store = MemoryStore()
    taken = take(Verifier(_keys()), "citynode", "citynode/7/frames", data, 1_000_000)
    assert store.write(RowBuilder(store).build([taken])).frames_new == len(case["records"])
    climate = [(r["boot"], r["seq"], r["temperature_c"]) for r in store.query("climate").to_pylist()]
    assert climate == [(3, 41, 21.53), (3, 44, 21.61)]
    status = [(r["seq"], r["uptime_s"], r["timeouts"]) for r in store.query("status").to_pylist()]
    assert status == [(40, 60, 0), (42, 90, 0), (43, 120, 1), (45, 150, 1)]
