"""The whole node on the simulated bus: build from flash, run ~1.5 s of node
time with the serial output captured, decode it with the protocol decoder."""

import gc
import math

import fw_helpers as h
from citynode_protocol import messages
from citynode_fw import config, node


def _build(data=None, **cfg):
    clock = h.ManualClock()
    bus, scenario = h.sim_bus(clock, data)
    board = h.FakeBoard(clock, bus)
    if cfg:
        values = config.defaults()
        for key in cfg:
            values[key] = cfg[key]
        config.save(values)
    cap = h.Capture()
    n = node.build(board, cap.out, h.ScriptedInput())
    return n, cap, board


def test_node_runs_and_speaks_the_protocol():
    h.enter_tmpdir("node")
    try:
        n, cap, board = _build(None, node_id=7, site="test bench", climate_period_s=60)
        n.run_for(1500)
        msgs = cap.new()
        stats = cap.decoder.stats
        assert stats.bad_frames == 0 and stats.bytes_skipped == 0
        assert all(m.node_id == 7 for m in msgs)
        names = [m.name for m in msgs]
        assert names[0] == "log" and msgs[0]["text"].startswith("boot: citynode")
        (status,) = [m for m in msgs if m.name == "status"]
        assert status["sensors_fitted"] == 3 and status["sensors_ok"] == 3
        assert status["flags"] == messages.STATUS_STREAMING  # config read fine, no fallback
        assert status["mpy_major"] == 1 and status["app_minor"] == 1 and status["free_heap"] > 0
        (climate,) = [m for m in msgs if m.name == "climate"]
        assert abs(climate["temperature_c"] - 21.5) < 0.5
        assert abs(climate["relative_humidity_pct"] - 48.0) < 2
        blocks = [m for m in msgs if m.name == "accel"]
        assert len(blocks) == 1  # default scenario: ADXL355 at the default 250 Hz, 200-sample blocks
        for k, m in enumerate(blocks):
            assert m["first_index"] == 200 * k and m["odr_hz"] == 250.0
            z = m["samples"][2::3]
            g = sum(z) / len(z) * m["range_g"] / 32768
            assert abs(g - 1.0) < 0.02, g
        seqs = [m.seq for m in msgs]
        assert seqs == list(range(len(msgs)))
    finally:
        h.leave_tmpdir()


def test_missing_config_and_sensor_are_reported():
    h.enter_tmpdir("node")
    try:
        n, cap, board = _build({"sensors": {"climate": "none", "accel": "adxl345"}})
        n.run_for(1200)
        msgs = cap.new()
        texts = [m["text"] for m in msgs if m.name == "log"]
        assert any("config fallback" in t for t in texts)
        assert any("no climate sensor" in t for t in texts)
        status = [m for m in msgs if m.name == "status"][0]
        assert status["flags"] & messages.STATUS_CONFIG_FALLBACK
        assert status["sensors_fitted"] == messages.SENSOR_ACCEL
        assert [m for m in msgs if m.name == "accel"]
    finally:
        h.leave_tmpdir()


def test_features_recover_the_scenario_vibration():
    # 10 s window at 250 Hz (ADXL355: the ADXL345's 3.9 mg steps would add
    # 1.1 mg rms of quantisation noise): a 4.37 Hz mode of 4 mg plus 0.5 mg noise
    h.enter_tmpdir("node")
    try:
        data = {
            "sensors": {"climate": "sht35", "accel": "adxl355"},
            "vibration": [{"freq_hz": 4.37, "amp_g": 0.004, "axis": [0.0, 0.0, 1.0]}],
            "noise_g": 0.0005,
        }
        n, cap, board = _build(data, mode="features", feature_window_s=10, accel_odr_hz=250)
        n.run_for(11000)
        (f,) = cap.named("features")
        assert f["n_samples"] == 2500 and f["window_s"] == 10.0
        assert abs(f["dominant_freq_z_hz"] - 4.37) <= 0.1, f["dominant_freq_z_hz"]
        rms = math.sqrt((0.004 / math.sqrt(2)) ** 2 + 0.0005**2)
        assert abs(f["rms_z_g"] - rms) < 0.1 * rms, f["rms_z_g"]
        assert abs(f["rms_x_g"] - 0.0005) < 0.0002
        assert abs(f["pitch_deg"]) < 0.5 and abs(f["roll_deg"]) < 0.5
        assert cap.named("accel") == []
    finally:
        h.leave_tmpdir()


