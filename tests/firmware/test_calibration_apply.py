"""citynode_fw.calibration: stored with rollback, applied in integers without allocating."""

import gc
import math

import fw_helpers as h
from citynode_fw import calibration, store

DOC_A = {
    "id": 101,
    "date": "2026-11-20",
    "method": "six-position",
    "site": {"bridge": "B1", "mount": "north girder"},
    "climate": {"t_gain": 1.0, "t_offset_c": -0.3, "rh_gain": 1.02, "rh_offset_pct": 1.5},
    "accel": {"bias_g": [0.01, -0.02, 0.0], "scale": [1.0, 1.0, 1.0]},
}
DOC_B = {"id": 102, "date": "2026-11-25", "method": "ellipsoid", "accel": {"scale": [1.01, 0.99, 1.0]}}


def _pack(samples):
    buf = bytearray(2 * len(samples))
    for i, v in enumerate(samples):
        v &= 0xFFFF
        buf[2 * i] = v & 0xFF
        buf[2 * i + 1] = v >> 8
    return buf


def _unpack(buf):
    out = []
    for i in range(len(buf) // 2):
        v = buf[2 * i] | (buf[2 * i + 1] << 8)
        out.append(v - 0x10000 if v & 0x8000 else v)
    return out


def _in_tmp(fn):
    h.enter_tmpdir("cal")
    try:
        fn()
    finally:
        h.leave_tmpdir()


def test_no_file_is_uncalibrated_without_fallback():
    def body():
        cal, why = calibration.load()
        assert cal is None and why is None

    _in_tmp(body)


def test_write_read_and_rollback():
    def body():
        calibration.save(DOC_A)
        cal, why = calibration.load()
        assert why is None and cal.id == 101 and cal.date == "2026-11-20"
        assert not store.exists(calibration.PREV_PATH)
        calibration.save(DOC_B)
        assert calibration.load()[0].id == 102
        prev = store.read(calibration.PREV_PATH, calibration.KEY)
        assert prev["id"] == 101
        back = calibration.rollback()
        assert back.id == 101 and calibration.load()[0].id == 101
        assert store.read(calibration.PREV_PATH, calibration.KEY)["id"] == 102
        assert calibration.rollback().id == 102  # a second rollback undoes the first

    _in_tmp(body)


def test_rollback_without_previous_is_refused():
    def body():
        calibration.save(DOC_A)
        try:
            calibration.rollback()
        except ValueError as exc:
            assert "previous" in str(exc)
        else:
            assert False, "rolled back to nothing"
        assert calibration.load()[0].id == 101

    _in_tmp(body)


def test_corrupt_file_runs_uncalibrated_with_reason():
    def body():
        calibration.save(DOC_A)
        f = open(calibration.PATH, "w")
        f.write('{"crc":5,"calib":{"id":101}}')
        f.close()
        cal, why = calibration.load()
        assert cal is None and why == "bad_crc"

    _in_tmp(body)


def test_bad_documents_are_refused():
    bad = (
        {"date": "no id"},
        {"id": -1},
        {"id": 1, "climate": {"t_gain": 3.0}},
        {"id": 1, "accel": {"scale": [1.0, 1.0]}},
        {"id": 1, "accel": {"bias_g": [2.0, 0, 0]}},
        {"id": 1, "accel": {"rotation": [[1, 0, 0], [0, 1, 0], [0, 0.5, 1]]}},
        {"id": 1, "colour": "blue"},
    )
    for doc in bad:
        try:
            calibration.Calibration(doc)
        except ValueError:
            pass
        else:
            assert False, "accepted %r" % (doc,)


def test_climate_linear_in_centi_units():
    cal = calibration.Calibration(DOC_A).climate
    assert cal.temperature(2150) == 2120  # 21.50 C - 0.30
    assert cal.humidity(5000) == 5250  # 50.00 * 1.02 + 1.5
    assert cal.humidity(0) == 150


def test_accel_identity_bias_and_scale():
    cal = calibration.Calibration(
        {"id": 1, "accel": {"bias_g": [0.5, -0.25, 0.0], "scale": [2.0, 1.0, 0.5]}}
    ).accel
    cal.prepare(2)  # 16384 counts per g
    buf = _pack([16384, 0, 16384, -32768, 32767, 0])
    cal.apply_into(buf, 2)
    got = _unpack(buf)
    # x: (16384 - 8192) * 2 = 16384; y: 0 + 4096; z: 16384 * 0.5 = 8192
    assert got[:3] == [16384, 4096, 8192]
    # saturation at the int16 ends
    assert got[3] == -32768 and got[4] == 32767 and got[5] == 0
    cal.prepare(8)  # bias in counts follows the range: 0.5 g = 2048 counts at 8 g
    assert cal.table[9] == 2048 and cal.table[10] == -1024


def test_accel_mount_rotation_and_full_matrix():
    # rotate 90 degrees about z: sensor x -> structure y, sensor y -> structure -x
    rot = [[0.0, -1.0, 0.0], [1.0, 0.0, 0.0], [0.0, 0.0, 1.0]]
    cal = calibration.Calibration({"id": 2, "accel": {"rotation": rot, "tilt_zero_deg": [1.0, -2.0]}}).accel
    assert cal.relative and cal.tilt_zero == (1.0, -2.0)
    cal.prepare(2)
    buf = _pack([1000, 2000, 16384])
    cal.apply_into(buf, 1)
    assert _unpack(buf) == [-2000, 1000, 16384]
    # a 45 degree tilt about x brought back level: within one count
    c = math.cos(math.pi / 4)
    tilt = [[1.0, 0.0, 0.0], [0.0, c, -c], [0.0, c, c]]
    cal = calibration.Calibration({"id": 3, "accel": {"matrix": tilt}}).accel
    cal.prepare(2)
    buf = _pack([0, -11585, 11585])  # 1 g at 45 degrees in y-z
    cal.apply_into(buf, 1)
    x, y, z = _unpack(buf)
    assert x == 0 and abs(y + 16384) <= 1 and abs(z) <= 1


def test_accel_apply_does_not_allocate():
    cal = calibration.Calibration(DOC_A).accel
    cal.prepare(2)
    buf = _pack([100, -200, 16000] * 100)
    cal.apply_into(buf, 100)  # warm up
    gc.collect()
    gc.disable()
    try:
        before = gc.mem_alloc()
        cal.apply_into(buf, 100)
        used = gc.mem_alloc() - before
    finally:
        gc.enable()
    assert used == 0, "apply_into allocated %d bytes for 100 samples" % used
