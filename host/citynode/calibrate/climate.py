"""Climate (temperature / humidity) calibration against references: the maths.

Model (the node's, `firmware/citynode_fw/calibration.py`):
    T' = t_gain * T + t_offset_c        RH' = rh_gain * RH + rh_offset_pct
with T, RH the sensor's readings and T', RH' the calibrated values.

Fits, each of one quantity against its reference:
- one point: offset only, gain 1 (the Dortmund Data2Resilience practice,
  `RUBclim/d2r-api:app/tasks.py`, with the sign turned so the node adds it);
- two or more points: the ordinary least-squares line (ESPHome
  `calibrate_linear` method `least_squares`: k = r s_y/s_x, b = y - k x), with
  residuals; when the points span too little to tell a gain (under
  MIN_SPAN), an offset only, with a note;
- a paired time series: the node's readings and a reference logger's CSV,
  aligned in time (clock shift estimated or given), the overlap checked, then
  the same least-squares line over all pairs.

Saturated salts: equilibrium RH from Greenspan 1977 via Padfield's table
(https://padfield.org/tim/cfys/satslt/satsalt.html), interpolated in
temperature.

numpy only; no I/O except reading the reference CSV.
"""

import csv
import io
import math
from dataclasses import dataclass, field
from datetime import datetime, timezone

import numpy as np

from citynode.calibrate import limits
from citynode.errors import UsageError

# the span of the points below which only an offset is fitted
MIN_SPAN = {"temperature": 5.0, "humidity": 20.0}
UNITS = {"temperature": "degC", "humidity": "%RH"}

# Padfield / Greenspan 1977, equilibrium %RH at 5, 10, 15, 20, 25 degC
# (https://padfield.org/tim/cfys/satslt/satsalt.html, "Properties of selected saturated salt solutions")
SALT_TEMPS_C = (5.0, 10.0, 15.0, 20.0, 25.0)
SALTS = {
    "licl": ("LiCl", (11.3, 11.3, 11.3, 11.3, 11.3)),
    "mgcl2": ("MgCl2", (33.6, 33.5, 33.3, 33.1, 32.8)),
    "k2co3": ("K2CO3", (43.1, 43.1, 43.1, 43.2, 43.2)),
    "nabr": ("NaBr", (63.5, 62.2, 60.7, 59.1, 57.6)),
    "nacl": ("NaCl", (75.7, 75.7, 75.6, 75.7, 75.3)),
    "kcl": ("KCl", (87.7, 86.8, 85.9, 85.1, 84.3)),
    "k2so4": ("K2SO4", (98.5, 98.2, 97.9, 97.6, 97.3)),
}
SALT_EXTRAPOLATE_C = 5.0  # allowed outside 5..25 degC, holding the end value


class ReferenceDataError(UsageError):
    """A reference (value, salt or CSV) that cannot be used; one line of words."""


def salt_rh(name, temperature_c):
    """Equilibrium %RH over a saturated salt at a temperature (linear interpolation)."""
    key = name.strip().lower().replace("\u2082", "2")
    if key not in SALTS:
        raise ReferenceDataError("unknown salt %r; known: %s" % (name, ", ".join(v[0] for v in SALTS.values())))
    label, values = SALTS[key]
    lo, hi = SALT_TEMPS_C[0], SALT_TEMPS_C[-1]
    if not lo - SALT_EXTRAPOLATE_C <= temperature_c <= hi + SALT_EXTRAPOLATE_C:
        raise ReferenceDataError(
            "%s is tabulated for %g..%g degC; at %.1f degC its humidity is not known well enough"
            % (label, lo, hi, temperature_c))
    return float(np.interp(temperature_c, SALT_TEMPS_C, values))


def check_reference(quantity, value):
    """Refuse a reference outside its physical range (never forced)."""
    key = "reference_temperature_c" if quantity == "temperature" else "reference_humidity_pct"
    bad = limits.check(key, value)
    if bad:
        raise ReferenceDataError("%s %g %s is out of range (%s)" % (
            bad.limit.what, value, bad.limit.unit, bad.limit.describe()))
    return value


