"""NodeClient against scripted links (pyserial loop:// and a pty pair playing a node)."""

import errno
import os
import pty
import threading
import time
import tty

import pytest
import serial

from citynode.errors import DeviceError, TransportError
from citynode import serial_link
from citynode.serial_link import NodeClient, PortError, describe_open_error, open_serial
from citynode_protocol import armour, frame, messages, payload


def _reply_wire(rid, code=0, body=None, seq=0):
    msg_type, data = payload.pack("reply", {"request_id": rid, "code": code, "body": body})
    return frame.to_wire(frame.build(msg_type, 5, seq, 1000, data))


def _climate_wire(seq, t_ms=500):
    msg_type, data = payload.pack("climate", {"temperature_c": 20.5, "relative_humidity_pct": 40})
    return frame.to_wire(frame.build(msg_type, 5, seq, t_ms, data))


def _time_wire(utc_ms, seq):
    msg_type, data = payload.pack("time", {"utc_ms": utc_ms})
    return frame.to_wire(frame.build(msg_type, 5, seq, 1000, data))


class ScriptedNode:
    """A pty pair: the client opens the slave path; this thread answers command lines."""

    def __init__(self, answer):
        self.master, slave = pty.openpty()
        tty.setraw(slave)
        self.path = os.ttyname(slave)
        self._slave = slave
        self.answer = answer
        self.lines = []
        self._stop = False
        self.thread = threading.Thread(target=self._run, daemon=True)
        self.thread.start()

    def _run(self):
        buf = b""
        while not self._stop:
            try:
                data = os.read(self.master, 4096)
            except OSError:
                return
            buf += data
            while b"\n" in buf:
                line, buf = buf.split(b"\n", 1)
                if not line.startswith(b">"):
                    continue  # a host's probe of the REPL, or an empty line
                self.lines.append(line)
                out = self.answer(line)
                if out:
                    os.write(self.master, out)

    def commands(self):
        return [armour.decode_command(line)[1] for line in self.lines]

    def close(self):
        self._stop = True
        os.close(self._slave)
        os.close(self.master)


def test_command_returns_reply_body_and_keeps_other_frames():
    def answer(line):
        rid, cmd, args = armour.decode_command(line)
        assert cmd == "config_get" and args == {"key": "site"}
        return _climate_wire(0) + _reply_wire(rid, body={"site": "deck 3"}, seq=1)

    node = ScriptedNode(answer)
    try:
        with NodeClient(node.path, timeout=2, set_clock=False) as client:
            assert client.command("config_get", key="site") == {"site": "deck 3"}
            frames = list(client.read_frames(seconds=0.1))
            assert [m.name for m in frames] == ["climate"]
    finally:
        node.close()


def test_error_code_becomes_words():
    node = ScriptedNode(lambda line: _reply_wire(armour.decode_command(line)[0], messages.ERR_BAD_ARGUMENT, {"error": "odr 333 Hz"}))
    try:
        with NodeClient(node.path, timeout=2, set_clock=False) as client:
            with pytest.raises(DeviceError, match="bad argument: odr 333 Hz"):
                client.command("config_set", key="accel_odr_hz", value=333)
    finally:
        node.close()


def test_garbled_line_is_sent_again():
    def answer(line):
        rid = armour.decode_command(line)[0]
        if len(node.lines) == 1:
            return _reply_wire(0, messages.ERR_BAD_LINE, seq=0)  # the id was unreadable
        if len(node.lines) == 2:
            return _reply_wire(rid, messages.ERR_BAD_LINE, seq=1)  # the node read the id of a damaged line
        return _reply_wire(rid, body={"ok": True}, seq=2)

    node = ScriptedNode(answer)
    try:
        with NodeClient(node.path, timeout=2, set_clock=False) as client:
            assert client.command("info") == {"ok": True}
        assert len(node.lines) == 3 and len(set(node.lines)) == 1  # the same line, same request id
    finally:
        node.close()


