"""`citynode calibrate accel`: the six-position accelerometer calibration (bias and scale per axis).

Each flow talks to the node only through a node_link.NodeSession, so tests drive
it with a scripted fake link; the calibration is changed by one write, read back.
"""

from dataclasses import dataclass

import numpy as np

from citynode.calibrate import accel
from citynode.calibrate.installer_ui import fmt_values
from citynode.calibrate.node_link import block_g, capture_still, is_raw_block, raw_off
from citynode.calibrate.record import RecordOptions, new_document, record_site, refuse_or_warn
from citynode.errors import CitynodeError, DeviceError
from citynode_protocol import messages


@dataclass
class AccelOptions(RecordOptions):
    positions: int = 6
    window_s: float = 1.0
    capture_s: float = 2.0
    position_timeout_s: float = 180.0
    max_attempts: int = 3
    still_std_g: float = accel.STILL_STD_G
    still_jerk_g: float = accel.STILL_JERK_G


def run_accel(session, opts):
    """The six-position calibration. Returns a result dict for the report."""
    ui = session.ui
    session.load_info()
    part = session.require("accel")
    current = session.calib_get()
    odr = float(session.config.get("accel_odr_hz") or 200)
    ui.say("node %s (%s): six-position calibration of the %s" % (session.node_id, session.port, part))
    ui.say("Put the node on each of its six faces in turn and leave it still; it is detected by itself.")
    if opts.positions > 6:
        ui.say("Then %d more positions at other angles (resting on an edge or corner)." % (opts.positions - 6))
    collector = accel.PositionCollector(opts, odr)
    result = session.result = {"kind": "accel", "part": part, "previous": current}
    session.raw_mode(True)
    try:
        session.ensure_stream()
        ui.say("turn to: " + collector._todo_words())
        _collect(session, collector, opts)
        result.update(positions=collector.taken, timeline=collector.timeline, captures=collector.captures,
                      captures_utc=[session.utc(c[1]) for c in collector.captures])
        means = [p.mean_g for p in collector.taken]
        sigmas = [accel.position_sigma(p) for p in collector.taken]
        fit = accel.fit_ellipsoid(means, sigmas)
        result["fit"] = fit
        ui.say("fit: bias %s mg, scale %s, residual %.2f mg RMS (%s, %d iterations)" % (
            fmt_values(1000 * fit.bias_g, "%+.2f"), fmt_values(fit.scale, "%.5f"), 1000 * fit.rms_g, fit.reason,
            fit.iterations))
        if fit.sigma_bias_g is not None:
            ui.say("uncertainty (1 sigma): bias %s mg, scale %s" % (
                fmt_values(1000 * fit.sigma_bias_g, "%.3f"), fmt_values(fit.sigma_scale, "%.5f")))
        if opts.positions == 6:
            ui.say("note: with six positions the fit is exact, so the residual is 0 by construction; "
                   "use --positions 7..12 for a residual that checks the model")
        result["forced"] = refuse_or_warn(accel.check_limits(fit), opts.force, ui, "accelerometer calibration")
        part_doc = dict((current or {}).get("accel") or {})
        part_doc.pop("matrix", None)
        part_doc["bias_g"] = [round(float(v), 6) for v in fit.bias_g]
        part_doc["scale"] = [round(float(v), 6) for v in fit.scale]
        if "rotation" in part_doc:
            ui.say("note: the mount rotation of calibration %s is kept; run `citynode calibrate mount` again "
                   "once the node is fixed" % (current or {}).get("id"))
        doc = new_document(session, current, "six-position", record_site(session, opts),
                           accel_part=part_doc)
        result["document"] = session.write_calibration(doc, current)
    finally:
        raw_off(session)
    result["after"] = _accel_after(session, fit, collector.taken[-1])
    return result


def _accel_after(session, fit, last_position):
    """The node's own calibrated reading in the last position, as a check."""
    try:
        st = capture_still(session, 1.0, 10.0, "calibrated")
    except CitynodeError as exc:
        session.ui.say("could not read the calibrated stream back: %s" % exc)
        return None
    host = fit.apply(last_position.mean_g)
    session.ui.say("node now reads |a| = %.4f g (host expects %.4f g)" % (np.linalg.norm(st.mean_g),
                                                                          np.linalg.norm(host)))
    return {"node_mean_g": [float(v) for v in st.mean_g], "host_expected_g": [float(v) for v in host]}


def _collect(session, collector, opts):
    ui = session.ui
    started = session.clock()
    last_taken = started
    for m in session.frames(("accel",), what="accelerometer data"):
        f = m.fields
        now = session.clock()
        if not is_raw_block(f["flags"]):
            if now - started > 3.0:
                raise DeviceError("the node does not send raw accelerometer data (raw_mode had no effect)")
            continue
        if f["odr_hz"] and abs(f["odr_hz"] - collector.odr) > 1e-6:
            collector.odr = float(f["odr_hz"])  # the part's rate, which may differ from the config's
        if f["flags"] & messages.ACCEL_OVERRUN:
            collector.window = []  # samples were lost: start the window again
        for ev in collector.feed(now, block_g(m)):
            ui.say(ev.text)
            if ev.kind == "taken":
                last_taken = now
                if not collector.done:
                    ui.say("turn to: " + collector._todo_words())
        if collector.done:
            return
        if now - last_taken > opts.position_timeout_s:
            taken = ", ".join(p.face for p in collector.taken) or "none"
            raise accel.CalibrationError(
                "no new position within %.0f s (taken: %s; still to do: %s); nothing was changed"
                % (opts.position_timeout_s, taken, collector._todo_words()))
