"""What the vector generators share: the keys the signed vectors use, and writing a vectors file.

Importing it puts protocol/ on sys.path, so a generator run as a script
(`python protocol/vectors/generate_auth.py`) imports citynode_protocol next.
"""

import hashlib
import json
import os
import sys

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, os.path.dirname(HERE))

KEY = bytes(range(1, 33))
OTHER_KEY = hashlib.sha256(b"citynode vector key 2").digest()


def write(name, data):
    """data as vectors/<name>: JSON, one-space indent, keys sorted, a final newline; its path."""
    out = os.path.join(HERE, name)
    with open(out, "w") as f:
        json.dump(data, f, indent=1, sort_keys=True)
        f.write("\n")
    return out
