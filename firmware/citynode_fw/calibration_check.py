"""The checks of a calibration document (calibration.validate loads this module for a
call and drops it again, so its code is not on the node's heap while it runs)."""

from citynode_fw import store

MAX_DOC = 1024  # canonical text length


def _number(name, v, lo, hi):
    if isinstance(v, bool) or not isinstance(v, (int, float)):
        raise ValueError("%s must be a number, not %r" % (name, v))
    if not lo <= v <= hi:
        raise ValueError("%s=%r outside %r..%r" % (name, v, lo, hi))
    return float(v)


def _vector(name, v, lo, hi, n=3):
    if not isinstance(v, list) or len(v) != n:
        raise ValueError("%s must be a list of %d numbers" % (name, n))
    return [_number(name, x, lo, hi) for x in v]


def _matrix(name, m, lo, hi):
    if not isinstance(m, list) or len(m) != 3:
        raise ValueError("%s must be a 3x3 list of lists" % name)
    return [_vector(name, row, lo, hi) for row in m]


def _orthonormal(m):
    for i in range(3):
        for j in range(3):
            dot = m[i][0] * m[j][0] + m[i][1] * m[j][1] + m[i][2] * m[j][2]
            if abs(dot - (1.0 if i == j else 0.0)) > 1e-3:
                return False
    return True


def validate(doc):
    """Check a calibration document; raises ValueError naming the bad part."""
    if not isinstance(doc, dict):
        raise ValueError("calibration must be a JSON object")
    cid = doc.get("id")
    if isinstance(cid, bool) or not isinstance(cid, int) or not 0 <= cid <= 0xFFFFFFFF:
        raise ValueError("id must be an integer 0..4294967295")
    for key in ("date", "method"):
        if not isinstance(doc.get(key, ""), str):
            raise ValueError("%s must be text" % key)
    for key in doc:
        if key not in ("id", "date", "method", "site", "climate", "accel"):
            raise ValueError("unknown calibration part %r" % key)
    climate = doc.get("climate")
    if climate is not None:
        if not isinstance(climate, dict):
            raise ValueError("climate must be an object")
        _number("t_gain", climate.get("t_gain", 1.0), 0.8, 1.2)
        _number("t_offset_c", climate.get("t_offset_c", 0.0), -10.0, 10.0)
        _number("rh_gain", climate.get("rh_gain", 1.0), 0.8, 1.2)
        _number("rh_offset_pct", climate.get("rh_offset_pct", 0.0), -20.0, 20.0)
    accel = doc.get("accel")
    if accel is not None:
        if not isinstance(accel, dict):
            raise ValueError("accel must be an object")
        _vector("bias_g", accel.get("bias_g", [0, 0, 0]), -1.0, 1.0)
        if "matrix" in accel:
            _matrix("matrix", accel["matrix"], -2.0, 2.0)
        else:
            _vector("scale", accel.get("scale", [1, 1, 1]), 0.5, 2.0)
        if "rotation" in accel:
            if not _orthonormal(_matrix("rotation", accel["rotation"], -1.0, 1.0)):
                raise ValueError("rotation is not orthonormal")
        _vector("tilt_zero_deg", accel.get("tilt_zero_deg", [0, 0]), -90.0, 90.0, 2)
    if len(store.canonical(doc)) > MAX_DOC:
        raise ValueError("calibration longer than %d bytes" % MAX_DOC)
    return doc
