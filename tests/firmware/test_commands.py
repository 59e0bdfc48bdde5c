"""citynode_fw.commands through the node: each command's happy path and a bad argument."""

import fw_helpers as h
from citynode_protocol import messages
from citynode_fw import config, store
from citynode_fw.node import Node

ADXL345 = {"sensors": {"accel": "adxl345", "climate": "sht45"}}


class Rig:
    def __init__(self, data=ADXL345, **cfg):
        self.clock = h.ManualClock()
        self.bus, self.scenario = h.sim_bus(self.clock, data)
        self.board = h.FakeBoard(self.clock, self.bus)
        self.cap = h.Capture()
        self.inp = h.ScriptedInput()
        values = config.defaults()
        values["node_id"] = 21
        values["accel_odr_hz"] = 200
        values["accel_block_samples"] = 100
        for key in cfg:
            values[key] = cfg[key]
        self.node = Node(self.board, config.Config(values), None, None, self.cap.out, self.inp)
        self.node.start(self.bus)
        self.next_id = 1

    def ask(self, name, args=None):
        """Send one command line through the link and run the loop until its REPLY."""
        rid = self.next_id
        self.next_id += 1
        return self.send_line(rid, h.command(rid, name, args))

    def send_line(self, rid, line):
        """Send a line as it is (a host resending one) and run the loop until the REPLY to rid."""
        self.inp.feed(line)
        for _ in range(200):
            self.board.sleep_ms(self.node.step())
            for m in self.cap.new():
                if m.name == "reply" and m["request_id"] == rid:
                    return m["code"], m["body"]
        raise AssertionError("no reply to %s" % name)

    def run_ms(self, ms):
        self.node.run_for(ms)


def _with_rig(fn, **kw):
    h.enter_tmpdir("cmd")
    try:
        fn(Rig(**kw))
    finally:
        h.leave_tmpdir()


def _bad(code):
    return code == messages.ERR_BAD_ARGUMENT


def test_info():
    def body(r):
        code, b = r.ask("info")
        assert code == messages.OK
        assert b["node_id"] == 21 and b["app_version"] == "0.1.0"
        assert b["micropython"].startswith("1.")
        assert len(b["app_hash"]) == 8
        assert b["config"]["wifi_password"] == ""
        parts = sorted([s["part"] for s in b["sensors"]])
        assert parts == ["adxl345", "sht4x"]
        assert b["calibration"] is None
        assert _bad(r.ask("info", {"verbose": True})[0])

    _with_rig(body)


def test_config_get_masks_secrets():
    def body(r):
        r.node.config.values["wifi_password"] = "s3cret"
        code, b = r.ask("config_get")
        assert code == messages.OK and b["config"]["wifi_password"] == "***"
        code, b = r.ask("config_get", {"key": "node_id"})
        assert code == messages.OK and b["config"] == {"node_id": 21}
        assert _bad(r.ask("config_get", {"key": "nope"})[0])

    _with_rig(body)


def test_config_set_applies_live_and_saves():
    def body(r):
        code, b = r.ask("config_set", {"values": {"climate_period_s": 5, "accel_block_samples": 40, "i2c_scl": 9}})
        assert code == messages.OK, b
        assert b["restart_required"] == ["i2c_scl"]
        assert store.read("config.json", "config")["accel_block_samples"] == 40
        r.run_ms(1000)
        assert r.cap.named("accel")[-1]["n_samples"] == 40
        assert _bad(r.ask("config_set", {"values": {"accel_odr_hz": 250}})[0])  # not an ADXL345 rate
        assert _bad(r.ask("config_set", {"values": {"mode": "loud"}})[0])
        assert _bad(r.ask("config_set", {"key": "mode"})[0])
        assert r.node.cfg["mode"] == "raw"

    _with_rig(body)


def test_stream_stop_and_start():
    def body(r):
        code, b = r.ask("stream_stop")
        assert code == messages.OK and b == {"streaming": False}
        before = len(r.cap.named("accel"))
        r.run_ms(1500)
        assert len(r.cap.named("accel")) == before
        code, b = r.ask("stream_start")
        assert code == messages.OK and b == {"streaming": True}
        r.run_ms(1100)
        assert len(r.cap.named("accel")) >= before + 2
        assert _bad(r.ask("stream_start", {"now": 1})[0])
        assert _bad(r.ask("stream_stop", {"x": 1})[0])

    _with_rig(body)


