"""Stored calibration (`calib.json`: the current one and the previous) and applying it.

Document (JSON object; host tools write it with `calib_write`):

    {"id": 17, "date": "2026-11-26", "method": "six-position", "site": {...},
     "climate": {"t_gain": 1.0, "t_offset_c": 0.0, "rh_gain": 1.0, "rh_offset_pct": 0.0},
     "accel": {"bias_g": [bx, by, bz],
               "scale": [sx, sy, sz]            (or "matrix": [[..], [..], [..]]),
               "rotation": [[..], [..], [..]],  (mount: sensor axes -> structure axes)
               "tilt_zero_deg": [pitch, roll]}}

Climate: T' = t_gain*T + t_offset_c, RH' = rh_gain*RH + rh_offset_pct, clamped
to 0..100 %RH. Accel: a' = R . S . (a - bias), S = diag(scale) or the full
matrix (AN4508 12-parameter fit), R the mount rotation (default identity).

How it runs on the node. All floats are turned into integers once, when the
calibration or the range changes (`AccelCal.prepare`): K = R.S in Q13 (8192 =
1.0) and the bias in counts of the current range. Per sample the node then does
integer multiply-adds in place on the FIFO bytes: no float, no allocation.
Q13 keeps every product and sum a small int on 32-bit ports
(|K| <= 2.0*sqrt(3)*8192 ~ 28400, |a - bias| <= 32767, sum < 2^30), and costs
at most 0.5/8192 = 6e-5 relative gain error (61 ug at 1 g, ~1 LSB at +-2 g).
Climate uses Q16 gains on centi-units (0.01 C, 0.01 %RH) for the same reason.
"""

import array

from citynode_fw import store

PATH = "calib.json"
KEY = "calib"
PREV = "prev"  # the part of calib.json holding the previous calibration (or null)
# Firmware before the one-file store kept the previous in its own file; read
# while calib.json has no `prev` part, removed by the next save or rollback.
PREV_PATH = "calib.prev.json"

Q = 13
ONE = 1 << Q
_HALF = 1 << (Q - 1)

_IDENTITY = ((1.0, 0.0, 0.0), (0.0, 1.0, 0.0), (0.0, 0.0, 1.0))


def validate(doc):
    """Check a calibration document; raises ValueError naming the bad part. The checks
    live in calibration_check.py, loaded for the call and dropped again: a node
    checks a calibration at boot and when one is written, and keeps the heap."""
    from citynode_fw import calibration_check, forget

    try:
        return calibration_check.validate(doc)
    finally:
        forget("citynode_fw.calibration_check")


class ClimateCal:
    """T' = a*T + b, RH' = c*RH + d on centi-units, Q16 integer gains."""

    def __init__(self, part):
        self.t_gain = int(float(part.get("t_gain", 1.0)) * 65536 + 0.5)  # in range: validate() checked it
        self.t_off = _centi(part.get("t_offset_c", 0.0))
        self.rh_gain = int(float(part.get("rh_gain", 1.0)) * 65536 + 0.5)
        self.rh_off = _centi(part.get("rh_offset_pct", 0.0))

    def temperature(self, t_centi):
        return ((self.t_gain * t_centi + 32768) >> 16) + self.t_off

    def humidity(self, rh_centi):
        return ((self.rh_gain * rh_centi + 32768) >> 16) + self.rh_off


def _centi(v):
    v = float(v) * 100
    return int(v + 0.5) if v >= 0 else -int(-v + 0.5)


def _round(v):
    return int(v + 0.5) if v >= 0 else -int(-v + 0.5)


class AccelCal:
    """a' = R.S.(a - bias) on int16 counts, integers only per sample."""

    def __init__(self, part):
        bias = part.get("bias_g", [0.0, 0.0, 0.0])
        self.bias_g = [float(v) for v in bias]
        if "matrix" in part:
            s = [[float(v) for v in row] for row in part["matrix"]]
        else:
            sc = part.get("scale", [1.0, 1.0, 1.0])
            s = [[float(sc[0]), 0.0, 0.0], [0.0, float(sc[1]), 0.0], [0.0, 0.0, float(sc[2])]]
        r = part.get("rotation", _IDENTITY)
        self.rotated = "rotation" in part
        k = []
        for i in range(3):
            row = []
            for j in range(3):
                row.append(r[i][0] * s[0][j] + r[i][1] * s[1][j] + r[i][2] * s[2][j])
            k.append(row)
        self.k = k
        tz = part.get("tilt_zero_deg", [0.0, 0.0])
        self.tilt_zero = (float(tz[0]), float(tz[1]))
        self.relative = self.rotated or tz[0] != 0 or tz[1] != 0
        # 9 Q13 coefficients then 3 biases in counts; filled by prepare()
        self.table = array.array("i", [0] * 12)

    def prepare(self, range_g):
        """Turn the floats into integers for a range (call when the range changes)."""
        t = self.table
        for i in range(3):
            for j in range(3):
                t[i * 3 + j] = _round(self.k[i][j] * ONE)
        for j in range(3):
            t[9 + j] = _round(self.bias_g[j] * 32768 / range_g)

    def apply_into(self, buf, n):
        """Calibrate n interleaved int16 LE samples of buf in place."""
        t = self.table
        k0 = t[0]
        k1 = t[1]
        k2 = t[2]
        k3 = t[3]
        k4 = t[4]
        k5 = t[5]
        k6 = t[6]
        k7 = t[7]
        k8 = t[8]
        bx = t[9]
        by = t[10]
        bz = t[11]
        i = 0
        end = 6 * n
        while i < end:
            x = buf[i] | (buf[i + 1] << 8)
            if x & 0x8000:
                x -= 0x10000
            y = buf[i + 2] | (buf[i + 3] << 8)
            if y & 0x8000:
                y -= 0x10000
            z = buf[i + 4] | (buf[i + 5] << 8)
            if z & 0x8000:
                z -= 0x10000
            x = _clamp(x - bx)
            y = _clamp(y - by)
            z = _clamp(z - bz)
            _put(buf, i, (k0 * x + k1 * y + k2 * z + _HALF) >> Q)
            _put(buf, i + 2, (k3 * x + k4 * y + k5 * z + _HALF) >> Q)
            _put(buf, i + 4, (k6 * x + k7 * y + k8 * z + _HALF) >> Q)
            i += 6


