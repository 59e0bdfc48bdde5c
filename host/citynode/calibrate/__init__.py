"""Calibration of a node's sensors: the maths (climate, accel, mount), the
documented limits, the report writer and the guided flows against a node.

The maths modules (`climate`, `accel`, `mount`, `limits`) need numpy only and
never touch a node; `session` runs the flows through a NodeClient; `report`
files the result. `citynode.commands.calibrate` is the command line.
"""
