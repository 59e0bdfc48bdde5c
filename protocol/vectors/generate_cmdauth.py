"""Write the signed-command vectors (CPython): `python protocol/vectors/generate_cmdauth.py`.

The MAC is computed here with CPython's hmac module, the independent oracle,
not with citynode_protocol.cmdauth; the lines with citynode_protocol.armour.
Review the diff: a change to existing bytes is a wire-format change (SPEC.md §9.4).
"""

import hashlib
import hmac

import vector_files
from vector_files import KEY, OTHER_KEY

from citynode_protocol import armour  # after vector_files: it puts protocol/ on the path


def case(name, key, node_id, counter, request_id, command, args, notes):
    line = armour.encode_command(request_id, command, args).decode().rstrip("\n")
    head = "%s~%016x" % (line, counter)
    mac = hmac.new(key, ("citynode-cmd:%d:%s" % (node_id, head)).encode(), hashlib.sha256).hexdigest()[:32]
    return {"name": name, "notes": notes, "key_hex": key.hex(), "node_id": node_id, "counter": counter,
            "line": line, "signed": head + "~" + mac}


def main():
    cases = [
        case("info", KEY, 7, 1795000000123, 4660, "info", {}, "node 7 asked for info; the counter is UTC ms"),
        case("config_set", KEY, 7, 1795000000124, 1, "config_set", {"values": {"site": "bridge~deck 2"}},
             "a '~' inside the JSON: the trailer is found from the end"),
        case("largest_counter", OTHER_KEY, 65535, 2 ** 64 - 1, 65535, "reboot", {}, "counter and ids at their largest"),
    ]
    print("wrote", vector_files.write("cmdauth.json", {"signed_commands": cases}))


if __name__ == "__main__":
    main()
