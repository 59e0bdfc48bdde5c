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

from citynode.errors import DeviceError

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


# -- the node's ROM partition (vfs.rom_ioctl, MicroPython >= 1.25) -----------------------

_PARTITION = r"""
import vfs
def _rs():
 if not hasattr(vfs,'rom_ioctl') or vfs.rom_ioctl(1)<1:return -1
 d=vfs.rom_ioctl(2,0)
 if isinstance(d,int):return -1
 if hasattr(d,'ioctl'):return d.ioctl(4,0)*d.ioctl(5,0)
 return len(d)
print(_rs())
"""

NO_ROMFS = ("the node's MicroPython has no ROMFS partition (vfs.rom_ioctl): an ESP32 needs a firmware "
            "built with MICROPY_VFS_ROM and a partition table with a romfs partition; deploy without --romfs")


def partition_size(run):
    """Bytes of the node's first ROM partition, or -1 when it has none.
    run(code) -> bytes: runs code on the node in the raw REPL (deploy._exec)."""
    text = run(_PARTITION).decode("ascii", "replace").strip()
    try:
        return int(text.splitlines()[-1])
    except (ValueError, IndexError):
        return -1


class _MpremoteState:
    """What mpremote's `romfs deploy` uses of its State: an open transport in raw REPL."""

    def __init__(self, transport):
        self.transport = transport

    def ensure_raw_repl(self):
        pass

    def did_action(self):
        pass


def write(transport, data):
    """Write the image to the node's ROM partition 0 with mpremote's `romfs deploy`
    (erase, write in chunks, finish; it unmounts /rom first). Its progress lines
    are dropped; check the size against partition_size() before calling."""
    import argparse
    import contextlib
    import io
    import os
    import tempfile

    from mpremote import commands

    with tempfile.TemporaryDirectory(prefix="citynode-romfs-") as tmp:
        path = os.path.join(tmp, "app.romfs")
        with open(path, "wb") as f:
            f.write(data)
        args = argparse.Namespace(path=path, partition=0, mpy=False)
        try:
            with contextlib.redirect_stdout(io.StringIO()):
                commands._do_romfs_deploy(_MpremoteState(transport), args)
        except commands.CommandError as exc:
            raise DeviceError("writing the ROMFS image: %s" % exc)
