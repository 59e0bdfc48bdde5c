"""The QC checks' table and what an operator gives them: overrides in TOML or JSON, node positions.

    config = QcConfig.load("qc.toml")     # DEFAULTS with that file's changes
    positions = load_positions("nodes.csv")

docs/qc.md has the table with its sources; citynode.fleet.qc applies it.
"""

import copy
import csv
import json
import math

from citynode.errors import UsageError

VARIABLES = ("temperature_c", "relative_humidity_pct")
VARIABLE_SHIFT = {"temperature_c": 0, "relative_humidity_pct": 8}
CHECK_BITS = {"range": 1, "persistence": 2, "spike": 4, "buddy": 8, "isolated": 16}

# The one table of checks: d2r-api's values; `enabled = false` turns one off.
DEFAULTS = {
    "weights": {"range": 100, "persistence": 50, "spike": 30, "buddy": 20, "isolated": 0},
    "temperature_c": {
        "range": {"enabled": True, "min": -40.0, "max": 50.0},
        "persistence": {"enabled": True, "window_s": 3 * 3600, "resolution": 0.01},
        "spike": {"enabled": True, "max_rate_per_min": 0.3, "max_gap_s": 600},
        "buddy": {
            "enabled": True, "radius_m": 5500.0, "num_min": 3, "threshold": 2.7,
            "max_elev_diff_m": 100.0, "elev_gradient": -0.0065, "min_std": 2.0,
            "num_iterations": 5, "time_window_s": 600,
        },
    },
    "relative_humidity_pct": {
        "range": {"enabled": True, "min": 10.0, "max": 100.0},
        "persistence": {"enabled": True, "window_s": 5 * 3600, "resolution": 0.01},
        "spike": {"enabled": True, "max_rate_per_min": 4.0, "max_gap_s": 600},
        "buddy": {
            "enabled": True, "radius_m": 6000.0, "num_min": 3, "threshold": 7.0,
            "max_elev_diff_m": -1.0, "elev_gradient": 0.0, "min_std": 3.0,
            "num_iterations": 5, "time_window_s": 600,
        },
    },
}
# The isolation check is part of the buddy check: a row with fewer than `num_min`
# buddies (readings in its scene) within `radius_m` is flagged isolated, not buddy-checked.

_US = 1_000_000
BUDDY_SLICE_S = 60  # the buddy check checks a row in the scene of its clock minute (qc_buddy.py)


def flag_bit(variable, check):
    """The bit of `check` on `variable` in qc_flags, e.g. flag_bit("relative_humidity_pct", "spike") == 1024."""
    return CHECK_BITS[check] << VARIABLE_SHIFT[variable]


class QcConfig:
    """The checks' parameters: DEFAULTS, with whatever a TOML or JSON file overrides."""

    def __init__(self, overrides=None, source="defaults"):
        self.source = source
        self.table = copy.deepcopy(DEFAULTS)
        if overrides:
            _merge(self.table, overrides, source, ())
        _validate(self.table, source)

    @classmethod
    def load(cls, path):
        """Read overrides from `path` (.toml, or JSON otherwise). Raises UsageError."""
        try:
            with open(path, "rb") as f:
                raw = f.read()
        except OSError as e:
            raise UsageError("qc config %s: %s" % (path, e.strerror or e)) from None
        try:
            if str(path).endswith(".toml"):
                import tomllib

                data = tomllib.loads(raw.decode("utf-8"))
            else:
                data = json.loads(raw)
        except (ValueError, UnicodeDecodeError) as e:
            raise UsageError("qc config %s: not valid %s: %s" % (
                path, "TOML" if str(path).endswith(".toml") else "JSON", e)) from None
        if not isinstance(data, dict):
            raise UsageError("qc config %s: expected a table of variables and checks" % path)
        return cls(data, source=str(path))

    def check(self, variable, name):
        """The parameters of one check on one variable, or None if it is off."""
        params = self.table[variable][name]
        return params if params["enabled"] else None

    def weight(self, name):
        return self.table["weights"][name]