def test_stream_start_without_accelerometer():
    def body(r):
        assert r.ask("stream_start")[0] == messages.ERR_NO_SENSOR

    _with_rig(body, data={"sensors": {"accel": "none", "climate": "sht45"}})


def test_raw_mode():
    def body(r):
        code, b = r.ask("raw_mode", {"on": True})
        assert code == messages.OK and b == {"raw_mode": True}
        r.run_ms(600)
        assert r.cap.named("accel")[-1]["flags"] & messages.ACCEL_UNCALIBRATED_MODE
        assert _bad(r.ask("raw_mode", {"on": "yes"})[0])
        assert _bad(r.ask("raw_mode")[0])

    _with_rig(body)


CAL = {"id": 300, "date": "2026-11-26", "method": "six-position", "accel": {"bias_g": [0.0, 0.0, 0.25]}}


def test_calib_write_get_rollback():
    def body(r):
        code, b = r.ask("calib_get")
        assert code == messages.OK and b["calib"] is None
        assert r.ask("calib_write", {"calib": CAL})[0] == messages.OK
        cal2 = dict(CAL)
        cal2["id"] = 301
        assert r.ask("calib_write", {"calib": cal2}) == (messages.OK, {"id": 301})
        code, b = r.ask("calib_get")
        assert b["calib"]["id"] == 301
        r.run_ms(600)
        m = r.cap.named("accel")[-1]
        assert m["flags"] & messages.ACCEL_CALIBRATED
        assert r.ask("calib_rollback") == (messages.OK, {"id": 300})
        r.node.send_status()
        assert r.cap.named("status")[-1]["calibration_id"] == 300
        assert _bad(r.ask("calib_write", {"calib": {"id": "x"}})[0])
        assert _bad(r.ask("calib_write", {"cal": CAL})[0])
        assert _bad(r.ask("calib_rollback", {"to": 1})[0])

    _with_rig(body)


def test_calib_rollback_with_nothing_before():
    def body(r):
        assert _bad(r.ask("calib_rollback")[0])

    _with_rig(body)


def test_selftest():
    def body(r):
        r.run_ms(1200)
        code, b = r.ask("selftest")
        assert code == messages.OK and b["pass"], b
        names = [c["name"] for c in b["checks"]]
        assert names == ["climate_fitted", "climate_plausible", "accel_fitted", "accel_gravity"]
        assert _bad(r.ask("selftest", {"quick": True})[0])

    _with_rig(body)


def test_selftest_fails_when_tilted_off_gravity():
    def body(r):
        r.run_ms(1200)
        code, b = r.ask("selftest")
        assert code == messages.OK and not b["pass"]
        assert [c["name"] for c in b["checks"] if not c["pass"]] == ["accel_gravity"]

    _with_rig(
        body,
        data={
            "sensors": {"accel": "adxl345", "climate": "sht45"},
            "sensor_error": {"accel_scale": [1.0, 1.0, 1.5]},
        },
    )


def test_set_time_sends_and_anchors_time():
    def body(r):
        utc = 1795000000000
        code, b = r.ask("set_time", {"utc_ms": utc})
        assert code == messages.OK and b["utc_ms"] == utc
        t = r.cap.named("time")[0]  # (the boot STATUS, due in the same pass, adds another)
        assert t["utc_ms"] == utc
        node_ms = t.time_ms
        r.run_ms(30500)  # the next STATUS carries a TIME too
        later = r.cap.named("time")[-1]
        assert later["utc_ms"] - utc == later.time_ms - node_ms
        assert r.cap.named("status")[-1]["flags"] & messages.STATUS_TIME_ANCHORED
        assert _bad(r.ask("set_time", {"utc_ms": "now"})[0])
        assert _bad(r.ask("set_time", {"utc_ms": True})[0])

    _with_rig(body)