@dataclass
class LinearFit:
    """reference = gain * reading + offset, over n points."""

    quantity: str
    gain: float
    offset: float
    readings: np.ndarray
    references: np.ndarray
    method: str
    note: str = ""
    residuals: np.ndarray = field(default=None)

    def __post_init__(self):
        if self.residuals is None:
            self.residuals = self.references - self.apply(self.readings)

    @property
    def n(self):
        return len(self.readings)

    @property
    def rms(self):
        if self.n < 2:
            return 0.0
        return float(np.sqrt(np.mean(self.residuals ** 2)))

    def apply(self, x):
        return self.gain * np.asarray(x, dtype=float) + self.offset

    def as_dict(self):
        return {
            "quantity": self.quantity,
            "method": self.method,
            "gain": float(self.gain),
            "offset": float(self.offset),
            "n": self.n,
            "rms": self.rms,
            "note": self.note,
            "points": [
                {"reading": float(x), "reference": float(y), "residual": float(r)}
                for x, y, r in zip(self.readings[:200], self.references[:200], self.residuals[:200])
            ],
        }


def fit(quantity, readings, references, min_span=None):
    """One-point offset, or the least-squares line for two or more points."""
    x = np.asarray(readings, dtype=float)
    y = np.asarray(references, dtype=float)
    if len(x) != len(y) or len(x) == 0:
        raise ReferenceDataError("no %s points to fit" % quantity)
    if not (np.all(np.isfinite(x)) and np.all(np.isfinite(y))):
        raise ReferenceDataError("a %s point is not a number" % quantity)
    span = float(x.max() - x.min())
    need = MIN_SPAN[quantity] if min_span is None else min_span
    if len(x) == 1:
        return LinearFit(quantity, 1.0, float(y[0] - x[0]), x, y, "one-point offset")
    if span < need:
        note = "points span %.2f %s, under the %g needed to fit a gain: offset only" % (span, UNITS[quantity], need)
        return LinearFit(quantity, 1.0, float(np.mean(y - x)), x, y, "offset (mean of %d points)" % len(x), note)
    xm, ym = x.mean(), y.mean()
    gain = float(np.sum((x - xm) * (y - ym)) / np.sum((x - xm) ** 2))
    offset = float(ym - gain * xm)
    method = "two-point linear" if len(x) == 2 else "least-squares line (%d points)" % len(x)
    return LinearFit(quantity, gain, offset, x, y, method)


def check_limits(t_fit=None, rh_fit=None):
    """LimitViolations of the climate fits (empty when acceptable)."""
    out = []
    if t_fit is not None:
        for key, value in (("t_gain", t_fit.gain), ("t_offset_c", t_fit.offset), ("t_residual_c", t_fit.rms)):
            v = limits.check(key, value)
            if v:
                out.append(v)
    if rh_fit is not None:
        for key, value in (("rh_gain", rh_fit.gain), ("rh_offset_pct", rh_fit.offset),
                           ("rh_residual_pct", rh_fit.rms)):
            v = limits.check(key, value)
            if v:
                out.append(v)
    return out


def node_part(t_fit=None, rh_fit=None, current=None):
    """The node's `climate` calibration part; quantities not fitted keep `current`."""
    part = {"t_gain": 1.0, "t_offset_c": 0.0, "rh_gain": 1.0, "rh_offset_pct": 0.0}
    if current:
        for key in part:
            if key in current:
                part[key] = float(current[key])
    if t_fit is not None:
        part["t_gain"] = round(float(t_fit.gain), 6)
        part["t_offset_c"] = round(float(t_fit.offset), 4)
    if rh_fit is not None:
        part["rh_gain"] = round(float(rh_fit.gain), 6)
        part["rh_offset_pct"] = round(float(rh_fit.offset), 4)
    return part


def uncalibrate(temperature_c, humidity_pct, part):
    """The sensor's own readings from values the node calibrated with `part`.

    Exact up to the node's 0.01 rounding (and the 0..100 %RH clamp).
    """
    part = part or {}
    t = (temperature_c - part.get("t_offset_c", 0.0)) / part.get("t_gain", 1.0)
    rh = (humidity_pct - part.get("rh_offset_pct", 0.0)) / part.get("rh_gain", 1.0)
    return t, rh


@dataclass
class Stability:
    stable: bool
    mean: float
    spread: float
    slope_per_min: float
    n: int


SETTLED_MIN_READINGS = 5  # readings in the window before it can count as settled


