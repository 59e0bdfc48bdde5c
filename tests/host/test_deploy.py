"""`citynode deploy` for real, against virtual nodes (an empty root is a freshly flashed board).

The node's flash is a folder (`node.root`), so every test checks the result on
the "flash" itself: exactly the app's files with the expected hashes, the hash
manifest, no leftovers, and config.json / calib.json byte for byte as before.
"""

import hashlib
import json

import pytest

from citynode import cli, deploy, serial_link
from citynode.errors import TransportError
from vnode_fixtures import virtual_node

CONFIG = b'{"crc":1,"config":{"node_id":7}}\n'
CALIB = b'{"crc":2,"calib":{"id":3}}\n'

pytestmark = pytest.mark.xdist_group("vnode-deploy")


@pytest.fixture(autouse=True)
def mpy_cache(tmp_path_factory, monkeypatch):
    """One compile cache for the whole session: compiled once, then reused."""
    monkeypatch.setenv("CITYNODE_MPY_CACHE", str(tmp_path_factory.getbasetemp() / "mpy-cache"))


def flash_state(root, roots=("boot.py", "main.py", "citynode_fw", "citynode_protocol", ".citynode")):
    """{node path: sha256} of every file below the app's roots on the virtual node's flash."""
    out = {}
    for top in roots:
        path = root / top
        if path.is_file():
            out[top] = hashlib.sha256(path.read_bytes()).hexdigest()
        elif path.is_dir():
            for f in path.rglob("*"):
                if f.is_file():
                    out[f.relative_to(root).as_posix()] = hashlib.sha256(f.read_bytes()).hexdigest()
    return out


def assert_exactly_the_app(root, build):
    assert flash_state(root) == build.expected()
    head, *lines = (root / deploy.MANIFEST).read_text().splitlines()
    assert head.split() == ["citynode-app", "1", build.app_version, build.fingerprint, build.mpy or "source"]
    assert dict(reversed(line.split(" ", 1)) for line in lines) == {f.node_path: f.sha256 for f in build.files}


def seed_node_files(root):
    (root / "config.json").write_bytes(CONFIG)
    (root / "calib.json").write_bytes(CALIB)
    (root / "calib.prev.json").write_bytes(CALIB)


def assert_node_files_untouched(root):
    assert (root / "config.json").read_bytes() == CONFIG
    assert (root / "calib.json").read_bytes() == CALIB
    assert (root / "calib.prev.json").read_bytes() == CALIB


class Recorder:
    def __init__(self, hook=None):
        self.events = []
        self.hook = hook

    def __call__(self, stage, done=None, total=None):
        self.events.append((stage, done, total))
        if self.hook:
            self.hook(stage, done, total)

    def stages(self):
        return [e[0] for e in self.events]


def test_fresh_board_gets_the_compiled_app(tmp_path):
    with virtual_node(tmp_path) as node:
        seed_node_files(node.root)
        progress = Recorder()
        with serial_link.raw_repl(node.port) as t:
            result = deploy.deploy(t, progress=progress)
            assert t.use_raw_paste  # mpremote drops it if the node refuses raw-paste mode: it did not
        assert result.changed and result.build.compiled and result.build.mpy == "6.3"
        assert_exactly_the_app(node.root, result.build)
        assert_node_files_untouched(node.root)
        # boot.py and main.py stay source, every module is .mpy
        names = [f.node_path for f in result.build.files]
        assert "boot.py" in names and "main.py" in names
        assert all(n.endswith(".mpy") for n in names if n not in ("boot.py", "main.py"))
        assert (node.root / "citynode_fw" / "config.mpy").read_bytes()[:1] == b"M"
        assert not list(node.root.rglob("*.py")) or {p.name for p in node.root.rglob("*.py")} == {"boot.py", "main.py"}
        # fewer bytes than the sources: compiled and compressed
        sources = sum(len(s.read_bytes()) for s, _ in deploy.source_files())
        assert result.wire_bytes < 0.45 * sources
        assert {"probe", "send", "install", "check", "done"} <= set(progress.stages())
        sends = [e for e in progress.events if e[0] == "send"]
        assert sends[-1][1] == sends[-1][2]
        # the compiled modules load on the node's MicroPython
        with serial_link.raw_repl(node.port) as t:
            out = t.exec("import citynode_protocol.armour as a, citynode_fw.config as c;"
                         "print(a.MAX_LINE, c.PATH)")
        assert out.split() == [b"2048", b"config.json"]


def test_no_change_redeploy_is_one_round_trip(tmp_path):
    with virtual_node(tmp_path) as node:
        first = deploy.deploy_port(node.port)
        with serial_link.raw_repl(node.port) as t:
            calls = []
            real = t.exec_raw

            def counting(code, *a, **kw):
                calls.append(code)
                return real(code, *a, **kw)

            t.exec_raw = counting
            again = deploy.deploy(t)
        assert not again.changed and again.sent == [] and again.wire_bytes == 0
        assert len(calls) == 1  # helpers, facts and the tree digest in one exec
        assert again.app_hash == first.app_hash
        assert_exactly_the_app(node.root, first.build)


