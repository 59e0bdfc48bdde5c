"""Six-position accelerometer calibration: stillness, orientations, ellipsoid fit.

Model (the node's, `firmware/citynode_fw/calibration.py`): a calibrated sample
is `a = diag(scale) . (raw - bias)`, raw and bias in g. At rest |a| = 1 g in
every orientation, so the still means `m_i` of several orientations lie on an
axis-aligned ellipsoid; fitting it gives bias and scale (ArduPilot's
AccelCalibrator, ACCEL_CAL_AXIS_ALIGNED_ELLIPSOID, residual `|M(s + o)| - g`).

Differences from ArduPilot (libraries/AP_AccelCal/AccelCalibrator.cpp):
- Levenberg-Marquardt instead of plain Gauss-Newton, with a real convergence
  test (step, gradient and cost change all small) instead of the loop's
  `fitness - last_fitness < 1e-9`, which also ends the loop after any step that
  improved the fit;
- a degenerate set of orientations is refused before fitting, with words;
- the uncertainty of bias and scale is propagated from each position's noise,
  because with exactly six positions the fit is exact and the residual is zero
  whatever the data: the residual only means something with seven or more.

Units: g throughout. numpy only; no I/O.
"""

import math
from dataclasses import dataclass, field

import numpy as np

from citynode import units
from citynode.calibrate import limits
from citynode.errors import CitynodeError

FACES = ("+x", "-x", "+y", "-y", "+z", "-z")
FACE_WORDS = {
    "+x": "x axis up",
    "-x": "x axis down",
    "+y": "y axis up",
    "-y": "y axis down",
    "+z": "z axis up (lying flat, label up)",
    "-z": "z axis down (upside down)",
}

# Stillness (see STILL_* in the guide): per-axis standard deviation of the
# window and the largest jump between the means of consecutive quarters.
# ArduPilot's INS_STILL_THRESH doc: "Total motionless is about 0.05" m/s^2
# (5 mg); 0.1 m/s^2 (10 mg) for planes/rovers. The noisiest part we fit
# (ADXL345, 290..430 ug/sqrt(Hz)) has about 4 mg rms at 200 Hz, under 10 mg.
STILL_STD_G = 0.010
STILL_JERK_G = 0.004
STILL_CHUNKS = 4
FACE_MAX_TILT_DEG = 35.0  # a face is "up" when its axis is within this of vertical


class CalibrationError(CitynodeError):
    """The data cannot give a calibration; the message says why and what to do."""


@dataclass
class Stillness:
    still: bool
    mean_g: np.ndarray
    std_g: np.ndarray
    jerk_g: float
    reason: str = ""


def stillness(samples_g, std_max=STILL_STD_G, jerk_max=STILL_JERK_G, chunks=STILL_CHUNKS):
    """Is this window of samples (N x 3, g) still?

    Still means: every axis's standard deviation is at most std_max (no
    vibration, no shaking) and the means of `chunks` consecutive parts of the
    window differ by at most jerk_max from one part to the next (no slow turn,
    no push). The second test is a smoothed jerk: it ignores white noise, which
    averages out in each part, but sees a steady change.
    """
    a = np.asarray(samples_g, dtype=float).reshape(-1, 3)
    n = len(a)
    if n < 2 * chunks:
        return Stillness(False, a.mean(axis=0) if n else np.zeros(3), np.zeros(3), 0.0,
                         "only %d samples in the window" % n)
    mean = a.mean(axis=0)
    std = a.std(axis=0)
    parts = np.array([p.mean(axis=0) for p in np.array_split(a, chunks)])
    jerk = float(np.max(np.linalg.norm(np.diff(parts, axis=0), axis=1)))
    reasons = []
    if np.any(std > std_max):
        axis = "xyz"[int(np.argmax(std))]
        reasons.append("shaking: %s varies by %.1f mg rms (still is under %.1f mg)" % (
            axis, 1000 * std.max(), 1000 * std_max))
    if jerk > jerk_max:
        reasons.append("moving: the reading changed by %.1f mg within the window (still is under %.1f mg)" % (
            1000 * jerk, 1000 * jerk_max))
    return Stillness(not reasons, mean, std, jerk, "; ".join(reasons))


