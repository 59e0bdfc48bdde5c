"""Mount calibration: the rotation from sensor axes to structure axes, from gravity.

Structure axes (right-handed): x along the bridge (the direction the installer
names), y across it, z up. The installer says which sensor axis points (about)
up and which points (about) along the bridge; the still, calibrated gravity
reading fixes the rest (sensors.md section 3.4):

- align "gravity" (default): z_struct is the measured up direction exactly, x
  is the named along-axis made horizontal (projected), y = z x x. Vertical
  vibration is then truly vertical; the installed position reads pitch = roll
  = 0, so the zero-tilt reference is (0, 0) and later tilt is the change since
  installation. Yaw about the vertical is not observable from gravity: it
  comes from the named along-axis, i.e. from how the bracket sits.
- align "axes": the rotation is only the named axis mapping (a signed
  permutation), and the installed pitch/roll are stored as the zero-tilt
  reference, subtracted on the node.

Pitch and roll as the node computes them (protocol/SPEC.md, features):
pitch = atan2(-x, sqrt(y^2 + z^2)), roll = atan2(y, z).
"""

import math
from dataclasses import dataclass

import numpy as np

from citynode.calibrate import limits
from citynode.errors import UsageError

AXES = {
    "+x": (1.0, 0.0, 0.0), "-x": (-1.0, 0.0, 0.0),
    "+y": (0.0, 1.0, 0.0), "-y": (0.0, -1.0, 0.0),
    "+z": (0.0, 0.0, 1.0), "-z": (0.0, 0.0, -1.0),
}


def parse_axis(text):
    """'x', '+x', '-Y' -> ('+x', unit vector). UsageError on anything else."""
    s = str(text).strip().lower()
    if len(s) == 1:
        s = "+" + s
    if s not in AXES:
        raise UsageError("%r is not a sensor axis; use one of +x, -x, +y, -y, +z, -z" % text)
    return s, np.array(AXES[s])


def check_axes(up, along):
    """The named up and along-bridge axes, parsed: ((name, vec), (name, vec)). UsageError when they are
    not two different lines (checked before anything is measured)."""
    up_name, up_vec = parse_axis(up)
    along_name, along_vec = parse_axis(along)
    if abs(float(up_vec @ along_vec)) > 0.5:
        raise UsageError("the up axis %s and the along-bridge axis %s are the same line; name two different axes"
                         % (up_name, along_name))
    return (up_name, up_vec), (along_name, along_vec)


def tilt_deg(a):
    """(pitch, roll) in degrees of a gravity reading, the node's convention."""
    x, y, z = (float(v) for v in a)
    return math.degrees(math.atan2(-x, math.hypot(y, z))), math.degrees(math.atan2(y, z))


@dataclass
class Mount:
    rotation: np.ndarray  # 3x3, a_struct = R . a_sensor
    tilt_zero_deg: tuple  # (pitch, roll) subtracted on the node
    up_sensor: np.ndarray  # measured up, unit, sensor axes
    up_axis: str
    along_axis: str
    axis_error_deg: float  # named up axis vs measured up
    install_tilt_deg: tuple  # pitch, roll of the named (mechanical) axes
    gravity_g: float
    align: str

    def node_part(self):
        return {
            "rotation": [[round(float(v), 7) for v in row] for row in self.rotation],
            "tilt_zero_deg": [round(float(v), 3) for v in self.tilt_zero_deg],
        }

    def as_dict(self):
        d = self.node_part()
        d.update({
            "up_sensor": [float(v) for v in self.up_sensor],
            "up_axis": self.up_axis,
            "along_axis": self.along_axis,
            "axis_error_deg": self.axis_error_deg,
            "install_tilt_deg": list(self.install_tilt_deg),
            "gravity_g": self.gravity_g,
            "align": self.align,
        })
        return d


def mechanical_rotation(up_vec, along_vec):
    z = np.asarray(up_vec, dtype=float)
    x = np.asarray(along_vec, dtype=float)
    y = np.cross(z, x)
    return np.vstack([x, y, z])


def solve(gravity_g, up, along, align="gravity"):
    """Mount from a still, calibrated gravity reading (sensor axes, g).

    Raises UsageError when the named axes do not fit the measurement: the up
    axis more than the documented limit from gravity, the along axis not
    horizontal, the two axes the same line.
    """
    (up_name, up_vec), (along_name, along_vec) = check_axes(up, along)
    g = np.asarray(gravity_g, dtype=float)
    norm = float(np.linalg.norm(g))
    if not math.isfinite(norm) or norm < 0.5:
        raise UsageError("no gravity in the reading (|a| = %.3f g): is the accelerometer working?" % norm)
    u = g / norm
    err = math.degrees(math.acos(max(-1.0, min(1.0, float(u @ up_vec)))))
    bad = limits.check("mount_axis_error_deg", err)
    if bad:
        measured = "xyz"[int(np.argmax(np.abs(u)))]
        sign = "+" if u[int(np.argmax(np.abs(u)))] > 0 else "-"
        raise UsageError("you named %s as up, but gravity says %s%s is up (%.0f degrees from %s); "
                         "check the axes printed on the node" % (up_name, sign, measured, err, up_name))
    if abs(float(along_vec @ u)) > 0.5:
        raise UsageError("the along-bridge axis %s points %.0f degrees from horizontal; name a horizontal axis"
                         % (along_name, math.degrees(math.asin(min(1.0, abs(float(along_vec @ u)))))))
    mech = mechanical_rotation(up_vec, along_vec)
    install = tilt_deg(mech @ g)
    if align == "gravity":
        z = u
        x = along_vec - (along_vec @ z) * z
        x = x / np.linalg.norm(x)
        y = np.cross(z, x)
        r = np.vstack([x, y, z])
        zero = (0.0, 0.0)
    elif align == "axes":
        r = mech
        zero = install
    else:
        raise UsageError("align must be 'gravity' or 'axes', not %r" % align)
    return Mount(r, zero, u, up_name, along_name, err, install, norm, align)


def tilt_relative(mount, gravity_g):
    """Tilt now against the installed zero (deg): (pitch, roll) as the node reports it."""
    p, r = tilt_deg(mount.rotation @ np.asarray(gravity_g, dtype=float))
    return p - mount.tilt_zero_deg[0], r - mount.tilt_zero_deg[1]
