"""Golden vectors for tests under both interpreters (no os.path on MicroPython)."""

import json

_HERE = __file__.replace("\\", "/").rsplit("/", 1)[0] if "/" in __file__ else "."
VECTOR_DIR = _HERE + "/../../protocol/vectors"


def load(name):
    with open(VECTOR_DIR + "/" + name) as f:
        return json.load(f)


def unhex(text):
    return bytes(int(text[i : i + 2], 16) for i in range(0, len(text), 2))


def close(a, b):
    if isinstance(a, float) or isinstance(b, float):
        return abs(a - b) <= 1e-9 * max(1.0, abs(a), abs(b))
    return a == b


def same_fields(got, want):
    """Field dicts equal, floats within rounding; returns the first difference or None."""
    if sorted(got.keys()) != sorted(want.keys()):
        return "keys differ: %r vs %r" % (sorted(got.keys()), sorted(want.keys()))
    for key in want:
        a = got[key]
        b = want[key]
        if isinstance(b, list):
            if list(a) != b:
                return "%s differs" % key
        elif isinstance(b, dict):
            if a != b:
                return "%s differs: %r vs %r" % (key, a, b)
        elif not close(a, b):
            return "%s: %r vs %r" % (key, a, b)
    return None


def raises(exc_type, fn, *args):
    """True when fn(*args) raises exc_type (plain-assert style for both interpreters)."""
    try:
        fn(*args)
    except exc_type:
        return True
    return False
