"""Bundles (SPEC.md §4, type 8): the golden vectors both ways, the writer's limits,
and every malformed bundle refused with BundleError, nothing else."""

import gc

from citynode_protocol import auth, bundle, frame, wire
from golden import load, raises, unhex

VECTORS = load("bundle.json")


def _writer_bundle(case):
    w = bundle.Writer(case["node_id"])
    for r in case["records"]:
        raw = unhex(r["raw_hex"])
        assert w.add(raw, len(raw) - frame.OVERHEAD), (case["name"], r["seq"])
    return w


def test_the_writer_makes_every_vector_byte_for_byte():
    for case in VECTORS["bundles"]:
        w = _writer_bundle(case)
        n = w.finish()
        assert bytes(w.raw[frame.HEADER_SIZE : frame.HEADER_SIZE + n]) == unhex(case["payload_hex"]), case["name"]
        signer = auth.Signer(unhex(case["key_hex"]))
        m = auth.sign_writer(w, n, signer, case["boot"], case["seq_hi"])
        assert bytes(w.raw[:m]) == unhex(case["signed_raw_hex"]), case["name"]
        out = bytearray(2048)
        end = w.encode_raw_into(m, out, 3)
        assert bytes(out[3:end]) == unhex(case["signed_wire_hex"]), case["name"]


def test_every_vector_expands_to_its_frames():
    for case in VECTORS["bundles"]:
        signed = unhex(case["signed_raw_hex"])
        assert auth.verify(signed, auth.Signer(unhex(case["key_hex"])))
        _v, msg_type, node_id, seq, time_ms, payload = frame.parse(auth.unsign(signed))
        assert (msg_type, node_id) == (wire.BUNDLE, case["node_id"])
        boot, seq_hi, _mac = auth.trailer(signed)
        got = bundle.expand(payload, (seq_hi << 16) | seq, time_ms)
        want = case["records"]
        assert len(got) == len(want), case["name"]
        for (t, s, tm, data), r in zip(got, want):
            assert (t, s, tm, bytes(data)) == (r["type"], r["seq"], r["time_ms"], unhex(r["payload_hex"])), case["name"]
        # a receiver with only the header's u16 gets the low halves
        short = bundle.expand(payload, seq, time_ms, 0xFFFF)
        assert [s for _t, s, _tm, _d in short] == [r["seq"] & 0xFFFF for r in want]


def test_later_status_records_are_deltas_of_a_few_bytes():
    case = VECTORS["bundles"][0]
    payload = unhex(case["payload_hex"])
    kinds = []
    at = 0
    while at < len(payload):
        kinds.append((payload[at] & 0x1F, bool(payload[at] & bundle.DELTA), payload[at + 1]))
        at += bundle.RECORD_HEAD + payload[at + 1]
    assert kinds[0] == (wire.STATUS, False, 36)
    for msg_type, is_delta, size in kinds[2:]:
        if msg_type == wire.STATUS:
            assert is_delta and size <= 10, kinds


def test_every_bad_bundle_raises_bundle_error():
    for case in VECTORS["bad"]:
        payload = unhex(case["payload_hex"])
        assert raises(bundle.BundleError, bundle.expand, payload, case["seq"], case["time_ms"]), case["name"]


def test_every_cut_of_a_good_bundle_raises_or_expands():
    case = VECTORS["bundles"][0]
    payload = unhex(case["payload_hex"])
    last = case["records"][-1]
    for n in range(len(payload)):
        assert raises(bundle.BundleError, bundle.expand, payload[:n], last["seq"], last["time_ms"]), n
    for i in range(len(payload)):
        for bit in (0x01, 0x80):
            bad = bytearray(payload)
            bad[i] ^= bit
            try:
                bundle.expand(bytes(bad), last["seq"], last["time_ms"])
            except bundle.BundleError:
                pass


def test_the_writer_refuses_what_does_not_fit():
    case = VECTORS["bundles"][0]
    first = unhex(case["records"][1]["raw_hex"])  # a climate frame, seq 41
    w = bundle.Writer(7, capacity=2 * (bundle.RECORD_HEAD + 5))
    assert w.add(first, 5)
    assert not w.add(first, 5)  # the same seq again: never back
    later = bytearray(first)
    later[3] = 41 + 1
    assert w.add(later, 5)
    later[3] = 41 + 2
    assert not w.add(later, 5)  # the buffer is full
    w.clear()
    assert w.add(first, 5)
    far = bytearray(first)
    far[3] = (41 + 256) & 0xFF
    far[4] = (41 + 256) >> 8
    assert not w.add(far, 5)  # seq_back would not fit a u8
    far = bytearray(first)
    far[3] = 42
    far[7] = far[7] + 1  # 65536 ms later: time_back fits a u24
    assert w.add(far, 5)
    farther = bytearray(far)
    farther[3] = 43
    farther[8] = 1  # + 2^24 ms
    assert not w.add(farther, 5)  # time_back would not fit a u24


def test_bundled_kinds():
    assert bundle.bundled(wire.CLIMATE, 5) and bundle.bundled(wire.STATUS, 36) and bundle.bundled(wire.LOG, 200)
    assert not bundle.bundled(wire.REPLY, 3) and not bundle.bundled(wire.ACCEL, 40)
    assert not bundle.bundled(wire.LOG, 256) and not bundle.bundled(wire.BUNDLE, 0)


def test_adding_a_record_allocates_nothing():
    case = VECTORS["bundles"][0]
    raws = [unhex(r["raw_hex"]) for r in case["records"]]
    lengths = [len(r) - frame.OVERHEAD for r in raws]
    w = bundle.Writer(7)
    w.add(raws[0], lengths[0])
    w.clear()
    try:
        import micropython
    except ImportError:
        return  # heap counts are MicroPython's
    count = len(raws)
    gc.collect()
    before = gc.mem_alloc()
    i = 0
    while i < count:
        w.add(raws[i], lengths[i])
        i += 1
    w.finish()
    assert gc.mem_alloc() - before == 0, gc.mem_alloc() - before
    micropython  # noqa: B018