def test_unanswered_line_is_sent_again_and_its_late_reply_ignored(monkeypatch):
    monkeypatch.setattr(serial_link, "RESEND_AFTER_S", 0.2)

    def answer(line):
        rid = armour.decode_command(line)[0]
        if len(node.lines) == 1:
            return None  # lost on the way
        return _reply_wire(rid, body={"n": len(node.lines)}, seq=len(node.lines)) * 2  # and a repeat

    node = ScriptedNode(answer)
    try:
        with NodeClient(node.path, timeout=2, set_clock=False) as client:
            assert client.command("stream_stop") == {"n": 2}
            assert client.command("stream_start", retries=0) == {"n": 3}
            assert [m.name for m in client.read_frames(seconds=0.1)] == []  # the repeats were dropped
        assert node.lines[0] == node.lines[1] != node.lines[2]
    finally:
        node.close()


def test_reboot_is_not_sent_again_after_silence(monkeypatch):
    monkeypatch.setattr(serial_link, "RESEND_AFTER_S", 0.05)
    node = ScriptedNode(lambda line: None)
    try:
        with NodeClient(node.path, timeout=0.4, set_clock=False) as client:
            with pytest.raises(TransportError, match="did not answer reboot"):
                client.command("reboot")
        assert node.commands() == ["reboot"]
    finally:
        node.close()


def test_a_link_that_garbles_every_line_fails_in_one_line_at_the_deadline():
    node = ScriptedNode(lambda line: _reply_wire(armour.decode_command(line)[0], messages.ERR_BAD_LINE))
    try:
        with NodeClient(node.path, timeout=0.5, set_clock=False) as client:
            with pytest.raises(TransportError) as exc:
                client.command("info")
        text = str(exc.value)
        assert "did not answer info within" in text and "lines arrived garbled" in text and "\n" not in text
        assert 1 < len(node.lines) <= serial_link.MAX_ATTEMPTS
    finally:
        node.close()


def test_the_first_command_of_a_session_sets_the_clock():
    def answer(line):
        rid, cmd, args = armour.decode_command(line)
        return _reply_wire(rid, body={"cmd": cmd, "args": args}, seq=len(node.lines))

    node = ScriptedNode(answer)
    try:
        before = int(time.time() * 1000)
        with NodeClient(node.path, timeout=2) as client:
            assert client.command("info")["cmd"] == "info"
            client.command("status")
            assert client.clock_set
        assert node.commands() == ["set_time", "info", "status"]
        utc = armour.decode_command(node.lines[0])[2]["utc_ms"]
        assert before <= utc <= time.time() * 1000
    finally:
        node.close()


def test_a_refused_clock_does_not_stop_the_command():
    def answer(line):
        rid, cmd, _args = armour.decode_command(line)
        if cmd == "set_time":
            return _reply_wire(rid, messages.ERR_UNKNOWN_COMMAND, {"error": "old app"}, seq=0)
        return _reply_wire(rid, body={"ok": 1}, seq=1)

    node = ScriptedNode(answer)
    try:
        with NodeClient(node.path, timeout=2) as client:
            assert client.command("info") == {"ok": 1} and not client.clock_set
    finally:
        node.close()


@pytest.mark.parametrize("split", [0, 3], ids=["whole", "time-frame-in-two-reads"])
def test_fresh_start_drops_what_the_node_sent_before_its_answer(split):
    old = b"".join(_climate_wire(seq, t_ms=100 + seq) for seq in range(50))  # buffered while nobody read

    def answer(line):
        rid, cmd, args = armour.decode_command(line)
        if cmd == "status":  # what fresh_start asks next
            return _reply_wire(rid, body={}, seq=53)
        new = _time_wire(args["utc_ms"], 50) + _reply_wire(rid, body={}, seq=51) + _climate_wire(52, t_ms=2000)
        if split:
            os.write(node.master, new[:split])
            time.sleep(0.2)
        return new[split:]

    node = ScriptedNode(answer)
    try:
        seen = bytearray()
        with NodeClient(node.path, timeout=2) as client:
            os.write(node.master, old)  # (opening the port flushed what was there before)
            client.on_bytes = seen.extend
            dropped = client.fresh_start()
            got = list(client.read_frames(seconds=0.2))
        assert dropped == len(old)
        assert [m.name for m in got] == ["time", "climate"] and got[1].time_ms == 2000  # the replies are left out
        assert client.clock_set and client.stats.frames == 4 and client.stats.nodes[5].lost == 0
        assert node.commands() == ["set_time", "status"]
        assert bytes(seen).startswith(_time_wire(got[0]["utc_ms"], 50))  # on_bytes saw only the new bytes
    finally:
        node.close()


