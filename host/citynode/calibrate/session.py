"""The guided calibration flows against a node: climate, accel, mount, verify, rollback.

Each flow talks to the node only through a NodeClient-like object (`command(name,
**args)`, `read_frames(seconds)`), so tests drive them with a scripted fake. All
waits are bounded by the session's clock; every failure is a CitynodeError of
one line, and the node's calibration is only ever changed by one `calib_write`
(or `calib_rollback`), read back afterwards.

The node's side (firmware/citynode_fw): `raw_mode {on}` turns off calibration of
both climate records and accel blocks (blocks then carry
ACCEL_UNCALIBRATED_MODE), `calib_write {calib}` validates, stores atomically
(the current one becomes the previous) and applies, `calib_rollback` swaps
current and previous, `calib_get` returns the document.
"""

import copy
import json
import math
import sys
import time
from dataclasses import dataclass, field

import numpy as np

from citynode.calibrate import accel, climate, limits, mount
from citynode.errors import CitynodeError, DeviceError, TransportError, UsageError
from citynode_protocol import messages

NO_DATA_S = 5.0  # no accel block / climate record for this long: the link or sensor is gone
READ_SLICE_S = 0.25


class NoSensor(CitynodeError):
    """The node has no such sensor fitted."""


class Rejected(CitynodeError):
    """The result is outside the documented limits (and not forced)."""


class Ui:
    """Lines for the installer; questions only when stdin is a terminal."""

    def __init__(self, out=None, interactive=None, quiet=False):
        self.out = out if out is not None else sys.stdout
        self.interactive = sys.stdin.isatty() if interactive is None else interactive
        self.quiet = quiet
        self._last_progress = None

    def say(self, text):
        print(text, file=self.out, flush=True)

    def progress(self, text):
        """A status line that repeats: printed only when it changes."""
        if text != self._last_progress:
            self._last_progress = text
            if not self.quiet:
                self.say("  " + text)

    def ask(self, prompt, needed_option):
        if not self.interactive:
            raise UsageError("%s: stdin is not a terminal, give %s" % (prompt, needed_option))
        try:
            return input(prompt + ": ").strip()
        except EOFError:
            raise UsageError("%s: no answer (give %s)" % (prompt, needed_option)) from None

    def wait_enter(self, prompt):
        """Interactive: wait for Enter. Otherwise: nothing (the flow detects by itself)."""
        if self.interactive:
            try:
                input(prompt + " [Enter] ")
            except EOFError:
                pass


def utc_date():
    return time.strftime("%Y-%m-%d", time.gmtime())


def utc_stamp():
    return time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime())


# -- the node ----------------------------------------------------------------------


