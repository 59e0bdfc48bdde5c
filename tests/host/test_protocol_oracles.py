"""Every CRC and the COBS stuffing checked against independent implementations."""

import binascii
import os

import cobs.cobs as cobs_reference
import crcmod.predefined
from hypothesis import given, settings
from hypothesis import strategies as st

from citynode_protocol import armour, cobs, frame

crc32_oracle = crcmod.predefined.mkCrcFun("crc-32")


def test_crc32_check_value_from_the_catalogue():
    assert crc32_oracle(b"123456789") == 0xCBF43926
    assert frame.crc32(b"123456789") == 0xCBF43926


@given(st.binary(max_size=2048))
@settings(max_examples=300)
def test_frame_crc_matches_crcmod(data):
    assert frame.crc32(data) == crc32_oracle(data)


@given(st.binary(max_size=1500), st.integers(0, 0xFFFF), st.integers(0, 0xFFFF), st.integers(0, 0xFFFFFFFF))
@settings(max_examples=200)
def test_frame_trailer_is_crcmod_crc_of_header_and_payload(body, node, seq, t):
    raw = frame.build(5, node, seq, t, body)
    assert int.from_bytes(raw[-4:], "little") == crc32_oracle(raw[:-4])


@given(st.integers(0, 0xFFFF), st.text(alphabet=st.characters(min_codepoint=0x20, max_codepoint=0x7E), max_size=40))
def test_armour_crc_matches_crcmod(rid, value):
    line = armour.encode_command(rid, "config_set", {"key": "site", "value": value})
    body, crc_hex = line[1:-1].rsplit(b"*", 1)
    assert int(crc_hex, 16) == crc32_oracle(body)


@given(st.binary(max_size=2000))
@settings(max_examples=300)
def test_cobs_matches_reference_package(data):
    assert cobs.encode(data) == cobs_reference.encode(data)
    assert cobs.decode(cobs_reference.encode(data)) == data


def test_frame_writer_crc_matches_crcmod_on_every_chunk_boundary():
    writer = frame.FrameWriter(1, 400)
    for length in range(0, 400):
        body = os.urandom(length)
        writer.payload[:length] = body
        n = writer.finish(3, length, 7)
        raw = cobs.decode(bytes(writer.wire[: n - 1]))
        assert int.from_bytes(raw[-4:], "little") == crc32_oracle(raw[:-4])


def test_binascii_is_the_same_function_on_host():
    data = os.urandom(777)
    assert binascii.crc32(data) == crc32_oracle(data)
