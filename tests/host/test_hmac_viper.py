"""citynode_fw.hmac_viper (HMAC-SHA256 in viper, run by the Unix port) makes
CPython's hmac.new(key, msg, sha256) digests for random keys and messages, and
writes the same 8-byte MAC in place as auth.sign_writer does.

One MicroPython process serves the whole module: it reads `key_hex msg_hex`
lines and answers each with the viper digest and its in-place MAC, in hex.
"""

import hashlib
import hmac
import subprocess
from pathlib import Path

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from test_micropython import micropython_command  # tests/ is on pytest's pythonpath

ROOT = Path(__file__).resolve().parents[2]

SERVER = """
import sys
from citynode_fw import hmac_viper
from binascii import hexlify, unhexlify
while True:
    line = sys.stdin.readline()
    if not line:
        break
    key, _, msg = line.strip().partition(' ')
    s = hmac_viper.Signer(unhexlify(key))
    msg = unhexlify(msg)
    buf = bytearray(msg) + bytearray(8)
    s.mac_into(buf, len(msg), len(msg))
    print(hexlify(s.digest(msg)).decode(), hexlify(buf[len(msg):]).decode())
"""


@pytest.fixture(scope="module")
def viper():
    exe = micropython_command()
    if not exe:
        pytest.skip("the MicroPython Unix port is not installed")
    proc = subprocess.Popen(
        [exe, "-c", SERVER],
        stdin=subprocess.PIPE,
        stdout=subprocess.PIPE,
        text=True,
        env={"MICROPYPATH": "%s:%s" % (ROOT / "firmware", ROOT / "protocol")},
    )

    def ask(key, msg):
        proc.stdin.write("%s %s\n" % (key.hex(), msg.hex()))
        proc.stdin.flush()
        line = proc.stdout.readline()
        assert line, "the MicroPython process ended (rc %s)" % proc.poll()
        digest, mac = line.split()
        return bytes.fromhex(digest), bytes.fromhex(mac)

    yield ask
    proc.stdin.close()
    proc.wait(timeout=10)


def _reference(key, msg):
    return hmac.new(key, msg, hashlib.sha256).digest()


@settings(max_examples=300)
@given(key=st.binary(min_size=32, max_size=32), msg=st.binary(max_size=400))
def test_random_keys_and_messages_match_cpython_hmac(viper, key, msg):
    digest, mac = viper(key, msg)
    assert digest == _reference(key, msg)
    assert mac == digest[:8]


@pytest.mark.parametrize("n", [0, 1, 55, 56, 57, 63, 64, 65, 119, 120, 121, 127, 128, 129, 183, 184, 191, 192, 1000])
def test_lengths_around_block_boundaries_match_cpython_hmac(viper, n):
    key = bytes(range(100, 132))
    msg = bytes((i * 37 + n) & 0xFF for i in range(n))
    assert viper(key, msg) == (_reference(key, msg), _reference(key, msg)[:8])
