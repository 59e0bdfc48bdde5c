import struct

from citynode_protocol import frame, messages, payload
from golden import load, raises, unhex


def test_climate_record_is_20_bytes_on_the_wire():
    msg_type, body = payload.pack("climate", {"temperature_c": 23.45, "relative_humidity_pct": 45.67})
    wire = frame.to_wire(frame.build(msg_type, 1, 0, 1718000, body))
    assert len(wire) == 20
    assert wire[-1] == 0


def test_header_bytes_at_documented_offsets():
    raw = frame.build(messages.CLIMATE, 0x1234, 0xBEEF, 0x01020304, b"\x29\x09\xd7\x11\x00")
    assert raw[0] == (1 << 5) | 1  # version 1, type 1
    assert raw[1:3] == b"\x34\x12"
    assert raw[3:5] == b"\xef\xbe"
    assert raw[5:9] == b"\x04\x03\x02\x01"
    assert raw[9:14] == b"\x29\x09\xd7\x11\x00"
    crc = struct.unpack("<I", raw[14:18])[0]
    assert crc == frame.crc32(raw[:14])


def test_parse_checks_crc():
    raw = bytearray(frame.build(messages.LOG, 3, 1, 5, b"\x01hi"))
    assert frame.parse(bytes(raw))[1] == messages.LOG
    raw[10] ^= 1
    assert raises(frame.FrameError, frame.parse, bytes(raw))


def test_parse_rejects_short_frame():
    assert raises(frame.FrameError, frame.parse, b"\x21\x01\x00")


def test_crc_check_values():
    for case in load("crc.json")["crc32_iso_hdlc"]:
        assert frame.crc32(unhex(case["data_hex"])) == case["crc"]


def test_frame_writer_matches_build_for_every_length():
    writer = frame.FrameWriter(9, 700)
    for length in range(0, 700, 13):
        body = bytes((i * 31 + length) & 0xFF for i in range(length))
        writer.payload[:length] = body
        seq = writer.seq
        n = writer.finish(messages.ACCEL, length, 123456)
        assert bytes(writer.wire[:n]) == frame.to_wire(frame.build(messages.ACCEL, 9, seq, 123456, body))


def test_frame_writer_sequence_wraps():
    writer = frame.FrameWriter(1, 8)
    writer.seq = 0xFFFF
    writer.finish(messages.CLIMATE, 5, 0)
    assert writer.seq == 0


def test_frame_writer_rejects_oversize_payload():
    writer = frame.FrameWriter(1, 8)
    assert raises(ValueError, writer.finish, messages.CLIMATE, 9, 0)


def test_build_rejects_bad_node_id():
    assert raises(ValueError, frame.build, 1, 70000, 0, 0, b"")
