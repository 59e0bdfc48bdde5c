"""Issue 11 end to end: a virtual node with the app sends its frames over its (simulated)
Wi-Fi to the real Mosquitto; `citynode listen -o` verifies and records them, `citynode
decode` reads the capture: values as the scenario says, times in UTC."""

import csv
import json
import os
import subprocess
import sys
import time
from pathlib import Path

import pytest

from citynode import cli
from citynode.broker import LocalBroker, mosquitto_path
from citynode.demo import NODE_HEAP, provision
from citynode.keystore import Keystore
from citynode.serial_link import NodeClient
from vnode_fixtures import virtual_node

REPO = Path(__file__).resolve().parents[2]
ENV = dict(os.environ, PYTHONPATH=os.pathsep.join([str(REPO / "host"), str(REPO / "protocol")]))
pytestmark = [
    pytest.mark.skipif(mosquitto_path() is None, reason="mosquitto is not installed (`make install` installs it "
                       "as root; else apt-get install mosquitto mosquitto-clients)"),
    pytest.mark.xdist_group("mosquitto"),
]
TEMP_C, RH_PCT = 17.3, 61.0
SCENARIO = {"temperature_c": TEMP_C, "relative_humidity_pct": RH_PCT, "seed": 5,
            "wifi": {"up": True, "rssi": -58, "ssids": ["city-iot"], "password": "pw-lamp-7"}}


def _rows(path):
    with open(path, newline="") as f:
        return list(csv.DictReader(f))


def _listen(broker, keystore, capture, seconds):
    return subprocess.Popen([sys.executable, "-m", "citynode", "listen", "--broker", broker.url, "--keystore",
                             str(keystore), "-o", str(capture), "--duration", str(seconds), "--json"],
                            env=ENV, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)


@pytest.mark.timeout(180)
def test_a_virtual_node_streams_signed_frames_over_mqtt_to_listen_and_decode(tmp_path, capsys):
    ks_path = tmp_path / "keys.json"
    key = Keystore(ks_path).new_key(7)
    capture = tmp_path / "net.bin"
    with LocalBroker(tmp_path / "broker") as broker, virtual_node(
            tmp_path, scenario=SCENARIO, with_app=True, heap=NODE_HEAP) as node:
        provision(node, {"node_id": 7, "climate_period_s": 2, "status_period_s": 5, "uplink": "wifi",
                         "wifi_ssid": "city-iot", "wifi_password": "pw-lamp-7", "broker_url": broker.url,
                         "node_key": key.hex(), "accel_block_samples": 250})
        listener = _listen(broker, ks_path, capture, 12)
        time.sleep(1.0)
        with NodeClient(node.port) as client:  # a USB session sets the node's clock: TIME goes out by MQTT too
            info = client.command("info")
        out, err = listener.communicate(timeout=60)
        with NodeClient(node.port) as client:
            after = client.command("info")
    assert listener.returncode == 0, err
    summary = json.loads(out)
    assert summary["frames_rejected"] == 0 and summary["frames_accepted"] > 10, summary
    assert summary["status"] == {"7": "online"}
    up = after["uplink"]
    assert up["network"] == "joined" and up["broker"] == "up" and up["rssi"] == -58, up
    assert up["acked"] >= 1 and up["dropped_accel"] == 0 and up["dropped_other"] == 0
    assert "key" not in json.dumps(info["config"]["node_key"]) and info["config"]["node_key"] == "***"

    tables = tmp_path / "tables"
    assert cli.main(["decode", str(capture), "--out-dir", str(tables), "--format", "csv"]) == 0
    capsys.readouterr()
    climate = _rows(tables / "climate.csv")
    assert len(climate) >= 3
    for row in climate:
        assert abs(float(row["temperature_c"]) - TEMP_C) <= 0.05
        assert abs(float(row["relative_humidity_pct"]) - RH_PCT) <= 0.12
    timed = [r for r in climate if r["time"]]  # after the USB session set the clock: UTC
    assert timed and all(r["time"].endswith("Z") and r["time"][:4] >= "2026" for r in timed)
    assert len(_rows(tables / "accel.csv")) >= 250


@pytest.mark.timeout(120)
def test_a_node_whose_network_is_out_of_reach_keeps_sampling_and_says_why(tmp_path):
    scenario = dict(SCENARIO, wifi={"up": True, "ssids": ["another-net"]})
    key = Keystore(tmp_path / "keys.json").new_key(7)
    with virtual_node(tmp_path, scenario=scenario, with_app=True, heap=NODE_HEAP) as node:
        provision(node, {"uplink": "wifi", "wifi_ssid": "city-iot", "wifi_password": "pw",
                         "broker_url": "mqtt://127.0.0.1:9", "node_key": key.hex(), "climate_period_s": 2})
        time.sleep(3.0)
        with NodeClient(node.port) as client:
            info = client.command("info")
            status = client.command("status")
    up = info["uplink"]
    assert up["network"] != "joined" and up["network_error"] == "no AP found", up
    assert up["frames_signed"] > 0 and up["pending_bytes"] > 0  # still sampling, into the ring
    assert status["flags"] & 0x10  # STATUS_UPLINK_DOWN


@pytest.mark.timeout(120)
def test_an_uplink_missing_its_settings_is_an_error_the_node_reports(tmp_path):
    with virtual_node(tmp_path, scenario=SCENARIO, with_app=True, heap=NODE_HEAP) as node:
        provision(node, {"uplink": "wifi", "wifi_ssid": "city-iot"})
        with NodeClient(node.port) as client:
            info = client.command("info")
    assert info["uplink"] == {"error": "uplink=wifi but broker_url, node_key not set"}
    assert any("broker_url" in e for e in info["last_errors"])
