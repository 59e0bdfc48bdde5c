"""citynode_fw.link: armoured lines in, REPLY frames out, garbage refused and counted."""

import fw_helpers as h
from citynode_protocol import armour, messages
from citynode_protocol.frame import FrameWriter
from citynode_fw import link as link_mod
from citynode_fw.link import Answered, Link, StdinReader, guess_id
from citynode_fw.status import Counters


def _link():
    cap = h.Capture()
    inp = h.ScriptedInput()
    counters = Counters()
    return Link(3, counters, cap.out, inp), cap, inp, counters


def test_command_line_to_reply_frame():
    link, cap, inp, _c = _link()
    inp.feed(armour.encode_command(41, "config_get", {"key": "site"}))
    line = link.poll_line()
    request_id, command, args = link.decode(line)
    assert (request_id, command, args) == (41, "config_get", {"key": "site"})
    link.reply(request_id, messages.OK, {"config": {"site": "B1"}}, 1234)
    (m,) = cap.new()
    assert m.name == "reply" and m.node_id == 3 and m.time_ms == 1234
    assert m["request_id"] == 41 and m["code"] == messages.OK
    assert m["body"] == {"config": {"site": "B1"}}


def test_lines_split_and_joined_across_reads():
    link, _cap, inp, _c = _link()
    one = armour.encode_command(1, "status")
    two = armour.encode_command(2, "info")
    inp.feed(b"\n\r\n" + one[:10])  # empty lines are a host flushing: ignored
    assert link.poll_line() is None
    inp.feed(one[10:-1] + b"\r\n" + two)
    assert link.decode(link.poll_line())[:2] == (1, "status")
    assert link.decode(link.poll_line())[:2] == (2, "info")
    assert link.poll_line() is None


def test_poll_reads_a_bounded_number_of_bytes():
    link, _cap, inp, _c = _link()
    inp.feed(b"x" * 1000)
    assert link.poll_line(max_bytes=100) is None
    assert inp.pos == 100  # the rest waits for the next pass of the loop


def test_garbled_lines_are_refused_with_their_id():
    good = armour.encode_command(513, "stream_stop")
    flipped = good.replace(b"stream_stop", b"stream_stoq")
    link, _cap, inp, _c = _link()
    inp.feed(flipped)
    request_id, command, why = link.decode(link.poll_line())
    assert command is None and request_id == 513 and "CRC" in why
    assert guess_id(b"garbage") == 0
    assert guess_id(b'>{"id":99999999') == 0


def test_too_long_line_is_refused():
    link, _cap, inp, _c = _link()
    inp.feed(b">" + b"a" * (armour.MAX_LINE + 10) + b"\n")
    line = None
    for _ in range(20):
        line = link.poll_line()
        if line is not None:
            break
    assert line == b""
    request_id, command, why = link.decode(line)
    assert command is None and request_id == 0 and "too long" in why


def test_one_sequence_across_writers_and_short_writes_counted():
    class Short:
        def write(self, buf, n):
            return n - 1

    counters = Counters()
    link = Link(3, counters, Short(), h.ScriptedInput())
    other = FrameWriter(3, 32)
    assert link.send(link.writer, messages.LOG, 1, 0) is False
    assert link.send(other, messages.LOG, 1, 0) is False
    assert link.seq == 2 and other.seq == 2
    assert counters.tx_dropped == 2


def test_log_messages_decode():
    link, cap, _inp, _c = _link()
    link.log(2, "sensor missing: sht3x at 0x44", 77)
    (m,) = cap.new()
    assert m.name == "log" and m["level"] == 2 and m["text"] == "sensor missing: sht3x at 0x44"


def test_stdin_reader_never_blocks():
    reader = StdinReader()
    got = reader.readinto(bytearray(1))
    assert got in (0, 1, None)


def test_link_leaves_ctrl_c_to_the_repl():
    path = link_mod.__file__
    f = open(path)
    text = f.read()
    f.close()
    assert "kbd_intr(" not in text.replace("micropython.kbd_intr:", "")


def test_answered_remembers_the_last_few_requests_by_id_and_crc_for_a_while():
    memory = Answered()
    lines = [armour.encode_command(i, "stream_stop").rstrip(b"\n") for i in range(1, Answered.SIZE + 2)]
    t = (1 << 30) - 1000  # across the node clock's wrap
    for i, line in enumerate(lines):
        memory.keep(i + 1, line, messages.OK, {"n": i}, t)
    later = (t + 2000) & ((1 << 30) - 1)
    assert memory.find(1, lines[0], later) is None  # the oldest went
    assert memory.find(2, lines[1], later) == (messages.OK, {"n": 1})
    assert memory.find(Answered.SIZE + 1, lines[-1], later) == (messages.OK, {"n": Answered.SIZE})
    other = armour.encode_command(2, "stream_start").rstrip(b"\n")
    assert memory.find(2, other, later) is None  # same id, another line
    much_later = (t + Answered.KEEP_MS) & ((1 << 30) - 1)
    assert memory.find(2, lines[1], much_later) is None  # a later session sending the same line: a new request
