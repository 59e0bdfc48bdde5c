# The scenario reader of the simulated node (citynode_sim.scenario), under MicroPython.
# validate() also runs under CPython (tests/host may import it there).

import json
import os
import time

from mp_skip import SkipTest

from citynode_sim import scenario
from citynode_sim.scenario import Scenario, load, validate

_COUNTER = [0]


def temp_path():
    _COUNTER[0] += 1
    base = (os.getenv("TMPDIR") if hasattr(os, "getenv") else None) or "/tmp"
    return "%s/citynode_scenario_%d_%d.json" % (base, time.ticks_us() & 0xFFFFFF, _COUNTER[0])


def write(path, obj):
    with open(path, "w") as f:
        f.write(obj if isinstance(obj, str) else json.dumps(obj))


def remove(path):
    try:
        os.remove(path)
    except OSError:
        pass


def test_defaults():
    sc = Scenario()
    d = sc.data
    assert d["temperature_c"] == 21.5 and d["relative_humidity_pct"] == 48.0
    assert d["gravity"] == [0.0, 0.0, 1.0]
    assert d["vibration"] == [{"freq_hz": 3.2, "amp_g": 0.002, "axis": [0.0, 0.0, 1.0]}]
    assert d["noise_g"] == 0.0005
    assert d["sensor_error"]["humidity_gain"] == 1.0 and d["sensor_error"]["accel_scale"] == [1.0, 1.0, 1.0]
    assert d["sensors"] == {"climate": "sht35", "accel": "adxl355"}
    assert d["faults"] == {"climate": "none", "accel": "none"}
    assert sc.error is None and sc.poll(force=True) is False
    assert validate(scenario.defaults()) == []


def test_defaults_are_fresh_copies():
    a = scenario.defaults()
    a["gravity"][2] = 0.5
    assert scenario.defaults()["gravity"][2] == 1.0


def test_env_unset_and_file_missing_give_defaults():
    if not hasattr(os, "putenv"):
        raise SkipTest("no environment on this port; the virtual node (Unix port) names its scenario in one")
    old = os.getenv(scenario.ENV)
    try:
        os.unsetenv(scenario.ENV)
        sc = load()
        assert sc.path is None and sc.data == scenario.defaults()
        path = temp_path()
        os.putenv(scenario.ENV, path)
        sc = load()
        assert sc.path == path and sc.data == scenario.defaults() and sc.error is None
        assert "no file" in sc.source
        write(path, {"temperature_c": 3.0})  # the file may appear later
        assert sc.poll(force=True) and sc.data["temperature_c"] == 3.0
        remove(path)
    finally:
        if old is None:
            os.unsetenv(scenario.ENV)
        else:
            os.putenv(scenario.ENV, old)


def test_partial_file_is_laid_over_the_defaults():
    path = temp_path()
    write(path, {"sensor_error": {"humidity_gain": 1.05}, "sensors": {"accel": "lis3dh"}})
    try:
        sc = load(path)
        assert sc.error is None and sc.version == 1
        assert sc.data["sensor_error"]["humidity_gain"] == 1.05
        assert sc.data["sensor_error"]["temperature_offset_c"] == 0.0
        assert sc.data["sensors"] == {"climate": "sht35", "accel": "lis3dh"}
    finally:
        remove(path)


def test_reread_when_the_file_changes():
    path = temp_path()
    write(path, {"temperature_c": 10.0})
    try:
        sc = Scenario(path)
        assert sc.data["temperature_c"] == 10.0
        assert sc.poll(force=True) is False  # unchanged
        write(path, {"temperature_c": 20.0})  # same size, same second: content decides
        assert sc.poll(force=True) is True
        assert sc.data["temperature_c"] == 20.0 and sc.version == 2
        write(path, {"temperature_c": 30.5, "relative_humidity_pct": 60})
        assert sc.poll(force=True) is True and sc.data["relative_humidity_pct"] == 60
    finally:
        remove(path)


