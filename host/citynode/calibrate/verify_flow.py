"""`citynode calibrate verify`: the node as it runs now against a reference and gravity, check by check.

Quick: the node's climate period is shortened for the check (a few readings
2 s apart, set back afterwards) while gravity is averaged at the same time, so
a verify takes seconds, not the minutes of three readings on the 60 s period.

Fit for a node on a structure in service: gravity is judged from a long mean
known to a stated uncertainty (accel.long_mean: the sample count and the
spread of batch means), never from stillness, so a bridge that vibrates under
traffic still gives its static tilt. Only a mean that will not settle (the
structure sways or moves) fails, and says so.

Each check is PASS, FAIL or "not checked" (with the reason); the verify passes
when no check fails.
"""

import contextlib
import math
from dataclasses import dataclass

import numpy as np

from citynode.calibrate import limits, mount
from citynode.calibrate.climate_reference import parse_point
from citynode.calibrate.node_link import NO_DATA_S, ClimatePeriod, MeanCollector, first_line
from citynode.errors import CitynodeError, UsageError
from citynode_protocol import messages

PASS, FAIL, NOT_CHECKED = "PASS", "FAIL", "not checked"
WRONG_BLOCKS_S = 3.0  # only blocks of another kind (raw, uncalibrated) for this long: say so, do not wait


@dataclass
class Check:
    name: str
    result: str  # PASS, FAIL or NOT_CHECKED
    detail: str

    def as_dict(self):
        return {"check": self.name, "result": self.result, "pass": {PASS: True, FAIL: False}.get(self.result),
                "detail": self.detail}


def _check(name, ok, detail):
    return Check(name, PASS if ok else FAIL, detail)


@dataclass
class VerifyOptions:
    reference_temperature: float = None
    reference_humidity: float = None
    seconds: float = 5.0  # least time gravity is averaged
    timeout_s: float = 60.0  # longest measurement
    climate_readings: int = 5
    climate_period_s: int = 2
    # the mean must be known to a quarter of the tolerance (1 sigma): its error then moves a result near the
    # limit by a quarter of the limit at most, 19 times out of 20 by half
    confidence: float = 4.0
    tol_t: float = limits.VERIFY["t_c"]
    tol_rh: float = limits.VERIFY["rh_pct"]
    tol_g: float = limits.VERIFY["g"]
    tol_tilt: float = limits.VERIFY["tilt_deg"]

    @property
    def gravity_sigma_g(self):
        """How well the gravity mean must be known: both |a| and the tilt need it."""
        return min(self.tol_g, math.radians(self.tol_tilt)) / self.confidence


def run_verify(session, opts):
    ui = session.ui
    session.load_info()
    doc = session.calib_get()
    status = session.client.command("status") or {}
    parts = session.parts()
    if doc is None:
        ui.say("node %s runs uncalibrated (no calibration stored)" % session.node_id)
    else:
        ui.say("node %s runs calibration id %s (%s, %s)" % (session.node_id, doc.get("id"), doc.get("date"),
                                                             doc.get("method")))
    checks = _calibration_checks(doc, status, getattr(session, "info", None))
    t_ref = h_ref = None
    if "climate" in parts:
        t_ref, h_ref = _references(session, opts)
    climate_on = t_ref is not None or h_ref is not None
    accel_on = "accel" in parts
    acal = (doc or {}).get("accel")
    started = session.utc()
    with ClimatePeriod(session, opts.climate_period_s, "the check") if climate_on else contextlib.nullcontext():
        m = _measure(session, opts, climate_on, accel_on, "calibrated" if acal else "normal")
    if "climate" in parts:
        checks.extend(_climate_checks(opts, doc, t_ref, h_ref, m))
    if accel_on:
        checks.extend(_accel_checks(opts, acal, m))
    for c in checks:
        ui.say("%-22s %-11s  %s" % (c.name, c.result, c.detail))
    measured = {"started_utc": started, "finished_utc": session.utc(), "climate_readings": m.climate}
    if m.gravity is not None:
        g = m.gravity
        measured["gravity"] = {"mean_g": [float(v) for v in g.mean_g], "sigma_g": g.sigma_g,
                               "vibration_g": [float(v) for v in g.vibration_g], "samples": g.n}
    return {"kind": "verify", "document": doc, "checks": [c.as_dict() for c in checks],
            "pass": not any(c.result == FAIL for c in checks), "measured": measured}