class NodeSession:
    """A node through its client: identity, sensors, calibration, frames."""

    def __init__(self, client, ui, clock=time.monotonic, wall=time.time, reconnect=None, port="node"):
        self.client = client
        self.ui = ui
        self.clock = clock
        self.wall = wall
        self.reconnect = reconnect
        self.port = port
        self.info = {}
        self.config = {}
        self.result = None  # the flow's result so far (for a report on rejection)
        self.climate_silence_s = 70.0  # longest wait for a climate reading

    # identity ---------------------------------------------------------------
    def load_info(self):
        self.info = self.client.command("info") or {}
        self.config = self.info.get("config") or {}
        return self.info

    @property
    def node_id(self):
        return self.info.get("node_id", self.config.get("node_id"))

    @property
    def site(self):
        return self.info.get("site") or self.config.get("site") or ""

    def parts(self):
        return {s.get("kind"): s.get("part") for s in self.info.get("sensors") or []}

    def require(self, kind):
        words = {"climate": "temperature/humidity sensor", "accel": "accelerometer"}[kind]
        found = self.parts()
        if kind not in found:
            have = ", ".join("%s %s" % (k, p) for k, p in sorted(found.items())) or "no sensors"
            raise NoSensor("node %s on %s has no %s (it reports: %s); nothing was changed"
                           % (self.node_id, self.port, words, have))
        return found[kind]

    # calibration ------------------------------------------------------------
    def calib_get(self):
        body = self.client.command("calib_get") or {}
        return body.get("calib")

    def new_id(self, current):
        """Seconds since 1970 (u32): unique per node, sortable; above the current one."""
        cid = int(self.wall()) & 0xFFFFFFFF
        if current and isinstance(current.get("id"), int) and cid <= current["id"]:
            cid = (current["id"] + 1) & 0xFFFFFFFF
        return cid

    def write_calibration(self, doc, previous):
        """calib_write, then read back. Returns the doc the node now holds.

        On a lost link: read back (reconnecting if we can). The node's store is
        atomic, so it holds either `previous` or `doc`; say which, and fail
        unless it is `doc`.
        """
        old_id = previous.get("id") if previous else None
        try:
            self.client.command("calib_write", calib=doc)
        except TransportError as exc:
            held = self._read_back_after_loss()
            if held is _UNKNOWN:
                raise TransportError(
                    "link lost while writing the calibration (%s) and the node could not be read back: "
                    "run `citynode calibrate verify --port %s` to see which calibration it runs"
                    % (_first_line(exc), self.port)) from None
            if _same(held, doc):
                self.ui.say("link was lost after the write; the node holds the new calibration (read back)")
                return held
            raise TransportError(
                "link lost while writing the calibration (%s); the node kept its calibration %s (read back)"
                % (_first_line(exc), "id %s" % held.get("id") if held else "(none)")) from None
        held = self.calib_get()
        if not _same(held, doc):
            raise DeviceError(
                "the node acknowledged calibration id %s but reads back %s: not trusted; run "
                "`citynode calibrate verify --port %s`" % (doc["id"], (held or {}).get("id"), self.port))
        self.ui.say("calibration id %s written and read back (previous: %s)" % (doc["id"], old_id))
        return held

    def _read_back_after_loss(self):
        for attempt in range(3):
            try:
                if attempt and self.reconnect is not None:
                    self.client = self.reconnect()
                return self.calib_get()
            except TransportError:
                continue
            except CitynodeError:
                break
        return _UNKNOWN

    def raw_mode(self, on):
        self.client.command("raw_mode", on=bool(on))

    def ensure_stream(self):
        self.client.command("stream_start")

    # frames -----------------------------------------------------------------
    def frames(self, names, max_silence_s=NO_DATA_S, what="data"):
        """Messages of the given names, forever; CitynodeError after max_silence_s without one."""
        last = self.clock()
        while True:
            got = False
            for m in self.client.read_frames(READ_SLICE_S):
                if m.name in names:
                    got = True
                    last = self.clock()
                    yield m
            if not got and self.clock() - last > max_silence_s:
                raise TransportError("no %s from the node on %s for %.0f s (link lost or sensor stopped)"
                                     % (what, self.port, max_silence_s))


_UNKNOWN = object()


def _same(a, b):
    if a is None or b is None:
        return a is b
    return json.dumps(a, sort_keys=True) == json.dumps(b, sort_keys=True)


def _first_line(exc):
    return str(exc).splitlines()[0] if str(exc) else type(exc).__name__


def _site(session, site_arg, installer=None, note=None):
    site = {"name": site_arg if site_arg is not None else session.site}
    if installer:
        site["installer"] = installer
    if note:
        site["note"] = note
    return site


MAX_DOCUMENT = 1024  # the node's limit on the canonical text (citynode_fw/calibration.py MAX_DOC)


def canonical_length(doc):
    """Length of the node's canonical JSON (keys sorted, no spaces; json.dumps of each scalar)."""
    return len(json.dumps(doc, sort_keys=True, separators=(",", ":")))


