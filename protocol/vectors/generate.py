"""Write the golden vectors (CPython): `python protocol/vectors/generate.py`.

The vectors are data: once written and reviewed, they are the reference that
both interpreters' tests hold the implementation to. Re-run this only to add
cases, and review the diff: a change to existing bytes is a wire-format change.
"""

import math
import random
import struct

import vector_files

from citynode_protocol import armour, cobs, frame, messages, payload  # after vector_files: it puts protocol/ on the path
from citynode_protocol.decoder import Decoder


def wire(name, node_id, seq, time_ms, fields):
    msg_type, body = payload.pack(name, fields)
    return frame.to_wire(frame.build(msg_type, node_id, seq, time_ms, body))


def raw_wire(msg_type, node_id, seq, time_ms, body, version=1):
    raw = bytearray(frame.build(msg_type, node_id, seq, time_ms, body))
    if version != 1:
        raw[0] = (version << 5) | msg_type
        crc = frame.crc32(bytes(raw[:-4]))
        raw[-4:] = crc.to_bytes(4, "little")
    return frame.to_wire(bytes(raw))


def expect(data):
    dec = Decoder()
    msgs = dec.feed(data)
    dec.flush()
    out = []
    for m in msgs:
        out.append({"type": m.name, "node_id": m.node_id, "seq": m.seq, "time_ms": m.time_ms, "fields": m.fields})
    return out, dec.stats.as_dict()


def case(name, data, notes):
    msgs, stats = expect(data)
    return {"name": name, "notes": notes, "wire_hex": data.hex(), "messages": msgs, "stats": stats}


def quiet_block(n, seed, sigma=8.0):
    rnd = random.Random(seed)
    out = []
    for i in range(n):
        t = i / 200.0
        out.append(int(round(120 + 32.8 * math.sin(2 * math.pi * 2.1 * t) + rnd.gauss(0, sigma))))
        out.append(int(round(-85 + 24.6 * math.sin(2 * math.pi * 5.3 * t + 0.7) + rnd.gauss(0, sigma))))
        out.append(int(round(16384 + 8.2 * math.sin(2 * math.pi * 3.1 * t) + rnd.gauss(0, sigma))))
    return out


def frames_cases():
    climate = wire("climate", 1, 0, 1718000, {"temperature_c": 23.45, "relative_humidity_pct": 45.67})
    accel_raw = wire(
        "accel",
        1,
        1,
        1719000,
        {"range_g": 2, "odr_hz": 200, "first_index": 0, "age_ms": 22, "samples": [16, -1, 16384, 17, 0, 16385, -32768, 32767, 0], "encoding": 0},
    )
    accel_delta = wire(
        "accel",
        1,
        2,
        1720000,
        {"range_g": 2, "odr_hz": 200, "first_index": 3, "age_ms": 215, "flags": messages.ACCEL_CALIBRATED, "samples": quiet_block(40, 1)},
    )
    features = wire(
        "features",
        1,
        3,
        1730000,
        {
            "window_s": 10,
            "age_ms": 10140,
            "n_samples": 2000,
            "rms_x_g": 0.001234,
            "peak_x_g": 0.004,
            "dominant_freq_x_hz": 2.1,
            "rms_y_g": 0.000876,
            "peak_y_g": 0.003,
            "dominant_freq_y_hz": 5.3,
            "rms_z_g": 0.0005,
            "peak_z_g": 0.002,
            "dominant_freq_z_hz": 3.1,
            "pitch_deg": -0.42,
            "roll_deg": 1.37,
        },
    )
    status = wire(
        "status",
        1,
        4,
        1731000,
        {
            "uptime_s": 1731,
            "free_heap": 61234,
            "mpy_major": 1,
            "mpy_minor": 24,
            "mpy_patch": 1,
            "app_major": 0,
            "app_minor": 1,
            "app_patch": 0,
            "sensors_fitted": 3,
            "sensors_ok": 3,
            "flags": messages.STATUS_TIME_ANCHORED,
            "supply_v": 3.301,
            "calibration_id": 0xC0FFEE,
            "crc_errors": 2,
        },
    )
    log = wire("log", 1, 5, 1732000, {"level": 1, "text": "boot: config ok, sht35 + adxl355"})
    time_anchor = wire("time", 1, 6, 1733000, {"utc_ms": 1795000000123})
    reply = wire("reply", 1, 7, 1734000, {"request_id": 42, "code": 0, "body": {"site": "lamp-17"}})
    wrap = wire("climate", 65535, 65535, 0xFFFFFFFF, {"temperature_c": -40.0, "relative_humidity_pct": 100.0}) + wire(
        "climate", 65535, 0, 999, {"temperature_c": 125.0, "relative_humidity_pct": 0.0}
    )
    return [
        case("climate", climate, "23.45 degC, 45.67 %RH: 20 bytes on the wire"),
        case("accel_raw", accel_raw, "3 samples, raw int16 interleaved, includes int16 extremes"),
        case("accel_delta", accel_delta, "40 quiet samples, delta-bitpack8, calibrated flag"),
        case("features", features, "features over a 10 s window"),
        case("status", status, "status/health"),
        case("log", log, "log text"),
        case("time", time_anchor, "UTC anchor for node time 1733000 ms"),
        case("reply", reply, "reply to request 42 with a JSON body"),
        case("wrap", wrap, "sequence 65535 -> 0 and node clock wrap: no loss, no restart"),
        case("all_types", climate + accel_raw + accel_delta + features + status + log + time_anchor + reply, "one of each"),
    ]