def _calibration_checks(doc, status, info):
    out = []
    if status.get("flags", 0) & messages.STATUS_CALIB_FALLBACK:
        out.append(Check("calibration file", FAIL, (info or {}).get("calibration_fallback") or "not loaded as saved"))
    cid = status.get("calibration_id")
    if doc is not None and cid is not None and cid != doc.get("id"):
        out.append(Check("calibration in use", FAIL, "status says id %s, the file says %s" % (cid, doc.get("id"))))
    elif doc is not None:
        out.append(Check("calibration in use", PASS, "id %s in the node's status and its file" % doc.get("id")))
    return out


def _references(session, opts):
    """(t_ref, h_ref) from the options, or asked in a terminal; (None, None) means no climate check."""
    t_ref, h_ref = opts.reference_temperature, opts.reference_humidity
    ui = session.ui
    if t_ref is not None or h_ref is not None or not ui.interactive:
        return t_ref, h_ref
    while True:  # asked again until the answers are numbers in range, or both empty
        t = ui.ask("reference temperature now in degC (empty: skip)", "--reference-temperature")
        h = ui.ask("reference humidity now in %RH (empty: skip)", "--reference-humidity")
        if not t and not h:
            return None, None
        try:
            p = parse_point("%s,%s" % (t or "-", h or "-"))
            if p.salt:
                raise UsageError("give the reference humidity in %RH, not a salt name")
            return p.temperature_c, p.humidity_pct
        except UsageError as exc:
            ui.say(str(exc))


@dataclass
class _Measured:
    climate: list  # {temperature_c, humidity_pct, status, utc} per reading
    climate_problem: str
    gravity: object  # accel.LongMean or None
    gravity_problem: str
    seconds: float


def _measure(session, opts, climate_on, accel_on, want):
    """Climate readings and the gravity mean, taken together, within opts.timeout_s."""
    ui = session.ui
    climate = []
    climate_problem = gravity_problem = None
    gravity = None
    if accel_on:
        try:
            session.ensure_stream()
            gravity = MeanCollector(want, opts.seconds, session.config.get("accel_odr_hz") or 200)
        except CitynodeError as exc:
            gravity_problem = first_line(exc)
    names = tuple(n for n, on in (("climate", climate_on), ("accel", gravity is not None)) if on)
    start = last_climate = session.clock()
    sigma = opts.gravity_sigma_g

    def climate_done():
        return not climate_on or climate_problem or len(climate) >= opts.climate_readings

    def gravity_done():
        return gravity is None or gravity_problem or gravity.confident(sigma)

    if names:
        ui.say("measuring: %s%s%s (at most %.0f s)" % (
            "%d climate readings" % opts.climate_readings if climate_on else "",
            " and " if len(names) == 2 else "",
            "gravity for %.0f s or more" % opts.seconds if gravity is not None else "", opts.timeout_s))
    shown = None
    silence = NO_DATA_S if gravity is not None else session.climate_silence_s
    try:
        for m in session.frames(names, max_silence_s=silence, what=" or ".join(names) + " data") if names else ():
            now = session.clock()
            if m.name == "climate":
                f = m.fields
                bad = f["status"] & (messages.CLIMATE_SENSOR_ERROR | messages.CLIMATE_CRC_ERROR)
                if not bad and len(climate) < opts.climate_readings:
                    climate.append({"temperature_c": f["temperature_c"], "humidity_pct": f["relative_humidity_pct"],
                                    "status": f["status"], "utc": session.utc(now)})
                    last_climate = now
            elif gravity is not None and not gravity.feed(m) and not gravity.n and now - start > WRONG_BLOCKS_S:
                gravity_problem = "the node sends no %s accelerometer data (block flags 0x%02x): raw mode left on? " \
                    "(a reboot turns it off)" % (want, m.fields["flags"])
            if climate_on and not climate_done() and now - last_climate > session.climate_silence_s:
                climate_problem = "no climate reading for %.0f s" % (now - last_climate)
            if int(now - start) != shown:  # a line a second
                shown = int(now - start)
                ui.progress(_progress_words(now - start, climate if climate_on else None, opts, gravity))
            if climate_done() and gravity_done():
                break
            if now - start > opts.timeout_s:
                break
    except CitynodeError as exc:
        lost = first_line(exc)
        if not climate_done():
            climate_problem = lost
        if not gravity_done():
            gravity_problem = lost
    mean = None
    if gravity is not None and gravity.n:
        mean = gravity.mean()
        if mean is None and gravity_problem is None:
            gravity_problem = "no accelerometer data of the kind needed (%s) within %.0f s" % (want, opts.timeout_s)
    return _Measured(climate, climate_problem, mean, gravity_problem, session.clock() - start)