def test_node_heap_stays_flat():
    h.enter_tmpdir("node")
    try:
        n, cap, board = _build({"sensors": {"climate": "sht45", "accel": "adxl345"}})
        n.link.out = _Null()  # a capture would grow with every frame
        n.run_for(3000)
        gc.collect()
        before = gc.mem_alloc()
        n.run_for(10000)
        gc.collect()
        after = gc.mem_alloc()
        print("node heap after gc: %d -> %d bytes over 10 s of node time" % (before, after))
        assert after <= before, after - before
    finally:
        h.leave_tmpdir()


class _Null:
    def write(self, buf, n):
        return n


def test_probe_keeps_only_the_driver_of_the_fitted_part():
    """An ADXL345 answers at 0x53, where the ADXL355 driver is tried first: that
    driver fails its identity check and leaves the heap; the ADXL345's stays."""
    import sys

    h.enter_tmpdir("node")
    try:
        for name in ("citynode_fw.drivers.adxl355", "citynode_fw.drivers.adxl345"):
            sys.modules.pop(name, None)
        n, _cap, _board = _build({"sensors": {"accel": "adxl345", "climate": "sht45"}})
        assert n.sampler.accel.PART == "adxl345"
        assert "citynode_fw.drivers.adxl345" in sys.modules
        assert "citynode_fw.drivers.adxl355" not in sys.modules
        import citynode_fw.drivers as drivers

        assert not hasattr(drivers, "adxl355")
    finally:
        h.leave_tmpdir()


def _selftest(n):
    checks = n.selftest()
    return all(c["pass"] for c in checks), dict((c["name"], c) for c in checks)


def test_a_fresh_node_reports_no_error():
    """Defaults suit the default parts: a board never provisioned (no config.json)
    with the simulator's SHT35 and ADXL355 (probed past the SHT4x driver) logs
    no warning; a damaged config still does."""
    h.enter_tmpdir("node")
    try:
        n, cap, _board = _build()
        assert n.config.never_saved and n.config.fallback.startswith("config.json missing")
        n.run_for(1200)
        assert n.last_errors == [], n.last_errors
        assert n.sampler.odr_mhz == 250000
        texts = [m["text"] for m in cap.new() if m.name == "log"]
        assert not [t for t in texts if "sht4x" in t], texts
        with open(config.PATH, "w") as f:
            f.write("{not json")
        n, cap, _board = _build()
        assert [t for t in n.last_errors if "config fallback" in t]
    finally:
        h.leave_tmpdir()


def test_the_default_rate_follows_the_part_and_a_set_rate_warns():
    h.enter_tmpdir("node")
    try:
        config.save(config.defaults())
        n, _cap, _board = _build({"sensors": {"accel": "lis3dh"}})
        assert n.sampler.odr_mhz == 200000 and n.last_errors == []  # LIS3DH has no 250 Hz
        n, _cap, _board = _build({"sensors": {"accel": "lis3dh"}}, accel_odr_hz=125)
        assert n.sampler.odr_mhz == 100000
        assert [t for t in n.last_errors if "ODR" in t]  # set by hand: the part lacks it
    finally:
        h.leave_tmpdir()


def test_bridge_node_and_climate_node_pass_their_self_test():
    h.enter_tmpdir("node")
    try:
        for data, cfg, kept in (({"sensors": {"climate": "none"}}, {}, "accel"),
                                ({"sensors": {"climate": "none"}}, {"climate_part": "none"}, "accel"),
                                ({"sensors": {"accel": "none"}}, {}, "climate"),
                                ({"sensors": {"accel": "none"}}, {"accel_part": "none"}, "climate")):
            config.save(config.defaults())
            n, _cap, _board = _build(data, **cfg)
            n.run_for(1200)
            ok, checks = _selftest(n)
            assert ok, checks
            assert checks[kept + "_fitted"]["pass"] and "part" in checks[kept + "_fitted"]
            assert n.last_errors == [], n.last_errors
    finally:
        h.leave_tmpdir()


def test_a_named_part_is_required_and_some_sensor_must_answer():
    h.enter_tmpdir("node")
    try:
        config.save(config.defaults())
        n, _cap, _board = _build({"sensors": {"climate": "none"}}, climate_part="sht3x")
        n.run_for(1200)
        ok, checks = _selftest(n)
        assert not ok and not checks["climate_fitted"]["pass"]
        assert "no climate sensor found" in checks["climate_fitted"]["detail"]
        assert [t for t in n.last_errors if "no climate sensor found" in t]
        n, _cap, _board = _build({"sensors": {"climate": "none", "accel": "none"}})
        ok, checks = _selftest(n)
        assert not ok and not checks["any_sensor"]["pass"]
    finally:
        h.leave_tmpdir()
