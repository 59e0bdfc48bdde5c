"""The real app on a virtual node: Ctrl-C always wins over a full-rate stream, and
a faulty sensor never stops the node."""

import time

from citynode.demo import provision
from citynode.serial_link import NodeClient
from citynode_protocol.decoder import Decoder
from vnode_fixtures import open_port, read_until, virtual_node

FULL_RATE = {
    "accel_odr_hz": 800,
    "accel_block_samples": 64,
    "accel_encoding": "raw",
    "mode": "raw",
    "status_period_s": 5,
}


def test_ctrl_c_stops_the_app_streaming_at_full_rate_50_times(tmp_path):
    scenario = {"sensors": {"climate": "sht35", "accel": "adxl345"}}
    with virtual_node(tmp_path, scenario=scenario, with_app=True) as node:
        provision(node, FULL_RATE)
        ser = open_port(node)
        for n in range(50):
            started = time.monotonic()
            decoder = Decoder()
            blocks = 0
            while blocks < 3:  # the app is streaming 800 Hz blocks
                for m in decoder.feed(ser.read(max(1, ser.in_waiting))):
                    if m.name == "accel":
                        assert m["odr_hz"] == 800
                        blocks += 1
                assert time.monotonic() - started < 10, "round %d: no stream" % n
            ser.write(b"\x03")
            read_until(ser, b">>> ", timeout=5)
            boots = node.boots
            ser.write(b"\x04")  # soft reboot: the app starts again
            node.wait_boots(boots + 1, 10)
            assert time.monotonic() - started < 10, "round %d took too long" % n
        assert node.crashes == 0, node.events


def _status_and_accel(port, seconds, before=None):
    with NodeClient(port) as client:
        if before is not None:
            # once the stream runs, pull the part
            for m in client.read_frames(seconds=10):
                if m.name == "accel":
                    break
            before()
        msgs = list(client.read_frames(seconds=seconds))
    return [m for m in msgs if m.name == "status"], [m for m in msgs if m.name == "accel"], [m for m in msgs if m.name == "climate"]


def test_bad_crc_climate_sensor_is_counted_and_the_node_keeps_streaming(tmp_path):
    scenario = {"sensors": {"climate": "sht35", "accel": "adxl345"}, "faults": {"climate": "bad_crc"}}
    with virtual_node(tmp_path, scenario=scenario, with_app=True) as node:
        provision(node, {"climate_period_s": 2, "status_period_s": 5})
        status, accel, climate = _status_and_accel(node.port, 7)
    assert accel, "the accelerometer stopped streaming"
    assert climate and all(m["status"] & 0x03 == 0x03 for m in climate)  # sensor error + CRC error
    assert status and status[-1]["crc_errors"] >= 2
    assert not status[-1]["sensors_ok"] & 0x01 and status[-1]["sensors_ok"] & 0x02


def test_accelerometer_gone_is_reported_and_climate_goes_on(tmp_path):
    scenario = {"sensors": {"climate": "sht35", "accel": "adxl345"}}
    with virtual_node(tmp_path, scenario=scenario, with_app=True) as node:
        provision(node, {"climate_period_s": 2, "status_period_s": 5})
        status, accel, climate = _status_and_accel(node.port, 8, lambda: node.set_scenario(faults={"accel": "absent"}))
    assert len(climate) >= 3, "climate readings stopped"
    assert status and not status[-1]["sensors_ok"] & 0x02
    assert status[-1]["sensor_errors"] + status[-1]["timeouts"] >= 1


def test_reset_cause_after_a_soft_reboot(tmp_path):
    with virtual_node(tmp_path, scenario={}, with_app=True) as node:
        with NodeClient(node.port) as client:
            assert client.command("info")["reset_cause"] == "power-on"
        provision(node, {"site": "pier 4"})  # config_set, then reboot
        with NodeClient(node.port) as client:
            info = client.command("info")
    assert info["reset_cause"] == "soft" and info["site"] == "pier 4"