# A long mean (a node on a structure that vibrates): batch means over this many
# consecutive parts. Vibration samples are correlated, so std/sqrt(n) alone
# would overstate the confidence; the spread of the batch means sees a slow
# sway or a step (the structure moved) as well.
MEAN_BATCHES = 10


@dataclass
class LongMean:
    """The mean of a stretch of samples that may vibrate, and how far it can be trusted."""

    mean_g: np.ndarray
    sigma_g: float  # 1-sigma uncertainty of the mean, worst axis
    vibration_g: np.ndarray  # rms about the mean, per axis
    n: int

    @property
    def norm_g(self):
        return float(np.linalg.norm(self.mean_g))

    @property
    def tilt_sigma_deg(self):
        """1-sigma uncertainty of a tilt from this mean (an error across gravity turns it)."""
        return math.degrees(self.sigma_g / max(self.norm_g, 1e-9))


def long_mean(samples_g, batches=MEAN_BATCHES):
    """LongMean of N x 3 samples: sigma is the larger of std/sqrt(n) and the batch means' standard error."""
    a = np.asarray(samples_g, dtype=float).reshape(-1, 3)
    n = len(a)
    if n < 2 * batches:
        raise ValueError("a long mean needs at least %d samples, got %d" % (2 * batches, n))
    mean = a.mean(axis=0)
    std = a.std(axis=0)
    parts = np.array([p.mean(axis=0) for p in np.array_split(a, batches)])
    batch_se = parts.std(axis=0, ddof=1) / math.sqrt(batches)
    sigma = float(max(np.max(std) / math.sqrt(n), np.max(batch_se)))
    return LongMean(mean, sigma, std, n)


def face_of(mean_g):
    """(face, tilt_deg): the face pointing up and how far its axis is from vertical.

    At rest an accelerometer reads +1 g on the axis that points up.
    """
    m = np.asarray(mean_g, dtype=float)
    norm = float(np.linalg.norm(m))
    if norm < 0.3:
        return None, 90.0
    u = m / norm
    i = int(np.argmax(np.abs(u)))
    face = ("+" if u[i] > 0 else "-") + "xyz"[i]
    tilt = math.degrees(math.acos(min(1.0, abs(u[i]))))
    return face, tilt


def min_separation_g(n_positions):
    """ArduPilot's minimum distance between two accepted orientation means (g).

    `accept_sample()`: for V = n_positions points spread like the vertices of a
    regular polyhedron with F = 2V - 4 triangular faces, the closest two are
    theta = 0.5 acos(cos A / (1 - cos A)) apart, A = 4 pi/(3F) + pi/3; a new
    sample closer than 2 sin(theta/2) g to an earlier one is the same
    orientation. Six positions: theta = 45 degrees, 0.765 g.
    """
    faces = 2 * n_positions - 4
    a = 4.0 * math.pi / (3.0 * faces) + math.pi / 3.0
    theta = 0.5 * math.acos(math.cos(a) / (1.0 - math.cos(a)))
    return 2.0 * math.sin(theta / 2.0)


@dataclass
class Position:
    """One still orientation: the mean of a capture and how noisy it was."""

    mean_g: np.ndarray
    std_g: np.ndarray
    n: int
    face: str = None
    tilt_deg: float = 0.0

    def as_dict(self):
        return {
            "face": self.face,
            "tilt_deg": round(self.tilt_deg, 2),
            "mean_g": [round(float(v), 7) for v in self.mean_g],
            "std_g": [round(float(v), 7) for v in self.std_g],
            "n": int(self.n),
        }


def make_position(samples_g):
    a = np.asarray(samples_g, dtype=float).reshape(-1, 3)
    mean = a.mean(axis=0)
    face, tilt = face_of(mean)
    return Position(mean, a.std(axis=0), len(a), face, tilt)


