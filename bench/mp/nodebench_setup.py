"""Write config.json (firmware defaults) and calib.json (nodebench_rig.CALIBRATION)
into the current folder with the firmware's own store, as a node's flash holds them."""

import nodebench_rig as rig
from citynode_fw import calibration, config

config.save(config.defaults())
calibration.save(rig.CALIBRATION)
rig.result("setup", calibration_id=rig.CALIBRATION["id"])
