"""A backup folder: the node's own files (config, calibration) and a manifest with the
SHA-256 of each, written atomically (a temp folder renamed when complete), owner-only."""

import errno
import hashlib
import json
import os
import shutil
import tempfile
from pathlib import Path

from citynode import node_files
from citynode.errors import UsageError
from citynode.inventory import utc_iso

MANIFEST = "manifest.json"
FORMAT = 1


def check_folder(folder):
    """UsageError (one line, the real reason) unless `folder` can become a new backup folder:
    absent or an empty folder, under folders that exist or can be made, writable."""
    folder = Path(folder)
    if folder.is_symlink() and not folder.exists():
        raise UsageError("%s is a dangling link; give a new folder" % folder)
    if folder.exists():
        if not folder.is_dir():
            raise UsageError("%s exists and is a file; give a new folder" % folder)
        if any(folder.iterdir()):
            raise UsageError("%s exists and is not empty; give a new folder" % folder)
    parent = folder.absolute().parent
    probe = parent
    while not probe.exists():
        probe = probe.parent
    if not probe.is_dir():
        raise UsageError("cannot make %s: %s is a file, not a folder" % (folder, probe))
    if not os.access(str(probe), os.W_OK | os.X_OK):
        raise UsageError("cannot make %s: folder %s is not writable" % (folder, probe))
    try:  # what access() cannot see: a read-only mount, a virtual filesystem (/proc)
        os.rmdir(tempfile.mkdtemp(prefix=".backup-check-", dir=str(probe)))
    except OSError as exc:
        raise _cannot(probe, exc) from None
    return parent


def _cannot(parent, exc):
    if exc.errno in (errno.ENOENT, errno.EPERM, errno.EROFS, errno.EACCES) and parent.is_dir():
        words = {errno.EROFS: "it is read-only", errno.EACCES: "it is not writable"}.get(
            exc.errno, "that filesystem does not take new files")
        return UsageError("cannot write a backup into %s: %s" % (parent, words))
    return UsageError("cannot write into %s: %s" % (parent, exc.strerror or exc))


def save(folder, files, identity):
    """Write {name: bytes} and the manifest into the new folder; returns the manifest."""
    folder = Path(folder)
    parent = check_folder(folder)
    try:
        parent.mkdir(parents=True, exist_ok=True)
        tmp = Path(tempfile.mkdtemp(prefix=".backup-", dir=str(parent)))
    except OSError as exc:
        raise _cannot(parent, exc) from None
    try:
        manifest = {"format": FORMAT, "created": utc_iso(),
                    "node": identity, "files": {}}
        for name, data in sorted(files.items()):
            with open(os.open(str(tmp / name), os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600), "wb") as f:
                f.write(data)
            manifest["files"][name] = {"sha256": hashlib.sha256(data).hexdigest(), "size": len(data),
                                       "status": node_files.check(name, data)}
        with open(os.open(str(tmp / MANIFEST), os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600), "w") as f:
            json.dump(manifest, f, indent=2, sort_keys=True)
            f.write("\n")
        if folder.is_dir():
            folder.rmdir()
        os.rename(str(tmp), str(folder))
    except OSError as exc:
        shutil.rmtree(str(tmp), ignore_errors=True)
        raise _cannot(parent, exc) from None
    except BaseException:
        shutil.rmtree(str(tmp), ignore_errors=True)
        raise
    return manifest


def load(folder):
    """(manifest, {name: bytes}) from a backup folder, every file checked against its SHA-256
    and in the format the node loads."""
    folder = Path(folder)
    try:
        with open(folder / MANIFEST, encoding="utf-8") as f:
            manifest = json.load(f)
    except FileNotFoundError:
        raise UsageError("%s: no %s: not a citynode backup folder" % (folder, MANIFEST)) from None
    except NotADirectoryError:
        raise UsageError("%s is a file, not a backup folder" % folder) from None
    except (OSError, ValueError) as exc:
        raise UsageError("%s: unreadable %s: %s" % (folder, MANIFEST, exc)) from None
    if not isinstance(manifest, dict) or manifest.get("format") != FORMAT or \
            not isinstance(manifest.get("files"), dict):
        raise UsageError("%s: %s is not a citynode backup manifest (format %s)" % (folder, MANIFEST, FORMAT))
    files = {}
    for name, meta in sorted(manifest["files"].items()):
        if name not in node_files.KEYS:
            raise UsageError("%s: the manifest lists %s, which a restore never writes" % (folder, name))
        try:
            data = (folder / name).read_bytes()
        except OSError as exc:
            raise UsageError("%s: %s: %s" % (folder, name, exc.strerror or exc)) from None
        if not isinstance(meta, dict) or hashlib.sha256(data).hexdigest() != meta.get("sha256"):
            raise UsageError("%s: %s does not match its SHA-256 in the manifest: the backup is damaged"
                             % (folder, name))
        status = node_files.check(name, data)
        if status != "ok":
            raise UsageError("%s: %s would not load on the node (%s)" % (folder, name, status))
        files[name] = data
    if "config.json" not in files:
        raise UsageError("%s: the backup holds no config.json" % folder)
    return manifest, files
