"""The port a command uses when none is given, the running virtual nodes, and `plot -o` names."""

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path
from types import SimpleNamespace

import pytest

from citynode import ports as ports_module
from citynode import sim_registry
from citynode.cli import main
from citynode.commands.common import port_of, ports_of
from citynode.errors import UsageError

ROOT = Path(__file__).resolve().parents[2]


@pytest.fixture(autouse=True)
def no_boards(tmp_path, monkeypatch):
    """No USB boards, no virtual nodes, no $CITYNODE_PORT, unless a test says so."""
    monkeypatch.setattr(ports_module, "esp32_ports", lambda comports=None: [])
    monkeypatch.setenv(sim_registry.RUNTIME_ENV, str(tmp_path / "run"))
    monkeypatch.delenv("CITYNODE_PORT", raising=False)


@pytest.fixture
def pty_path():
    """A path that exists as a terminal, standing for a virtual node's port."""
    master, slave = os.openpty()
    yield os.ttyname(slave)
    os.close(master)
    os.close(slave)


def test_the_only_board_is_used_and_said(monkeypatch, capsys):
    monkeypatch.setattr(ports_module, "esp32_ports", lambda comports=None: ["/dev/ttyUSB7"])
    assert port_of(SimpleNamespace(port=None)) == "/dev/ttyUSB7"
    assert capsys.readouterr().err == "citynode: using /dev/ttyUSB7, the only ESP32 board found\n"
    assert ports_of(SimpleNamespace(port=None)) == ["/dev/ttyUSB7"]


def test_the_only_virtual_node_is_used(pty_path, capsys):
    with sim_registry.registered(pty_path, "/tmp/flash"):
        assert port_of(SimpleNamespace(port=None)) == pty_path
    assert "the only virtual node found" in capsys.readouterr().err
    assert sim_registry.running() == []  # unregistered on exit


def test_given_port_and_environment_win(monkeypatch):
    monkeypatch.setattr(ports_module, "esp32_ports", lambda comports=None: ["/dev/ttyUSB7"])
    assert port_of(SimpleNamespace(port="loop://")) == "loop://"
    monkeypatch.setenv("CITYNODE_PORT", "/dev/ttyACM3")
    assert port_of(SimpleNamespace(port=None)) == "/dev/ttyACM3"


def test_no_port_found_is_one_line_saying_what_to_give():
    with pytest.raises(UsageError, match="no board that looks like an ESP32 and no virtual node found; "
                                         "give --port PORT or set CITYNODE_PORT"):
        port_of(SimpleNamespace(port=None))
    assert ports_of(SimpleNamespace(port=None)) == []


def test_several_found_are_named(monkeypatch, pty_path):
    monkeypatch.setattr(ports_module, "esp32_ports", lambda comports=None: ["/dev/ttyUSB0", "/dev/ttyUSB1"])
    with sim_registry.registered(pty_path, "/tmp/flash"):
        with pytest.raises(UsageError) as exc:
            port_of(SimpleNamespace(port=None))
        assert ports_of(SimpleNamespace(port=None)) == []
    text = str(exc.value)
    assert text.startswith("no port: 3 found (/dev/ttyUSB0 ESP32 board, /dev/ttyUSB1 ESP32 board, %s virtual node)"
                           % pty_path)
    assert "CITYNODE_PORT" in text


def test_stale_registrations_are_ignored_and_removed(tmp_path, pty_path):
    folder = sim_registry.runtime_dir()
    folder.mkdir(parents=True)
    dead = subprocess.run([sys.executable, "-c", "import os; print(os.getpid())"], capture_output=True, text=True)
    (folder / "sim-dead.json").write_text(json.dumps({"port": pty_path, "pid": int(dead.stdout)}))
    (folder / "sim-gone.json").write_text(json.dumps({"port": str(tmp_path / "no-pts"), "pid": os.getpid()}))
    (folder / "sim-junk.json").write_text("{not json")
    assert sim_registry.running() == []
    assert sorted(p.name for p in folder.iterdir()) == ["sim-junk.json"]


def test_ports_lists_virtual_nodes_marked_virtual(pty_path, capsys):
    with sim_registry.registered(pty_path, "/tmp/flash"):
        assert main(["ports", "--json"]) == 0
        rows = json.loads(capsys.readouterr().out)
        assert main(["ports"]) == 0
        table = capsys.readouterr().out
    virtual = [r for r in rows if r["virtual"]]
    assert [(r["port"], r["esp32"], r["root"]) for r in virtual] == [(pty_path, False, "/tmp/flash")]
    assert any(line.split()[:2] == ["virtual", pty_path] for line in table.splitlines())


def _env(tmp_path):
    return dict(os.environ, PYTHONPATH=os.pathsep.join([str(ROOT / "host"), str(ROOT / "protocol")]),
                **{sim_registry.RUNTIME_ENV: str(tmp_path / "run")})


def test_a_running_sim_is_found_by_a_command_given_no_port(tmp_path):
    """`citynode sim` registers itself; `citynode exec` with no port finds it; gone when it stops."""
    env = _env(tmp_path)
    sim = subprocess.Popen([sys.executable, "-m", "citynode", "sim", "--root", str(tmp_path / "flash")],
                           env=env, stdout=subprocess.PIPE, stderr=subprocess.DEVNULL)
    try:
        port = None
        deadline = time.monotonic() + 20
        while port is None:
            assert time.monotonic() < deadline, "no port: line from citynode sim"
            line = sim.stdout.readline().decode()
            if line.startswith("port: "):
                port = line.split(": ", 1)[1].strip()
        done = subprocess.run([sys.executable, "-m", "citynode", "exec", "print(6 * 7)"],
                              env=env, capture_output=True, text=True, timeout=60)
        assert done.returncode == 0, done.stderr
        assert done.stdout.strip() == "42"
        assert done.stderr == "citynode: using %s, the only virtual node found\n" % port
    finally:
        sim.send_signal(signal.SIGINT)
        sim.wait(timeout=20)
    assert list((tmp_path / "run").glob("sim-*.json")) == []


@pytest.mark.parametrize("name", ["x.txt", "plot", "x.png.csv"])
def test_plot_refuses_a_name_that_is_not_png(tmp_path, capsys, name):
    capture = tmp_path / "cap.bin"
    capture.write_bytes(b"")
    code = main(["plot", str(capture), "-o", str(tmp_path / name)])
    err = capsys.readouterr().err
    assert code == 2
    assert err.splitlines() == ["citynode: -o %s: plot writes a PNG image; give a file name ending in .png"
                                % (tmp_path / name)]
    assert not (tmp_path / name).exists()