def corrupt_cases():
    good = [wire("climate", 2, i, 1000 * i, {"temperature_c": 20 + i / 100.0, "relative_humidity_pct": 50.0}) for i in range(6)]
    flipped = bytearray(good[1])
    flipped[8] ^= 0x10
    crc_flipped = bytearray(good[1])
    crc_flipped[12] ^= 0x04
    truncated = good[2][:-5] + b"\x00"
    unknown = raw_wire(29, 2, 1, 1500, b"\x01\x02\x03")
    newer = raw_wire(messages.CLIMATE, 2, 1, 6000, bytes(payload.pack("climate", {"temperature_c": 1.5})[1]) + b"\xaa\xbb")
    v2 = raw_wire(messages.CLIMATE, 2, 2, 7000, payload.pack("climate", {})[1], version=2)
    short = raw_wire(messages.CLIMATE, 2, 3, 8000, b"\x01\x02")
    oversize = b"\x01" * 5000 + b"\x00"
    restart = wire("climate", 3, 500, 900000, {}) + wire("climate", 3, 0, 10, {}) + wire("climate", 3, 1, 1010, {})
    dup = wire("climate", 4, 7, 100, {}) + wire("climate", 4, 7, 100, {}) + wire("climate", 4, 8, 200, {})
    gap_wrap = wire("climate", 5, 65534, 100, {}) + wire("climate", 5, 2, 200, {})
    bad_cobs = b"\x05\x01\x02\x00"
    deep_reply = raw_wire(messages.REPLY, 6, 0, 100, b"\x01\x00\x00" + b"[" * 3000)
    zero_block = raw_wire(messages.ACCEL, 6, 1, 200, struct.pack("<BBBBIIHH", 0, 0, 2, 0, 200000, 0, 0, 0))
    long_log = raw_wire(messages.LOG, 6, 2, 300, b"\x01" + (b"x" * 99 + b"\x00") * 41)
    dense = dense_chain(600, 3)
    return [
        case("bit_flip", good[0] + bytes(flipped) + good[2], "second frame has one flipped bit: dropped, counted, neighbours kept"),
        case("bit_flip_crc", good[0] + bytes(crc_flipped) + good[2], "one flipped payload bit: the CRC catches it"),
        case("truncated", good[0] + truncated + good[3], "a frame cut short: dropped and counted"),
        case("junk_before", b"MicroPython v1.24 on ESP32\r\n>>> " + good[0] + b"\xff\xfe garbage" + good[1], "REPL text and junk glued before frames: both frames recovered"),
        case("junk_only", b"\x13\x37 hello world \x00\x00\x01\x00", "no frame at all"),
        case("unknown_type", good[0] + unknown + good[2], "type 29 is unknown: skipped and counted; its sequence number counts"),
        case("newer_minor", newer, "two trailing bytes after a known layout: decoded, counted as newer minor"),
        case("unsupported_version", v2 + good[0], "version 2 frame: skipped and counted"),
        case("too_short_payload", short, "climate payload of 2 bytes: counted as bad length"),
        case("oversize", oversize + good[4], "5000 bytes without a delimiter: dropped as too long, next frame kept"),
        case("restart", restart, "node clock goes backwards: a restart, not 65000 lost frames"),
        case("duplicate", dup, "same sequence twice: second counted as duplicate and dropped"),
        case("seq_gap_over_wrap", gap_wrap, "65534 -> 2: three frames lost across the wrap"),
        case("bad_cobs", bad_cobs, "COBS code runs past the end"),
        case("deep_json_reply", deep_reply, "a reply body nested 3000 deep: counted as bad length, never raised"),
        case("zero_sample_block", zero_block, "an accel block claiming 0 samples: bad length"),
        case("frame_over_max", long_log, "a 4114-byte frame (over MAX_FRAME 4096) that still fits the COBS bound: too long"),
        case("split_delimiters", b"\x00\x00" + good[5] + b"\x00\x00", "empty frames between delimiters are ignored"),
        case("dense_junk_before", dense + b"\x00" + dense + good[1], "junk where nearly every start's COBS chain lands on the delimiter with version 1 (the worst case for junk recovery), alone, then glued before a frame: the frame recovered"),
        case("oversize_glued", b"A" * 5000 + good[2], "5000 bytes of junk glued before a frame: too long, counted once; the frame in the last 4113 bytes kept"),
    ]


