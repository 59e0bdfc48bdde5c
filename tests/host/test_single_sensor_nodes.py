"""Nodes that are not the demo node: a bridge node (accelerometer only) and a climate node
(climate sensor only), flashed, verified and recorded as their config says they are fitted."""

import json

import pytest

from citynode import cli, serial_link
from citynode.inventory import Inventory
from vnode_fixtures import virtual_node

NODE_HEAP = "1m"
BRIDGE = {"sensors": {"climate": "none", "accel": "adxl345"}, "noise_g": 0.0005, "seed": 3}
CLIMATE = {"sensors": {"climate": "sht31", "accel": "none"}, "temperature_c": 19.0, "seed": 4}


@pytest.fixture(autouse=True)
def isolated(tmp_path, tmp_path_factory, monkeypatch):
    monkeypatch.setenv("CITYNODE_INVENTORY", str(tmp_path / "inventory.sqlite"))
    monkeypatch.setenv("CITYNODE_MPY_CACHE", str(tmp_path_factory.getbasetemp() / "mpy-cache"))
    monkeypatch.delenv("CITYNODE_WIFI_PASSWORD", raising=False)
    monkeypatch.delenv("CITYNODE_PORT", raising=False)


def run(capsys, *argv):
    code = cli.main(list(argv))
    out, err = capsys.readouterr()
    return code, out, err


@pytest.mark.parametrize("scenario, part_key, kept, words", [
    (BRIDGE, "climate_part", "accel adxl345", "climate not fitted, accel adxl345"),
    (CLIMATE, "accel_part", "climate sht3x", "climate sht3x, accel not fitted"),
])
def test_single_sensor_node_is_flashed_verified_and_recorded(tmp_path, capsys, scenario, part_key, kept, words):
    with virtual_node(tmp_path / "n", scenario=scenario, heap=NODE_HEAP) as n:
        code, out, err = run(capsys, "flash", "--app-only", "--port", n.port, "--node-id", "40",
                             "--set", part_key + "=none", "--plain")
        assert code == 0, err
        assert "node 40 PASS" in out and "sensors: " + words in out
        rec = Inventory().get(40)
        assert rec["result"] == "pass" and rec["sensors"] == words
        code, out, err = run(capsys, "info", "--port", n.port, "--json")
        info = json.loads(out)
        assert info["fitted"] == words and info["last_errors"] == []
        assert [s["kind"] for s in info["sensors"]] == [kept.split()[0]]
        code, out, err = run(capsys, "info", "--port", n.port)
        assert words in out
        # the same board under `auto`: whatever answers; still a pass, and no error on the node
        code, out, err = run(capsys, "flash", "--app-only", "--port", n.port, "--node-id", "40", "--force",
                             "--set", part_key + "=auto", "--plain")
        assert code == 0, err
        assert Inventory().get(40)["sensors"] == words.replace("not fitted", "none answered")
        with serial_link.NodeClient(n.port) as client:
            assert client.command("info")["last_errors"] == []
