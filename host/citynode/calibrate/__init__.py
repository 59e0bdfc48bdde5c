"""Calibration of a node's sensors: the maths (climate, accel, mount), the
documented limits, the report writer and the guided flows against a node.

The maths modules (`climate`, `accel`, `mount`, `limits`) need numpy only and
never touch a node. `node_link` is the session with the node (raw mode, still
captures, long means of a node that vibrates, a shorter climate period for a
while, the calibration store with read-back), `record` the calibration
document it writes, `installer_ui` what the installer sees; one `*_flow` module
per flow (`climate_flow` with `climate_reference`, `accel_flow`, `mount_flow`,
`verify_flow`, `rollback_flow`). `report` files the result (`report_plots`
draws it, `md` escapes its table cells). `citynode.commands.calibrate` is the command line.
"""