def _clamp(v):
    if v > 32767:
        return 32767
    if v < -32767:
        return -32767
    return v


def _put(buf, i, v):
    if v > 32767:
        v = 32767
    elif v < -32768:
        v = -32768
    v &= 0xFFFF
    buf[i] = v & 0xFF
    buf[i + 1] = v >> 8


class Calibration:
    """A checked calibration document and its precomputed parts (None if absent)."""

    def __init__(self, doc):
        self.doc = validate(doc)
        self.id = doc["id"]
        self.date = doc.get("date", "")
        c = doc.get("climate")
        self.climate = ClimateCal(c) if c is not None else None
        a = doc.get("accel")
        self.accel = AccelCal(a) if a is not None else None


def stored(path=PATH, legacy_prev=PREV_PATH):
    """(current doc, previous doc, problem) as on flash; never raises.

    The docs are dicts or None, unchecked against `validate`. problem is None,
    or the fallback words when calib.json was damaged or recovered from its tmp.
    """
    cur = prev = problem = None
    parts = {}
    try:
        parts, from_tmp = store.load(path, KEY)
        cur = parts[KEY]
        if from_tmp is not None:
            problem = store.recovered(path, from_tmp)
    except store.StoreError as exc:
        if exc.reason != "missing":
            problem = store.describe(path, exc.reason)
    if PREV in parts:
        prev = parts[PREV] if isinstance(parts[PREV], dict) else None
    else:
        try:
            prev = store.read(legacy_prev, KEY)
        except store.StoreError:
            pass
    return cur, prev, problem


def _usable(doc):
    try:
        return Calibration(doc) if doc is not None else None
    except ValueError:
        return None


def _id_words(doc):
    cid = doc.get("id") if isinstance(doc, dict) else None
    return "calibration %s" % cid if cid is not None else "the calibration"


def load(path=PATH, legacy_prev=PREV_PATH):
    """(Calibration or None, fallback words or None). Never raises for bad content.

    No calibration stored is the normal uncalibrated node (no fallback). A
    current one that is damaged or refused by `validate` gives way to the
    previous one, else to running uncalibrated; a copy recovered from the tmp
    file is used. Each of these is a fallback (STATUS_CALIB_FALLBACK) in words.
    """
    cur, prev, problem = stored(path, legacy_prev)
    if cur is not None:
        try:
            return Calibration(cur), problem
        except ValueError as exc:
            refused = "%s in %s refused (%s)" % (_id_words(cur), path, exc)
            problem = problem + "; " + refused if problem else refused
    elif problem is None:
        if prev is None:
            return None, None
        problem = "%s missing" % path
    fallback = _usable(prev)
    if fallback is not None:
        return fallback, "%s: running the previous calibration (id %s)" % (problem, fallback.id)
    return None, "%s: running uncalibrated" % problem


def _write(path, legacy_prev, current, previous):
    """One atomic write decides both roles; then the old separate previous file goes."""
    store.write(path, KEY, current, ((PREV, previous),))
    store.remove_quiet(legacy_prev)


def save(doc, path=PATH, legacy_prev=PREV_PATH):
    """Validate and store doc; the calibration in use (if any) becomes the previous.

    Returns the new Calibration. Raises ValueError (bad doc) or OSError (flash).
    """
    cal = Calibration(doc)
    cur, prev, _problem = stored(path, legacy_prev)
    keep = cur if _usable(cur) is not None else (prev if _usable(prev) is not None else None)
    _write(path, legacy_prev, doc, keep)
    return cal


def rollback(path=PATH, legacy_prev=PREV_PATH):
    """Swap current and previous; returns the restored Calibration.

    Raises ValueError when there is no usable previous calibration, OSError on
    a flash error. Rolling back twice restores the state before the first.
    """
    cur, prev, _problem = stored(path, legacy_prev)
    if prev is None:
        raise ValueError("no previous calibration stored")
    try:
        cal = Calibration(prev)
    except ValueError as exc:
        raise ValueError("previous calibration unusable: %s" % exc)
    _write(path, legacy_prev, prev, cur if _usable(cur) is not None else None)
    return cal
