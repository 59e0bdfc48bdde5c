"""NodeClient against scripted links (pyserial loop:// and a pty pair playing a node)."""

import os
import pty
import threading
import tty

import pytest
import serial

from citynode.errors import DeviceError, TransportError
from citynode.serial_link import NodeClient, open_serial
from citynode_protocol import armour, frame, messages, payload


def _reply_wire(rid, code=0, body=None, seq=0):
    msg_type, data = payload.pack("reply", {"request_id": rid, "code": code, "body": body})
    return frame.to_wire(frame.build(msg_type, 5, seq, 1000, data))


def _climate_wire(seq):
    msg_type, data = payload.pack("climate", {"temperature_c": 20.5, "relative_humidity_pct": 40})
    return frame.to_wire(frame.build(msg_type, 5, seq, 500, data))


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
                self.lines.append(line)
                out = self.answer(line)
                if out:
                    os.write(self.master, out)

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
        with NodeClient(node.path, timeout=2) as client:
            assert client.command("config_get", key="site") == {"site": "deck 3"}
            frames = list(client.read_frames(seconds=0.1))
            assert [m.name for m in frames] == ["climate"]
    finally:
        node.close()


def test_error_code_becomes_words():
    node = ScriptedNode(lambda line: _reply_wire(armour.decode_command(line)[0], messages.ERR_BAD_ARGUMENT, {"error": "odr 333 Hz"}))
    try:
        with NodeClient(node.path, timeout=2) as client:
            with pytest.raises(DeviceError, match="bad argument: odr 333 Hz"):
                client.command("config_set", key="accel_odr_hz", value=333)
    finally:
        node.close()


def test_garbled_line_is_sent_again():
    answers = iter([_reply_wire(0, messages.ERR_BAD_LINE, seq=0)])

    def answer(line):
        rid = armour.decode_command(line)[0]
        return next(answers, _reply_wire(rid, body={"ok": True}, seq=1))

    node = ScriptedNode(answer)
    try:
        with NodeClient(node.path, timeout=2) as client:
            assert client.command("info") == {"ok": True}
        assert len(node.lines) == 2
    finally:
        node.close()


def test_silent_node_times_out_with_a_clear_message():
    node = ScriptedNode(lambda line: None)
    try:
        with NodeClient(node.path, timeout=0.3) as client:
            with pytest.raises(TransportError, match="did not answer info"):
                client.command("info", retries=0)
    finally:
        node.close()


def test_node_at_repl_is_recognised():
    node = ScriptedNode(lambda line: b"Traceback (most recent call last):\r\nSyntaxError: invalid syntax\r\n>>> ")
    try:
        with NodeClient(node.path, timeout=0.3) as client:
            with pytest.raises(TransportError, match="at the MicroPython REPL"):
                client.command("info", retries=0)
    finally:
        node.close()


def test_no_such_port_is_one_line():
    with pytest.raises(TransportError, match="no such port /dev/ttyNOPE9"):
        open_serial("/dev/ttyNOPE9")


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
