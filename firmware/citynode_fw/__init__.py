import sys


def forget(name):
    """Drop a module the node loaded for one job (a driver that found no part, a check
    run once), so that its code leaves the heap."""
    if name in sys.modules:
        del sys.modules[name]
    package, _, attr = name.rpartition(".")
    parent = sys.modules.get(package)
    if parent is not None and hasattr(parent, attr):
        delattr(parent, attr)
