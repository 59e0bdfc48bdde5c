"""The app's version, and a fingerprint of the files deployed on the node.

The fingerprint (`app_hash()`) is a CRC-32 as 8 hex digits over the deployed
files, taken in sorted path order: for each file, its node path (relative, with
'/' separators) and a 0x00 byte, then its bytes. Files: boot.py, main.py and
every .py/.mpy below citynode_fw/ and citynode_protocol/, read from the flash
folder or, for a package not there, from the ROMFS at /rom. The host computes
the same over the files it deployed. Computed once on first use (it reads flash).
"""

import binascii
import os

VERSION = (0, 1, 0)
ROOTS = ("boot.py", "main.py", "citynode_fw", "citynode_protocol")

_cache = None


def version_string():
    return "%d.%d.%d" % VERSION


def _mode(path):
    try:
        return os.stat(path)[0]
    except OSError:
        return 0  # not there


def _files(path, out):
    mode = _mode(path)
    if mode & 0x4000:
        for entry in os.ilistdir(path):
            name = entry[0]
            if name not in (".", ".."):
                _files(path + "/" + name, out)
    elif mode and (path.endswith(".py") or path.endswith(".mpy")):
        out.append(path)


def _sources(root):
    """(folder prefix, node path) of the deployed files, sorted by node path: each of
    ROOTS from the flash folder, or from /rom where a ROMFS deploy put the packages."""
    prefix = root.rstrip("/") + "/" if root else ""
    out = []
    for top in ROOTS:
        base = prefix if _mode(prefix + top) else "/rom/"
        found = []
        _files(base + top, found)
        out += [(base, p[len(base) :]) for p in found]
    out.sort(key=lambda e: e[1])
    return out


def compute_hash(root=""):
    crc = 0
    buf = bytearray(256)
    mv = memoryview(buf)
    for base, path in _sources(root):
        crc = binascii.crc32(path.encode() + b"\x00", crc)
        with open(base + path, "rb") as f:
            while True:
                n = f.readinto(buf)
                if not n:
                    break
                crc = binascii.crc32(buf if n == 256 else mv[:n], crc)  # a slice only for a file's tail
    return "%08x" % (crc & 0xFFFFFFFF)


def app_hash():
    """The fingerprint of the files in the current folder (the node's flash), cached."""
    global _cache
    if _cache is None:
        _cache = compute_hash()
    return _cache
