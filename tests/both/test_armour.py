from citynode_protocol import armour
from golden import load, raises


def test_golden_lines_decode():
    for case in load("armour.json")["good"]:
        rid, cmd, args = armour.decode_command(case["line"])
        assert (rid, cmd, args) == (case["id"], case["cmd"], case["args"])


def test_bad_lines_refused():
    for line in load("armour.json")["bad"]:
        assert raises(armour.ArmourError, armour.decode_command, line), line


def test_roundtrip_and_no_control_bytes():
    line = armour.encode_command(300, "config_set", {"key": "site", "value": "deck 3, pier \"N\""})
    assert line.endswith(b"\n")
    for b in line[:-1]:
        assert 0x20 <= b <= 0x7E
    assert armour.decode_command(line) == (300, "config_set", {"key": "site", "value": "deck 3, pier \"N\""})


def test_control_characters_never_reach_the_line():
    # escaped by JSON (CPython) or refused (an interpreter whose json emits them raw)
    try:
        line = armour.encode_command(1, "x\x03", {"v": "\x03\x04"})
    except ValueError:
        return
    for b in line[:-1]:
        assert 0x20 <= b <= 0x7E
    assert armour.decode_command(line)[1] == "x\x03"