def same_as(position, taken, n_positions=6, by_face=True):
    """The index of a taken position the new one repeats, or None.

    A repeat is the same face (when by_face: the six faces must all differ) or
    a mean closer than ArduPilot's minimum separation for n_positions.
    """
    sep = min_separation_g(n_positions)
    for i, other in enumerate(taken):
        if by_face and position.face is not None and position.face == other.face:
            return i
        if np.linalg.norm(position.mean_g - other.mean_g) < sep:
            return i
    return None


def distinct_orientations(means, n_positions=6):
    """How many of the means are at least ArduPilot's separation from all earlier ones."""
    sep = min_separation_g(max(6, n_positions))
    kept = []
    for m in np.asarray(means, dtype=float).reshape(-1, 3):
        if all(np.linalg.norm(m - k) >= sep for k in kept):
            kept.append(m)
    return len(kept)


def check_geometry(means):
    """Refuse a set of orientations that cannot determine bias and scale.

    The axis-aligned ellipsoid has 6 unknowns: it needs 6 distinct
    orientations, and each axis must have been seen both pointing up and down
    (else its bias and scale trade off against each other).
    """
    m = np.asarray(means, dtype=float).reshape(-1, 3)
    n = distinct_orientations(m)
    if n < 6:
        raise CalibrationError(
            "only %d distinct orientations among %d positions; the fit needs 6 "
            "(each axis up and each axis down)" % (n, len(m)))
    norms = np.linalg.norm(m, axis=1, keepdims=True)
    u = m / norms
    missing = []
    for i, axis in enumerate("xyz"):
        if u[:, i].max() < 0.5:
            missing.append("+" + axis)
        if u[:, i].min() > -0.5:
            missing.append("-" + axis)
    if missing:
        raise CalibrationError(
            "the positions never had %s pointing up (within 60 degrees); without both "
            "directions of an axis its bias and scale cannot be told apart" % ", ".join(missing))


@dataclass
class EllipsoidFit:
    bias_g: np.ndarray
    scale: np.ndarray
    residuals_g: np.ndarray
    rms_g: float
    iterations: int
    converged: bool
    reason: str
    sigma_bias_g: np.ndarray = field(default=None)
    sigma_scale: np.ndarray = field(default=None)
    history: list = field(default_factory=list)

    def apply(self, raw_g):
        return (np.asarray(raw_g, dtype=float) - self.bias_g) * self.scale

    def as_dict(self):
        return {
            "bias_g": [round(float(v), 7) for v in self.bias_g],
            "scale": [round(float(v), 7) for v in self.scale],
            "residuals_g": [round(float(v), 7) for v in self.residuals_g],
            "rms_g": float(self.rms_g),
            "iterations": self.iterations,
            "converged": self.converged,
            "reason": self.reason,
            "sigma_bias_g": None if self.sigma_bias_g is None else [float(v) for v in self.sigma_bias_g],
            "sigma_scale": None if self.sigma_scale is None else [float(v) for v in self.sigma_scale],
        }


def _residual_jacobian(p, m):
    b = p[:3]
    s = p[3:]
    d = m - b  # N x 3
    u = d * s  # calibrated
    n = np.linalg.norm(u, axis=1)
    r = n - 1.0
    jac = np.empty((len(m), 6))
    jac[:, :3] = -(s * u) / n[:, None]  # d|u|/db_j = -s_j u_j / |u|
    jac[:, 3:] = (d * u) / n[:, None]  # d|u|/ds_j = d_j u_j / |u|
    return r, jac


def _initial_guess(m):
    """Bias and scale from the most-up and most-down reading of each axis (the
    textbook six-point formulas: offset = (up + down)/2, scale = 2/(up - down))."""
    b = np.zeros(3)
    s = np.ones(3)
    for i in range(3):
        up = m[np.argmax(m[:, i]), i]
        down = m[np.argmin(m[:, i]), i]
        if up - down > 0.5:
            b[i] = (up + down) / 2.0
            s[i] = 2.0 / (up - down)
    return np.concatenate([b, s])