def test_only_differences_are_sent_and_strays_removed(tmp_path):
    with virtual_node(tmp_path) as node:
        seed_node_files(node.root)
        build = deploy.deploy_port(node.port).build
        root = node.root
        (root / "citynode_fw" / "config.mpy").write_bytes(b"damaged")  # changed on the node
        (root / "citynode_protocol" / "cobs.mpy").unlink()  # missing
        (root / "citynode_fw" / "store.py").write_text("STALE = 1\n")  # would shadow store.mpy
        (root / "citynode_fw" / "old_pkg").mkdir()
        (root / "citynode_fw" / "old_pkg" / "gone.mpy").write_bytes(b"x")  # no longer in the app
        (root / ".citynode" / "incoming").write_bytes(b"half a bundle")  # leftovers
        (root / "citynode_fw" / "node.mpy.new").write_bytes(b"half a file")
        (root / "notes.txt").write_text("the user's own file")  # outside the app: kept
        result = deploy.deploy_port(node.port)
        assert sorted(result.sent) == ["citynode_fw/config.mpy", "citynode_protocol/cobs.mpy"]
        assert sorted(result.removed) == [".citynode/incoming", "citynode_fw/node.mpy.new",
                                          "citynode_fw/old_pkg/gone.mpy", "citynode_fw/store.py"]
        assert not (root / "citynode_fw" / "old_pkg").exists()
        assert_exactly_the_app(root, build)
        assert_node_files_untouched(root)
        assert (root / "notes.txt").read_text() == "the user's own file"


def test_a_changed_module_on_the_host_sends_only_that_file(tmp_path, monkeypatch):
    with virtual_node(tmp_path) as node:
        deploy.deploy_port(node.port)
        real = deploy.source_files()
        edited = tmp_path / "edited_features.py"
        src = next(s for s, d in real if d == "citynode_fw/features.py")
        edited.write_text(src.read_text() + "\n\ndef _added_by_test():\n    return 1\n")
        monkeypatch.setattr(deploy, "source_files",
                            lambda: [(edited if d == "citynode_fw/features.py" else s, d) for s, d in real])
        result = deploy.deploy_port(node.port)
        assert result.sent == ["citynode_fw/features.mpy"] and result.removed == []
        assert_exactly_the_app(node.root, result.build)


@pytest.mark.parametrize("where", ["send", "install"])
def test_cable_pulled_mid_deploy_is_repaired_by_the_next_deploy(tmp_path, where):
    with virtual_node(tmp_path) as node:
        seed_node_files(node.root)
        # an older app on the node first, so that the interrupted deploy mixes old and new
        (node.root / "citynode_fw").mkdir()
        (node.root / "citynode_fw" / "node.py").write_text("OLD = 1\n")
        (node.root / "main.py").write_text("print('old app')\n")

        def pull(stage, done, total):
            if stage == where and done and done >= 3 and node.alive:
                node.stop()  # the cable comes out
                raise_later.append(stage)

        raise_later = []
        with pytest.raises(TransportError) as info:
            deploy.deploy_port(node.port, progress=Recorder(pull))
        assert raise_later == [where]
        message = str(info.value)
        assert "\n" not in message and "run the deploy again" in message
        assert not (node.root / deploy.MANIFEST).exists()  # never claims a complete app
        assert_node_files_untouched(node.root)

    with virtual_node(tmp_path) as node:  # plugged back in: same flash
        result = deploy.deploy_port(node.port)
        assert result.changed
        assert_exactly_the_app(node.root, result.build)
        assert_node_files_untouched(node.root)
        assert deploy.deploy_port(node.port).changed is False


def test_node_without_matching_mpy_cross_gets_source_files(tmp_path, monkeypatch):
    monkeypatch.setattr(deploy, "_mpy_cross_binaries", lambda: {"6.2": "/nonexistent"})
    with virtual_node(tmp_path) as node:
        result = deploy.deploy_port(node.port)
        assert not result.build.compiled and "no mpy-cross here emits .mpy v6.3" in result.build.note
        assert all(f.node_path.endswith(".py") for f in result.build.files)
        assert_exactly_the_app(node.root, result.build)


def test_full_redeploy_after_compiled_one_switches_to_source_and_back(tmp_path, monkeypatch):
    with virtual_node(tmp_path) as node:
        compiled = deploy.deploy_port(node.port).build
        source = deploy.deploy_port(node.port, source_only=True)
        assert_exactly_the_app(node.root, source.build)
        assert "citynode_fw/config.mpy" in source.removed  # no .mpy left behind to confuse imports
        back = deploy.deploy_port(node.port)
        assert_exactly_the_app(node.root, compiled)
        assert "citynode_fw/config.py" in back.removed


def test_deploy_never_targets_config_or_calibration():
    with pytest.raises(Exception, match="never overwritten"):
        deploy._check_node_path("config.json")
    with pytest.raises(Exception, match="never overwritten"):
        deploy._check_node_path("calib.json.tmp")
    with pytest.raises(Exception, match="never overwritten"):
        deploy._check_node_path("lib/x.py", roots=["citynode_fw"])
    deploy._check_node_path("citynode_fw/x.mpy", roots=["citynode_fw"])
    assert all(not d.startswith(deploy.PROTECTED) for _, d in deploy.source_files())


