"""The reference values of a climate calibration: --point text, the installer's answers, words for them."""

import math
from dataclasses import dataclass

from citynode.calibrate import climate
from citynode.errors import UsageError


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


def asked_point(ui):
    while True:
        t = ui.ask("reference temperature in degC (empty: none)", "--reference-temperature")
        h = ui.ask("reference humidity in %RH or a salt name (empty: none)", "--reference-humidity")
        try:
            return parse_point("%s,%s" % (t or "-", h or "-"))
        except UsageError as exc:
            ui.say(str(exc))


def ref_words(t, h):
    bits = []
    if t is not None:
        bits.append("%.2f degC" % t)
    if h is not None:
        bits.append("%.2f %%RH" % h)
    return ", ".join(bits) or "none"


def expected_change(a, b):
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
