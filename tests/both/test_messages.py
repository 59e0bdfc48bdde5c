import struct

from citynode_protocol import messages, payload


def test_table_is_consistent():
    seen = {}
    for entry in messages.MESSAGES:
        msg_type, name, fmt, fields, tail = entry
        assert 0 < msg_type < 32
        assert msg_type not in seen
        seen[msg_type] = name
        n_values = len(struct.unpack(fmt, bytes(struct.calcsize(fmt))))
        assert n_values == len(fields), name
        assert tail in (None, "text", "json", "accel")


def test_every_message_roundtrips_through_pack_and_unpack():
    for entry in messages.MESSAGES:
        msg_type, name, fmt, fields, tail = entry
        values = {}
        for i in range(len(fields)):
            fname, scale, _ = fields[i]
            values[fname] = (i + 1) * (scale if scale else 1)
        if tail == "accel":
            values["samples"] = [1, 2, 3, 4, 5, 6]
            values.pop("n_samples")
            values.pop("encoding")
        t, body = payload.pack(name, values)
        assert t == msg_type
        got, extra = payload.unpack(t, body)
        assert extra == 0
        for key in values:
            a = got[key]
            b = values[key]
            assert abs(a - b) < 1e-9 * max(1, abs(b)) if not isinstance(b, list) else a == b, (name, key)


def test_reply_codes_have_words():
    for code in range(10):
        assert messages.reply_word(code)