def stability(times_s, values, window_s, max_spread, max_slope_per_min=None, min_n=SETTLED_MIN_READINGS):
    """Are the values of the last window_s seconds settled?

    Settled: at least min_n readings in the window, max - min within
    max_spread, and (if given) the least-squares slope within
    max_slope_per_min, or not told apart from noise (under twice its
    standard error: a short window of noisy readings cannot measure a small
    slope, and then the spread alone decides).
    """
    t = np.asarray(times_s, dtype=float)
    v = np.asarray(values, dtype=float)
    if len(t) == 0:
        return Stability(False, float("nan"), float("inf"), float("inf"), 0)
    keep = t >= t[-1] - window_s
    t, v = t[keep], v[keep]
    n = len(v)
    spread = float(v.max() - v.min())
    slope = 0.0
    slope_se = float("inf")
    if n >= 2 and t[-1] > t[0]:
        tc = t - t.mean()
        sxx = float(tc @ tc)
        slope_s = float(tc @ (v - v.mean())) / sxx
        slope = slope_s * 60.0
        if n >= 3:
            resid = v - v.mean() - slope_s * tc
            slope_se = math.sqrt(float(resid @ resid) / (n - 2) / sxx) * 60.0
    ok = n >= min_n and spread <= max_spread
    if max_slope_per_min is not None:
        ok = ok and abs(slope) <= max(max_slope_per_min, 2.0 * slope_se)
    return Stability(ok, float(v.mean()), spread, slope, n)


# -- reference logger CSV ---------------------------------------------------------

_TIME_NAMES = ("time", "timestamp", "datetime", "date_time", "date/time", "zeit", "utc", "time_utc", "date")
_T_NAMES = ("temperature_c", "temperature", "temp", "t", "temp_c", "t_c", "air_temperature", "temperatur")
_RH_NAMES = ("relative_humidity_pct", "humidity", "rh", "rh_pct", "relative_humidity", "hum", "feuchte",
             "humidity_pct")

_TIME_FORMATS = (
    "%Y-%m-%d %H:%M:%S",
    "%Y-%m-%d %H:%M",
    "%Y-%m-%dT%H:%M:%S",
    "%d.%m.%Y %H:%M:%S",
    "%d.%m.%Y %H:%M",
    "%d/%m/%Y %H:%M:%S",
    "%Y/%m/%d %H:%M:%S",
)


@dataclass
class ReferenceSeries:
    path: str
    times_s: np.ndarray  # UTC epoch seconds
    temperature_c: np.ndarray = None  # or None
    humidity_pct: np.ndarray = None
    columns: dict = field(default_factory=dict)

    @property
    def start(self):
        return float(self.times_s[0])

    @property
    def end(self):
        return float(self.times_s[-1])


def _norm(name):
    n = name.strip().lower()
    for unit in ("[degc]", "(degc)", "[\u00b0c]", "(\u00b0c)", "[%rh]", "(%rh)", "[%]", "(%)", "\u00b0c", "%rh"):
        n = n.replace(unit, "")
    return n.strip().strip("_ ").replace(" ", "_")


def _pick(header, names, given, what, path):
    normed = [_norm(h) for h in header]
    if given:
        if given in header:
            return header.index(given)
        if _norm(given) in normed:
            return normed.index(_norm(given))
        raise ReferenceDataError("%s: no column %r (columns: %s)" % (path, given, ", ".join(header)))
    for candidate in names:
        if candidate in normed:
            return normed.index(candidate)
    return None


def parse_time(text, tz=None):
    """Seconds since the epoch (UTC) from a logger's time field.

    Epoch seconds (a number over 1e9) or milliseconds (over 1e12), ISO 8601
    with or without zone, and the usual logger formats. A time without a zone
    is in `tz` (a tzinfo; None means this computer's local time zone).
    """
    s = text.strip()
    try:
        v = float(s)
    except ValueError:
        v = None
    if v is not None:
        if v > 1e12:
            return v / 1000.0
        if v > 1e9:
            return v
        raise ValueError("number %r is not a time since 1970" % s)
    dt = None
    try:
        dt = datetime.fromisoformat(s.replace("Z", "+00:00"))
    except ValueError:
        for fmt in _TIME_FORMATS:
            try:
                dt = datetime.strptime(s, fmt)
                break
            except ValueError:
                continue
    if dt is None:
        raise ValueError("cannot read time %r" % s)
    if dt.tzinfo is None:
        dt = dt.replace(tzinfo=tz) if tz is not None else dt.astimezone()
    return dt.astimezone(timezone.utc).timestamp()


