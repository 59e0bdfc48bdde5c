"""auth.py against CPython's hmac, the independent oracle, on random keys and messages."""

import hashlib
import hmac
import random

from citynode_protocol import auth, frame


def test_signer_digest_is_hmac_sha256():
    rnd = random.Random(11)
    for n in (0, 1, 55, 56, 63, 64, 65, 119, 120, 128, 600, 4096):
        key = bytes(rnd.getrandbits(8) for _ in range(auth.KEY_SIZE))
        data = bytes(rnd.getrandbits(8) for _ in range(n))
        want = hmac.new(key, data, hashlib.sha256).digest()
        assert auth.Signer(key).digest(data) == want
        assert auth.Signer(key).mac(data) == want[: auth.MAC_SIZE]


def test_signed_frames_verify_with_hmac_and_keep_a_valid_crc():
    rnd = random.Random(12)
    for _ in range(50):
        key = bytes(rnd.getrandbits(8) for _ in range(auth.KEY_SIZE))
        body = bytes(rnd.getrandbits(8) for _ in range(rnd.randrange(0, 700)))
        raw = frame.build(rnd.randrange(1, 8), rnd.randrange(65536), rnd.randrange(65536), rnd.getrandbits(32), body)
        boot, seq_hi = rnd.getrandbits(32), rnd.getrandbits(16)
        signed = auth.sign(raw, auth.Signer(key), boot, seq_hi)
        mac_end = len(signed) - frame.CRC_SIZE
        assert signed[mac_end - auth.MAC_SIZE : mac_end] == hmac.new(
            key, signed[: mac_end - auth.MAC_SIZE], hashlib.sha256).digest()[: auth.MAC_SIZE]
        frame.parse(signed)
        assert auth.unsign(signed) == raw


def test_signed_commands_carry_hmac_sha256_of_their_node_and_text():
    from citynode_protocol import armour, cmdauth

    rnd = random.Random(13)
    for _ in range(50):
        key = bytes(rnd.getrandbits(8) for _ in range(auth.KEY_SIZE))
        node_id, counter = rnd.randrange(65536), rnd.getrandbits(64)
        line = armour.encode_command(rnd.randrange(65536), "config_set", {"values": {"site": "x" * rnd.randrange(300)}})
        signed = cmdauth.sign(line, auth.Signer(key), node_id, counter).decode()
        head, mac = signed.rsplit("~", 1)
        assert head == "%s~%016x" % (line.decode().rstrip("\n"), counter)
        assert mac == hmac.new(key, ("citynode-cmd:%d:%s" % (node_id, head)).encode(), hashlib.sha256).hexdigest()[:32]
        assert cmdauth.open_line(signed.encode(), auth.Signer(key), node_id) == (line.rstrip(b"\n"), counter)