def new_document(session, current, method, site, climate_part=None, accel_part=None):
    """A full calibration document: the parts not calibrated now are kept from current."""
    doc = {"id": session.new_id(current), "date": utc_date(), "method": method, "site": site}
    cur = current or {}
    c = climate_part if climate_part is not None else cur.get("climate")
    a = accel_part if accel_part is not None else cur.get("accel")
    if c is not None:
        doc["climate"] = c
    if a is not None:
        doc["accel"] = a
    n = canonical_length(doc)
    if n > MAX_DOCUMENT:
        raise UsageError("the calibration record would be %d bytes, the node keeps at most %d: shorten --site, "
                         "--installer or --note" % (n, MAX_DOCUMENT))
    return doc


def refuse_or_warn(violations, force, ui, what):
    if not violations:
        return []
    text = "; ".join(str(v) for v in violations)
    if not force:
        raise Rejected("%s rejected: %s (use --force to store it anyway)" % (what, text))
    ui.say("FORCED past the limits: " + text)
    return [str(v) for v in violations]


# -- accelerometer: six positions ----------------------------------------------------


@dataclass
class AccelOptions:
    positions: int = 6
    window_s: float = 1.0
    capture_s: float = 2.0
    position_timeout_s: float = 180.0
    max_attempts: int = 3
    still_std_g: float = accel.STILL_STD_G
    still_jerk_g: float = accel.STILL_JERK_G
    force: bool = False
    site: str = None
    installer: str = None
    note: str = None


def is_raw_block(flags):
    """A block in raw-data mode. The node never sets ACCEL_CALIBRATED in raw mode;
    a calibrated block may carry 0x02 too (the sampler masks its feature flags,
    where 0x02 is FEATURES_TILT_RELATIVE, into the block's flags), so CALIBRATED wins."""
    return bool(flags & messages.ACCEL_UNCALIBRATED_MODE) and not flags & messages.ACCEL_CALIBRATED


def _block_g(m):
    return accel.counts_to_g(m.fields["samples"], m.fields["range_g"])


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
        result.update(positions=collector.taken, timeline=collector.timeline)
        means = [p.mean_g for p in collector.taken]
        sigmas = [accel.position_sigma(p) for p in collector.taken]
        fit = accel.fit_ellipsoid(means, sigmas)
        result["fit"] = fit
        ui.say("fit: bias %s mg, scale %s, residual %.2f mg RMS (%s, %d iterations)" % (
            _fmt(1000 * fit.bias_g, "%+.2f"), _fmt(fit.scale, "%.5f"), 1000 * fit.rms_g, fit.reason,
            fit.iterations))
        if fit.sigma_bias_g is not None:
            ui.say("uncertainty (1 sigma): bias %s mg, scale %s" % (
                _fmt(1000 * fit.sigma_bias_g, "%.3f"), _fmt(fit.sigma_scale, "%.5f")))
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
        doc = new_document(session, current, "six-position", _site(session, opts.site, opts.installer, opts.note),
                           accel_part=part_doc)
        result["document"] = session.write_calibration(doc, current)
    finally:
        _raw_off(session)
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
        for ev in collector.feed(now, _block_g(m)):
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