def test_poll_looks_at_most_every_200_ms():
    path = temp_path()
    write(path, {"temperature_c": 10.0})
    try:
        sc = Scenario(path)
        sc.poll(force=True)
        write(path, {"temperature_c": 11.0})
        assert sc.poll() is False  # within CHECK_MS of the last look
        assert sc.data["temperature_c"] == 10.0
        time.sleep_ms(scenario.CHECK_MS + 20)
        assert sc.poll() is True and sc.data["temperature_c"] == 11.0
    finally:
        remove(path)


def test_bad_json_keeps_the_last_good_values():
    path = temp_path()
    write(path, {"temperature_c": 12.0})
    try:
        sc = Scenario(path)
        write(path, '{"temperature_c": 13.0,')
        assert sc.poll(force=True) is False
        assert sc.data["temperature_c"] == 12.0 and sc.version == 1
        assert sc.error is not None and "JSON" in sc.error and path in sc.error, sc.error
        write(path, {"temperature_c": 14.0})
        assert sc.poll(force=True) is True
        assert sc.error is None and sc.data["temperature_c"] == 14.0
    finally:
        remove(path)


def test_out_of_range_values_keep_the_last_good_values():
    path = temp_path()
    write(path, {"relative_humidity_pct": 40.0})
    try:
        sc = Scenario(path)
        write(path, {"relative_humidity_pct": 140.0, "sensors": {"climate": "bme280"}})
        assert sc.poll(force=True) is False
        assert sc.data["relative_humidity_pct"] == 40.0
        assert "relative_humidity_pct" in sc.error and "bme280" in sc.error, sc.error
    finally:
        remove(path)


def test_a_bad_file_at_start_leaves_defaults_and_an_error():
    path = temp_path()
    write(path, "[1, 2")
    try:
        sc = Scenario(path)
        assert sc.data == scenario.defaults() and sc.error is not None
    finally:
        remove(path)


def test_a_vanished_file_keeps_the_values():
    path = temp_path()
    write(path, {"temperature_c": 15.0})
    sc = Scenario(path)
    remove(path)
    assert sc.poll(force=True) is False
    assert sc.data["temperature_c"] == 15.0 and "gone" in sc.error


def test_update_validates():
    sc = Scenario(data={"noise_g": 0.001})
    assert sc.data["noise_g"] == 0.001 and sc.version == 1
    try:
        sc.update({"gravity": [0, 0, 2]})
    except ValueError as e:
        assert "gravity" in str(e)
    else:
        raise AssertionError("update accepted a bad scenario")
    assert sc.data["noise_g"] == 0.001 and sc.version == 1


def _one(data, *words):
    problems = validate(data)
    assert len(problems) == 1, problems
    for w in words:
        assert w in problems[0], (w, problems[0])


