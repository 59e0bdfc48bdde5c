"""Signed command lines (SPEC.md §9.4): the golden vectors, refusals by reason."""

from citynode_protocol import armour, auth, cmdauth
from golden import load, unhex

VECTORS = load("cmdauth.json")["signed_commands"]


def _reason(payload, signer, node_id):
    try:
        cmdauth.open_line(payload, signer, node_id)
    except cmdauth.CommandAuthError as exc:
        return exc.reason
    return None


def test_signing_reproduces_every_vector():
    for v in VECTORS:
        signer = auth.Signer(unhex(v["key_hex"]))
        got = cmdauth.sign(v["line"], signer, v["node_id"], v["counter"])
        assert got == v["signed"].encode(), v["name"]
        assert cmdauth.sign(v["line"].encode() + b"\n", signer, v["node_id"], v["counter"]) == got


def test_every_vector_opens_to_its_line_and_counter():
    for v in VECTORS:
        signer = auth.Signer(unhex(v["key_hex"]))
        line, counter = cmdauth.open_line(v["signed"].encode(), signer, v["node_id"])
        assert line == v["line"].encode() and counter == v["counter"], v["name"]
        assert armour.decode_command(line)[1] in ("info", "config_set", "reboot")


def test_trailer_layout():
    v = VECTORS[0]
    signed = v["signed"]
    assert signed.startswith(v["line"] + "~")
    assert signed[len(v["line"]) + 17] == "~"
    assert int(signed[len(v["line"]) + 1 : len(v["line"]) + 17], 16) == v["counter"]
    assert len(signed) == len(v["line"]) + 1 + 16 + 1 + 32


def test_any_changed_character_is_refused():
    v = VECTORS[1]
    signer = auth.Signer(unhex(v["key_hex"]))
    signed = v["signed"].encode()
    for i in range(len(signed)):
        bad = bytearray(signed)
        bad[i] = ord("0") if bad[i] != ord("0") else ord("1")
        assert _reason(bytes(bad), signer, 7) in ("bad_mac", "malformed"), i


def test_another_key_or_node_is_a_bad_mac():
    v = VECTORS[0]
    signed = v["signed"].encode()
    assert _reason(signed, auth.Signer(bytes(32)), 7) == "bad_mac"
    assert _reason(signed, auth.Signer(unhex(v["key_hex"])), 8) == "bad_mac"  # signed for node 7


def test_unsigned_and_malformed_lines_are_told_apart():
    signer = auth.Signer(unhex(VECTORS[0]["key_hex"]))
    line = VECTORS[0]["line"].encode()
    assert _reason(line, signer, 7) == "unsigned"
    assert _reason(line + b"\n", signer, 7) == "unsigned"
    assert _reason(b"", signer, 7) == "malformed"
    assert _reason(b"\xff\xfe", signer, 7) == "malformed"
    assert _reason(VECTORS[0]["signed"].encode()[:-1], signer, 7) == "malformed"
    assert _reason(line + b"~" + b"g" * 16 + b"~" + b"0" * 32, signer, 7) == "malformed"


def test_counter_outside_u64_is_refused_when_signing():
    signer = auth.Signer(bytes(32))
    for counter in (-1, 1 << 64):
        try:
            cmdauth.sign(">x*00000000", signer, 1, counter)
        except ValueError:
            continue
        assert False, counter