def dense_chain(n, seed):
    """n non-zero bytes from which nearly every start's COBS chain lands on the end,
    with codes 0x21..0x3F (so the next byte carries version 1 too)."""
    rnd = random.Random(seed)
    out = bytearray(n)
    for i in range(n - 1, -1, -1):
        room = n - i
        out[i] = 1 if room < 0x21 else rnd.randint(0x21, min(0x3F, room))
    return bytes(out)


def cobs_cases():
    inputs = [b"", b"1", b"12345\x006789", b"\x00", b"\x00\x00", bytes(range(1, 255)), bytes(range(1, 256)), bytes(range(0, 256)), b"\x00" * 7]
    good = [{"decoded_hex": d.hex(), "encoded_hex": cobs.encode(d).hex()} for d in inputs]
    bad = [b"\x00".hex(), b"\x05123".hex(), b"\x051234\x00".hex(), b"\x0512\x004".hex()]
    return {"good": good, "bad_hex": bad}


def armour_cases():
    good = []
    for rid, cmd, args in [(1, "info", {}), (7, "config_set", {"key": "site", "value": "bridge-3 deck"}), (65535, "calib_write", {"accel": {"bias_g": [0.01, -0.02, 0.003]}})]:
        line = armour.encode_command(rid, cmd, args).decode()
        good.append({"line": line, "id": rid, "cmd": cmd, "args": args})
    base = good[0]["line"]
    bad = [
        base.replace("info", "infp"),
        base[:-2] + "\n",
        base.replace(">", "<", 1),
        ">" + '{"id":1,"cmd":"x\x03"}' + "*00000000\n",
        "",
        "hello\n",
        ">[1,2]*%08x\n" % (frame.crc32(b"[1,2]")),
        '>{"id":70000,"cmd":"info","args":{}}*%08x\n' % frame.crc32(b'{"id":70000,"cmd":"info","args":{}}'),
    ]
    return {"good": good, "bad": bad}


def main():
    out = {
        "frames.json": {"description": "good frames of every message type", "cases": frames_cases()},
        "corrupt.json": {"description": "corrupted, foreign and edge-case input", "cases": corrupt_cases()},
        "cobs.json": cobs_cases(),
        "armour.json": armour_cases(),
        "crc.json": {
            "crc32_iso_hdlc": [
                {"data_hex": b"123456789".hex(), "crc": 0xCBF43926},
                {"data_hex": "", "crc": 0},
                {"data_hex": "00", "crc": 0xD202EF8D},
            ]
        },
    }
    for name, data in out.items():
        vector_files.write(name, data)
        print("wrote", name)


if __name__ == "__main__":
    main()