def fit_ellipsoid(means, sigmas=None, max_iterations=100, xtol=1e-10, gtol=1e-12, ftol=1e-14):
    """Fit bias and scale to still means (N x 3, g), N >= 6, by Levenberg-Marquardt.

    sigmas: standard error of |m_i| per position (g), for the uncertainty of
    the result; None estimates it from the residuals (N > 6) or leaves it out.

    Convergence: an accepted step with |step| <= xtol (relative), or a
    gradient under gtol, or a relative cost decrease under ftol with a step
    under sqrt(xtol). Raises CalibrationError on a degenerate set, on
    non-finite numbers, or when it does not converge in max_iterations.
    """
    m = np.asarray(means, dtype=float).reshape(-1, 3)
    if len(m) < 6:
        raise CalibrationError("%d positions; the fit needs at least 6" % len(m))
    if not np.all(np.isfinite(m)):
        raise CalibrationError("a position mean is not a finite number")
    check_geometry(m)
    p = _initial_guess(m)
    r, jac = _residual_jacobian(p, m)
    cost = 0.5 * float(r @ r)
    lam = 1e-3
    history = [cost]
    converged = False
    reason = ""
    it = 0
    for it in range(1, max_iterations + 1):
        a = jac.T @ jac
        g = jac.T @ r
        if float(np.max(np.abs(g))) <= gtol:
            converged, reason = True, "gradient %.1e <= %.0e" % (np.max(np.abs(g)), gtol)
            break
        while True:
            damped = a + lam * np.diag(np.maximum(np.diag(a), 1e-12))
            try:
                step = -np.linalg.solve(damped, g)
            except np.linalg.LinAlgError:
                raise CalibrationError("the fit's normal equations are singular: the positions do not "
                                       "determine bias and scale")
            p_new = p + step
            r_new, jac_new = _residual_jacobian(p_new, m)
            cost_new = 0.5 * float(r_new @ r_new)
            if not math.isfinite(cost_new):
                lam *= 10.0
            elif cost_new <= cost:
                break
            else:
                lam *= 10.0
            if lam > 1e12:
                raise CalibrationError(
                    "the fit could not reduce the residual after %d iterations (cost %.3g g^2): "
                    "the positions are inconsistent; take them again, holding the node still" % (it, cost))
        small_step = float(np.max(np.abs(step))) <= xtol * (float(np.max(np.abs(p))) + xtol)
        rel_drop = (cost - cost_new) / max(cost, 1e-300)
        p, r, jac = p_new, r_new, jac_new
        cost_prev, cost = cost, cost_new
        history.append(cost)
        lam = max(lam / 10.0, 1e-12)
        if small_step:
            converged, reason = True, "step %.1e below %.0e" % (np.max(np.abs(step)), xtol)
            break
        if rel_drop < ftol and float(np.max(np.abs(step))) <= math.sqrt(xtol) and cost_prev > 0:
            converged, reason = True, "cost change %.1e below %.0e" % (rel_drop, ftol)
            break
        if cost < 1e-30:
            converged, reason = True, "exact fit (cost %.1e)" % cost
            break
    if not converged:
        raise CalibrationError(
            "the ellipsoid fit did not converge in %d iterations (last cost %.3g g^2); "
            "the positions are inconsistent: take them again" % (max_iterations, cost))
    bias = p[:3].copy()
    scale = p[3:].copy()
    if np.any(scale <= 0):
        raise CalibrationError("the fit gave a negative scale %s: the data are not from one accelerometer"
                               % np.round(scale, 4))
    rms = float(np.sqrt(np.mean(r * r)))
    # uncertainty: cov = (J^T W J)^-1
    sig_b = sig_s = None
    a = jac.T @ jac
    if sigmas is not None:
        w = 1.0 / np.maximum(np.asarray(sigmas, dtype=float), 1e-9) ** 2
        a = jac.T @ (jac * w[:, None])
        cov = _safe_inverse(a)
    elif len(m) > 6:
        cov = _safe_inverse(a) * float(r @ r) / (len(m) - 6)
    else:
        cov = None
    if cov is not None:
        sd = np.sqrt(np.abs(np.diag(cov)))
        sig_b, sig_s = sd[:3], sd[3:]
    return EllipsoidFit(bias, scale, r, rms, it, converged, reason, sig_b, sig_s, history)


