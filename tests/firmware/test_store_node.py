"""What the whole node reports after a store fallback: the STATUS flags, the boot log,
`info` in words, and how the next write clears it."""

import fw_helpers as h
from citynode_protocol import messages
from citynode_fw import calibration, commands, config, node, store

CAL_OLD = {"id": 299, "date": "2026-11-01", "climate": {"t_offset_c": -0.2}}
CAL_NEW = {"id": 300, "date": "2026-11-20", "climate": {"t_offset_c": -0.3}}

BOTH = messages.STATUS_CONFIG_FALLBACK | messages.STATUS_CALIB_FALLBACK


def _write(path, text):
    f = open(path, "w")
    f.write(text)
    f.close()


def _boot():
    clock = h.ManualClock()
    bus, _scenario = h.sim_bus(clock, {"sensors": {"climate": "sht45", "accel": "adxl345"}})
    cap = h.Capture()
    n = node.build(h.FakeBoard(clock, bus), cap.out, h.ScriptedInput())
    n.run_for(200)
    return n, cap


def _flags(n, cap):
    n.send_status()
    return cap.named("status")[-1]["flags"]


def _in_tmp(fn):
    h.enter_tmpdir("stn")
    try:
        fn()
    finally:
        h.leave_tmpdir()


def test_copies_left_by_interrupted_saves_are_used_reported_and_put_in_place():
    # a FAT rename cut after removing the old files: only the complete tmp copies are left
    def body():
        values = config.defaults()
        values["node_id"] = 33
        _write(config.PATH + ".tmp", store.dump(config.KEY, values))
        _write(calibration.PATH + ".tmp", store.dump(calibration.KEY, CAL_NEW, ((calibration.PREV, CAL_OLD),)))
        n, cap = _boot()
        assert n.cfg["node_id"] == 33 and n.calib.id == 300
        assert _flags(n, cap) & BOTH == BOTH
        texts = [m["text"] for m in cap.named("log")]
        assert "config fallback: config.json missing: loaded config.json.tmp, the copy an interrupted save left" \
            in texts
        assert "calibration fallback: calib.json missing: loaded calib.json.tmp, the copy an interrupted save left" \
            in texts
        code, info = commands.run(n, "info", {})
        assert code == messages.OK
        assert "interrupted save" in info["config_fallback"] and "interrupted save" in info["calibration_fallback"]
        assert info["calibration"]["id"] == 300
        # the boot put them in place: a backup now finds them
        assert store.exists(config.PATH) and not store.exists(config.PATH + ".tmp")
        assert store.exists(calibration.PATH) and not store.exists(calibration.PATH + ".tmp")
        assert calibration.stored() == (CAL_NEW, CAL_OLD, None)
        # a good write clears each flag
        assert commands.run(n, "config_set", {"values": {"site": "pier 3"}})[0] == messages.OK
        assert _flags(n, cap) & BOTH == messages.STATUS_CALIB_FALLBACK
        assert commands.run(n, "calib_rollback", {}) == (messages.OK, {"id": 299})
        assert _flags(n, cap) & BOTH == 0
        assert commands.run(n, "calib_get", {})[1]["fallback"] is None

    _in_tmp(body)


def test_a_refused_current_calibration_gives_way_to_the_previous_one():
    def body():
        config.save(config.defaults())
        bad = {"id": 301, "climate": {"t_gain": 3.0}}  # out of range for this firmware
        store.write(calibration.PATH, calibration.KEY, bad, ((calibration.PREV, CAL_NEW),))
        n, cap = _boot()
        assert n.calib.id == 300
        assert _flags(n, cap) & BOTH == messages.STATUS_CALIB_FALLBACK
        code, b = commands.run(n, "calib_get", {})
        assert b["calib"]["id"] == 300
        assert b["fallback"] == ("calibration 301 in calib.json refused (t_gain=3.0 outside 0.8..1.2): "
                                 "running the previous calibration (id 300)")
        assert cap.named("status")[-1]["calibration_id"] == 300

    _in_tmp(body)