def test_fresh_start_on_a_silent_node_hands_over_what_it_read():
    node = ScriptedNode(lambda line: None)
    try:
        seen = bytearray()
        with NodeClient(node.path, timeout=0.3) as client:
            os.write(node.master, _climate_wire(0))
            client.on_bytes = seen.extend
            with pytest.raises(TransportError, match="did not answer set_time"):
                client.fresh_start()
        assert bytes(seen).startswith(_climate_wire(0))
    finally:
        node.close()


def test_silent_node_times_out_with_a_clear_message():
    node = ScriptedNode(lambda line: None)
    try:
        with NodeClient(node.path, timeout=0.3, set_clock=False) as client:
            with pytest.raises(TransportError, match="did not answer info"):
                client.command("info", retries=0)
    finally:
        node.close()


def test_a_node_that_echoes_the_line_is_at_the_repl():
    node = ScriptedNode(lambda line: line + b"\r\n")  # a bare board's REPL, no Enter yet
    try:
        with NodeClient(node.path, timeout=0.3) as client:
            with pytest.raises(TransportError, match="at the MicroPython REPL: the citynode app is not running "
                                                     r"\(no app\? run `citynode deploy"):
                client.command("info")
    finally:
        node.close()


def test_a_silent_raw_repl_is_found_by_a_probe():
    def answer(line):
        return None

    node = ScriptedNode(answer)
    probe = []

    def serve_probe():  # a node left in the raw REPL: silent, until Ctrl-B shows the friendly prompt
        deadline = time.monotonic() + 3
        while time.monotonic() < deadline and not probe:
            time.sleep(0.01)
        os.write(node.master, b"\r\nMicroPython v1.29.0; linux\r\n>>> ")

    orig = node.answer
    node.answer = lambda line: orig(line)
    t = threading.Thread(target=serve_probe, daemon=True)
    t.start()
    try:
        with NodeClient(node.path, timeout=0.3, set_clock=False) as client:
            real_write = client._write

            def spy(data):
                if data.startswith(b"\x02"):
                    probe.append(data)
                real_write(data)

            client._write = spy
            with pytest.raises(TransportError, match="at the MicroPython REPL"):
                client.command("info")
        assert probe == [b"\x02\r\n"]
    finally:
        node.close()


def test_node_at_repl_is_recognised():
    node = ScriptedNode(lambda line: b"Traceback (most recent call last):\r\nSyntaxError: invalid syntax\r\n>>> ")
    try:
        with NodeClient(node.path, timeout=0.3, set_clock=False) as client:
            with pytest.raises(TransportError, match="at the MicroPython REPL"):
                client.command("info", retries=0)
    finally:
        node.close()


def test_no_such_port_is_one_line():
    with pytest.raises(TransportError, match="no such port /dev/ttyNOPE9"):
        open_serial("/dev/ttyNOPE9")


@pytest.mark.parametrize("kind, words", [
    ("file", "is a file, not a serial port"),
    ("folder", "is a folder, not a serial port"),
    ("missing", "no such port"),
    ("missing folder", "no such port"),
    ("/dev/null", "is not a serial port"),
])
def test_a_port_that_is_no_serial_port_is_one_line(tmp_path, kind, words):
    path = {"file": tmp_path / "capture.bin", "folder": tmp_path, "missing": tmp_path / "ttyUSB9",
            "missing folder": tmp_path / "no" / "ttyUSB0", "/dev/null": "/dev/null"}[kind]
    if kind == "file":
        path.write_bytes(b"x")
    with pytest.raises(PortError) as exc:
        open_serial(str(path))
    text = str(exc.value)
    assert words in text and str(path) in text and "\n" not in text
    assert "ioctl" not in text and "Errno" not in text


