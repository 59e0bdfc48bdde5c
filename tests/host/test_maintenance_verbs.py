"""exec, fs, reset, repl and logs against a virtual node, as a technician uses them on a board.

Each verb interrupts the app and must leave it running again (the node answers
an armoured command after each one, see `cli`); each failure is one line on stderr.
"""

import os
import pty
import select
import subprocess
import sys
import time
from pathlib import Path

import pytest
from vnode_fixtures import virtual_node

from citynode.cli import main
from citynode.serial_link import NodeClient

ROOT = Path(__file__).resolve().parents[2]
SCENARIO = {"temperature_c": 21.5, "relative_humidity_pct": 48.0, "noise_g": 0.0005, "seed": 5}


@pytest.fixture(scope="module")
def node(tmp_path_factory):
    with virtual_node(tmp_path_factory.mktemp("verbs"), scenario=SCENARIO, with_app=True, heap="1m",
                      files={"notes/hello.txt": "hello from the node\n"}) as n:
        assert_app_runs(n.port)  # the app is up: the first verb does not meet it booting (see `cli`)
        yield n


def assert_app_runs(port):
    with NodeClient(port) as client:
        assert client.command("status") is not None


def cli(capfd, *argv):
    """Run a verb in this process; then check that the node's app answers again.

    (That wait also keeps the next verb from meeting the node while its app is
    still starting: a virtual node's interpreter can die of a Ctrl-C that comes
    in that window and is restarted, losing the session.)"""
    code = main(list(argv))
    out, err = capfd.readouterr()
    if "--port" in argv:
        assert_app_runs(argv[argv.index("--port") + 1])
    return code, out, err


def one_line(err, *words):
    lines = err.splitlines()
    assert len(lines) == 1 and lines[0].startswith("citynode: "), err
    for w in words:
        assert w in lines[0], lines[0]
    return lines[0]


def test_exec_prints_the_output_and_the_app_runs_again(node, capfd):
    code, out, err = cli(capfd, "exec", "--port", node.port, "for i in range(3):\n    print('line', i)")
    assert code == 0, err
    assert out.splitlines() == ["line 0", "line 1", "line 2"]


def test_exec_error_is_the_nodes_exception_in_one_line(node, capfd):
    code, out, err = cli(capfd, "exec", "--port", node.port, "print('before')\n{}['missing']")
    assert code == 1
    assert out == "before\n"
    assert one_line(err) == "citynode: the node raised KeyError: missing"


def test_exec_reads_code_from_stdin(node):
    done = subprocess.run([sys.executable, "-m", "citynode", "exec", "--port", node.port, "-"],
                          input="import sys\nprint(sys.implementation.name)\n", capture_output=True, text=True,
                          env=_env(), timeout=60)
    assert done.returncode == 0, done.stderr
    assert done.stdout == "micropython\n"
    assert_app_runs(node.port)


def test_exec_that_never_finishes_is_interrupted(node, capfd):
    code, _out, err = cli(capfd, "exec", "--port", node.port, "--timeout", "0.5", "while True:\n    pass")
    assert code == 1
    one_line(err, "without finishing or printing", "--timeout")


def test_fs_ls_lists_files_and_folders(node, capfd):
    code, out, err = cli(capfd, "fs", "ls", "--port", node.port)
    assert code == 0, err
    names = [line.split()[-1] for line in out.splitlines()]
    assert {"boot.py", "main.py", "citynode_fw/", "citynode_protocol/", "notes/"} <= set(names)
    sizes = {line.split()[-1]: line.split()[0] for line in out.splitlines()}
    assert sizes["main.py"] == str((node.root / "main.py").stat().st_size)
    code, out, err = cli(capfd, "fs", "ls", "/notes", "--port", node.port)
    assert out.split() == ["20", "hello.txt"]


def test_fs_cat_prints_the_file_byte_for_byte(node, capfd):
    code, out, err = cli(capfd, "fs", "cat", "/notes/hello.txt", "--port", node.port)
    assert code == 0, err
    assert out == "hello from the node\n"
    code, out, err = cli(capfd, "fs", "cat", "/main.py", "--port", node.port)
    assert out == (node.root / "main.py").read_text()


