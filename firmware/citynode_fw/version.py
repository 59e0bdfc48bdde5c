"""The app's version, and a fingerprint of the files deployed on the node.

The fingerprint (`app_hash()`) is a CRC-32 as 8 hex digits over the deployed
files, taken in sorted path order: for each file, its node path (relative, with
'/' separators) and a 0x00 byte, then its bytes. Files: boot.py, main.py and
every .py/.mpy below citynode_fw/ and citynode_protocol/. The host computes the
same over the files it deployed. Computed once on first use (it reads flash).
"""

import binascii
import os

VERSION = (0, 1, 0)
ROOTS = ("boot.py", "main.py", "citynode_fw", "citynode_protocol")

_cache = None


def version_string():
    return "%d.%d.%d" % VERSION


def _is_dir(path):
    try:
        return os.stat(path)[0] & 0x4000 != 0
    except OSError:
        return False


def _files(path, out):
    if _is_dir(path):
        for entry in os.ilistdir(path):
            name = entry[0]
            if name in (".", ".."):
                continue
            _files(path + "/" + name, out)
    elif path.endswith(".py") or path.endswith(".mpy"):
        try:
            os.stat(path)
            out.append(path)
        except OSError:
            pass


def files(root=""):
    """The deployed files' node paths, sorted (root: the flash folder, "" = cwd)."""
    out = []
    prefix = root.rstrip("/") + "/" if root else ""
    for top in ROOTS:
        _files(prefix + top, out)
    out = [p[len(prefix) :] for p in out]
    out.sort()
    return out


def compute_hash(root=""):
    prefix = root.rstrip("/") + "/" if root else ""
    crc = 0
    buf = bytearray(256)
    mv = memoryview(buf)
    for path in files(root):
        crc = binascii.crc32(path.encode() + b"\x00", crc)
        with open(prefix + path, "rb") as f:
            while True:
                n = f.readinto(buf)
                if not n:
                    break
                crc = binascii.crc32(mv[:n], crc)
    return "%08x" % (crc & 0xFFFFFFFF)


def app_hash():
    """The fingerprint of the files in the current folder (the node's flash), cached."""
    global _cache
    if _cache is None:
        _cache = compute_hash()
    return _cache
