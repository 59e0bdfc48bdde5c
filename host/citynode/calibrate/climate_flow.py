"""`citynode calibrate climate`: temperature and humidity against reference points, salts or a logger CSV.

Each flow talks to the node only through a node_link.NodeSession, so tests drive
it with a scripted fake link; the calibration is changed by one write, read back.
"""

from dataclasses import dataclass, field

import numpy as np

from citynode.calibrate import climate
from citynode.calibrate.climate_reference import ClimatePoint, asked_point, expected_change, ref_words
from citynode.calibrate.node_link import NO_DATA_S, ClimatePeriod, raw_off
from citynode.calibrate.record import RecordOptions, new_document, record_site, refuse_or_warn
from citynode.errors import CitynodeError, UsageError
from citynode_protocol import messages


@dataclass
class ClimateOptions(RecordOptions):
    points: list = field(default_factory=list)
    reference_csv: str = None
    csv_time_column: str = None
    csv_temperature_column: str = None
    csv_humidity_column: str = None
    csv_utc: bool = False
    csv_shift_s: float = None
    duration_s: float = 1800.0
    period_s: int = 2
    window_s: float = 60.0
    max_spread_c: float = 0.1
    max_spread_pct: float = 0.5
    # settled also means not still creeping (a salt box equilibrates exponentially)
    max_slope_c_min: float = 0.02
    max_slope_pct_min: float = 0.1
    point_timeout_s: float = 2700.0
    min_overlap_s: float = 300.0


class ClimateReadings:
    """Raw climate records as they come: node time mapped to host UTC."""

    def __init__(self):
        self.t = []
        self.temperature = []
        self.humidity = []
        self._offset = None

    def add(self, m, wall_now):
        f = m.fields
        if f["status"] & (messages.CLIMATE_SENSOR_ERROR | messages.CLIMATE_CRC_ERROR):
            return False
        if f["status"] & messages.CLIMATE_CALIBRATED:
            return False  # not raw yet
        off = wall_now - m.time_ms / 1000.0
        # the smallest offset seen is the one with the least transfer delay
        self._offset = off if self._offset is None else min(self._offset, off)
        self.t.append(m.time_ms / 1000.0)
        self.temperature.append(f["temperature_c"])
        self.humidity.append(f["relative_humidity_pct"])
        return True

    def utc(self):
        return np.asarray(self.t) + (self._offset or 0.0)


def run_climate(session, opts):
    ui = session.ui
    session.load_info()
    part = session.require("climate")
    current = session.calib_get()
    cur_part = (current or {}).get("climate")
    if not opts.points and not opts.reference_csv:
        if not ui.interactive:
            raise UsageError("no reference: stdin is not a terminal, give --reference-temperature/--reference-humidity, "
                             "--point or --reference-csv")
        opts.points = [ClimatePoint(ask=True)]  # the values are asked once the node has settled
    ui.say("node %s (%s): climate calibration of the %s" % (session.node_id, session.port, part))
    result = session.result = {"kind": "climate", "part": part, "previous": current}
    with ClimatePeriod(session, opts.period_s):  # kept short until the check afterwards is done
        session.raw_mode(True)
        try:
            if opts.reference_csv:
                t_fit, rh_fit, detail = _climate_series(session, opts)
            else:
                t_fit, rh_fit, detail = _climate_points(session, opts)
            result.update(detail)
            result.update(t_fit=t_fit, rh_fit=rh_fit)
            for f in (t_fit, rh_fit):
                if f is not None:
                    ui.say("%s: %s, gain %.5f, offset %+.3f %s, residual %.3f RMS over %d%s" % (
                        f.quantity, f.method, f.gain, f.offset, climate.UNITS[f.quantity], f.rms, f.n,
                        ("; " + f.note) if f.note else ""))
            result["forced"] = refuse_or_warn(climate.check_limits(t_fit, rh_fit), opts.force, ui,
                                              "climate calibration")
            method = "climate: " + "; ".join("%s %s" % (f.quantity, f.method) for f in (t_fit, rh_fit) if f)
            doc = new_document(session, current, method, record_site(session, opts),
                               climate_part=climate.node_part(t_fit, rh_fit, cur_part))
            result["document"] = session.write_calibration(doc, current)
        finally:
            raw_off(session)
        result["after"] = _climate_after(session, result)
    return result


def _wait_climate_stable(session, opts, readings, label, previous_mean=None, expect_change=None):
    """Mean (T, RH) of a settled window; first waits for the change to a new point if told."""
    ui = session.ui
    start = session.clock()
    changed = expect_change is None
    ts, tv, hv = [], [], []
    for m in session.frames(("climate",), max_silence_s=session.climate_silence_s, what="climate readings"):
        session.climate_silence_s = max(NO_DATA_S, 3 * opts.period_s + 5)  # readings flow now
        if not readings.add(m, session.wall()):
            continue
        now = session.clock()
        t, h = m.fields["temperature_c"], m.fields["relative_humidity_pct"]
        if not changed:
            dt = abs(t - previous_mean[0])
            dh = abs(h - previous_mean[1])
            if dt >= expect_change[0] or dh >= expect_change[1]:
                changed = True
                ui.progress("new conditions seen (%.2f degC, %.1f %%RH): waiting for them to settle" % (t, h))
            else:
                ui.progress("waiting for the node to be moved to the new reference (%s)" % label)
        if changed:
            ts.append(now)
            tv.append(t)
            hv.append(h)
            st_t = climate.stability(ts, tv, opts.window_s, opts.max_spread_c, opts.max_slope_c_min)
            st_h = climate.stability(ts, hv, opts.window_s, opts.max_spread_pct, opts.max_slope_pct_min)
            covered = ts[-1] - ts[0] >= opts.window_s * 0.9
            if st_t.stable and st_h.stable and covered:
                return st_t.mean, st_h.mean, st_t.spread, st_h.spread, st_t.n
            ui.progress("settling: %.2f degC (spread %.2f, %+.2f/min), %.1f %%RH (spread %.2f, %+.2f/min)" % (
                t, st_t.spread, st_t.slope_per_min, h, st_h.spread, st_h.slope_per_min))
        if now - start > opts.point_timeout_s:
            raise CitynodeError(
                "readings did not settle within %.0f s at %s (need spread <= %.2f degC and %.2f %%RH over %.0f s, "
                "drift <= %.2f degC/min and %.2f %%RH/min); nothing was changed"
                % (opts.point_timeout_s, label, opts.max_spread_c, opts.max_spread_pct, opts.window_s,
                   opts.max_slope_c_min, opts.max_slope_pct_min))