def _progress_words(elapsed, climate, opts, gravity):
    words = ["%.0f s" % elapsed]
    if climate is not None:
        words.append("climate %d/%d readings" % (len(climate), opts.climate_readings))
    if gravity is not None:
        st = gravity.mean()
        if st is None:
            words.append("gravity %.0f of at least %.0f s" % (gravity.seconds_so_far, gravity.seconds))
        else:
            words.append("|a| %.4f g +- %.2f mg (need +- %.2f), vibration %.1f mg rms" % (
                st.norm_g, 1000 * st.sigma_g, 1000 * opts.gravity_sigma_g, 1000 * float(np.max(st.vibration_g))))
    return "measuring " + "; ".join(words)


def _climate_checks(opts, doc, t_ref, h_ref, m):
    if t_ref is None and h_ref is None:
        return [Check("climate", NOT_CHECKED, "no reference given (--reference-temperature, --reference-humidity)")]
    if not m.climate:
        return [Check("climate", FAIL, "no climate readings: %s" % (m.climate_problem or "none came"))]
    out = []
    if doc is not None and doc.get("climate") is not None and not all(
            r["status"] & messages.CLIMATE_CALIBRATED for r in m.climate):
        out.append(Check("climate flag", FAIL, "records are not marked calibrated"))
    n = len(m.climate)
    few = "" if n >= opts.climate_readings else "; only %d of %d readings (%s)" % (
        n, opts.climate_readings, m.climate_problem or "time ran out")
    for name, ref, col, tol, unit in (("temperature", t_ref, "temperature_c", opts.tol_t, "degC"),
                                      ("humidity", h_ref, "humidity_pct", opts.tol_rh, "%RH")):
        if ref is None:
            out.append(Check(name, NOT_CHECKED, "no reference %s given" % name))
            continue
        v = float(np.mean([r[col] for r in m.climate]))
        d = v - ref
        out.append(_check(name, abs(d) <= tol, "node %.2f (mean of %d), reference %.2f %s: %+.2f (limit %.2f)%s"
                          % (v, n, ref, unit, d, tol, few)))
    return out


def _accel_checks(opts, acal, m):
    if m.gravity is None:
        return [Check("accelerometer", FAIL, m.gravity_problem)]
    g = m.gravity
    sigma = opts.gravity_sigma_g
    if g.sigma_g > sigma and m.gravity_problem:
        return [Check("gravity mean", FAIL, "known to +-%.2f mg when the measurement stopped: %s"
                      % (1000 * g.sigma_g, m.gravity_problem))]
    if g.sigma_g > sigma:
        return [Check("gravity mean", FAIL,
                      "not known well enough within %.0f s: +-%.2f mg, need +-%.2f mg (spread %.1f mg rms): the "
                      "structure sways or was moved; try again when it is calmer, or with a longer --timeout"
                      % (opts.timeout_s, 1000 * g.sigma_g, 1000 * sigma, 1000 * float(np.max(g.vibration_g))))]
    n = g.norm_g
    vib = "vibration %.1f mg rms" % (1000 * float(np.max(g.vibration_g)))
    out = [_check("gravity |a|", abs(n - 1) <= opts.tol_g, "%.4f g +- %.2f mg over %.0f s (limit 1 +- %.3f g); %s"
                  % (n, 1000 * g.sigma_g, m.seconds, opts.tol_g, vib))]
    if acal and ("rotation" in acal or any(acal.get("tilt_zero_deg", [0, 0]))):
        p, r = mount.tilt_deg(g.mean_g)
        z = acal.get("tilt_zero_deg", [0.0, 0.0])
        dp, dr = p - z[0], r - z[1]
        ok = max(abs(dp), abs(dr)) <= opts.tol_tilt
        out.append(_check("tilt since install", ok, "pitch %+.2f, roll %+.2f deg +- %.3f (limit %.2f)"
                          % (dp, dr, g.tilt_sigma_deg, opts.tol_tilt)))
    return out
