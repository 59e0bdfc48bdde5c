"""Where the node's files are: the repository checkout, or the copy installed with `citynode`.

A checkout (including an editable install) uses `firmware/` and `protocol/` beside
`host/`. A normal install carries the same trees as package data under
`citynode/_data/`, laid out like the repository, so `firmware/manifest.txt`
resolves the same way in both.
"""

from pathlib import Path

from citynode.errors import CitynodeError

_HERE = Path(__file__).resolve().parent
_CHECKOUT = _HERE.parent.parent  # host/citynode/../.. = repository root
_INSTALLED = _HERE / "_data"  # package data of an installed citynode

MANIFEST = "manifest.txt"


def source_root():
    """The folder that holds `firmware/` and `protocol/`: the checkout first, else the install."""
    for root in (_CHECKOUT, _INSTALLED):
        if (root / "firmware" / MANIFEST).is_file():
            return root
    raise CitynodeError(
        "firmware files not found: no firmware/%s in the checkout (%s) nor in the installed "
        "package data (%s); reinstall citynode" % (MANIFEST, _CHECKOUT, _INSTALLED)
    )


def firmware_root():
    """The `firmware/` folder: boot.py, main.py, citynode_fw/, citynode_sim/, manifest.txt."""
    return source_root() / "firmware"


def protocol_root():
    """The `protocol/` folder: the one holding the `citynode_protocol` package."""
    root = source_root() / "protocol"
    if not (root / "citynode_protocol").is_dir():
        raise CitynodeError("protocol package not found: %s/citynode_protocol is missing" % root)
    return root


def sim_root():
    """The folder to put on MICROPYPATH so that `import citynode_sim` works."""
    root = firmware_root()
    if not (root / "citynode_sim").is_dir():
        raise CitynodeError("simulator not found: %s/citynode_sim is missing" % root)
    return root


def micropython_path():
    """Folders a Unix-port MicroPython needs on MICROPYPATH to run the node's code with the simulator.

    Join with ':' for the MICROPYPATH environment variable.
    """
    return [sim_root(), protocol_root()]


def manifest_entries():
    """The manifest's lines as `(source, node_path)` string pairs, in file order.

    `source` is relative to `source_root()`; it ends in '/' for a folder, and then
    so does `node_path`. Raises CitynodeError on a missing manifest or a bad line.
    """
    path = firmware_root() / MANIFEST
    entries = []
    seen = {}
    with open(path, encoding="utf-8") as f:
        for lineno, line in enumerate(f, 1):
            line = line.split("#", 1)[0].strip()
            if not line:
                continue
            fields = line.split()
            where = "%s:%d" % (path, lineno)
            if len(fields) != 2:
                raise CitynodeError("%s: expected 'source node_path', got %r" % (where, line))
            source, node_path = fields
            if source.endswith("/") != node_path.endswith("/"):
                raise CitynodeError("%s: a folder must map to a folder (both end in '/')" % where)
            if source.startswith("/") or ".." in source.split("/"):
                raise CitynodeError("%s: source must be relative, inside the repository: %r" % (where, source))
            if node_path.startswith("/") or ".." in node_path.split("/"):
                raise CitynodeError("%s: node path must be relative, with no '..': %r" % (where, node_path))
            if node_path in seen:
                raise CitynodeError("%s: node path %r already given on line %d" % (where, node_path, seen[node_path]))
            seen[node_path] = lineno
            entries.append((source, node_path))
    return entries


def _python_files_below(folder):
    """Every .py file below folder, recursively, sorted, skipping __pycache__."""
    found = []
    for path in folder.rglob("*.py"):
        rel = path.relative_to(folder)
        if "__pycache__" in rel.parts or not path.is_file():
            continue
        found.append((rel.as_posix(), path))
    found.sort()
    return found


def firmware_files(missing_ok=False):
    """The files that go on a node: a list of `(source_path: Path, node_path: str)`.

    Read from firmware/manifest.txt; a folder entry expands to every .py file
    below it, keeping sub-paths. Raises CitynodeError when a listed source is
    missing, unless missing_ok, when it is left out.
    """
    root = source_root()
    files = []
    owner = {}
    for source, node_path in manifest_entries():
        path = root / source
        if source.endswith("/"):
            if not path.is_dir():
                if missing_ok:
                    continue
                raise CitynodeError("manifest lists folder %s, which does not exist (%s)" % (source, path))
            pairs = [(path_, node_path + rel) for rel, path_ in _python_files_below(path)]
        else:
            if not path.is_file():
                if missing_ok:
                    continue
                raise CitynodeError("manifest lists file %s, which does not exist (%s)" % (source, path))
            pairs = [(path, node_path)]
        for src, dest in pairs:
            if dest in owner:
                raise CitynodeError("node path %s comes from both %s and %s" % (dest, owner[dest], src))
            owner[dest] = src
            files.append((src, dest))
    return files


def data_file(name):
    """A file of the host's own in $XDG_DATA_HOME/citynode/ (~/.local/share/citynode/)."""
    import os

    base = os.environ.get("XDG_DATA_HOME") or os.path.join(os.path.expanduser("~"), ".local", "share")
    return Path(base) / "citynode" / name


def chosen_file(arg, env, name):
    """The --option's path, else $env's, else data_file(name)."""
    import os

    if arg:
        return Path(arg).expanduser()
    if os.environ.get(env):
        return Path(os.environ[env]).expanduser()
    return data_file(name)