def capture_still(session, seconds, timeout_s, want, std_g=None, jerk_g=None):
    """Mean of a still stretch of `seconds` of accel data.

    want: "raw" (blocks in raw-data mode), "calibrated" (blocks the node
    calibrated) or "normal" (anything not in raw-data mode).
    """
    std_g = accel.STILL_STD_G if std_g is None else std_g
    jerk_g = accel.STILL_JERK_G if jerk_g is None else jerk_g
    odr = float(session.config.get("accel_odr_hz") or 200)
    buf = []
    start = session.clock()
    reason = "no data"
    for m in session.frames(("accel",), what="accelerometer data"):
        f = m.fields
        flags = f["flags"]
        if want == "raw":
            ok = is_raw_block(flags)
        elif want == "calibrated":
            ok = flags & messages.ACCEL_CALIBRATED
        else:
            ok = not is_raw_block(flags)
        if not ok or flags & messages.ACCEL_OVERRUN:
            buf = []
        else:
            odr = float(f["odr_hz"] or odr)
            need = max(int(seconds * odr), 16)
            buf.append(_block_g(m))
            a = np.concatenate(buf)
            if len(a) >= need:
                a = a[-need:]
                chunks = max(2, min(32, int(seconds * 4)))
                st = accel.stillness(a, std_g, jerk_g, chunks=chunks)
                if st.still:
                    return st
                reason = st.reason
                buf = [a[len(a) // 2:]]
        if session.clock() - start > timeout_s:
            raise CitynodeError("the node was not still for %.0f s within %.0f s (%s)" % (seconds, timeout_s, reason))


def _raw_off(session):
    try:
        session.raw_mode(False)
    except CitynodeError as exc:
        session.ui.say("warning: could not turn raw mode off (%s); a reboot turns it off" % _first_line(exc))


def _fmt(values, spec):
    return "[" + ", ".join(spec % v for v in values) + "]"


# -- mount -----------------------------------------------------------------------------


@dataclass
class MountOptions:
    up: str = None
    along: str = None
    align: str = "gravity"
    seconds: float = 10.0
    timeout_s: float = 120.0
    force: bool = False
    site: str = None
    installer: str = None
    note: str = None
    # on a structure in service: vibration is allowed, the mean must hold
    std_g: float = 0.05
    jerk_g: float = 0.003


def run_mount(session, opts):
    ui = session.ui
    session.load_info()
    part = session.require("accel")
    current = session.calib_get()
    acal = (current or {}).get("accel") or {}
    up = opts.up or ui.ask("which sensor axis points up (+x, -x, +y, -y, +z, -z)", "--up")
    along = opts.along or ui.ask("which sensor axis points along the bridge", "--along")
    mount.parse_axis(up)
    mount.parse_axis(along)
    notes = []
    if "bias_g" not in acal and "matrix" not in acal and "scale" not in acal:
        notes.append("the accelerometer has no six-position calibration: the direction of gravity may be off by "
                     "up to a few degrees (run `citynode calibrate accel` before mounting)")
        ui.say("warning: " + notes[-1])
    result = session.result = {"kind": "mount", "part": part, "previous": current, "notes": notes}
    ui.say("node %s (%s): measuring gravity for %.0f s; leave the structure as it is" % (
        session.node_id, session.port, opts.seconds))
    session.raw_mode(True)
    try:
        session.ensure_stream()
        st = capture_still(session, opts.seconds, opts.timeout_s, "raw", std_g=opts.std_g,
                           jerk_g=opts.jerk_g)
        raw = st.mean_g
        g = _apply_part(acal, raw)
        m = mount.solve(g, up, along, opts.align)
        result.update(mount=m, raw_g=raw, gravity_g=g)
        ui.say("gravity %s g (|g| %.4f), %s up is %.1f degrees from vertical; installed pitch %.2f, roll %.2f deg"
               % (_fmt(g, "%+.4f"), m.gravity_g, m.up_axis, m.axis_error_deg, *m.install_tilt_deg))
        violations = [v for v in [limits.check("mount_gravity_g", m.gravity_g, "measured |g|")] if v]
        result["forced"] = refuse_or_warn(violations, opts.force, ui, "mount calibration")
        part_doc = dict(acal)
        part_doc.update(m.node_part())
        doc = new_document(session, current, "mount", _site(session, opts.site, opts.installer, opts.note),
                           accel_part=part_doc)
        result["document"] = session.write_calibration(doc, current)
    finally:
        _raw_off(session)
    after = None
    try:
        st2 = capture_still(session, min(opts.seconds, 3.0), opts.timeout_s, "calibrated", std_g=opts.std_g,
                            jerk_g=opts.jerk_g)
        p, r = mount.tilt_deg(st2.mean_g)
        p -= m.tilt_zero_deg[0]
        r -= m.tilt_zero_deg[1]
        after = {"node_mean_g": [float(v) for v in st2.mean_g], "tilt_deg": [p, r]}
        ui.say("node now reads %s g in structure axes; tilt against the installed zero: pitch %.2f, roll %.2f deg"
               % (_fmt(st2.mean_g, "%+.4f"), p, r))
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


# -- climate -------------------------------------------------------------------------------


@dataclass
class ClimatePoint:
    temperature_c: float = None  # reference
    humidity_pct: float = None  # reference (or from the salt)
    salt: str = None
    ask: bool = False  # read off the reference once the node has settled (terminal only)

    def label(self):
        if self.ask:
            return "beside the reference instrument"
        bits = []
        if self.temperature_c is not None:
            bits.append("%.2f degC" % self.temperature_c)
        if self.salt:
            bits.append("%s salt" % self.salt)
        elif self.humidity_pct is not None:
            bits.append("%.1f %%RH" % self.humidity_pct)
        return ", ".join(bits)


def parse_point(text):
    """'21.5,48' | '-,11.3' | '25,LiCl' | 'NaCl' -> ClimatePoint (UsageError with words)."""
    fields = [f.strip() for f in str(text).split(",")]
    if len(fields) == 1:
        fields = ["-", fields[0]]
    if len(fields) != 2:
        raise UsageError("--point %r: expected TEMPERATURE,HUMIDITY (either may be '-'), e.g. 21.5,48 or 25,NaCl"
                         % text)
    p = ClimatePoint()
    t, h = fields
    if t not in ("-", ""):
        try:
            p.temperature_c = climate.check_reference("temperature", float(t))
        except ValueError:
            raise UsageError("--point %r: temperature %r is not a number" % (text, t)) from None
    if h not in ("-", ""):
        try:
            p.humidity_pct = climate.check_reference("humidity", float(h))
        except ValueError:
            if h.lower().replace("\u2082", "2") not in climate.SALTS:
                raise UsageError("--point %r: %r is neither a humidity nor a known salt (%s)" % (
                    text, h, ", ".join(v[0] for v in climate.SALTS.values()))) from None
            p.salt = climate.SALTS[h.lower().replace("\u2082", "2")][0]
    if p.temperature_c is None and p.humidity_pct is None and p.salt is None:
        raise UsageError("--point %r gives no reference value" % text)
    return p


@dataclass
class ClimateOptions:
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
    force: bool = False
    site: str = None
    installer: str = None
    note: str = None
    min_overlap_s: float = 300.0


class _Period:
    """Shorten the node's climate period for the calibration; put it back after."""

    def __init__(self, session, period_s):
        self.session = session
        self.period_s = period_s
        self.old = None

    def __enter__(self):
        old = self.session.config.get("climate_period_s")
        period = old if isinstance(old, int) else 60
        # the node keeps the reading already scheduled on the old period: the first
        # one after a change may take that long
        self.session.climate_silence_s = period + 10.0
        if period > self.period_s:
            self.session.client.command("config_set", values={"climate_period_s": self.period_s})
            self.old = old
            self.session.ui.say("climate period set to %d s for the calibration (was %d s)" % (self.period_s, old))
        return self

    def __exit__(self, *exc):
        if self.old is not None:
            try:
                self.session.client.command("config_set", values={"climate_period_s": self.old})
            except CitynodeError as e:
                self.session.ui.say("warning: could not set climate_period_s back to %d (%s): "
                                    "`citynode config set climate_period_s %d`" % (self.old, _first_line(e), self.old))


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
    with _Period(session, opts.period_s):  # kept short until the check afterwards is done
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
            doc = new_document(session, current, method[:60], _site(session, opts.site, opts.installer, opts.note),
                               climate_part=climate.node_part(t_fit, rh_fit, cur_part))
            result["document"] = session.write_calibration(doc, current)
        finally:
            _raw_off(session)
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
                expect = _expected_change(opts.points[i - 1], p)
        t, h, sp_t, sp_h, n = _wait_climate_stable(session, opts, readings, label, prev, expect)
        if p.ask:
            ui.say("the node has settled at %.2f degC, %.2f %%RH: read the reference now" % (t, h))
            p = _asked_point(ui)
        ref_h = p.humidity_pct
        if p.salt:
            t_for_salt = p.temperature_c if p.temperature_c is not None else t
            ref_h = climate.salt_rh(p.salt, t_for_salt)
        ui.say("point %d/%d taken: node reads %.2f degC, %.2f %%RH (mean of %d; spread %.2f degC, %.2f %%RH)"
               "; reference %s" % (i + 1, len(opts.points), t, h, n, sp_t, sp_h,
                                    _ref_words(p.temperature_c, ref_h)))
        taken.append({"reading": (t, h), "ref_t": p.temperature_c, "ref_rh": ref_h, "salt": p.salt})
    t_pts = [(x["reading"][0], x["ref_t"]) for x in taken if x["ref_t"] is not None]
    h_pts = [(x["reading"][1], x["ref_rh"]) for x in taken if x["ref_rh"] is not None]
    t_fit = climate.fit("temperature", *zip(*t_pts)) if t_pts else None
    rh_fit = climate.fit("humidity", *zip(*h_pts)) if h_pts else None
    return t_fit, rh_fit, {"points": taken, "series": readings}


def _asked_point(ui):
    while True:
        t = ui.ask("reference temperature in degC (empty: none)", "--reference-temperature")
        h = ui.ask("reference humidity in %RH or a salt name (empty: none)", "--reference-humidity")
        try:
            return parse_point("%s,%s" % (t or "-", h or "-"))
        except UsageError as exc:
            ui.say(str(exc))


def _ref_words(t, h):
    bits = []
    if t is not None:
        bits.append("%.2f degC" % t)
    if h is not None:
        bits.append("%.2f %%RH" % h)
    return ", ".join(bits) or "none"


def _expected_change(a, b):
    """How much the readings must change before a new point is looked for (non-interactive)."""
    dt = dh = float("inf")
    if a.temperature_c is not None and b.temperature_c is not None and abs(a.temperature_c - b.temperature_c) > 1:
        dt = abs(a.temperature_c - b.temperature_c) / 2
    ha = a.humidity_pct if a.humidity_pct is not None else (climate.salt_rh(a.salt, 25) if a.salt else None)
    hb = b.humidity_pct if b.humidity_pct is not None else (climate.salt_rh(b.salt, 25) if b.salt else None)
    if ha is not None and hb is not None and abs(ha - hb) > 3:
        dh = abs(ha - hb) / 2
    if math.isinf(dt) and math.isinf(dh):
        return None  # the same conditions twice: nothing to wait for
    return dt, dh


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


# -- verify and rollback -----------------------------------------------------------------------


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
        checks.append(("calibration file", False, "corrupt: the node runs uncalibrated (`calibrate rollback`)"))
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
        return [("accelerometer", False, _first_line(exc))]
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


def run_rollback(session):
    ui = session.ui
    session.load_info()
    before = session.calib_get()
    body = session.client.command("calib_rollback") or {}
    after = session.calib_get()
    if after is None or after.get("id") != body.get("id"):
        raise DeviceError("rollback acknowledged (id %s) but the node reads back %s" % (
            body.get("id"), (after or {}).get("id")))
    ui.say("node %s: calibration id %s (%s, %s) restored; id %s is now the previous one" % (
        session.node_id, after.get("id"), after.get("date"), after.get("method"), (before or {}).get("id")))
    return {"kind": "rollback", "previous": before, "document": after}


def deep_copy(doc):
    return copy.deepcopy(doc)
