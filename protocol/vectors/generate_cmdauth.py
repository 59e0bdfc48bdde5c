"""Write the signed-command vectors (CPython): `python protocol/vectors/generate_cmdauth.py`.

The MAC is computed here with CPython's hmac module, the independent oracle,
not with citynode_protocol.cmdauth; the lines with citynode_protocol.armour.
Review the diff: a change to existing bytes is a wire-format change (SPEC.md §9.4).
"""

import hashlib
import hmac
import json
import os
import sys

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, os.path.dirname(HERE))

from citynode_protocol import armour  # noqa: E402


def case(name, key, node_id, counter, request_id, command, args, notes):
    line = armour.encode_command(request_id, command, args).decode().rstrip("\n")
    head = "%s~%016x" % (line, counter)
    mac = hmac.new(key, ("citynode-cmd:%d:%s" % (node_id, head)).encode(), hashlib.sha256).hexdigest()[:32]
    return {"name": name, "notes": notes, "key_hex": key.hex(), "node_id": node_id, "counter": counter,
            "line": line, "signed": head + "~" + mac}


def main():
    key = bytes(range(1, 33))
    other = hashlib.sha256(b"citynode vector key 2").digest()
    cases = [
        case("info", key, 7, 1795000000123, 4660, "info", {}, "node 7 asked for info; the counter is UTC ms"),
        case("config_set", key, 7, 1795000000124, 1, "config_set", {"values": {"site": "bridge~deck 2"}},
             "a '~' inside the JSON: the trailer is found from the end"),
        case("largest_counter", other, 65535, 2 ** 64 - 1, 65535, "reboot", {}, "counter and ids at their largest"),
    ]
    out = os.path.join(HERE, "cmdauth.json")
    with open(out, "w") as f:
        json.dump({"signed_commands": cases}, f, indent=1, sort_keys=True)
        f.write("\n")
    print("wrote", out)


if __name__ == "__main__":
    main()
