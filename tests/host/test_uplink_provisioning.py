"""Turning the network uplink on from the host: `citynode flash` and `citynode config set`
make the node's signing key in the keystore, put it on the node, and never show it."""

import pytest

from citynode import serial_link
from citynode.keystore import Keystore
from test_technician_cli import NODE_HEAP, SCENARIO, run
from vnode_fixtures import virtual_node


@pytest.fixture(autouse=True)
def isolated(tmp_path, tmp_path_factory, monkeypatch):
    monkeypatch.setenv("CITYNODE_INVENTORY", str(tmp_path / "inventory.sqlite"))
    monkeypatch.setenv("CITYNODE_KEYSTORE", str(tmp_path / "keys.json"))
    monkeypatch.setenv("CITYNODE_MPY_CACHE", str(tmp_path_factory.getbasetemp() / "mpy-cache"))
    monkeypatch.delenv("CITYNODE_PORT", raising=False)
    monkeypatch.delenv("CITYNODE_MQTT_PASSWORD", raising=False)


def test_flash_with_the_uplink_makes_the_key_keeps_it_and_never_shows_it(tmp_path, capsys, monkeypatch):
    monkeypatch.setenv("CITYNODE_MQTT_PASSWORD", "broker-secret-1")
    with virtual_node(tmp_path / "n", scenario=SCENARIO, heap=NODE_HEAP) as n:
        code, out, err = run(capsys, "flash", "--app-only", "--port", n.port, "--node-id", "31", "--plain", "--json",
                             "--set", "uplink=wifi", "--wifi-ssid", "city-iot", "--set", "broker_url=mqtt://127.0.0.1:9",
                             "--set", "mqtt_user=node31")
        assert code == 0, err
        key = Keystore().key(31)
        assert key is not None and len(key) == 32
        assert key.hex() not in out + err and "broker-secret-1" not in out + err
        with serial_link.NodeClient(n.port) as client:
            cfg = client.command("config_get")["config"]
        assert cfg["uplink"] == "wifi" and cfg["node_key"] == "***" and cfg["mqtt_password"] == "***"
        assert key.hex() in (n.root / "config.json").read_text()  # on the node's flash, as the key it signs with
        # a second run keeps the node's key: frames signed before and after verify with the same one
        code, out, err = run(capsys, "flash", "--app-only", "--port", n.port, "--node-id", "31", "--plain",
                             "--force", "--set", "uplink=wifi", "--wifi-ssid", "city-iot",
                             "--set", "broker_url=mqtt://127.0.0.1:9")
        assert code == 0, err
        assert Keystore().key(31) == key


def test_an_app_only_flash_under_a_new_id_gives_a_node_with_the_uplink_that_ids_key(tmp_path, capsys):
    """The config (uplink on, node 31's key) survives an app-only flash: reflashed as node 32
    without repeating the uplink settings, the node must sign as 32, with 32's key."""
    with virtual_node(tmp_path / "n", scenario=SCENARIO, heap=NODE_HEAP) as n:
        code, out, err = run(capsys, "flash", "--app-only", "--port", n.port, "--node-id", "31", "--plain",
                             "--set", "uplink=wifi", "--wifi-ssid", "city-iot",
                             "--set", "broker_url=mqtt://127.0.0.1:9")
        assert code == 0, err
        code, out, err = run(capsys, "flash", "--app-only", "--port", n.port, "--node-id", "32", "--plain", "--force")
        assert code == 0, err
        key31, key32 = Keystore().key(31), Keystore().key(32)
        assert key32 is not None and key32 != key31
        saved = (n.root / "config.json").read_text()
        assert key32.hex() in saved and key31.hex() not in saved
        with serial_link.NodeClient(n.port) as client:
            cfg = client.command("config_get")["config"]
        assert cfg["node_id"] == 32 and cfg["uplink"] == "wifi"
        assert key32.hex() not in out + err


def test_config_set_uplink_wifi_gives_a_keyless_node_its_key(tmp_path, capsys):
    with virtual_node(tmp_path / "n", scenario=SCENARIO, heap=NODE_HEAP, with_app=True) as n:
        code, out, err = run(capsys, "config", "set", "--port", n.port, "uplink", "wifi")
        assert code == 0, err
        key = Keystore().key(1)  # the node's id: 1 by default
        assert key is not None and key.hex() not in out + err
        with serial_link.NodeClient(n.port) as client:
            assert client.command("config_get", key="node_key")["config"]["node_key"] == "***"
        # a node that has a key keeps it
        assert run(capsys, "config", "set", "--port", n.port, "uplink", "wifi")[0] == 0
        assert Keystore().key(1) == key


def test_bad_uplink_settings_are_one_line_and_show_no_secret(tmp_path, capsys):
    with virtual_node(tmp_path / "n", scenario=SCENARIO, heap=NODE_HEAP, with_app=True) as n:
        for argv, words in (
            (["broker_url", "http://broker"], "mqtt://HOST"),
            (["broker_url", "mqtt://host:99999"], "mqtt://HOST"),
            (["ring_kb", "4"], "ring_kb"),
        ):
            code, out, err = run(capsys, "config", "set", "--port", n.port, *argv)
            lines = err.strip().splitlines()
            assert code != 0 and len(lines) == 1 and words in lines[0], (argv, err)
        code, out, err = run(capsys, "config", "set", "--port", n.port, "node_key", "not-hex")
        assert code != 0 and "secret" in err and "not-hex" not in err
