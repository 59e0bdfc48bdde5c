from citynode_protocol import cobs
from golden import load, raises, unhex


def test_reference_vectors_encode_and_decode():
    for case in load("cobs.json")["good"]:
        data = unhex(case["decoded_hex"])
        assert cobs.encode(data) == unhex(case["encoded_hex"]), case
        assert cobs.decode(unhex(case["encoded_hex"])) == data


def test_reference_bad_inputs_raise():
    for text in load("cobs.json")["bad_hex"]:
        assert raises(cobs.CobsError, cobs.decode, unhex(text)), text


def test_encoded_never_contains_zero_and_respects_bound():
    for n in (0, 1, 253, 254, 255, 508, 509, 1000):
        data = bytes((i * 7) & 0xFF for i in range(n))
        enc = cobs.encode(data)
        assert b"\x00" not in enc
        assert len(enc) <= cobs.max_encoded_length(n)
        assert cobs.decode(enc) == data


def test_run_of_zeros_is_run_of_ones():
    assert cobs.encode(b"\x00" * 5) == b"\x01" * 6


def test_encode_into_offset():
    dst = bytearray(10)
    end = cobs.encode_into(b"\x11\x00\x22", 3, dst, 2)
    assert end == 6
    assert bytes(dst[2:6]) == b"\x02\x11\x02\x22"


def test_chain_ends_finds_frame_start_behind_junk():
    frame = cobs.encode(b"\x21hello\x00world")
    junk = b"\x7f\x40"
    starts = cobs.chain_ends(junk + frame, len(junk) + len(frame))
    assert len(junk) in starts
