"""Write the signed-frame vectors (CPython): `python protocol/vectors/generate_auth.py`.

The MAC is computed here with CPython's hmac module, the independent oracle,
not with citynode_protocol.auth; the frames with citynode_protocol.frame.
Review the diff: a change to existing bytes is a wire-format change.
"""

import hashlib
import hmac
import struct

import vector_files
from vector_files import KEY, OTHER_KEY

from citynode_protocol import frame, payload  # after vector_files: it puts protocol/ on the path

SIGNED = 0x10


def signed_raw(key, raw, boot, seq_hi):
    body = bytearray(raw[:-4])
    body[0] |= SIGNED
    body += struct.pack("<IH", boot, seq_hi)
    body += hmac.new(key, bytes(body), hashlib.sha256).digest()[:8]
    return bytes(body) + struct.pack("<I", frame.crc32(bytes(body)))


def case(name, key, msg, node_id, seq, time_ms, fields, boot, seq_hi, notes):
    msg_type, body = payload.pack(msg, fields)
    raw = frame.build(msg_type, node_id, seq, time_ms, body)
    signed = signed_raw(key, raw, boot, seq_hi)
    return {
        "name": name, "notes": notes, "key_hex": key.hex(), "boot": boot, "seq_hi": seq_hi,
        "unsigned_raw_hex": raw.hex(), "signed_raw_hex": signed.hex(),
        "signed_wire_hex": frame.to_wire(signed).hex(), "mac_hex": signed[-12:-4].hex(),
    }


def main():
    cases = [
        case("climate", KEY, "climate", 7, 42, 123456, {"temperature_c": 21.53, "relative_humidity_pct": 48.2,
             "status": 4}, 3, 0, "a climate reading of node 7, third boot"),
        case("climate_seq_hi", KEY, "climate", 7, 65535, 99000, {"temperature_c": -5.0,
             "relative_humidity_pct": 91.0, "status": 4}, 3, 2,
             "32-bit sequence 0x2FFFF: seq_hi carries the wraps of the header's u16"),
        case("time_other_key", OTHER_KEY, "time", 512, 0, 1000, {"utc_ms": 1795000000123}, 4294967295, 65535,
             "boot and seq_hi at their largest"),
    ]
    print("wrote", vector_files.write("auth.json", {"signed_frames": cases}))


if __name__ == "__main__":
    main()
