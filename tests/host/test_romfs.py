"""citynode.romfs and `citynode deploy --romfs`: the app's packages as a ROMFS
image that MicroPython mounts and imports from (and, imported from it, they
take less heap than from the filesystem); a node without a ROM partition is
refused in one line; with one, its packages go to the image and leave the
filesystem, boot.py and main.py stay.

The Unix port mounts an image held in a bytearray (vfs.VfsRom) but has no ROM
partition (vfs.rom_ioctl), so the partition itself is faked in the last test.
"""

import hashlib
import hmac
import subprocess
import sys

import pytest

from citynode import cli, deploy, romfs
from citynode.errors import CitynodeError
from test_micropython import micropython_command  # tests/ is on pytest's pythonpath
from vnode_fixtures import virtual_node

pytestmark = pytest.mark.xdist_group("vnode-deploy")
UNIX_MPY = 6 | 3 << 8 | 2 << 10  # sys.implementation._mpy of the Unix port on x64: .mpy 6.3, x64

# run from the folder holding app.romfs (and a copy of the packages for the filesystem figures)
PROGRAM = """
import gc, sys, vfs
MODULES = ("citynode_protocol.auth", "citynode_fw.mqtt", "citynode_fw.ring", "citynode_fw.uplink")
if sys.argv[-1] == "rom":
    with open("app.romfs", "rb") as f:
        image = bytearray(f.read())
    vfs.mount(vfs.VfsRom(image), "/rom")
    sys.path.insert(0, "/rom")
    import os
    print("LIST", sorted(os.listdir("/rom/citynode_fw"))[:3])
else:
    sys.path.insert(0, "fs")
gc.collect()
before = gc.mem_alloc()
for name in MODULES:
    __import__(name)
gc.collect()
print("HEAP", gc.mem_alloc() - before)
from citynode_fw import uplink
s = uplink.signer(bytes(range(32)))
buf = bytearray(b"x" * 100 + bytes(8))
s.mac_into(buf, 100, 100)
print("SIGNER", type(s).__name__, s.__class__ is not uplink.auth.Signer, buf[100:].hex())
print("FROM", uplink.__file__)
"""


@pytest.fixture(scope="module")
def app(tmp_path_factory):
    """The app built for the Unix port, its ROMFS image and a filesystem copy, in one folder."""
    build = deploy.build_app(UNIX_MPY, cache=False)
    files = romfs.app_files(build)
    folder = tmp_path_factory.mktemp("romfs")
    (folder / "app.romfs").write_bytes(romfs.image(files))
    for path, data in files.items():
        (folder / "fs" / path).parent.mkdir(parents=True, exist_ok=True)
        (folder / "fs" / path).write_bytes(data)
    return build, files, folder


def _run(folder, where):
    exe = micropython_command()
    if not exe:
        pytest.skip("the MicroPython Unix port is not installed")
    done = subprocess.run([exe, "-c", PROGRAM + "\n", where], cwd=folder, capture_output=True, text=True, timeout=60,
                          env={"MICROPYPATH": ""})
    assert done.returncode == 0, done.stderr
    return {line.split(" ", 1)[0]: line.split(" ", 1)[1] for line in done.stdout.splitlines() if " " in line}


def test_image_holds_the_packages_and_not_boot_or_main(app):
    build, files, _ = app
    assert "citynode_fw/node.mpy" in files and "citynode_protocol/auth.mpy" in files
    assert "boot.py" not in files and "main.py" not in files
    assert set(files) == {f.node_path for f in build.files} - {"boot.py", "main.py"}


def test_micropython_imports_and_runs_the_app_from_the_image(app):
    _, _, folder = app
    out = _run(folder, "rom")
    assert out["FROM"].startswith("/rom/citynode_fw/uplink"), out
    assert out["LIST"] == "['__init__.mpy', 'board.mpy', 'bootcount.mpy']", out
    name, viper, mac = out["SIGNER"].split()
    assert (name, viper) == ("Signer", "True")  # hmac_viper's, native code from the image
    assert mac == hmac.new(bytes(range(32)), b"x" * 100, hashlib.sha256).hexdigest()[:16]


def test_modules_from_the_image_take_less_heap_than_from_the_filesystem(app):
    _, _, folder = app
    rom = int(_run(folder, "rom")["HEAP"])
    fs = int(_run(folder, "fs")["HEAP"])
    assert rom < 0.8 * fs, (rom, fs)  # measured: about half (docs/benchmarks.md)


def test_image_refuses_a_path_twice_or_a_file_as_a_folder():
    with pytest.raises(ValueError):
        romfs.image({"a/b.mpy": b"1", "a/b.mpy/c": b"2"})
    assert romfs.image({"a.mpy": b"1"}).startswith(b"\xd2\xcd\x31")


def test_deploy_romfs_refuses_a_node_without_a_rom_partition(tmp_path, capsys):
    with virtual_node(tmp_path) as node:
        code = cli.main(["deploy", "--port", node.port, "--plain", "--romfs"])
        out, err = capsys.readouterr()
    assert code != 0
    assert "Traceback" not in err, err
    assert [ln for ln in err.splitlines() if ln.startswith("citynode:")] == ["citynode: " + romfs.NO_ROMFS], err
    assert "compiling" not in err  # refused before the build


