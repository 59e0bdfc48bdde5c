"""Checked JSON files on the node's flash: atomic write, CRC-32, canonical text.

A file holds one JSON object, written by this module only:

    {"crc":3735928559,"config":{...}}

`crc` is the CRC-32 (binascii.crc32, as a decimal u32) of the exact text of the
inner object as it stands in the file. The inner text is canonical (keys sorted,
no spaces), but the check runs over the stored text, not over a re-dump, so a
float printed with fewer digits by a single-precision port cannot break it.

Writes go to `<path>.tmp`, are closed, then renamed over `<path>` (atomic on
LittleFS, the ESP32 default; on FAT the old file is removed first, so a reader
finding no `<path>` but an intact `<path>.tmp` may use that).
"""

import binascii
import json
import os


class StoreError(ValueError):
    """A file that cannot be used; `reason` is a short word for STATUS/LOG."""

    def __init__(self, reason, message):
        super().__init__(message)
        self.reason = reason


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


def write(path, key, obj):
    """Write obj under key, atomically. Raises OSError when the flash refuses."""
    body = canonical(obj)
    text = '{"crc":%d,"%s":%s}\n' % (crc32_text(body), key, body)
    tmp = path + ".tmp"
    f = open(tmp, "w")
    try:
        f.write(text)
        f.flush()
    finally:
        f.close()
    try:
        os.rename(tmp, path)
    except OSError:
        # some FAT builds refuse to rename over an existing file
        remove_quiet(path)
        os.rename(tmp, path)


def parse(text, key):
    """The object stored under key in a file's text; raises StoreError."""
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
    body = text[at + len(mark) : -1]
    if crc32_text(body) != crc:
        raise StoreError("bad_crc", "checksum mismatch")
    try:
        obj = json.loads(body)
    except ValueError:
        raise StoreError("bad_json", "bad JSON")
    if not isinstance(obj, dict):
        raise StoreError("bad_json", "%s is not an object" % key)
    return obj


def read(path, key):
    """Read and check one file; raises StoreError (reason "missing" when absent)."""
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
    return parse(text, key)
