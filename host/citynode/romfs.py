"""ROMFS images of the node's app (MicroPython >= 1.25, `vfs.VfsRom`).

A .mpy imported from a ROMFS that is memory-mapped flash runs in place: its
bytecode and constant strings stay in flash instead of being copied onto the
heap, as they are when imported from the node's filesystem. What stays on
the heap is what running the module makes (its globals, functions, classes).

The image format and its writer are mpremote's (`mpremote.romfs.VfsRomWriter`,
the one `mpremote romfs build` uses); this only lays out the files of an
AppBuild (citynode.deploy.build_app), already compiled for the node.
"""

from mpremote.romfs import VfsRomWriter

# where a board with a ROM partition mounts it (and puts it on sys.path)
MOUNT = "/rom"


def image(files):
    """A ROMFS image of {node path: bytes}, e.g. {"citynode_fw/node.mpy": b"M..."}."""
    tree = {}
    for path, data in files.items():
        *folders, name = path.split("/")
        at = tree
        for folder in folders:
            at = at.setdefault(folder, {})
            if not isinstance(at, dict):
                raise ValueError("%s: %s is a file" % (path, folder))
        if name in at:
            raise ValueError("%s twice" % path)
        at[name] = bytes(data)
    writer = VfsRomWriter()
    _add(writer, tree)
    return writer.finalise()


def _add(writer, tree):
    for name in sorted(tree):
        entry = tree[name]
        if isinstance(entry, dict):
            writer.opendir(name)
            _add(writer, entry)
            writer.closedir()
        else:
            writer.mkfile(name, entry)


def app_files(build, roots=("citynode_fw/", "citynode_protocol/")):
    """The files of an AppBuild that go in the image: its packages; boot.py and
    main.py stay on the filesystem, where the board runs them by name."""
    return {f.node_path: f.data for f in build.files if f.node_path.startswith(roots)}
