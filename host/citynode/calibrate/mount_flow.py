"""`citynode calibrate mount`: once fixed to the structure, the sensor-to-structure rotation and zero tilt.

Each flow talks to the node only through a node_link.NodeSession, so tests drive
it with a scripted fake link; the calibration is changed by one write, read back.
"""

from dataclasses import dataclass

import numpy as np

from citynode.calibrate import limits, mount
from citynode.calibrate.installer_ui import fmt_values
from citynode.calibrate.node_link import capture_mean, raw_off
from citynode.calibrate.record import RecordOptions, new_document, record_site, refuse_or_warn
from citynode.errors import CitynodeError


@dataclass
class MountOptions(RecordOptions):
    up: str = None
    along: str = None
    align: str = "gravity"
    seconds: float = 10.0
    timeout_s: float = 120.0
    # on a structure in service vibration is allowed: the mean of gravity must be known to this (1 sigma;
    # 1 mg is 0.06 degrees of tilt)
    sigma_g: float = 0.001


def run_mount(session, opts):
    ui = session.ui
    session.load_info()
    part = session.require("accel")
    current = session.calib_get()
    acal = (current or {}).get("accel") or {}
    up = opts.up or ui.ask("which sensor axis points up (+x, -x, +y, -y, +z, -z)", "--up")
    if opts.up is None:
        mount.parse_axis(up)
    along = opts.along or ui.ask("which sensor axis points along the bridge", "--along")
    mount.check_axes(up, along)
    notes = []
    if "bias_g" not in acal and "matrix" not in acal and "scale" not in acal:
        notes.append("the accelerometer has no six-position calibration: the direction of gravity may be off by "
                     "up to a few degrees (run `citynode calibrate accel` before mounting)")
        ui.say("warning: " + notes[-1])
    result = session.result = {"kind": "mount", "part": part, "previous": current, "notes": notes}
    ui.say("node %s (%s): averaging gravity for %.0f s or more; leave the bracket as it is (traffic may pass)" % (
        session.node_id, session.port, opts.seconds))
    session.raw_mode(True)
    try:
        session.ensure_stream()
        st = capture_mean(session, opts.seconds, opts.timeout_s, "raw", opts.sigma_g)
        raw = st.mean_g
        g = _apply_part(acal, raw)
        m = mount.solve(g, up, along, opts.align)
        result.update(mount=m, raw_g=raw, gravity_g=g)
        ui.say("gravity %s g (|g| %.4f), %s up is %.1f degrees from vertical; installed pitch %.2f, roll %.2f deg"
               % (fmt_values(g, "%+.4f"), m.gravity_g, m.up_axis, m.axis_error_deg, *m.install_tilt_deg))
        violations = [v for v in [limits.check("mount_gravity_g", m.gravity_g, "measured |g|")] if v]
        result["forced"] = refuse_or_warn(violations, opts.force, ui, "mount calibration")
        part_doc = dict(acal)
        part_doc.update(m.node_part())
        doc = new_document(session, current, "mount", record_site(session, opts),
                           accel_part=part_doc)
        result["document"] = session.write_calibration(doc, current)
    finally:
        raw_off(session)
    after = None
    try:
        st2 = capture_mean(session, min(opts.seconds, 3.0), opts.timeout_s, "calibrated", opts.sigma_g)
        p, r = mount.tilt_deg(st2.mean_g)
        p -= m.tilt_zero_deg[0]
        r -= m.tilt_zero_deg[1]
        after = {"node_mean_g": [float(v) for v in st2.mean_g], "tilt_deg": [p, r]}
        ui.say("node now reads %s g in structure axes; tilt against the installed zero: pitch %.2f, roll %.2f deg"
               % (fmt_values(st2.mean_g, "%+.4f"), p, r))
    except CitynodeError as exc:
        ui.say("could not read the calibrated stream back: %s" % exc)
    result["after"] = after
    return result


def _apply_part(part, raw_g):
    """The node's a = S . (raw - bias) on the host (no rotation)."""
    raw = np.asarray(raw_g, dtype=float)
    b = np.asarray(part.get("bias_g", [0.0, 0.0, 0.0]), dtype=float)
    if "matrix" in part:
        return np.asarray(part["matrix"], dtype=float) @ (raw - b)
    return np.asarray(part.get("scale", [1.0, 1.0, 1.0]), dtype=float) * (raw - b)