def test_set_time_refuses_implausible_utc_and_keeps_the_clock():
    def body(r):
        assert r.ask("set_time", {"utc_ms": messages.UTC_MAX_MS - 1})[0] == messages.OK
        assert r.ask("set_time", {"utc_ms": messages.UTC_MIN_MS})[0] == messages.OK
        anchored = r.cap.named("time")[-1]["utc_ms"]
        for utc in (messages.UTC_MIN_MS - 1, messages.UTC_MAX_MS, (1 << 63) - 1, 1795000000000 * 1000, 0, -5):
            code, b = r.ask("set_time", {"utc_ms": utc})
            assert _bad(code) and "not a plausible UTC" in b["error"] and "2020-01-01" in b["error"], b
        r.run_ms(30500)  # a STATUS and its TIME: still the last good anchor
        assert 20000 < r.cap.named("time")[-1]["utc_ms"] - anchored <= 30500
        assert all(messages.UTC_MIN_MS <= t["utc_ms"] < messages.UTC_MAX_MS for t in r.cap.named("time"))

    _with_rig(body)


def test_a_clock_past_the_plausible_range_sends_no_time():
    def body(r):
        assert r.ask("set_time", {"utc_ms": messages.UTC_MAX_MS - 1000})[0] == messages.OK
        before = len(r.cap.named("time"))
        r.run_ms(30500)  # the STATUS due now would carry a TIME past 2100
        assert len(r.cap.named("status")) >= 2 and len(r.cap.named("time")) == before

    _with_rig(body)


def test_a_resent_change_is_answered_from_memory_not_applied_again():
    def body(r):
        first = h.command(500, "config_set", {"values": {"climate_period_s": 5}})
        code, b = r.send_line(500, first)
        assert code == messages.OK and b["changed"] == ["climate_period_s"]
        assert r.ask("config_set", {"values": {"climate_period_s": 7}})[0] == messages.OK
        assert r.send_line(500, first) == (code, b)  # the host did not get the reply and resends
        assert r.node.cfg["climate_period_s"] == 7  # not set back to 5
        # the same id with other content is a new request (another host session)
        again = h.command(500, "config_set", {"values": {"climate_period_s": 9}})
        assert r.send_line(500, again)[0] == messages.OK and r.node.cfg["climate_period_s"] == 9
        # read-only requests just run again
        line = h.command(600, "status")
        assert r.send_line(600, line)[0] == messages.OK
        r.node.counters.bad_lines = 3
        assert r.send_line(600, line)[1]["counters"]["bad_lines"] == 3

    _with_rig(body)


def test_a_resent_set_time_keeps_the_first_anchor():
    def body(r):
        line = h.command(700, "set_time", {"utc_ms": 1795000000000})
        code, b = r.send_line(700, line)
        r.run_ms(2000)
        times = len(r.cap.named("time"))
        assert r.send_line(700, line) == (code, b)
        assert len(r.cap.named("time")) == times  # not set (and sent) again, two seconds late

    _with_rig(body)


def test_status():
    def body(r):
        code, b = r.ask("status")
        assert code == messages.OK
        assert b["sensors_fitted"] == 3 and b["sensors_ok"] == 3
        assert r.cap.named("status")[-1]["sensors_ok"] == 3
        assert _bad(r.ask("status", {"x": 0})[0])

    _with_rig(body)


def test_reboot():
    def body(r):
        code, b = r.ask("reboot")
        assert code == messages.OK and b == {"rebooting": True}
        assert r.board.resets == 1
        assert _bad(r.ask("reboot", {"hard": True})[0])

    _with_rig(body)


def test_unknown_command_and_garbled_line():
    def body(r):
        assert r.ask("dance")[0] == messages.ERR_UNKNOWN_COMMAND
        line = h.command(77, "status").replace(b"status", b"statvs")
        r.inp.feed(line)
        for _ in range(20):
            r.board.sleep_ms(r.node.step())
        reply = r.cap.named("reply")[-1]
        assert reply["code"] == messages.ERR_BAD_LINE and reply["request_id"] == 77
        assert r.node.counters.bad_lines == 1
        assert r.node.counters.command_errors == 2

    _with_rig(body)