def _number(text):
    s = text.strip()
    try:
        return float(s)
    except ValueError:
        return float(s.replace(",", "."))  # decimal comma (German loggers)


def read_reference_csv(path, time_column=None, temperature_column=None, humidity_column=None, tz=None):
    """A reference logger's CSV as a ReferenceSeries; ReferenceDataError with the line on a problem."""
    try:
        with open(path, encoding="utf-8-sig", newline="") as f:
            text = f.read()
    except OSError as exc:
        raise ReferenceDataError("cannot read reference CSV %s: %s" % (path, exc.strerror or exc))
    except UnicodeDecodeError:
        raise ReferenceDataError("reference CSV %s is not UTF-8 text" % path)
    lines = [ln for ln in text.splitlines() if ln.strip() and not ln.lstrip().startswith("#")]
    if len(lines) < 2:
        raise ReferenceDataError("reference CSV %s has no data rows" % path)
    try:
        dialect = csv.Sniffer().sniff(lines[0], delimiters=",;\t")
        delimiter = dialect.delimiter
    except csv.Error:
        delimiter = ","
    rows = list(csv.reader(io.StringIO("\n".join(lines)), delimiter=delimiter))
    header = [h.strip() for h in rows[0]]
    ti = _pick(header, _TIME_NAMES, time_column, "time", path)
    if ti is None:
        raise ReferenceDataError("%s: no time column (looked for %s; name it with --csv-time-column)"
                                 % (path, ", ".join(_TIME_NAMES[:4])))
    tci = _pick(header, _T_NAMES, temperature_column, "temperature", path)
    rhi = _pick(header, _RH_NAMES, humidity_column, "humidity", path)
    if tci is None and rhi is None:
        raise ReferenceDataError("%s: neither a temperature nor a humidity column (columns: %s)"
                                 % (path, ", ".join(header)))
    times, temps, hums = [], [], []
    for lineno, row in enumerate(rows[1:], 2):
        if len(row) < len(header):
            raise ReferenceDataError("%s line %d: %d fields, the header has %d" % (path, lineno, len(row), len(header)))
        try:
            times.append(parse_time(row[ti], tz))
        except ValueError as exc:
            raise ReferenceDataError("%s line %d: %s" % (path, lineno, exc))
        for idx, out, what in ((tci, temps, "temperature"), (rhi, hums, "humidity")):
            if idx is None:
                continue
            try:
                out.append(_number(row[idx]))
            except ValueError:
                raise ReferenceDataError("%s line %d: %s %r is not a number" % (path, lineno, what, row[idx]))
    t = np.asarray(times)
    order = np.argsort(t, kind="stable")
    t = t[order]
    if np.any(np.diff(t) == 0):
        raise ReferenceDataError("%s: the same time appears twice (line %d)" % (
            path, int(order[1:][np.diff(t) == 0][0]) + 2))
    series = ReferenceSeries(str(path), t, columns={"time": header[ti]})
    if tci is not None:
        series.temperature_c = np.asarray(temps)[order]
        series.columns["temperature"] = header[tci]
        for v in series.temperature_c:
            check_reference("temperature", float(v))
    if rhi is not None:
        series.humidity_pct = np.asarray(hums)[order]
        series.columns["humidity"] = header[rhi]
        for v in series.humidity_pct:
            check_reference("humidity", float(v))
    return series


def _fmt_utc(t):
    return datetime.fromtimestamp(t, timezone.utc).strftime("%Y-%m-%d %H:%M:%S UTC")


def _interp_with_gaps(ref_t, ref_v, at, max_gap):
    """Reference values at times `at` (linear), NaN outside or across a gap > max_gap."""
    out = np.interp(at, ref_t, ref_v, left=np.nan, right=np.nan)
    idx = np.searchsorted(ref_t, at)
    idx = np.clip(idx, 1, len(ref_t) - 1)
    gap = ref_t[idx] - ref_t[idx - 1]
    out[gap > max_gap] = np.nan
    return out