@pytest.mark.parametrize("argv, words", [
    (["fs", "cat", "/no/such.txt"], "/no/such.txt on %s: no such file or folder"),
    (["fs", "ls", "/nothing"], "/nothing on %s: no such file or folder"),
    (["fs", "cat", "/notes"], "/notes on %s: is a folder"),
    (["fs", "ls", "/main.py"], "/main.py on %s: not a folder"),
])
def test_fs_errors_are_one_line(node, capfd, argv, words):
    code, out, err = cli(capfd, *argv, "--port", node.port)
    assert code == 1 and out == ""
    one_line(err, words % node.port)


def test_fs_without_an_action_says_which(capfd):
    code, _out, err = cli(capfd, "fs")
    assert code == 2
    one_line(err, "fs ls|cat")


def test_reset_soft_restarts_the_app(node, capfd):
    code, out, err = cli(capfd, "reset", "--port", node.port)
    assert code == 0, err
    assert out == "node on %s soft-reset: the app starts again\n" % node.port


def test_reset_hard_where_there_is_no_machine_reset_is_one_line(node, capfd):
    code, _out, err = cli(capfd, "reset", "--hard", "--port", node.port)
    assert code == 1
    one_line(err, "has no machine.reset()")


def test_logs_show_the_boot_lines_after_reboot(node, capfd):
    code, out, err = cli(capfd, "logs", "--port", node.port, "--reboot", "--duration", "1")
    assert code == 0, err
    lines = out.splitlines()
    boot = [line for line in lines if "boot: citynode" in line]
    assert boot, out  # (a node that had just started shows its first boot too: lines that came are shown)
    assert " info " in boot[-1] and boot[-1].endswith("reset cause soft")
    assert all(" node " in line and " t=" in line for line in lines)


def test_logs_json_and_level(node, capfd):
    import json

    code, out, err = cli(capfd, "logs", "--port", node.port, "--reboot", "--duration", "1", "--json",
                         "--level", "info")
    assert code == 0, err
    records = [json.loads(line) for line in out.splitlines()]
    assert records and all(r["level"] in ("info", "warning", "error") for r in records)
    assert any(r["text"].startswith("boot: citynode") for r in records)
    assert set(records[0]) == {"host_time", "node_id", "seq", "node_time_ms", "level", "text"}


def _env():
    return dict(os.environ, PYTHONPATH=os.pathsep.join([str(ROOT / "host"), str(ROOT / "protocol")]))


def test_repl_needs_a_terminal(node):
    done = subprocess.run([sys.executable, "-m", "citynode", "repl", "--port", node.port],
                          stdin=subprocess.DEVNULL, capture_output=True, text=True, env=_env(), timeout=60)
    assert done.returncode == 2
    one_line(done.stderr, "repl needs a terminal")
    assert_app_runs(node.port)


def _read_until(fd, marker, seen, timeout=15.0):
    deadline = time.monotonic() + timeout
    while marker not in seen:
        assert time.monotonic() < deadline, "no %r; got %r" % (marker, seen[-300:])
        ready, _, _ = select.select([fd], [], [], 0.2)
        if ready:
            try:
                seen += os.read(fd, 4096)
            except OSError:
                break
    return seen


def test_repl_hands_the_terminal_over_and_ctrl_bracket_leaves(node):
    master, slave = pty.openpty()
    proc = subprocess.Popen([sys.executable, "-m", "citynode", "repl", "--port", node.port],
                            stdin=slave, stdout=slave, stderr=slave, env=_env(), close_fds=True)
    os.close(slave)
    try:
        seen = _read_until(master, b"Ctrl-] leaves", b"")
        seen = _read_until(master, b">>> ", seen)
        os.write(master, b"print(6 * 7)\r")
        seen = _read_until(master, b"42", seen)
        os.write(master, b"\x1d")
        assert proc.wait(timeout=20) == 0, seen
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()
        os.close(master)
    assert_app_runs(node.port)


def test_logs_say_when_the_app_sends_nothing(tmp_path, capfd, monkeypatch):
    from citynode.commands import logs

    monkeypatch.setattr(logs, "QUIET_HINT_S", 0.3)
    with virtual_node(tmp_path) as bare:  # no app: the board sits at the MicroPython prompt
        code = main(["logs", "--port", bare.port, "--duration", "0.8"])
    out, err = capfd.readouterr()
    assert code == 0 and out == ""
    one_line(err, "no frames from the node on %s in 0.3 s: is its app running?" % bare.port)
