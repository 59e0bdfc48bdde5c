"""The node's own modules imported under CPython: the config table and the checked-file
format are plain Python, so the host shares them rather than copying them."""

import importlib
import sys

from citynode.errors import CitynodeError


def firmware_module(name):
    """citynode_fw.<name>, imported from the firmware folder."""
    full = "citynode_fw." + name
    if full in sys.modules:
        return sys.modules[full]
    from citynode import paths

    root = str(paths.firmware_root())
    added = root not in sys.path
    if added:
        sys.path.insert(0, root)
    try:
        return importlib.import_module(full)
    except ImportError as exc:
        raise CitynodeError("cannot load the node's %s from %s: %s" % (full, root, exc))
    finally:
        if added:
            sys.path.remove(root)