def _climate_points(session, opts):
    ui = session.ui
    readings = ClimateReadings()
    taken = []
    for i, p in enumerate(opts.points):
        label = p.label()
        ui.say("point %d/%d: %s" % (i + 1, len(opts.points), label))
        expect = None
        prev = None
        if i > 0:
            prev = taken[-1]["reading"]
            ui.wait_enter("put the node at the reference for point %d (%s)" % (i + 1, label))
            if not ui.interactive:
                expect = expected_change(opts.points[i - 1], p)
        t, h, sp_t, sp_h, n = _wait_climate_stable(session, opts, readings, label, prev, expect)
        if p.ask:
            ui.say("the node has settled at %.2f degC, %.2f %%RH: read the reference now" % (t, h))
            p = asked_point(ui)
        ref_h = p.humidity_pct
        if p.salt:
            t_for_salt = p.temperature_c if p.temperature_c is not None else t
            ref_h = climate.salt_rh(p.salt, t_for_salt)
        ui.say("point %d/%d taken: node reads %.2f degC, %.2f %%RH (mean of %d; spread %.2f degC, %.2f %%RH)"
               "; reference %s" % (i + 1, len(opts.points), t, h, n, sp_t, sp_h,
                                    ref_words(p.temperature_c, ref_h)))
        taken.append({"reading": (t, h), "ref_t": p.temperature_c, "ref_rh": ref_h, "salt": p.salt,
                      "taken_utc": session.utc()})
    t_pts = [(x["reading"][0], x["ref_t"]) for x in taken if x["ref_t"] is not None]
    h_pts = [(x["reading"][1], x["ref_rh"]) for x in taken if x["ref_rh"] is not None]
    t_fit = climate.fit("temperature", *zip(*t_pts)) if t_pts else None
    rh_fit = climate.fit("humidity", *zip(*h_pts)) if h_pts else None
    return t_fit, rh_fit, {"points": taken, "series": readings}


def _climate_series(session, opts):
    ui = session.ui
    from datetime import timezone

    readings = ClimateReadings()
    ui.say("recording the node's readings for %.0f s beside the reference logger" % opts.duration_s)
    start = session.clock()
    for m in session.frames(("climate",), max_silence_s=session.climate_silence_s, what="climate readings"):
        session.climate_silence_s = max(NO_DATA_S, 3 * opts.period_s + 5)
        readings.add(m, session.wall())
        if session.clock() - start >= opts.duration_s:
            break
        ui.progress("%d readings so far" % len(readings.t))
    ref = climate.read_reference_csv(opts.reference_csv, opts.csv_time_column, opts.csv_temperature_column,
                                     opts.csv_humidity_column, tz=timezone.utc if opts.csv_utc else None)
    pairing = climate.pair_series(readings.utc(), readings.temperature, readings.humidity, ref,
                                  shift_s=opts.csv_shift_s, min_overlap_s=opts.min_overlap_s)
    if pairing.note:
        ui.say(pairing.note)
    ui.say("%d pairs over %.0f s of overlap" % (len(pairing.node_times_s), pairing.overlap_s))
    t_fit = rh_fit = None
    if pairing.ref_values["temperature"] is not None:
        t_fit = climate.fit("temperature", pairing.node_values["temperature"], pairing.ref_values["temperature"])
    if pairing.ref_values["humidity"] is not None:
        rh_fit = climate.fit("humidity", pairing.node_values["humidity"], pairing.ref_values["humidity"])
    return t_fit, rh_fit, {"pairing": pairing, "reference": ref, "series": readings}


def _climate_after(session, result):
    """A few calibrated readings after the write (the node's own output)."""
    vals = []
    start = session.clock()
    try:
        for m in session.frames(("climate",), max_silence_s=30.0, what="climate readings"):
            if m.fields["status"] & messages.CLIMATE_CALIBRATED:
                vals.append((m.fields["temperature_c"], m.fields["relative_humidity_pct"]))
                if len(vals) >= 3:
                    break
            if session.clock() - start > 30:
                break
    except CitynodeError as exc:
        session.ui.say("could not read calibrated climate values back: %s" % exc)
    if not vals:
        return None
    t = float(np.mean([v[0] for v in vals]))
    h = float(np.mean([v[1] for v in vals]))
    session.ui.say("node now reports %.2f degC, %.2f %%RH (calibrated)" % (t, h))
    return {"temperature_c": t, "humidity_pct": h, "n": len(vals)}