def test_fingerprint_matches_the_firmwares_app_hash(tmp_path):
    """The host's app hash is what citynode_fw.version computes on the node."""
    with virtual_node(tmp_path) as node:
        result = deploy.deploy_port(node.port)
        with serial_link.raw_repl(node.port) as t:
            out = t.exec("from citynode_fw import version;print(version.compute_hash())")
        assert out.strip().decode() == result.app_hash


# -- the command ---------------------------------------------------------------------


def test_deploy_command(tmp_path, capsys):
    with virtual_node(tmp_path) as node:
        code = cli.main(["deploy", "--port", node.port, "--plain"])
        out, err = capsys.readouterr()
        assert code == 0, err
        assert "files sent" in out and "sending app" in err
        code = cli.main(["deploy", "--port", node.port, "--plain"])
        out, err = capsys.readouterr()
        assert code == 0, err
        assert "nothing to send" in out
        code = cli.main(["deploy", "--port", node.port, "--json"])
        out, err = capsys.readouterr()
        assert code == 0, err
        report = json.loads(out)
        assert report["changed"] is False and report["mpy"] == "6.3"


def test_deploy_command_bad_ports(tmp_path, capsys):
    assert cli.main(["deploy", "--port", str(tmp_path / "ttyUSB9")]) == 1
    err = capsys.readouterr().err
    assert err.startswith("citynode: ") and "no such port" in err and err.count("\n") == 1
    with virtual_node(tmp_path) as node:
        with serial_link.open_serial(node.port):  # another program holds the port
            assert cli.main(["deploy", "--port", node.port]) == 1
        err = capsys.readouterr().err
        assert "busy" in err and err.count("\n") == 1


def test_out_of_memory_while_unpacking_is_retried_after_a_soft_reset(tmp_path, monkeypatch):
    """The bundle is on the node's flash by then: a fresh heap unpacks it."""
    real = deploy._exec
    failed = []

    def flaky(transport, code, *a, **kw):
        if code.startswith("_i(") and not failed:
            failed.append(code)
            raise deploy.DeviceError("node failed during install: MemoryError: memory allocation failed")
        return real(transport, code, *a, **kw)

    monkeypatch.setattr(deploy, "_exec", flaky)
    with virtual_node(tmp_path) as node:
        seed_node_files(node.root)
        result = deploy.deploy_port(node.port)
        assert failed and result.changed
        assert_exactly_the_app(node.root, result.build)
        assert_node_files_untouched(node.root)


def test_bench_deploy_quick(capsys):
    """bench/bench_deploy.py runs (one round, fast link) and prints its table."""
    import importlib.util
    from pathlib import Path

    path = Path(__file__).resolve().parents[2] / "bench" / "bench_deploy.py"
    spec = importlib.util.spec_from_file_location("bench_deploy", path)
    bench = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(bench)
    result = bench.main(["--quick"])
    out = capsys.readouterr().out
    assert "citynode deploy" in out and "mpremote fs cp -r" in out and "ratio citynode/mpremote" in out
    # the ratios are the bench's to judge (docs/benchmarks.md), not a test's: timing on a loaded machine
    assert result["full_ratio"] > 0 and result["nochange_ratio"] > 0


def test_byte_progress_says_the_bytes_a_few_times_and_moves_the_bar_every_chunk():
    calls = []
    progress = deploy.byte_progress(lambda *a: calls.append(a), steps=4)
    progress("probe")
    for done in range(0, 10001, 1000):
        progress("send", done, 10000)
    progress("install", 0, 3)
    sends = [c for c in calls if c[0].startswith("sending app")]
    assert [c[1] for c in sends] == list(range(0, 10001, 1000))  # every chunk reaches the bar
    assert sorted({c[0] for c in sends}, key=lambda w: int(w.split()[2])) == [
        "sending app: %d of 10000 bytes" % n for n in (0, 3000, 5000, 8000, 10000)]
    assert calls[0] == ("probe", None, None) and calls[-1] == ("install", 0, 3)


def test_viper_module_is_compiled_for_the_nodes_arch_or_sent_as_source():
    """hmac_viper holds viper code: mpy-cross needs -march for it. An ESP32 (xtensawin)
    gets it compiled; a node that names no architecture gets its source, and only it."""
    esp32 = deploy.build_app(6 | 3 << 8 | 10 << 10)  # .mpy 6.3, arch 10: xtensawin
    files = {f.node_path: f for f in esp32.files}
    mpy = files["citynode_fw/hmac_viper.mpy"].data
    assert mpy[:2] == b"M\x06" and mpy[2] >> 2 == 10, mpy[:4]  # the header's arch field
    plain = deploy.build_app(6 | 3 << 8)
    names = {f.node_path for f in plain.files}
    assert "citynode_fw/hmac_viper.py" in names and "citynode_fw/hmac_viper.mpy" not in names
    assert "citynode_fw/uplink.mpy" in names
