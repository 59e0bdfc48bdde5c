"""Checked JSON documents on the node's flash: one write rule, one recovery rule.

Every document the node keeps (config, calibration, and any later one) is one
file written by this module only:

    {"crc":3735928559,"config":{...}}
    {"crc":1234567890,"calib":{...},"prev":{...}}

The first part names the document (`config`, `calib`); a document may carry
more parts after it (the calibration keeps its previous one in `prev`), so that
everything that must change together changes in one write. `crc` is the CRC-32
(binascii.crc32, as a decimal u32) of the exact text from just after the first
`"<key>":` to just before the final `}`: with one part, the text of that object.
The text is canonical (keys sorted, no spaces), but the check runs over the
stored text, not over a re-dump, so a float printed with fewer digits by a
single-precision port cannot break it.

Write rule (`write`): the whole text goes to `<path>.tmp`, is flushed and
closed, then renamed over `<path>`. Where rename refuses an existing target
(FAT), `<path>` is removed first. Before a write reuses `<path>.tmp`, a tmp that
holds the only good copy (a cut after that removal) is moved into place first.

Recovery rule (`load`): `<path>` if it checks; else `<path>.tmp` if it checks
(a save was cut after the tmp was complete), reported to the caller and moved
into place. Together: a power cut at any point leaves the old or the new
document loadable, never neither (tests/firmware/test_power_cut.py cuts at
every step; tests/host/test_store_rule.py keeps every flash write in here).
"""

import binascii
import json
import os

TMP = ".tmp"

# StoreError reasons in a technician's words
_WORDS = {
    "missing": "missing",
    "unreadable": "unreadable",
    "bad_json": "damaged (not a checked file)",
    "bad_crc": "damaged (checksum mismatch)",
}


class StoreError(ValueError):
    """A file that cannot be used; `reason` is a short word for STATUS/LOG."""

    def __init__(self, reason, message):
        super().__init__(message)
        self.reason = reason


def describe(path, reason):
    """'config.json damaged (checksum mismatch)': a file and what is wrong with it."""
    return "%s %s" % (path, _WORDS.get(reason, reason))


def recovered(path, reason):
    """The fallback words for a document loaded from its tmp copy."""
    return "%s: loaded %s%s, the copy an interrupted save left" % (describe(path, reason), path, TMP)


def canonical(obj):
    """JSON text with keys sorted at every level and no spaces."""
    if isinstance(obj, dict):
        parts = []
        for key in sorted(obj):
            parts.append(json.dumps(str(key)) + ":" + canonical(obj[key]))
        return "{" + ",".join(parts) + "}"
    if isinstance(obj, (list, tuple)):
        return "[" + ",".join([canonical(v) for v in obj]) + "]"
    return json.dumps(obj)


def crc32_text(text):
    return binascii.crc32(text.encode()) & 0xFFFFFFFF


def exists(path):
    try:
        os.stat(path)
        return True
    except OSError:
        return False


def remove_quiet(path):
    try:
        os.remove(path)
    except OSError:
        pass


def dump(key, obj, extra=()):
    """The file text for obj under key, then the (name, value) parts in extra."""
    checked = canonical(obj)
    for name, value in extra:
        checked += ',"%s":%s' % (name, canonical(value))
    return '{"crc":%d,"%s":%s}\n' % (crc32_text(checked), key, checked)


def parse_parts(text, key):
    """{part: value} of a file's text, the object under key among them; raises StoreError."""
    text = text.rstrip()
    head = '{"crc":'
    if not text.startswith(head) or not text.endswith("}"):
        raise StoreError("bad_json", "not a checked file")
    mark = ',"%s":' % key
    at = text.find(mark)
    if at < 0:
        raise StoreError("bad_json", "no %r object" % key)
    try:
        crc = int(text[len(head) : at])
    except ValueError:
        raise StoreError("bad_json", "bad crc field")
    checked = text[at + len(mark) : -1]
    if crc32_text(checked) != crc:
        raise StoreError("bad_crc", "checksum mismatch")
    try:
        parts = json.loads("{" + text[at + 1 :])
    except ValueError:
        raise StoreError("bad_json", "bad JSON")
    if not isinstance(parts, dict) or not isinstance(parts.get(key), dict):
        raise StoreError("bad_json", "%s is not an object" % key)
    return parts


def parse(text, key):
    """The object stored under key in a file's text; raises StoreError."""
    return parse_parts(text, key)[key]


def _read_parts(path, key):
    try:
        f = open(path)
    except OSError:
        raise StoreError("missing", "%s not found" % path)
    try:
        text = f.read()
    except (OSError, UnicodeError):
        raise StoreError("unreadable", "%s unreadable" % path)
    finally:
        f.close()
    return parse_parts(text, key)


def load(path, key):
    """(parts, recovered_from) by the recovery rule.

    recovered_from is None when `<path>` was good, else the StoreError reason of
    `<path>` when the parts came from `<path>.tmp` (a fallback to report: see
    `recovered`); that tmp is then moved into place, so that the node's files
    (and a backup of them) hold what it runs on. Raises the StoreError of
    `<path>` when neither checks (reason "missing" when no document was ever
    completed).
    """
    try:
        return _read_parts(path, key), None
    except StoreError as exc:
        try:
            parts = _read_parts(path + TMP, key)
        except StoreError:
            raise exc
        try:
            _rename_over(path + TMP, path)
        except OSError:
            pass  # the tmp stays the good copy; the next write moves it first
        return parts, exc.reason


def read(path, key):
    """The object under key by the recovery rule; raises StoreError."""
    return load(path, key)[0][key]


def _rename_over(src, dst):
    try:
        os.rename(src, dst)
    except OSError:
        # FAT and some ports refuse to rename over an existing file: src holds
        # the whole new text, so removing dst first never loses the newest copy
        if not exists(dst) or not exists(src):
            raise
        os.remove(dst)
        os.rename(src, dst)


def _checks(path, key):
    try:
        _read_parts(path, key)
        return True
    except StoreError:
        return False


def _keep_only_good_tmp(path, good):
    """A tmp that is the only good copy (a cut after a FAT remove) goes into place
    before the next write truncates it. good(path) says whether a file checks."""
    tmp = path + TMP
    if exists(tmp) and not good(path) and good(tmp):
        _rename_over(tmp, path)


def write(path, key, obj, extra=()):
    """Store obj under key (and the parts in extra), atomically. Raises OSError when the flash refuses."""
    text = dump(key, obj, extra)
    _keep_only_good_tmp(path, lambda p: _checks(p, key))
    tmp = path + TMP
    f = open(tmp, "w")
    try:
        f.write(text)
        f.flush()
    finally:
        f.close()
    _rename_over(tmp, path)
