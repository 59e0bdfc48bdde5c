"""citynode_fw.hmac_viper: the same MACs as auth.Signer (hashlib) on the auth
vectors and around every SHA-256 block boundary, and no heap per frame. On a
port without a native emitter (the WebAssembly port) the module does not
import and uplink.signer falls back to auth.Signer; its tests skip there.
tests/host/test_hmac_viper.py holds it to CPython's hmac on random input."""

import gc

from citynode_fw import uplink
from citynode_protocol import auth, frame
from golden import load, unhex
from mp_skip import SkipTest

VECTORS = load("auth.json")["signed_frames"]
# lengths around the padding's edges (55/56: the length field fits or not) and block ends
LENGTHS = [0, 1, 31, 32, 33] + [b * 64 + d for b in range(4) for d in (-9, -8, -7, -1, 0, 1, 55, 56, 57) if b * 64 + d >= 0]


def _viper():
    try:
        from citynode_fw import hmac_viper
    except (ImportError, SyntaxError, ValueError) as exc:
        raise SkipTest("no viper on this port (%s)" % exc)
    return hmac_viper


def _data(n, seed):
    return bytes([(i * 131 + seed * 7 + (i >> 3)) & 0xFF for i in range(n)])


def test_signer_is_viper_where_it_imports_else_hashlib():
    s = uplink.signer(bytes(32))
    try:
        from citynode_fw import hmac_viper
    except (ImportError, SyntaxError, ValueError):
        assert type(s) is auth.Signer
        return
    assert type(s) is hmac_viper.Signer


def test_digest_matches_hashlib_around_block_boundaries():
    hv = _viper()
    for seed, key in enumerate((bytes(32), bytes(range(32)), bytes([0xFF] * 32), _data(32, 99))):
        ours, ref = hv.Signer(key), auth.Signer(key)
        for n in LENGTHS:
            data = _data(n, seed)
            assert ours.digest(data) == ref.digest(data), (seed, n)


def test_mac_into_writes_only_the_mac_in_place():
    hv = _viper()
    key = _data(32, 5)
    ours, ref = hv.Signer(key), auth.Signer(key)
    for n in LENGTHS:
        buf = bytearray(_data(n, 1) + bytes([0xA5] * 20))
        ours.mac_into(buf, n, n + 3)
        assert bytes(buf[:n]) == _data(n, 1), n
        assert bytes(buf[n : n + 3]) == b"\xa5\xa5\xa5", n
        assert bytes(buf[n + 3 : n + 3 + auth.MAC_SIZE]) == ref.mac(_data(n, 1)), n
        assert bytes(buf[n + 3 + auth.MAC_SIZE :]) == bytes([0xA5] * (17 - auth.MAC_SIZE)), n


def test_every_auth_vector_signs_to_its_bytes_through_viper():
    hv = _viper()
    for v in VECTORS:
        unsigned = unhex(v["unsigned_raw_hex"])
        node_id = unsigned[1] | unsigned[2] << 8
        w = frame.FrameWriter(node_id, 64, trailer=auth.TRAILER_SIZE)
        body = unsigned[frame.HEADER_SIZE : -frame.CRC_SIZE]
        w.payload[: len(body)] = body
        w.seq = unsigned[3] | unsigned[4] << 8
        time_ms = unsigned[5] | unsigned[6] << 8 | unsigned[7] << 16 | unsigned[8] << 24
        w.finish(unsigned[0] & 0x1F, len(body), time_ms & 0x3FFFFFFF, time_ms >> 30)
        signer = hv.Signer(unhex(v["key_hex"]))
        n = auth.sign_writer(w, len(body), signer, v["boot"], v["seq_hi"])
        assert bytes(w.raw[:n]) == unhex(v["signed_raw_hex"]), v["name"]
        assert auth.verify(bytes(w.raw[:n]), signer), v["name"]
        assert signer.mac(unhex(v["signed_raw_hex"])[: n - frame.CRC_SIZE - auth.MAC_SIZE]) == unhex(v["mac_hex"])


def test_mac_into_allocates_nothing():
    hv = _viper()
    signer = hv.Signer(bytes(range(32)))
    buf = bytearray(300)
    signer.mac_into(buf, 250, 250)
    gc.collect()
    gc.disable()
    try:
        before = gc.mem_alloc()
        for n in (0, 55, 56, 64, 119, 120, 250):
            signer.mac_into(buf, n, 250)
        used = gc.mem_alloc() - before
    finally:
        gc.enable()
    assert used == 0, used