def _merge(into, overrides, source, where):
    for key, value in overrides.items():
        path = where + (key,)
        if key not in into:
            raise UsageError("qc config %s: unknown setting %s (known: %s)" % (
                source, ".".join(path), ", ".join(sorted(into))))
        if isinstance(into[key], dict):
            if not isinstance(value, dict):
                raise UsageError("qc config %s: %s must be a table" % (source, ".".join(path)))
            _merge(into[key], value, source, path)
        elif isinstance(into[key], bool):
            if not isinstance(value, bool):
                raise UsageError("qc config %s: %s must be true or false" % (source, ".".join(path)))
            into[key] = value
        else:
            if isinstance(value, bool) or not isinstance(value, (int, float)) or not math.isfinite(value):
                raise UsageError("qc config %s: %s must be a number, not %r" % (source, ".".join(path), value))
            if isinstance(into[key], int) and value != int(value):
                raise UsageError("qc config %s: %s must be a whole number, not %r" % (source, ".".join(path), value))
            into[key] = type(into[key])(value)


# (check, setting): what makes sense; the messages name the setting
_POSITIVE = {("persistence", "window_s"), ("persistence", "resolution"), ("spike", "max_rate_per_min"),
             ("spike", "max_gap_s"), ("buddy", "radius_m"), ("buddy", "num_min"), ("buddy", "threshold"),
             ("buddy", "num_iterations"), ("buddy", "time_window_s")}


def _validate(table, source):
    for variable in VARIABLES:
        for (check, setting) in sorted(_POSITIVE):
            if table[variable][check][setting] <= 0:
                raise UsageError("qc config %s: %s.%s.%s must be above 0" % (source, variable, check, setting))
        if table[variable]["buddy"]["min_std"] < 0:
            raise UsageError("qc config %s: %s.buddy.min_std must not be negative" % (source, variable))
        bounds = table[variable]["range"]
        if bounds["min"] > bounds["max"]:
            raise UsageError("qc config %s: %s.range.min is above its max" % (source, variable))


def history_window_us(config):
    """How far before a batch's earliest row apply() needs history (µs); `now` minus
    this suffices for rows that arrive promptly."""
    need = [0]
    for variable in VARIABLES:
        if config.check(variable, "persistence"):
            need.append(config.check(variable, "persistence")["window_s"])
        spike, buddy = config.check(variable, "spike"), config.check(variable, "buddy")
        # two readings back for a spike, before the oldest buddy reading (from the minute's start)
        need.append((2 * spike["max_gap_s"] if spike else 0) + (buddy["time_window_s"] + BUDDY_SLICE_S if buddy else 0))
    return int(max(need) * _US)


def load_positions(path):
    """{node_id: (lat, lon, elevation_m)} from a CSV (node_id,lat,lon,elevation_m) or JSON file.

    JSON: {"3": [51.48, 7.21, 95.0], ...} or a list of
    {"node_id": 3, "lat": 51.48, "lon": 7.21, "elevation_m": 95.0}.
    """
    try:
        with open(path, encoding="utf-8") as f:
            text = f.read()
    except OSError as e:
        raise UsageError("positions %s: %s" % (path, e.strerror or e)) from None
    if str(path).endswith(".csv"):
        rows = list(csv.DictReader(text.splitlines()))
        entries = [(r.get("node_id"), (r.get("lat"), r.get("lon"), r.get("elevation_m"))) for r in rows]
    else:
        try:
            data = json.loads(text)
        except ValueError as e:
            raise UsageError("positions %s: not valid JSON: %s" % (path, e)) from None
        if isinstance(data, dict):
            entries = list(data.items())
        elif isinstance(data, list) and all(isinstance(r, dict) for r in data):
            entries = [(r.get("node_id"), (r.get("lat"), r.get("lon"), r.get("elevation_m"))) for r in data]
        else:
            raise UsageError("positions %s: expected {node_id: [lat, lon, elevation_m]} or a list of objects" % path)
    positions = {}
    for node, place in entries:
        positions[_node_id(node, path)] = _position(place, node, path)
    return positions


def _node_id(node, path):
    try:
        return int(node)
    except (TypeError, ValueError):
        raise UsageError("positions %s: node id %r is not a number" % (path, node)) from None


def _position(place, node, path):
    try:
        lat, lon, elev = (float(x) for x in place)
    except (TypeError, ValueError):
        raise UsageError("positions %s: node %s needs lat, lon and elevation_m as numbers" % (path, node)) from None
    if not (-90 <= lat <= 90 and -180 <= lon <= 180 and math.isfinite(elev)):
        raise UsageError("positions %s: node %s has no place on Earth: %r" % (path, node, (lat, lon, elev)))
    return lat, lon, elev


__all__ = ["CHECK_BITS", "DEFAULTS", "QcConfig", "VARIABLES", "VARIABLE_SHIFT", "flag_bit", "history_window_us",
           "load_positions"]