def test_deploy_romfs_writes_the_packages_to_the_partition_and_leaves_boot_and_main(tmp_path, monkeypatch):
    written = []
    monkeypatch.setattr(romfs, "partition_size", lambda run: 256 * 1024)
    monkeypatch.setattr(romfs, "write", lambda transport, data: written.append(data))
    with virtual_node(tmp_path, with_app=True) as node:
        assert (node.root / "citynode_fw").is_dir()
        result = deploy.deploy_port(node.port, romfs=True)
        assert sorted(f.node_path for f in result.build.files) == ["boot.py", "main.py"]
        assert not (node.root / "citynode_fw").exists() and not (node.root / "citynode_protocol").exists()
        assert (node.root / "main.py").is_file() and (node.root / "boot.py").is_file()
    full = deploy.build_app(result.facts["mpy_value"])
    assert written == [romfs.image(romfs.app_files(full))]
    assert "ROMFS image" in result.build.note
    assert result.build.fingerprint == full.fingerprint  # what the node's app_hash reads from /rom


class _RomNode:
    """A node's ROM partition as mpremote's `romfs deploy` drives it: its exec/eval
    run the code it sends here, in CPython, against a `vfs` with rom_ioctl over a
    bytearray (the MicroPython calls it uses; no deflate module, so base64 chunks)."""

    def __init__(self, size, block=4096):
        self.rom = bytearray(b"\xff" * size)
        self.block = block
        self.finished = False
        self.ns = {}

    def rom_ioctl(self, op, rom_id=0, *args):
        if op == 1:
            return 1
        if op == 2:
            return memoryview(self.rom) if rom_id == 0 else -1
        if op == 6:
            return self.block
        if op == 3:  # prepare: erase, answer the smallest write
            self.rom[:] = b"\xff" * len(self.rom)
            return 256
        if op == 4:
            offset, data = args
            self.rom[offset : offset + len(data)] = data
            return 0
        if op == 5:
            self.finished = True
            return 0
        raise ValueError(op)

    def exec(self, code):
        import contextlib
        import io
        import types

        from mpremote.transport import TransportExecError

        vfs = types.ModuleType("vfs")
        vfs.rom_ioctl = self.rom_ioctl
        vfs.umount = lambda path: None
        out = io.StringIO()
        saved = sys.modules.get("vfs")
        sys.modules["vfs"] = vfs
        try:
            with contextlib.redirect_stdout(out):
                exec(code, self.ns)
        except Exception as exc:  # the node's traceback, as the raw REPL returns it
            raise TransportExecError(out.getvalue().encode(), "Traceback\n%s: %s" % (type(exc).__name__, exc))
        finally:
            if saved is None:
                del sys.modules["vfs"]
            else:
                sys.modules["vfs"] = saved
        return out.getvalue().encode()

    def eval(self, expression, parse=True):
        import ast

        return ast.literal_eval(self.exec("print(repr(%s))" % expression).decode().strip())


def test_the_image_is_written_whole_to_the_partition_through_mpremote():
    node = _RomNode(64 * 1024)
    image = romfs.image({"citynode_fw/a.mpy": bytes(range(256)) * 30, "citynode_fw/b.mpy": b"M\x06" * 9000})
    romfs.write(node, image)
    assert node.finished
    assert bytes(node.rom[: len(image)]) == image
    size = romfs.partition_size(lambda code: node.exec(code))
    assert size == 64 * 1024


def test_an_image_larger_than_the_partition_is_refused_before_writing(app):
    build, _, _ = app
    with pytest.raises(CitynodeError, match="ROMFS image is .* bytes; the node's ROM partition holds 1000"):
        deploy.deploy_romfs(None, build, 1000)
    source = deploy.build_app(None)
    with pytest.raises(CitynodeError, match="needs the app compiled"):
        deploy.deploy_romfs(None, source, 1 << 20)


def test_the_nodes_app_hash_covers_the_packages_in_romfs(app, tmp_path):
    """After a ROMFS deploy the flash holds boot.py and main.py, /rom the packages:
    version.compute_hash() (what `info` reports) equals the fingerprint deploy_romfs
    gives, the whole build's."""
    build, files, folder = app
    flash = tmp_path / "flash"
    flash.mkdir()
    for name in ("boot.py", "main.py"):
        (flash / name).write_bytes(build.by_path[name].data)
    exe = micropython_command()
    code = ("import sys, vfs\nwith open(%r, 'rb') as f:\n    image = bytearray(f.read())\n"
            "vfs.mount(vfs.VfsRom(image), '/rom')\nsys.path.insert(0, '/rom')\n"
            "from citynode_fw import version\nprint(version.compute_hash())\n" % str(folder / "app.romfs"))
    done = subprocess.run([exe, "-c", code], cwd=flash, capture_output=True, text=True, timeout=60, env={"MICROPYPATH": ""})
    assert done.returncode == 0, done.stderr
    rom_build = deploy.AppBuild([f for f in build.files if f.node_path not in files], build.mpy, True, build.app_version,
                                rom_files=[f for f in build.files if f.node_path in files])
    assert done.stdout.strip() == rom_build.fingerprint == build.fingerprint


def test_romfs_with_source_is_a_usage_error(capsys):
    code = cli.main(["deploy", "--port", "/dev/null-citynode", "--romfs", "--source"])
    err = capsys.readouterr().err
    assert code != 0 and err.strip() == "citynode: --romfs holds compiled .mpy files: not with --source", err
