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


def _slots():
    cur, prev, problem = calibration.stored()
    assert problem is None
    return (cur["id"] if cur else None, prev["id"] if prev else None)


def test_write_read_and_rollback():
    def body():
        calibration.save(DOC_A)
        cal, why = calibration.load()
        assert why is None and cal.id == 101 and cal.date == "2026-11-20"
        assert _slots() == (101, None)
        calibration.save(DOC_B)
        assert calibration.load()[0].id == 102
        assert _slots() == (102, 101)
        assert store.parse(_read(calibration.PATH), calibration.KEY)["id"] == 102  # what host tools read
        back = calibration.rollback()
        assert back.id == 101 and calibration.load()[0].id == 101
        assert _slots() == (101, 102)
        assert calibration.rollback().id == 102  # a second rollback undoes the first
        assert _slots() == (102, 101)
        assert not store.exists(calibration.PREV_PATH) and not store.exists(calibration.PATH + ".tmp")

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


def test_damaged_file_runs_uncalibrated_with_reason():
    def body():
        calibration.save(DOC_A)
        _write(calibration.PATH, '{"crc":5,"calib":{"id":101}}')
        cal, why = calibration.load()
        assert cal is None and why == "calib.json damaged (checksum mismatch): running uncalibrated"

    _in_tmp(body)


def test_current_with_a_bad_value_gives_way_to_the_previous():
    def body():
        calibration.save(DOC_A)
        bad = {"id": 103, "climate": {"t_gain": 3.0}}  # refused by validate, stored by an older firmware
        store.write(calibration.PATH, calibration.KEY, bad, ((calibration.PREV, DOC_A),))
        cal, why = calibration.load()
        assert cal.id == 101
        assert why == ("calibration 103 in calib.json refused (t_gain=3.0 outside 0.8..1.2): "
                       "running the previous calibration (id 101)")
        calibration.save(DOC_B)  # the one in use, not the refused one, becomes the previous
        assert _slots() == (102, 101)

    _in_tmp(body)


def test_files_of_the_older_two_file_store_still_load_and_migrate():
    # before the one-file store: calib.json held only the current one, calib.prev.json the previous
    def body():
        _write(calibration.PATH, _old_format(DOC_B))
        _write(calibration.PREV_PATH, _old_format(DOC_A))
        cal, why = calibration.load()
        assert why is None and cal.id == 102
        assert calibration.stored() == (DOC_B, DOC_A, None)
        assert calibration.rollback().id == 101
        assert _slots() == (101, 102)
        assert not store.exists(calibration.PREV_PATH)  # one write decides both roles from now on

    _in_tmp(body)


def _old_format(doc):
    body = store.canonical(doc)
    return '{"crc":%d,"calib":%s}\n' % (store.crc32_text(body), body)


def _write(path, text):
    f = open(path, "w")
    f.write(text)
    f.close()


def _read(path):
    f = open(path)
    text = f.read()
    f.close()
    return text


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