@pytest.mark.parametrize("error, words", [
    (serial.SerialException(errno.EACCES, "could not open port /dev/ttyUSB0: [Errno 13] Permission denied"),
     "permission denied on /dev/ttyUSB0 (add your user to the dialout group"),
    (serial.SerialException(errno.EBUSY, "could not open port /dev/ttyUSB0: [Errno 16] Device or resource busy"),
     "port /dev/ttyUSB0 is busy"),
    (serial.SerialException("Could not configure port: (25, 'Inappropriate ioctl for device')"),
     "/dev/ttyUSB0 is not a serial port"),
    (serial.SerialException(errno.EISDIR, "could not open port /dev/ttyUSB0: [Errno 21] Is a directory"),
     "/dev/ttyUSB0 is a folder"),
])
def test_open_errors_become_words(error, words):
    assert describe_open_error("/dev/ttyUSB0", error).startswith(words)


def test_busy_port_is_one_line():
    node = ScriptedNode(lambda line: None)
    try:
        first = open_serial(node.path)
        with pytest.raises(TransportError, match="busy"):
            open_serial(node.path)
        first.close()
    finally:
        node.close()


def test_loop_url_works_for_frames():
    client = NodeClient("loop://", link=serial.serial_for_url("loop://", timeout=0.05))
    client.serial.write(_climate_wire(0) + b"noise" + _climate_wire(1))
    got = list(client.read_frames(seconds=0.2))
    assert [m.seq for m in got] == [0, 1]
    assert client.stats.bytes_skipped == 5


def test_info_on_a_board_without_the_app_says_deploy(tmp_path, capsys):
    """A bare MicroPython board (friendly REPL: it echoes the line), then one a deploy
    left in the raw REPL (silent): both get the `citynode deploy` hint, in one line."""
    from mpremote.transport_serial import SerialTransport

    from citynode import cli
    from vnode_fixtures import virtual_node

    with virtual_node(tmp_path) as node:
        assert cli.main(["info", "--port", node.port]) == 1
        bare = capsys.readouterr().err
        t = SerialTransport(node.port, baudrate=115200, timeout=5)
        try:
            t.enter_raw_repl(soft_reset=False)  # and never leave it, as an interrupted deploy
        finally:
            t.close()
        with NodeClient(node.port, timeout=1) as client:  # as `citynode info`, sooner
            with pytest.raises(TransportError) as exc:
                client.command("info")
        raw = "citynode: %s\n" % exc.value
    for err in (bare, raw):
        assert err.count("\n") == 1 and "Traceback" not in err, err
        assert err.startswith("citynode: node on %s is at the MicroPython REPL: the citynode app is not running "
                              "(no app? run `citynode deploy --port %s`" % (node.port, node.port)), err


def test_after_raw_repl_work_the_app_gets_the_clock_when_it_answers(tmp_path):
    from vnode_fixtures import virtual_node

    with virtual_node(tmp_path / "app", with_app=True) as node:
        with serial_link.raw_repl(node.port) as transport:  # as deploy and backup do
            transport.exec("x = 1")
        assert serial_link.set_clock_when_app_answers(node.port)
        with NodeClient(node.port, set_clock=False) as client:
            status = client.command("status")
    assert status["flags"] & messages.STATUS_TIME_ANCHORED
    with virtual_node(tmp_path / "bare") as node:  # no app: False, soon (the REPL echoes the line)
        assert serial_link.set_clock_when_app_answers(node.port) is False
    assert serial_link.set_clock_when_app_answers(str(tmp_path / "ttyNOPE")) is False
