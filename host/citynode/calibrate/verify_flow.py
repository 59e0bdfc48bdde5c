"""`citynode calibrate verify`: the node as it runs now against a reference and gravity, check by check."""

from dataclasses import dataclass

import numpy as np

from citynode.calibrate import climate, limits, mount
from citynode.calibrate.node_link import capture_still, first_line
from citynode.errors import CitynodeError
from citynode_protocol import messages


@dataclass
class VerifyOptions:
    reference_temperature: float = None
    reference_humidity: float = None
    seconds: float = 2.0
    timeout_s: float = 120.0
    window_s: float = 20.0
    tol_t: float = limits.VERIFY["t_c"]
    tol_rh: float = limits.VERIFY["rh_pct"]
    tol_g: float = limits.VERIFY["g"]
    tol_tilt: float = limits.VERIFY["tilt_deg"]


def run_verify(session, opts):
    ui = session.ui
    session.load_info()
    doc = session.calib_get()
    status = session.client.command("status") or {}
    checks = []
    parts = session.parts()
    if doc is None:
        ui.say("node %s runs uncalibrated (no calibration stored)" % session.node_id)
    else:
        ui.say("node %s runs calibration id %s (%s, %s)" % (session.node_id, doc.get("id"), doc.get("date"),
                                                             doc.get("method")))
    if status.get("flags", 0) & messages.STATUS_CALIB_FALLBACK:
        checks.append(("calibration file", False, session.info.get("calibration_fallback") or "not loaded as saved"))
    cid = status.get("calibration_id")
    if doc is not None and cid is not None and cid != doc.get("id"):
        checks.append(("calibration in use", False, "status says id %s, the file says %s" % (cid, doc.get("id"))))
    elif doc is not None:
        checks.append(("calibration in use", True, "id %s in the node's status and its file" % doc.get("id")))
    if "climate" in parts:
        checks.extend(_verify_climate(session, opts, doc))
    if "accel" in parts:
        checks.extend(_verify_accel(session, opts, doc))
    for name, ok, words in checks:
        ui.say("%-22s %s  %s" % (name, "PASS" if ok else "FAIL", words))
    failed = [c for c in checks if not c[1]]
    result = {"kind": "verify", "document": doc, "checks": [{"check": c[0], "pass": c[1], "detail": c[2]}
                                                              for c in checks]}
    result["pass"] = not failed
    return result


def _verify_climate(session, opts, doc):
    t_ref, h_ref = opts.reference_temperature, opts.reference_humidity
    if t_ref is None and h_ref is None:
        if not session.ui.interactive:
            return [("climate", True, "not checked: no reference given (--reference-temperature/-humidity)")]
        t = session.ui.ask("reference temperature now in degC (empty: skip)", "--reference-temperature")
        h = session.ui.ask("reference humidity now in %RH (empty: skip)", "--reference-humidity")
        t_ref = climate.check_reference("temperature", float(t)) if t else None
        h_ref = climate.check_reference("humidity", float(h)) if h else None
        if t_ref is None and h_ref is None:
            return [("climate", True, "not checked: no reference given")]
    readings = []
    start = session.clock()
    for m in session.frames(("climate",), max_silence_s=120.0, what="climate readings"):
        readings.append((session.clock(), m.fields["temperature_c"], m.fields["relative_humidity_pct"],
                         m.fields["status"]))
        if readings[-1][0] - readings[0][0] >= opts.window_s and len(readings) >= 3:
            break
        if session.clock() - start > opts.timeout_s:
            break
    if not readings:
        return [("climate", False, "no climate readings")]
    calibrated = all(r[3] & messages.CLIMATE_CALIBRATED for r in readings)
    out = []
    if doc is not None and doc.get("climate") is not None and not calibrated:
        out.append(("climate flag", False, "records are not marked calibrated"))
    t = float(np.mean([r[1] for r in readings]))
    h = float(np.mean([r[2] for r in readings]))
    if t_ref is not None:
        d = t - t_ref
        out.append(("temperature", abs(d) <= opts.tol_t, "node %.2f, reference %.2f degC: %+.2f (limit %.2f)"
                    % (t, t_ref, d, opts.tol_t)))
    if h_ref is not None:
        d = h - h_ref
        out.append(("humidity", abs(d) <= opts.tol_rh, "node %.2f, reference %.2f %%RH: %+.2f (limit %.2f)"
                    % (h, h_ref, d, opts.tol_rh)))
    return out


def _verify_accel(session, opts, doc):
    acal = (doc or {}).get("accel")
    try:
        session.ensure_stream()
        st = capture_still(session, opts.seconds, opts.timeout_s, "calibrated" if acal else "normal")
    except CitynodeError as exc:
        return [("accelerometer", False, first_line(exc))]
    out = []
    n = float(np.linalg.norm(st.mean_g))
    out.append(("gravity |a|", abs(n - 1) <= opts.tol_g, "%.4f g (limit 1 +- %.3f g)" % (n, opts.tol_g)))
    if acal and ("rotation" in acal or any(acal.get("tilt_zero_deg", [0, 0]))):
        p, r = mount.tilt_deg(st.mean_g)
        z = acal.get("tilt_zero_deg", [0.0, 0.0])
        dp, dr = p - z[0], r - z[1]
        ok = max(abs(dp), abs(dr)) <= opts.tol_tilt
        out.append(("tilt since install", ok, "pitch %+.2f, roll %+.2f deg (limit %.2f)" % (dp, dr, opts.tol_tilt)))
    return out
