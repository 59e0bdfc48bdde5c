"""SPEC.md stays in step with messages.py and the golden vectors."""

import json
import re
import struct
from pathlib import Path

from citynode_protocol import messages

ROOT = Path(__file__).resolve().parents[2]
SPEC = (ROOT / "protocol" / "SPEC.md").read_text()
TYPE_CODES = {"u8": "B", "i8": "b", "u16": "H", "i16": "h", "u32": "I", "i32": "i", "u64": "Q"}


def _spec_tables():
    tables = {}
    for match in re.finditer(r"^### (\d+) (\w+)\n(.*?)(?=^### |^## )", SPEC, re.M | re.S):
        rows = re.findall(r"^\| (\d+) \| (\w+) \| (\w+) \| ([-\de.]+) \| ([^|]*)\|$", match.group(3), re.M)
        tables[int(match.group(1))] = (match.group(2), rows)
    return tables


def test_every_message_has_a_spec_table_that_matches():
    tables = _spec_tables()
    assert sorted(tables) == sorted(messages.BY_TYPE)
    for msg_type, name, fmt, fields, _tail in messages.MESSAGES:
        spec_name, rows = tables[msg_type]
        assert spec_name == name
        assert len(rows) == len(fields), name
        offset = 0
        for (off, typ, fname, scale, unit), (want_name, want_scale, want_unit), code in zip(
            rows, fields, fmt[1:]
        ):
            assert int(off) == offset, (name, fname)
            assert TYPE_CODES[typ] == code, (name, fname)
            assert fname == want_name
            assert (scale == "-" and want_scale is None) or float(scale) == want_scale, (name, fname)
            assert unit.strip() == want_unit, (name, fname)
            offset += struct.calcsize("<" + code)
        assert offset == struct.calcsize(fmt)


def test_reply_codes_table_matches():
    rows = dict(re.findall(r"^\| (\d+) \| ([^|]+) \|$", SPEC, re.M))
    assert {int(k): v.strip() for k, v in rows.items()} == messages.REPLY_CODES


def test_worked_examples_are_the_vectors():
    vectors = {c["name"]: c for c in json.loads((ROOT / "protocol/vectors/frames.json").read_text())["cases"]}
    wires = re.findall(r"^wire  ((?:[0-9a-f]{2} )+[0-9a-f]{2})", SPEC, re.M)
    assert len(wires) >= 2
    for wire in wires:
        hexed = wire.replace(" ", "")
        assert any(v["wire_hex"] == hexed for v in vectors.values()), wire


def test_commands_listed():
    for command in messages.COMMANDS:
        assert "`%s`" % command in SPEC
