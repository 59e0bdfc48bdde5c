"""citynode_fw.config: the key table, atomic checked writes, fallbacks that never stop the boot."""

import os

import fw_helpers as h
from citynode_fw import config, store


def _write(path, text):
    f = open(path, "w")
    f.write(text)
    f.close()


def _read(path):
    f = open(path)
    text = f.read()
    f.close()
    return text


def _in_tmp(fn):
    h.enter_tmpdir("cfg")
    try:
        fn()
    finally:
        h.leave_tmpdir()


def test_missing_file_gives_defaults_and_flag():
    def body():
        cfg = config.load()
        assert cfg.fallback == "config.json missing: running on defaults"
        assert cfg.values == config.defaults()
        assert cfg["accel_odr_hz"] == 250 and cfg["mode"] == "raw"

    _in_tmp(body)


def test_save_load_roundtrip_is_atomic_and_checked():
    def body():
        values = config.defaults()
        values["node_id"] = 4242
        values["site"] = "Dortmund B1 north"
        values["accel_odr_hz"] = 62.5
        config.save(values)
        assert not store.exists("config.json.tmp")
        text = _read("config.json")
        assert text.startswith('{"crc":') and ',"config":{' in text
        cfg = config.load()
        assert cfg.fallback is None
        assert cfg["node_id"] == 4242 and cfg["site"] == "Dortmund B1 north"
        assert cfg["accel_odr_hz"] == 62.5

    _in_tmp(body)


def test_leftover_tmp_from_a_crash_is_ignored():
    def body():
        values = config.defaults()
        values["node_id"] = 7
        config.save(values)
        _write("config.json.tmp", '{"crc":1,"config":{"node_id":9')  # half-written
        cfg = config.load()
        assert cfg.fallback is None and cfg["node_id"] == 7
        values["node_id"] = 8
        config.save(values)  # the next save replaces the leftover
        assert config.load()["node_id"] == 8

    _in_tmp(body)


def test_intact_tmp_is_used_when_the_file_is_gone():
    # FAT renames remove the old file first: a crash there leaves only the tmp
    def body():
        values = config.defaults()
        values["node_id"] = 31
        config.save(values)
        os.rename("config.json", "config.json.tmp")
        cfg = config.load()
        assert cfg["node_id"] == 31
        assert cfg.fallback == (
            "config.json missing: loaded config.json.tmp, the copy an interrupted save left"
        )
        values["node_id"] = 32
        config.save(values)  # the next save keeps the recovered copy until its own is in place
        assert config.load().fallback is None and config.load()["node_id"] == 32
        assert not store.exists("config.json.tmp")

    _in_tmp(body)


def test_bad_json_falls_back():
    def body():
        _write("config.json", "{not json at all")
        cfg = config.load()
        assert cfg.fallback == "config.json damaged (not a checked file): running on defaults"
        assert cfg.values == config.defaults()

    _in_tmp(body)


def test_bad_crc_falls_back():
    def body():
        values = config.defaults()
        values["node_id"] = 12
        config.save(values)
        text = _read("config.json").replace('"node_id":12', '"node_id":13')
        _write("config.json", text)
        cfg = config.load()
        assert cfg.fallback == "config.json damaged (checksum mismatch): running on defaults"
        assert cfg["node_id"] == config.defaults()["node_id"]

    _in_tmp(body)


def test_truncated_file_falls_back():
    def body():
        config.save(config.defaults())
        text = _read("config.json")
        _write("config.json", text[: len(text) // 2])
        cfg = config.load()
        assert cfg.fallback is not None
        assert cfg.values == config.defaults()

    _in_tmp(body)


def test_out_of_range_value_falls_back_for_that_key_only():
    def body():
        values = config.defaults()
        values["node_id"] = 77
        values["climate_period_s"] = 0  # below 2
        values["mode"] = "everything"  # not a choice
        store.write("config.json", "config", values)  # intact CRC, bad values
        cfg = config.load()
        assert cfg.fallback == "bad values in config.json for climate_period_s, mode: those keys on defaults"
        assert cfg["climate_period_s"] == 60 and cfg["mode"] == "raw"
        assert cfg["node_id"] == 77  # the good keys are kept

    _in_tmp(body)


def test_check_refuses_wrong_types_and_values():
    for key, value in (
        ("node_id", 65536),
        ("node_id", True),
        ("node_id", 1.5),
        ("accel_range_g", 3),
        ("accel_range_g", True),
        ("stream_at_boot", 1),
        ("site", 5),
        ("site", "x" * 65),
        ("accel_encoding", "delta"),
        ("nonsense", 1),
    ):
        try:
            config.check(key, value)
        except ValueError as exc:
            assert key in str(exc)
        else:
            assert False, "accepted %s=%r" % (key, value)
    assert config.check("node_id", 3.0) == 3
    assert config.check("accel_odr_hz", 62.5) == 62.5


def test_secrets_are_masked():
    cfg = config.Config(config.defaults())
    assert cfg.masked()["wifi_password"] == ""  # nothing set: nothing to hide
    cfg.values["wifi_password"] = "hunter2"
    masked = cfg.masked()
    assert masked["wifi_password"] == "***"
    assert "hunter2" not in str(masked)
    assert cfg.masked("wifi_password") == {"wifi_password": "***"}


def test_update_checks_everything_before_applying():
    def body():
        cfg = config.load()
        try:
            cfg.update({"climate_period_s": 30, "accel_block_samples": 5000})
        except ValueError:
            pass
        else:
            assert False, "accepted a bad block size"
        assert cfg["climate_period_s"] == 60  # nothing applied
        restart = cfg.update({"climate_period_s": 30, "i2c_sda": 8})
        assert restart == ["i2c_sda"]
        assert cfg.fallback is None
        again = config.load()
        assert again["climate_period_s"] == 30 and again["i2c_sda"] == 8

    _in_tmp(body)


def test_schema_rows_are_consistent():
    for key, kind, default, allowed, flags in config.SCHEMA:
        assert config.check(key, default) == default, key
        assert kind in ("int", "num", "str", "bool", "enum", "url", "key"), key


def test_broker_url_and_node_key_are_checked_and_a_key_never_echoed():
    assert config.broker("mqtt://10.0.0.5") == (False, "10.0.0.5", 1883)
    assert config.broker("mqtts://broker.city:8884") == (True, "broker.city", 8884)
    for bad in ("http://x", "mqtt://", "mqtt://x:0", "mqtt://x:99999", "mqtt://u:p@x", "mqtt://x/topic", "x:1883"):
        assert config.broker(bad) is None, bad
        try:
            config.check("broker_url", bad)
        except ValueError:
            pass
        else:
            assert False, bad
    key = "ab" * 32
    assert config.check("node_key", key) == key and config.check("node_key", "") == ""
    for bad in ("ab" * 31, "zz" * 32, "ab" * 33):
        try:
            config.check("node_key", bad)
        except ValueError as exc:
            assert bad not in str(exc)
        else:
            assert False, bad
