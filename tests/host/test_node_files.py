"""The node's own files through mpremote's transport methods, with a scripted fake transport:
writes go to a temp name and are renamed; a write that reads back wrong, a lost link and a
file the node lacks each end as they should."""

import errno
import hashlib

import pytest
from mpremote.transport import TransportError as MpTransportError
from mpremote.transport import TransportExecError

from citynode import node_files
from citynode.errors import DeviceError, TransportError


class FakeTransport:
    """A node's flash as a dict, answering the fs_* calls node_files makes; `log` records them."""

    def __init__(self, files=None, corrupt_writes=False, lose_link_on=None):
        self.files = dict(files or {})
        self.log = []
        self.corrupt_writes = corrupt_writes
        self.lose_link_on = lose_link_on

    def _call(self, name, *args):
        self.log.append((name,) + args)
        if name == self.lose_link_on:
            raise MpTransportError("could not read from port")

    def fs_readfile(self, path):
        self._call("read", path)
        if path not in self.files:
            raise OSError(errno.ENOENT, path)
        return bytearray(self.files[path])

    def fs_hashfile(self, path, algo):
        self._call("hash", path)
        return hashlib.new(algo, self.files[path]).digest()

    def fs_writefile(self, path, data):
        self._call("write", path)
        self.files[path] = bytes(data) + (b"x" if self.corrupt_writes else b"")

    def fs_rmfile(self, path):
        self._call("remove", path)
        if path not in self.files:
            raise OSError(errno.ENOENT, path)
        del self.files[path]

    def exec(self, code):
        self._call("exec", code)
        if "os.rename(" not in code:
            raise TransportExecError(1, "Traceback...\nNameError: name 'x' isn't defined\n")
        temp, name = code.split("os.rename(")[1].split(")")[0].replace("'", "").split(",")
        self.files[name] = self.files.pop(temp)


CONFIG = b'{"crc":0,"config":{}}'


def test_read_skips_absent_files_and_checks_each_by_sha256():
    t = FakeTransport({"config.json": CONFIG})
    assert node_files.read(t) == {"config.json": CONFIG}
    assert ("hash", "config.json") in t.log


def test_write_goes_to_a_temp_name_and_is_renamed_then_read_back():
    t = FakeTransport({"config.json": b"old"})
    node_files.write(t, "config.json", CONFIG)
    assert t.files == {"config.json": CONFIG}
    assert [c[0] for c in t.log] == ["write", "exec", "hash"] and t.log[0][1] == "config.json.tmp"


def test_a_write_that_reads_back_wrong_is_an_error():
    t = FakeTransport(corrupt_writes=True)
    with pytest.raises(DeviceError, match="did not read back as written"):
        node_files.write(t, "calib.json", b"{}")


def test_a_lost_link_is_a_transport_error():
    t = FakeTransport({"config.json": CONFIG}, lose_link_on="read")
    with pytest.raises(TransportError, match="link to the node lost"):
        node_files.read(t)


def test_only_the_nodes_own_files_are_written_or_removed():
    t = FakeTransport({"main.py": b"app"})
    with pytest.raises(Exception, match="refusing"):
        node_files.write(t, "main.py", b"x")
    with pytest.raises(Exception, match="refusing"):
        node_files.remove(t, "main.py")
    assert t.files == {"main.py": b"app"} and t.log == []


def test_changes_make_the_node_match_exactly():
    current = {"config.json": b"a", "calib.json": b"c", "calib.prev.json": b"p"}
    wanted = {"config.json": b"b", "calib.prev.json": b"p"}
    assert node_files.changes(current, wanted) == [("config.json", "write"), ("calib.json", "remove")]
    t = FakeTransport(current)
    node_files.apply(t, wanted, node_files.changes(current, wanted))
    assert t.files == wanted
    assert node_files.changes(wanted, wanted) == []
