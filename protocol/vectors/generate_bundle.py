"""Write the bundle vectors (CPython): `python protocol/vectors/generate_bundle.py`.

The bundles are built here with plain struct code, the independent oracle, not
with citynode_protocol.bundle; the MAC with CPython's hmac. The payloads come
from citynode_protocol.payload, the frames' CRC from frame.crc32. Review the
diff: a change to existing bytes is a wire-format change.

A writer must make the same bytes: a record is a delta when an earlier record
of its type in the bundle has a payload of the same length, at most 48 bytes
long, and the delta body is shorter than the payload.
"""

import hashlib
import hmac
import json
import os
import struct
import sys

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, os.path.dirname(HERE))

from citynode_protocol import frame, payload  # noqa: E402

BUNDLE = 8
SIGNED = 0x10
DELTA = 0x80
PREV_MAX = 48


def oracle_delta(base, data):
    bitmap = [0] * ((len(data) + 7) // 8)
    changed = []
    for i, (a, b) in enumerate(zip(base, data)):
        if a != b:
            bitmap[i // 8] |= 1 << (i % 8)
            changed.append(b)
    return bytes(bitmap + changed)


def oracle_bundle(records):
    """records: [(type, seq32, time_ms, payload)] in order: the bundle's payload."""
    last_seq, last_time = records[-1][1], records[-1][2]
    out = b""
    bases = {}
    for msg_type, seq, time_ms, data in records:
        kind, body = msg_type, data
        base = bases.get(msg_type)
        if base is not None and len(base) == len(data) <= PREV_MAX:
            d = oracle_delta(base, data)
            if len(d) < len(data):
                kind, body = msg_type | DELTA, d
        bases[msg_type] = data
        time_back = (last_time - time_ms) % 2**32
        out += struct.pack("<BBB", kind, len(body), last_seq - seq) + struct.pack("<I", time_back)[:3] + body
    return out


def signed(key, raw, boot, seq_hi):
    body = bytearray(raw[:-4])
    body[0] |= SIGNED
    body += struct.pack("<IH", boot, seq_hi)
    body += hmac.new(key, bytes(body), hashlib.sha256).digest()[:8]
    return bytes(body) + struct.pack("<I", frame.crc32(bytes(body)))


def good(name, notes, key, node_id, boot, records):
    """records: [(message name, seq32, time_ms, fields)]."""
    packed = [(payload.pack(m, f)[0], seq, t, payload.pack(m, f)[1]) for m, seq, t, f in records]
    body = oracle_bundle(packed)
    seq32, time_ms = packed[-1][1], packed[-1][2]
    unsigned_raw = struct.pack("<BHHI", 0x20 | BUNDLE, node_id, seq32 & 0xFFFF, time_ms) + body
    unsigned_raw += struct.pack("<I", frame.crc32(unsigned_raw))
    signed_raw = signed(key, unsigned_raw, boot, seq32 >> 16)
    frames = []
    for msg_type, seq, t, data in packed:
        raw = struct.pack("<BHHI", 0x20 | msg_type, node_id, seq & 0xFFFF, t) + data
        frames.append({"type": msg_type, "seq": seq, "time_ms": t, "payload_hex": data.hex(),
                       "raw_hex": (raw + struct.pack("<I", frame.crc32(raw))).hex()})
    return {
        "name": name, "notes": notes, "key_hex": key.hex(), "node_id": node_id, "boot": boot,
        "seq_hi": seq32 >> 16, "payload_hex": body.hex(), "unsigned_raw_hex": unsigned_raw.hex(),
        "signed_raw_hex": signed_raw.hex(), "signed_wire_hex": frame.to_wire(signed_raw).hex(), "records": frames,
    }


def record(kind, seq_back, time_back, body):
    return struct.pack("<BBB", kind, len(body), seq_back) + struct.pack("<I", time_back)[:3] + body


def bad(name, seq32, time_ms, body, notes):
    return {"name": name, "seq": seq32, "time_ms": time_ms, "payload_hex": body.hex(), "notes": notes}


def status(uptime, heap, **more):
    fields = {"uptime_s": uptime, "free_heap": heap, "mpy_major": 1, "mpy_minor": 24, "app_minor": 3,
              "protocol_minor": 1, "sensors_fitted": 1, "sensors_ok": 1, "supply_v": 3.3, "calibration_id": 17}
    fields.update(more)
    return fields


def climate(t, rh):
    return {"temperature_c": t, "relative_humidity_pct": rh, "status": 4}


def main():
    key = bytes(range(1, 33))
    other = hashlib.sha256(b"citynode vector key 3").digest()
    cases = [
        good("climate_node", "a climate node lingering 2 minutes: STATUS every 30 s, CLIMATE every minute; "
             "the second to fourth STATUS are deltas", key, 7, 3, [
                 ("status", 40, 60000, status(60, 81234)),
                 ("climate", 41, 60010, climate(21.53, 48.2)),
                 ("status", 42, 90000, status(90, 81102)),
                 ("status", 43, 120000, status(120, 81102, timeouts=1)),
                 ("climate", 44, 120010, climate(21.61, 48.0)),
                 ("status", 45, 150000, status(150, 80990, timeouts=1)),
             ]),
        good("seq_wrap", "records across the wrap of the header's u16: the bundle carries seq 0x10001, "
             "seq_hi 1; its records 0xFFFE ... 0x10001", other, 512, 9, [
                 ("climate", 0xFFFE, 4294960000, climate(-5.0, 91.0)),
                 ("log", 0xFFFF, 4294961000, {"level": 1, "text": "uplink: joined"}),
                 ("climate", 0x10000, 4294967000, climate(-5.01, 91.0)),
                 ("time", 0x10001, 5000, {"utc_ms": 1795000000123}),
             ]),
        good("one_record", "a bundle may hold one record", key, 7, 4, [
            ("climate", 0, 1000, climate(20.0, 50.0)),
        ]),
    ]
    base = bytes.fromhex("29091d1104")
    bad_cases = [
        bad("empty", 5, 1000, b"", "no records"),
        bad("head_cut", 5, 1000, record(1, 0, 0, base)[:4], "a record header cut short"),
        bad("body_cut", 5, 1000, record(1, 0, 0, base)[:-1], "a body that runs past the end"),
        bad("delta_first", 5, 1000, record(1 | DELTA, 0, 0, b"\x01\x30"), "a delta with no previous record"),
        bad("delta_bitmap", 5, 1000, record(1, 1, 10, base) + record(1 | DELTA, 0, 0, b"\x03\x30"),
            "a bitmap with two bits and one byte"),
        bad("delta_padding", 5, 1000, record(1, 1, 10, base) + record(1 | DELTA, 0, 0, b"\x21\x30\x31"),
            "a bitmap bit beyond the payload"),
        bad("out_of_order", 5, 1000, record(1, 0, 10, base) + record(1, 1, 0, base), "seq_back grows"),
        bad("time_back_grows", 5, 1000, record(1, 2, 0, base) + record(1, 1, 10, base) + record(1, 0, 0, base),
            "time_back grows"),
        bad("last_not_header", 5, 1000, record(1, 1, 0, base), "the last record is not the header's seq"),
        bad("below_zero", 1, 1000, record(1, 2, 10, base) + record(1, 0, 0, base),
            "a record before the boot's first frame"),
        bad("reply_record", 5, 1000, record(7, 0, 0, b"\x01\x00\x00"), "a REPLY is never bundled"),
        bad("nested", 5, 1000, record(8, 0, 0, b""), "no bundle in a bundle"),
        bad("signed_record", 5, 1000, record(0x11, 0, 0, base), "a record's type has no SIGNED bit"),
    ]
    out = os.path.join(HERE, "bundle.json")
    with open(out, "w") as f:
        json.dump({"bundles": cases, "bad": bad_cases}, f, indent=1, sort_keys=True)
        f.write("\n")
    print("wrote", out)


if __name__ == "__main__":
    main()
