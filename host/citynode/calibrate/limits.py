"""One table of the limits a calibration must meet, each with why and where from.

A fitted value outside its row is refused unless the installer forces it
(`--force`); the refusal names the value, the limit and the reason. Reference
inputs outside their physical range are refused always (no `--force`).

Sources, short names used in the table:
- ADXL345-DS: Analog Devices ADXL345 data sheet, Table 1 (sensitivity at
  +-2 g full resolution 230 / 256 / 282 LSB/g; 0 g output X, Y +-150 mg and
  Z +-250 mg, the same figures as the ADXL350 data sheet, Table 1). The ADXL345
  is the loosest accelerometer a node may carry, so its spread bounds them all.
- SHT3x-DS, SHT4x-DS: Sensirion data sheets: accuracy +-0.1..0.2 degC and
  +-1.5..2 %RH typical (see ../shared/reference/sensors.md section 1).
- ArduPilot: libraries/AP_AccelCal/AccelCalibrator.cpp, `accept_result()`
  (|offset| <= 1 g, 0.8 <= diag <= 1.2) and ACCEL_CAL_TOLERANCE 0.1 (m/s^2)^2
  mean squared residual (RMS 0.32 m/s^2 = 32 mg).
- Issue 5: the installers' calibration issue of this project.
- project: our own choice, the reason given in the row.
"""

from dataclasses import dataclass

from citynode.calibrate import md


@dataclass(frozen=True)
class Limit:
    key: str
    lo: float
    hi: float
    unit: str
    what: str
    why: str
    source: str

    def contains(self, value):
        return self.lo <= value <= self.hi

    def describe(self):
        if self.lo == -self.hi:
            return "|%s| <= %g %s" % (self.what, self.hi, self.unit)
        return "%s in %g..%g %s" % (self.what, self.lo, self.hi, self.unit)


_ROWS = (
    # -- climate fit results -------------------------------------------------
    Limit("t_offset_c", -5.0, 5.0, "degC", "temperature offset",
          "a good SHT part reads within 0.2 degC; more than 5 degC means sun or board heat on the "
          "sensor, a wrong reference or a broken part, which a calibration must not hide",
          "Issue 5; SHT3x-DS, SHT4x-DS"),
    Limit("t_gain", 0.95, 1.05, "", "temperature gain",
          "5 % of a 40 degC span is 2 degC, ten times the parts' accuracy: a larger gain error is a "
          "reference or time-alignment problem, not the sensor", "project; SHT3x-DS"),
    Limit("rh_gain", 0.8, 1.2, "", "humidity gain",
          "capacitive RH sensors drift by a few %, not 20 %", "Issue 5; ArduPilot uses the same "
          "0.8..1.2 window for accelerometer scale"),
    Limit("rh_offset_pct", -15.0, 15.0, "%RH", "humidity offset",
          "the parts are specified to +-2 %RH; a 15 %RH offset is a contaminated or wet sensor, "
          "or a reference read at another temperature", "project; SHT3x-DS"),
    Limit("t_residual_c", 0.0, 0.3, "degC", "temperature fit residual (RMS)",
          "points that do not lie on one line within the parts' accuracy mean unsettled readings "
          "or a wrong reference value", "project; SHT3x-DS"),
    Limit("rh_residual_pct", 0.0, 2.0, "%RH", "humidity fit residual (RMS)",
          "as for temperature, at the parts' +-2 %RH accuracy", "project; SHT3x-DS"),
    # -- accelerometer fit results ---------------------------------------------
    Limit("accel_bias_xy_g", -0.15, 0.15, "g", "accelerometer bias on x or y",
          "the data sheet's worst 0 g output on x and y; more means a damaged part or a node that "
          "moved while a position was taken", "ADXL345-DS"),
    Limit("accel_bias_z_g", -0.25, 0.25, "g", "accelerometer bias on z",
          "the data sheet's worst 0 g output on z", "ADXL345-DS"),
    Limit("accel_scale", 0.9, 1.1, "", "accelerometer scale",
          "the data sheet's sensitivity spread is 230..282 LSB/g around 256, i.e. 0.90..1.10 "
          "(ArduPilot allows 0.8..1.2)", "ADXL345-DS; ArduPilot"),
    Limit("accel_residual_g", 0.0, 0.02, "g", "accelerometer fit residual (RMS)",
          "a tenth of a degree of tilt changes nothing in |g|, so a residual means the positions "
          "were not still or the axes are not orthogonal; ArduPilot accepts 32 mg, we want 20 mg",
          "project; ArduPilot"),
    # -- mount -------------------------------------------------------------------
    Limit("mount_axis_error_deg", 0.0, 30.0, "deg", "angle between the named up axis and gravity",
          "the installer names the axis that points up; if gravity is more than 30 degrees away, "
          "the wrong axis was named or the node is mounted crooked", "project"),
    Limit("mount_gravity_g", 0.95, 1.05, "g", "measured |g| while mounted",
          "a calibrated accelerometer reads 1 g at rest; 5 % off means it is not calibrated or the "
          "structure moved during the measurement", "project"),
    # -- references (never forced) -----------------------------------------------
    Limit("reference_temperature_c", -40.0, 125.0, "degC", "reference temperature",
          "the operating range of the SHT3x/SHT4x parts", "SHT3x-DS, SHT4x-DS"),
    Limit("reference_humidity_pct", 0.0, 100.0, "%RH", "reference humidity",
          "relative humidity is 0..100 % by definition", "physics"),
)

LIMITS = {row.key: row for row in _ROWS}

# Acceptance tolerances of `calibrate verify` (node now against reference/gravity).
VERIFY = {
    "t_c": 0.3,  # degC: the residual limit above
    "rh_pct": 2.0,  # %RH
    "g": 0.005,  # g: |a| of a still, calibrated node
    "tilt_deg": 0.5,  # deg: tilt against the installed zero
}


class LimitViolation:
    """One value outside its limit, with the words for the installer."""

    def __init__(self, limit, value, label=None):
        self.limit = limit
        self.value = value
        self.label = label or limit.what

    def __str__(self):
        return "%s %.4g %s is outside the limit (%s): %s [%s]" % (
            self.label, self.value, self.limit.unit, self.limit.describe(), self.limit.why, self.limit.source)


def check(key, value, label=None):
    """A LimitViolation for value against LIMITS[key], or None."""
    limit = LIMITS[key]
    if value != value or not limit.contains(value):  # NaN fails too
        return LimitViolation(limit, value, label)
    return None


def table_markdown():
    """The table as Markdown, for the installer's guide and the reports."""
    lines = ["| limit | allowed | why | source |", "|---|---|---|---|"]
    for row in _ROWS:
        cells = (row.what, "%g .. %g %s" % (row.lo, row.hi, row.unit), row.why, row.source)
        lines.append("| %s |" % " | ".join(md.cell(c) for c in cells))
    return "\n".join(lines)