def _safe_inverse(a):
    try:
        return np.linalg.inv(a)
    except np.linalg.LinAlgError:
        return None


def position_sigma(position):
    """Standard error of |mean| of one capture (g), from the per-axis noise."""
    u = position.mean_g / max(np.linalg.norm(position.mean_g), 1e-9)
    var = float(np.sum((u * position.std_g) ** 2))
    return math.sqrt(var / max(position.n, 1))


def check_limits(fit):
    """LimitViolations of a fit (empty when acceptable)."""
    out = []
    for i, axis in enumerate("xyz"):
        key = "accel_bias_z_g" if axis == "z" else "accel_bias_xy_g"
        v = limits.check(key, float(fit.bias_g[i]), "accelerometer bias on %s" % axis)
        if v:
            out.append(v)
    for i, axis in enumerate("xyz"):
        v = limits.check("accel_scale", float(fit.scale[i]), "accelerometer scale on %s" % axis)
        if v:
            out.append(v)
    v = limits.check("accel_residual_g", fit.rms_g)
    if v:
        out.append(v)
    return out


@dataclass
class Event:
    kind: str  # still-tilted, repeat, capturing, moved, taken
    face: str = None
    text: str = ""
    position: Position = None


class PositionCollector:
    """Finds still orientations in a stream of samples and captures each new one.

    feed(t, samples_g) -> events. The first six positions must be the six faces
    (each axis up and down, within FACE_MAX_TILT_DEG); further ones (for a
    residual that means something) any orientation far enough from the others.
    A capture in which the node moves is thrown away; after max_attempts moved
    captures of one face, CalibrationError.
    """

    def __init__(self, opts, odr_hz):
        self.opts = opts
        self.odr = float(odr_hz)
        self.taken = []
        self.window = []  # list of (t, N x 3)
        self.capture = None
        self.capture_face = None
        self.attempts = {}
        self.moved_since_taken = True
        self.announced = None
        self.timeline = []  # (t, mean x, y, z, state) per tenth of a second, for the report
        self.captures = []  # (t start, t end, face) of each position taken, for the report
        self.capture_t0 = None
        self.last_event_t = None

    @property
    def done(self):
        return len(self.taken) >= self.opts.positions

    def remaining_faces(self):
        got = {p.face for p in self.taken[:6]}
        return [f for f in FACES if f not in got]

    def _window_samples(self):
        return np.concatenate([w for _, w in self.window]) if self.window else np.zeros((0, 3))

    def feed(self, t, samples_g):
        samples_g = np.asarray(samples_g, dtype=float).reshape(-1, 3)
        events = []
        if len(samples_g) == 0:
            return events
        state = "capture" if self.capture is not None else "wait"
        n = len(samples_g)
        t_first = t - n / self.odr  # a block comes when its last sample is in
        pieces = max(1, min(n, int(round(n / self.odr * 10))))
        for k, piece in enumerate(np.array_split(samples_g, pieces)):
            self.timeline.append((t_first + (k + 1) * n / pieces / self.odr, *piece.mean(axis=0), state))
        self.window.append((t, samples_g))
        need = max(int(self.opts.window_s * self.odr), 8)
        while len(self.window) > 1 and sum(len(w) for _, w in self.window[1:]) >= need:
            self.window.pop(0)
        if self.capture is not None:
            self.capture.append(samples_g)
            events.extend(self._check_capture())
            return events
        win = self._window_samples()
        if len(win) < need:
            return events
        st = stillness(win, self.opts.still_std_g, self.opts.still_jerk_g)
        if not st.still:
            self.moved_since_taken = True
            self.announced = None
            return events
        pos = make_position(win)
        six = len(self.taken) < 6
        if six and (pos.face is None or pos.tilt_deg > FACE_MAX_TILT_DEG):
            return self._once(events, Event("still-tilted", pos.face, "still, but tilted %.0f degrees from the "
                                            "nearest face (%s): rest it flat on one face" % (pos.tilt_deg, pos.face)))
        rep = same_as(pos, self.taken, max(6, self.opts.positions), by_face=six)
        if rep is not None:
            if rep == len(self.taken) - 1 and not self.moved_since_taken:
                return events  # still where the last one was taken: waiting for the turn
            other = self.taken[rep]
            return self._once(events, Event(
                "repeat", pos.face, "position taken twice: this is position %d again (%s); turn to %s"
                % (rep + 1, FACE_WORDS.get(other.face, other.face), self._todo_words())))
        self.capture = [win]
        self.capture_t0 = t - len(win) / self.odr
        self.capture_face = pos.face
        self.announced = None
        events.append(Event("capturing", pos.face, "still on %s: capturing, hold still for %.0f s"
                            % (FACE_WORDS.get(pos.face, pos.face), self.opts.capture_s)))
        return events

    def _todo_words(self):
        left = self.remaining_faces()
        if len(self.taken) < 6 and left:
            return "one of: " + ", ".join(FACE_WORDS[f] for f in left)
        return "a new orientation (tilted between faces)"

    def _once(self, events, event):
        # said once per still period; a tilted node between two faces may flip its nearest face
        key = (event.kind, event.face if event.kind == "repeat" else None)
        if self.announced != key:
            self.announced = key
            events.append(event)
        return events

    def _check_capture(self):
        cap = np.concatenate(self.capture)
        chunks = max(2, int(round(len(cap) / max(self.odr * 0.25, 1))))
        st = stillness(cap, self.opts.still_std_g, self.opts.still_jerk_g, chunks=min(chunks, 64))
        parts = np.array([p.mean(axis=0) for p in np.array_split(cap, min(chunks, 64))])
        drift = float(np.max(np.linalg.norm(parts - parts[0], axis=1)))
        reason = st.reason
        if st.still and drift > 2 * self.opts.still_jerk_g:
            reason = "moving: the reading drifted by %.1f mg during the capture" % (1000 * drift)
        if reason:
            face = self.capture_face
            self.capture = None
            self.window = []
            self.moved_since_taken = True
            n = self.attempts.get(face, 0) + 1
            self.attempts[face] = n
            where = FACE_WORDS.get(face, face)
            if n >= self.opts.max_attempts:
                raise CalibrationError(
                    "the node moved during the capture of position %d (%s) %d times (%s); put it on a steady "
                    "surface and start again; nothing was changed" % (len(self.taken) + 1, where, n, reason))
            return [Event("moved", face, "the node moved during the capture (%s): hold it still on %s; "
                                         "capture %d of %d" % (reason, where, n + 1, self.opts.max_attempts))]
        if len(cap) >= int(self.opts.capture_s * self.odr):
            pos = make_position(cap)
            self.taken.append(pos)
            self.captures.append((self.capture_t0, self.timeline[-1][0], pos.face))
            self.capture = None
            self.moved_since_taken = False
            self.announced = None
            return [Event("taken", pos.face, "position %d/%d taken: %s (|a| %.4f g raw, %d samples)"
                          % (len(self.taken), self.opts.positions, FACE_WORDS.get(pos.face, pos.face),
                             float(np.linalg.norm(pos.mean_g)), pos.n), pos)]
        return []


def counts_to_g(samples, range_g):
    """Flat x, y, z counts (+-32768 = +-range_g) to an N x 3 array in g."""
    a = np.asarray(samples, dtype=float).reshape(-1, 3)
    return units.counts_to_g(a, float(range_g))
