"""Running virtual nodes, so that `citynode ports` lists them and a lone one is found.

`citynode sim` writes one small JSON file per running node into a runtime
folder (`$CITYNODE_RUNTIME_DIR`, else `$XDG_RUNTIME_DIR/citynode`, else
`citynode-UID` in the temporary folder) and removes it on exit. A file whose
process is gone (a killed sim) is ignored and removed when next read.
"""

import contextlib
import json
import os
import tempfile
import time
from pathlib import Path

RUNTIME_ENV = "CITYNODE_RUNTIME_DIR"


def runtime_dir():
    if os.environ.get(RUNTIME_ENV):
        return Path(os.environ[RUNTIME_ENV])
    if os.environ.get("XDG_RUNTIME_DIR"):
        return Path(os.environ["XDG_RUNTIME_DIR"]) / "citynode"
    return Path(tempfile.gettempdir()) / ("citynode-%d" % os.getuid())


def _alive(pid):
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True  # someone else's process, alive
    return True


@contextlib.contextmanager
def registered(port, root):
    """Within the block, this process's virtual node on `port` is listed as running."""
    folder = runtime_dir()
    entry = {"port": port, "pid": os.getpid(), "root": str(root), "started": time.time()}
    path = folder / ("sim-%d-%s.json" % (os.getpid(), Path(port).name))
    try:
        folder.mkdir(mode=0o700, parents=True, exist_ok=True)
        tmp = path.with_suffix(".tmp")
        tmp.write_text(json.dumps(entry))
        os.replace(tmp, path)
    except OSError:
        path = None  # listing is a convenience: a sim still runs without it
    try:
        yield
    finally:
        if path is not None:
            with contextlib.suppress(OSError):
                path.unlink()


def running():
    """The virtual nodes running now: dicts with port, pid, root, started; oldest first."""
    folder = runtime_dir()
    try:
        paths = sorted(folder.glob("sim-*.json"))
    except OSError:
        return []
    found = []
    for path in paths:
        try:
            entry = json.loads(path.read_text())
            pid = int(entry["pid"])
            port = str(entry["port"])
        except (OSError, ValueError, KeyError, TypeError):
            continue  # being written, or not ours
        if not _alive(pid) or not os.path.exists(port):
            with contextlib.suppress(OSError):
                path.unlink()
            continue
        found.append(entry)
    found.sort(key=lambda e: e.get("started", 0))
    return found


def virtual_ports():
    """The ports of the running virtual nodes."""
    return [e["port"] for e in running()]
