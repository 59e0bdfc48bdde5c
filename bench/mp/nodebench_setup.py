"""Write config.json (firmware defaults) and calib.json (nodebench_rig.CALIBRATION)
into the current folder with the firmware's own store, as a node's flash holds them.
Parameter uplink=1: the config of a node on Wi-Fi (bench/bench_uplink_heap.py)."""

import nodebench_rig as rig
from citynode_fw import calibration, config

values = config.defaults()
if rig.params().get("uplink"):
    values.update(uplink="wifi", wifi_ssid="city-iot", broker_url="mqtt://127.0.0.1:1883", node_key="ab" * 32)
config.save(values)
calibration.save(rig.CALIBRATION)
rig.result("setup", calibration_id=rig.CALIBRATION["id"])
