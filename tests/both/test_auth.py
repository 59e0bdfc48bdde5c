"""Signed frames (SPEC.md §9): the golden vectors, the trailer's place, replay rules."""

from citynode_protocol import auth, frame
from golden import load, raises, unhex

VECTORS = load("auth.json")["signed_frames"]


def test_signing_reproduces_every_vector():
    for v in VECTORS:
        signer = auth.Signer(unhex(v["key_hex"]))
        got = auth.sign(unhex(v["unsigned_raw_hex"]), signer, v["boot"], v["seq_hi"])
        assert got == unhex(v["signed_raw_hex"]), v["name"]
        assert frame.to_wire(got) == unhex(v["signed_wire_hex"]), v["name"]


def test_every_vector_verifies_and_unsigns_to_its_frame():
    for v in VECTORS:
        signer = auth.Signer(unhex(v["key_hex"]))
        signed = unhex(v["signed_raw_hex"])
        assert auth.verify(signed, signer), v["name"]
        assert auth.trailer(signed) == (v["boot"], v["seq_hi"], unhex(v["mac_hex"]))
        assert auth.unsign(signed) == unhex(v["unsigned_raw_hex"]), v["name"]


def test_trailer_sits_between_payload_and_crc_inside_the_crc():
    v = VECTORS[0]
    signed = unhex(v["signed_raw_hex"])
    unsigned = unhex(v["unsigned_raw_hex"])
    assert signed[0] == unsigned[0] | auth.SIGNED
    assert signed[1:-18] == unsigned[1:-4]  # header rest and payload unchanged
    assert signed[-18:-14] == b"\x03\x00\x00\x00"  # boot 3, u32 LE
    assert signed[-14:-12] == b"\x00\x00"  # seq_hi 0
    assert len(signed) == len(unsigned) + auth.TRAILER_SIZE
    frame.parse(signed)  # the CRC covers the trailer


def test_any_changed_byte_before_the_crc_fails_verification():
    v = VECTORS[0]
    signer = auth.Signer(unhex(v["key_hex"]))
    signed = unhex(v["signed_raw_hex"])
    for i in range(len(signed) - frame.CRC_SIZE):
        bad = bytearray(signed)
        bad[i] ^= 0x01
        if not bad[0] & auth.SIGNED:
            assert raises(frame.FrameError, auth.trailer, bytes(bad))
            continue
        assert not auth.verify(bytes(bad), signer), i


def test_another_key_fails_verification():
    v = VECTORS[0]
    other = auth.Signer(bytes(32))
    assert not auth.verify(unhex(v["signed_raw_hex"]), other)


def test_bad_keys_and_frames_are_refused():
    assert raises(ValueError, auth.Signer, bytes(31))
    assert raises(ValueError, auth.Signer, bytes(33))
    signer = auth.Signer(bytes(32))
    signed = unhex(VECTORS[0]["signed_raw_hex"])
    assert raises(frame.FrameError, auth.sign, signed, signer, 1, 0)  # already signed
    assert raises(frame.FrameError, auth.sign, b"\x21\x00", signer, 1, 0)  # too short
    unsigned = unhex(VECTORS[0]["unsigned_raw_hex"])
    assert raises(frame.FrameError, auth.trailer, unsigned)
    assert raises(frame.FrameError, auth.unsign, unsigned)
    assert raises(frame.FrameError, auth.trailer, signed[:20])


def test_a_frame_at_the_size_limit_cannot_be_signed():
    body = bytes(frame.MAX_FRAME - frame.OVERHEAD)
    raw = frame.build(5, 1, 0, 0, body)
    assert raises(frame.FrameError, auth.sign, raw, auth.Signer(bytes(32)), 1, 0)


def test_sequence_orders_boots_then_32_bit_sequence():
    assert auth.sequence(3, 2, 0xFFFF) == (3, 0x2FFFF)
    assert auth.sequence(3, 3, 0) > auth.sequence(3, 2, 0xFFFF)
    assert auth.sequence(4, 0, 0) > auth.sequence(3, 0xFFFF, 0xFFFF)


def test_replay_window_accepts_each_sequence_once():
    w = auth.ReplayWindow()
    assert w.check(1, 10) == "new"
    assert w.check(1, 10) == "replay"
    assert w.check(1, 12) == "new"
    assert w.check(1, 11) == "new"  # late but inside the window, and unseen
    assert w.check(1, 11) == "replay"
    assert w.check(1, 12) == "replay"


def test_replay_window_refuses_what_falls_behind_it():
    w = auth.ReplayWindow()
    w.check(2, 1000)
    assert w.check(2, 1000 - auth.WINDOW + 1) == "new"
    assert w.check(2, 1000 - auth.WINDOW) == "replay"
    assert w.check(2, 1000 + 5 * auth.WINDOW) == "new"  # a jump clears the window
    assert w.check(2, 1000) == "replay"


def test_replay_window_takes_a_new_boot_and_refuses_an_old_one():
    w = auth.ReplayWindow()
    w.check(5, 70000)
    assert w.check(6, 0) == "new"
    assert w.check(6, 0) == "replay"
    assert w.check(5, 70001) == "old_boot"
    assert w.check(6, 1) == "new"


def test_a_frame_writer_signs_in_place_to_the_same_bytes():
    from citynode_protocol import payload

    for split in (False, True):
        for v in VECTORS:
            unsigned = unhex(v["unsigned_raw_hex"])
            node_id = unsigned[1] | unsigned[2] << 8
            w = frame.FrameWriter(node_id, 64, split_crc=split, trailer=auth.TRAILER_SIZE)
            body = unsigned[frame.HEADER_SIZE : -frame.CRC_SIZE]
            w.payload[: len(body)] = body
            w.seq = unsigned[3] | unsigned[4] << 8
            time_ms = unsigned[5] | unsigned[6] << 8 | unsigned[7] << 16 | unsigned[8] << 24
            w.finish(unsigned[0] & 0x1F, len(body), time_ms & 0x3FFFFFFF, time_ms >> 30)
            n = auth.sign_writer(w, len(body), auth.Signer(unhex(v["key_hex"])), v["boot"], v["seq_hi"])
            assert bytes(w.raw[:n]) == unhex(v["signed_raw_hex"]), (v["name"], split)
            out = bytearray(200)
            end = w.encode_raw_into(n, out, 7)
            assert bytes(out[7:end]) == unhex(v["signed_wire_hex"]), v["name"]
