"""The node's own files (config and calibration): read, parsed, compared and written through
mpremote's transport (`fs_readfile`, `fs_writefile`, `fs_hashfile`, `fs_rmfile`).

These files are never part of a deploy. Every read is checked by a SHA-256 the node
computes; every write goes to a temp name, is renamed over the file (atomic on the node's
filesystem) and read back by SHA-256. `parse` is the one place the host reads their
format (the firmware's `store.parse`), so a change of format is a change here.
"""

import errno
import hashlib

from citynode.errors import CitynodeError, DeviceError, TransportError
from citynode.node_code import firmware_module

# (file on the node, key inside it): the node's config and calibration
NODE_FILES = (("config.json", "config"), ("calib.json", "calib"), ("calib.prev.json", "calib"))
KEYS = dict(NODE_FILES)
TEMP_SUFFIX = ".tmp"  # the node's store loads <name>.tmp when a cut left only that (store.py)


def parse(name, data):
    """The document inside a node file's bytes; ValueError (with `reason`) when the node
    would not load it."""
    store = firmware_module("store")
    try:
        text = data.decode("utf-8")
    except UnicodeDecodeError:
        error = ValueError("not text")
        error.reason = "not text"
        raise error
    return store.parse(text, KEYS[name])


def check(name, data):
    """'ok', or why the firmware would not load this file (bad JSON, checksum mismatch)."""
    try:
        parse(name, data)
    except ValueError as exc:  # store.StoreError
        return getattr(exc, "reason", None) or str(exc)
    return "ok"


def identity(files):
    """node_id, site and calibration id from {name: bytes} (None where unreadable or absent)."""
    ident = {"node_id": None, "site": None, "calibration_id": None}
    try:
        cfg = parse("config.json", files["config.json"])
        ident["node_id"], ident["site"] = cfg.get("node_id"), cfg.get("site")
    except (KeyError, ValueError):
        pass
    try:
        ident["calibration_id"] = parse("calib.json", files["calib.json"]).get("id")
    except (KeyError, ValueError):
        pass
    return ident


def _fs(what, fn, *args):
    """Run a transport fs_* call; a lost link -> TransportError, the node's error -> DeviceError."""
    from mpremote.transport import TransportError as MpTransportError
    from mpremote.transport import TransportExecError

    import serial

    try:
        return fn(*args)
    except TransportExecError as exc:
        lines = (exc.error_output or "").strip().splitlines()
        raise DeviceError("node failed during %s: %s" % (what, lines[-1] if lines else "error")) from None
    except FileNotFoundError:
        raise
    except OSError as exc:
        if exc.errno == errno.ENOENT:
            raise FileNotFoundError(errno.ENOENT, str(exc)) from None
        if isinstance(exc, serial.SerialException):
            raise TransportError("link to the node lost during %s (%s); run it again" % (what, exc)) from None
        raise DeviceError("node failed during %s: %s" % (what, exc)) from None
    except MpTransportError as exc:
        raise TransportError("link to the node lost during %s (%s); run it again"
                             % (what, " ".join(str(exc).split()) or type(exc).__name__)) from None


def read(transport, what="backup"):
    """{name: bytes} of the node's config and calibration files that exist, SHA-256 checked."""
    files = {}
    for name, _key in NODE_FILES:
        try:
            data = bytes(_fs(what, transport.fs_readfile, name))
        except FileNotFoundError:
            continue
        digest = _fs(what, transport.fs_hashfile, name, "sha256")
        if hashlib.sha256(data).digest() != digest:
            raise TransportError("%s changed in transit (SHA-256 differs); run it again" % name)
        files[name] = data
    return files


def changes(current, wanted):
    """[(name, action)] that make the node's files `current` equal `wanted` ({name: bytes}):
    action "write" (differs or absent), "remove" (not wanted); unchanged files are left out."""
    out = []
    for name, _key in NODE_FILES:
        if name in wanted and current.get(name) != wanted[name]:
            out.append((name, "write"))
        elif name not in wanted and name in current:
            out.append((name, "remove"))
    return out


_RENAME = "import os\ntry:os.rename(%r,%r)\nexcept OSError:\n os.remove(%r);os.rename(%r,%r)"


def write(transport, name, data):
    """Write one node file: temp name, rename over the file, SHA-256 read back."""
    if name not in KEYS:
        raise CitynodeError("refusing to write %s: only %s are the node's own files"
                            % (name, ", ".join(KEYS)))
    put_checked(transport, name, data, "restore")


def put_checked(transport, name, data, what):
    """Any file on the node (config, calibration, the broker's CA): written under a temp
    name, renamed over `name`, read back by SHA-256; `what` names the job in errors."""
    temp = name + TEMP_SUFFIX
    _fs(what, transport.fs_writefile, temp, data)
    _fs(what, transport.exec, _RENAME % (temp, name, name, temp, name))
    if _fs(what, transport.fs_hashfile, name, "sha256") != hashlib.sha256(data).digest():
        raise DeviceError("%s did not read back as written; run the %s again" % (name, what))


def remove(transport, name):
    if name not in KEYS:
        raise CitynodeError("refusing to remove %s: only %s are the node's own files" % (name, ", ".join(KEYS)))
    try:
        _fs("restore", transport.fs_rmfile, name)
    except FileNotFoundError:
        pass


def apply(transport, wanted, plan):
    """Carry out `changes(...)`: the calibration files first, the config (which names the node) last."""
    order = {"calib.prev.json": 0, "calib.json": 1, "config.json": 2}
    for name, action in sorted(plan, key=lambda item: order[item[0]]):
        if action == "write":
            write(transport, name, wanted[name])
        else:
            remove(transport, name)