@dataclass
class Pairing:
    shift_s: float  # added to the reference's times to put them on the node's clock
    shift_estimated: bool
    node_times_s: np.ndarray
    node_values: dict
    ref_values: dict
    overlap_s: float
    note: str = ""


MIN_PAIRS = 5


def pair_series(node_times_s, node_temperature, node_humidity, ref, shift_s=None, max_shift_s=600.0,
                min_overlap_s=300.0):
    """Pair node readings with the reference, shifting the reference's clock.

    shift_s None: estimated within +-max_shift_s as the shift that makes the
    temperature (else humidity) differences vary least, when the series vary
    enough to tell; else 0. Raises ReferenceDataError when they do not
    overlap for at least min_overlap_s with MIN_PAIRS pairs.
    """
    nt = np.asarray(node_times_s, dtype=float)
    node = {"temperature": np.asarray(node_temperature, dtype=float),
            "humidity": np.asarray(node_humidity, dtype=float)}
    refv = {"temperature": ref.temperature_c, "humidity": ref.humidity_pct}
    if len(nt) == 0:
        raise ReferenceDataError("no node readings to pair with the reference")
    dt_ref = float(np.median(np.diff(ref.times_s))) if len(ref.times_s) > 1 else 60.0
    max_gap = max(3.0 * dt_ref, 1.0)
    note = ""
    estimated = False
    if shift_s is None:
        shift_s = 0.0
        key = "temperature" if refv["temperature"] is not None else "humidity"
        varies = np.std(node[key]) > (0.2 if key == "temperature" else 1.0)
        if varies:
            step = max(min(dt_ref, float(np.median(np.diff(nt))) if len(nt) > 1 else dt_ref) / 2.0, 0.5)
            best = None
            for s in np.arange(-max_shift_s, max_shift_s + step / 2, step):
                r = _interp_with_gaps(ref.times_s + s, refv[key], nt, max_gap)
                ok = np.isfinite(r)
                if ok.sum() < max(MIN_PAIRS, len(nt) // 2):
                    continue
                d = r[ok] - node[key][ok]
                score = float(np.var(d))
                if best is None or score < best[0] - 1e-12:
                    best = (score, float(s))
            if best is not None:
                shift_s = best[1]
                estimated = True
                note = "reference clock shift %+.0f s estimated from the %s series" % (shift_s, key)
        else:
            note = "readings too steady to estimate a clock shift: assumed 0 s (give --csv-shift if known)"
    rt = ref.times_s + shift_s
    lo = max(nt[0], rt[0])
    hi = min(nt[-1], rt[-1])
    overlap = hi - lo
    if overlap < min_overlap_s:
        raise ReferenceDataError(
            "the reference CSV (%s .. %s) and the node's readings (%s .. %s) overlap for %.0f s, "
            "need %.0f s: check the logger's clock and time zone (--csv-utc, --csv-shift)"
            % (_fmt_utc(rt[0]), _fmt_utc(rt[-1]), _fmt_utc(nt[0]), _fmt_utc(nt[-1]), max(overlap, 0.0), min_overlap_s))
    pairs_ref = {}
    ok = np.ones(len(nt), dtype=bool)
    for key in ("temperature", "humidity"):
        if refv[key] is None:
            pairs_ref[key] = None
            continue
        r = _interp_with_gaps(rt, refv[key], nt, max_gap)
        pairs_ref[key] = r
        ok &= np.isfinite(r)
    if ok.sum() < MIN_PAIRS:
        raise ReferenceDataError("only %d node readings fall inside the reference's coverage; need %d"
                                 % (int(ok.sum()), MIN_PAIRS))
    return Pairing(
        shift_s, estimated, nt[ok],
        {k: v[ok] for k, v in node.items()},
        {k: (None if v is None else v[ok]) for k, v in pairs_ref.items()},
        float(overlap), note)


def dew_point_c(temperature_c, humidity_pct):
    """Magnus dew point with Sensirion's constants (sensors.md section 3.5)."""
    t = np.asarray(temperature_c, dtype=float)
    rh = np.clip(np.asarray(humidity_pct, dtype=float), 0.01, 100.0)
    gamma = np.log(rh / 100.0) + 17.62 * t / (243.12 + t)
    return 243.12 * gamma / (17.62 - gamma)


def finite(value):
    return value is not None and math.isfinite(value)