def test_validate_rules():
    assert validate({}) == []
    assert validate({"temperature_c": -40, "relative_humidity_pct": 100, "gravity": [0.6, 0, 0.8]}) == []
    assert validate({"faults": {"climate": None, "accel": "bad_id"}, "comment": "x", "seed": 7}) == []
    _one({"temperature_c": 125.5}, "temperature_c", "-40.0..125.0")
    _one({"temperature_c": "20"}, "temperature_c", "number")
    _one({"temperature_c": True}, "temperature_c", "number")
    _one({"relative_humidity_pct": -0.1}, "relative_humidity_pct")
    _one({"relative_humidity_pct": 100.1}, "relative_humidity_pct")
    _one({"gravity": [0, 0, 0.9]}, "gravity", "unit")
    _one({"gravity": [0, 1]}, "gravity", "3 numbers")
    _one({"noise_g": -1}, "noise_g")
    _one({"vibration": {"freq_hz": 1}}, "vibration", "list")
    _one({"vibration": [{"freq_hz": 0, "amp_g": 0.1}]}, "vibration[0].freq_hz")
    _one({"vibration": [{"amp_g": 0.1}]}, "vibration[0].freq_hz", "missing")
    _one({"vibration": [{"freq_hz": 2, "amp_g": 0.1, "axis": [0, 0, 0]}]}, "axis", "zero")
    _one({"vibration": [{"freq_hz": 2, "amp_g": 0.1, "phase": 1}]}, "phase")
    _one({"sensor_error": {"humidity_gain": 2.0}}, "humidity_gain")
    _one({"sensor_error": {"accel_bias_g": [0, 0, 1.5]}}, "accel_bias_g[2]")
    _one({"sensor_error": {"accel_scale": [1, 1]}}, "accel_scale")
    _one({"sensor_error": {"temp_offset": 1}}, "temp_offset")
    _one({"sensors": {"climate": "sht21"}}, "sensors.climate", "sht35")
    _one({"sensors": {"accel": "mpu6050"}}, "sensors.accel", "adxl355")
    _one({"sensors": {"baro": "bme280"}}, "baro")
    _one({"faults": {"accel": "bad_crc"}}, "faults.accel")
    _one({"seed": -1}, "seed")
    _one({"temprature_c": 20}, "unknown key temprature_c")
    assert validate([]) == ["a scenario must be a JSON object, not []"]


def test_validate_reports_every_problem():
    problems = validate({"temperature_c": 300, "relative_humidity_pct": 101, "sensors": {"climate": "x", "accel": "y"}})
    assert len(problems) == 4, problems


def test_a_refused_change_is_reported_once_and_a_fix_too():
    path = temp_path()
    write(path, {"temperature_c": 12.0})
    said = []
    try:
        sc = Scenario(path, report=said.append)
        assert said == []
        write(path, {"temperature_c": 200.0})
        for _ in range(3):
            assert sc.poll(force=True) is False  # a new file is looked at again: said once all the same
        assert said == ["scenario %s: temperature_c = 200.0 is outside -40.0..125.0; keeping the last good values" % path]
        assert sc.error == said[0] and sc.data["temperature_c"] == 12.0
        write(path, {"temperature_c": 13.0})
        assert sc.poll(force=True) is True
        assert said[1:] == ["scenario %s: read again, in force" % path] and sc.error is None
    finally:
        remove(path)


def test_a_bad_file_at_start_says_the_defaults_are_used():
    path = temp_path()
    write(path, {"seed": -3})
    said = []
    try:
        Scenario(path, report=said.append)
        assert len(said) == 1 and "seed" in said[0] and said[0].endswith("using the defaults"), said
    finally:
        remove(path)


def test_a_file_that_comes_back_unchanged_is_read_again():
    path = temp_path()
    write(path, {"temperature_c": 15.0})
    said = []
    sc = Scenario(path, report=said.append)
    remove(path)
    try:
        assert sc.poll(force=True) is False and "gone" in said[0]
        write(path, {"temperature_c": 15.0})
        assert sc.poll(force=True) is True and sc.error is None
    finally:
        remove(path)


def test_stall_rules():
    assert validate({"stall": {"every_s": 2.5, "ms": 300}}) == []
    assert scenario.merged({"stall": {"ms": 40}})["stall"] == {"every_s": 0.0, "ms": 40}
    _one({"stall": {"every_s": -1}}, "stall.every_s")
    _one({"stall": {"ms": 20000}}, "stall.ms", "0..10000")
    _one({"stall": {"for_ms": 1}}, "stall.for_ms")
    _one({"stall": 300}, "stall", "every_s and ms")


def test_a_stall_holds_the_bus():
    from citynode_sim.board import make_i2c

    i2c = make_i2c(Scenario(data={"stall": {"every_s": 0.001, "ms": 30}}))
    time.sleep_ms(5)
    start = time.ticks_ms()
    i2c.scan()
    assert time.ticks_diff(time.ticks_ms(), start) >= 30
