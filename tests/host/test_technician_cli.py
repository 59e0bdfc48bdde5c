"""The technician's commands end to end: ports, and (with virtual nodes) flash --app-only,
info, config, backup and restore."""

import json

import pytest
from serial.tools.list_ports_common import ListPortInfo

from citynode import cli, ports


def _info(device, vid=None, pid=None, serial=None, description="n/a"):
    info = ListPortInfo(device, skip_link_detection=True)
    info.vid, info.pid, info.serial_number, info.description = vid, pid, serial, description
    return info


FAKE_PORTS = [
    _info("/dev/ttyS0"),
    _info("/dev/ttyUSB1", 0x1A86, 0x7523, None, "USB Serial"),
    _info("/dev/ttyUSB0", 0x10C4, 0xEA60, "0001", "CP2102 USB to UART Bridge Controller"),
    _info("/dev/ttyACM0", 0x303A, 0x1001, "F4:12:FA:00:11:22", "USB JTAG/serial debug unit"),
    _info("/dev/ttyACM1", 0x2341, 0x0043, "85736323", "Arduino Uno"),
]


def test_ports_marks_esp32_boards(mocker, capsys):
    mocker.patch.object(ports.list_ports, "comports", return_value=FAKE_PORTS)
    assert cli.main(["ports", "--json"]) == 0
    listed = json.loads(capsys.readouterr().out)
    marked = {p["port"]: p["esp32"] for p in listed}
    assert marked == {"/dev/ttyACM0": True, "/dev/ttyUSB0": True, "/dev/ttyUSB1": True,
                      "/dev/ttyACM1": False, "/dev/ttyS0": False}
    assert [p["port"] for p in listed][:3] == ["/dev/ttyACM0", "/dev/ttyUSB0", "/dev/ttyUSB1"]
    by_port = {p["port"]: p for p in listed}
    assert by_port["/dev/ttyUSB0"]["serial_number"] == "0001"
    assert by_port["/dev/ttyUSB0"]["usb_id"] == "10C4:EA60"
    assert by_port["/dev/ttyS0"]["description"] is None
    assert ports.esp32_ports() == ["/dev/ttyACM0", "/dev/ttyUSB0", "/dev/ttyUSB1"]
    assert cli.main(["ports"]) == 0
    table = capsys.readouterr().out
    assert "F4:12:FA:00:11:22" in table and "CH340" in table
    assert cli.main(["ports", "--esp32"]) == 0
    assert "ttyS0" not in capsys.readouterr().out
