# The scenario of a simulated node: what the world is like (temperature,
# humidity, gravity, vibration), how the sensors err, which parts are fitted,
# and which faults they have. Read from the JSON file named by env
# CITYNODE_SCENARIO, re-read when it changes.
#
# Runs under MicroPython (the simulated node) and CPython (`citynode sim` checks
# a file with the same validate()), so: json, os, time only.
#
# A bad file never takes the node down: the last good values stay in force,
# `error` says what is wrong until a good file replaces it, and `report` (the
# virtual node's console, citynode_sim.console.say) is told once per change.

import json
import os
import time

try:
    from time import ticks_diff, ticks_ms  # type: ignore[attr-defined]
except ImportError:  # CPython

    def ticks_ms():
        return int(time.monotonic() * 1000)

    def ticks_diff(a, b):
        return a - b


ENV = "CITYNODE_SCENARIO"
CHECK_MS = 200  # look at the file at most this often
RACY_S = 2  # a file written this recently may change again within its mtime second

CLIMATE_PARTS = ("sht30", "sht31", "sht35", "sht40", "sht41", "sht45", "none")
ACCEL_PARTS = ("adxl345", "adxl355", "lis3dh", "none")
FAULTS = {
    "climate": ("none", "absent", "bad_crc", "bad_id"),
    "accel": ("none", "absent", "bad_id"),
}
MAX_MODES = 8

# key: (low, high) for plain numbers
_RANGES = {
    "temperature_c": (-40.0, 125.0),
    "relative_humidity_pct": (0.0, 100.0),
    "noise_g": (0.0, 0.1),
}
_ERROR_RANGES = {
    "temperature_offset_c": (-10.0, 10.0),
    "humidity_gain": (0.5, 1.5),
    "humidity_offset_pct": (-20.0, 20.0),
}
_ERROR_VECTORS = {
    "accel_bias_g": (-1.0, 1.0),
    "accel_scale": (0.5, 1.5),
}
_MODE_RANGES = {"freq_hz": (0.001, 2000.0), "amp_g": (0.0, 8.0)}
# stall: the node's bus hangs for `ms` every `every_s` seconds (0: never), so
# the accelerometer FIFO overflows as on a node held up by a long write
_STALL_RANGES = {"every_s": (0.0, 3600.0), "ms": (0, 10000)}
# wifi: the radio the uplink joins (citynode_sim.radio): up or down, the signal,
# the networks in reach (null: any SSID is found) and their password (null: any)
_WIFI_KEYS = ("up", "rssi", "ssids", "password")
_NESTED = ("sensor_error", "sensors", "faults", "stall", "wifi")
_TOP_KEYS = (
    "temperature_c",
    "relative_humidity_pct",
    "gravity",
    "vibration",
    "noise_g",
    "sensor_error",
    "sensors",
    "faults",
    "seed",
    "stall",
    "wifi",
    "comment",
)


def defaults():
    """A fresh dict of every key with its default value."""
    return {
        "temperature_c": 21.5,
        "relative_humidity_pct": 48.0,
        "gravity": [0.0, 0.0, 1.0],
        "vibration": [{"freq_hz": 3.2, "amp_g": 0.002, "axis": [0.0, 0.0, 1.0]}],
        "noise_g": 0.0005,
        "sensor_error": {
            "temperature_offset_c": 0.0,
            "humidity_gain": 1.0,
            "humidity_offset_pct": 0.0,
            "accel_bias_g": [0.0, 0.0, 0.0],
            "accel_scale": [1.0, 1.0, 1.0],
        },
        "sensors": {"climate": "sht35", "accel": "adxl355"},
        "faults": {"climate": "none", "accel": "none"},
        "seed": 1,
        "stall": {"every_s": 0.0, "ms": 0},
        "wifi": {"up": True, "rssi": -60, "ssids": None, "password": None},
    }


def merged(data):
    """Defaults overlaid with data (already validated); nested dicts merge key by key."""
    out = defaults()
    for key in data:
        value = data[key]
        if key in _NESTED:
            for sub in value:
                v = value[sub]
                out[key][sub] = "none" if v is None and key in ("sensors", "faults") else v
        else:
            out[key] = value
    return out


def _is_num(v):
    return isinstance(v, (int, float)) and not isinstance(v, bool)


def _check_num(problems, name, v, lo, hi):
    if not _is_num(v):
        problems.append("%s must be a number, not %r" % (name, v))
    elif not lo <= v <= hi:
        problems.append("%s = %r is outside %r..%r" % (name, v, lo, hi))


def _check_vec(problems, name, v, lo=None, hi=None):
    """A list of 3 numbers (each in lo..hi if given); True if it is one."""
    if not isinstance(v, list) or len(v) != 3 or not all(_is_num(x) for x in v):
        problems.append("%s must be a list of 3 numbers, not %r" % (name, v))
        return False
    if lo is not None:
        for i in range(3):
            if not lo <= v[i] <= hi:
                problems.append("%s[%d] = %r is outside %r..%r" % (name, i, v[i], lo, hi))
    return True


def _length(v):
    return (v[0] * v[0] + v[1] * v[1] + v[2] * v[2]) ** 0.5


def _check_keys(problems, name, d, known):
    for key in d:
        if key not in known:
            problems.append("unknown key %s%s (known: %s)" % (name, key, ", ".join(sorted(known))))


def validate(data):
    """Problems with a scenario dict (partial: missing keys take defaults), as a list of strings."""
    problems = []
    if not isinstance(data, dict):
        return ["a scenario must be a JSON object, not %r" % (data,)]
    _check_keys(problems, "", data, _TOP_KEYS)
    for key in _RANGES:
        if key in data:
            lo, hi = _RANGES[key]
            _check_num(problems, key, data[key], lo, hi)
    if "gravity" in data:
        g = data["gravity"]
        if _check_vec(problems, "gravity", g):
            n = _length(g)
            if not 0.95 <= n <= 1.05:
                problems.append("gravity %r has length %.3f; it must be a unit vector (0.95..1.05)" % (g, n))
    if "vibration" in data:
        modes = data["vibration"]
        if not isinstance(modes, list):
            problems.append("vibration must be a list of modes, not %r" % (modes,))
        elif len(modes) > MAX_MODES:
            problems.append("vibration has %d modes; at most %d" % (len(modes), MAX_MODES))
        else:
            for i in range(len(modes)):
                m = modes[i]
                name = "vibration[%d]" % i
                if not isinstance(m, dict):
                    problems.append("%s must be an object with freq_hz, amp_g, axis, not %r" % (name, m))
                    continue
                _check_keys(problems, name + ".", m, ("freq_hz", "amp_g", "axis"))
                for key in ("freq_hz", "amp_g"):
                    if key not in m:
                        problems.append("%s.%s is missing" % (name, key))
                    else:
                        lo, hi = _MODE_RANGES[key]
                        _check_num(problems, name + "." + key, m[key], lo, hi)
                if "axis" in m and _check_vec(problems, name + ".axis", m["axis"]):
                    if _length(m["axis"]) < 1e-6:
                        problems.append("%s.axis must not be zero" % name)
    if "sensor_error" in data:
        se = data["sensor_error"]
        if not isinstance(se, dict):
            problems.append("sensor_error must be an object, not %r" % (se,))
        else:
            known = list(_ERROR_RANGES) + list(_ERROR_VECTORS)
            _check_keys(problems, "sensor_error.", se, known)
            for key in _ERROR_RANGES:
                if key in se:
                    lo, hi = _ERROR_RANGES[key]
                    _check_num(problems, "sensor_error." + key, se[key], lo, hi)
            for key in _ERROR_VECTORS:
                if key in se:
                    lo, hi = _ERROR_VECTORS[key]
                    _check_vec(problems, "sensor_error." + key, se[key], lo, hi)
    if "sensors" in data:
        s = data["sensors"]
        if not isinstance(s, dict):
            problems.append("sensors must be an object, not %r" % (s,))
        else:
            _check_keys(problems, "sensors.", s, ("climate", "accel"))
            for key, allowed in (("climate", CLIMATE_PARTS), ("accel", ACCEL_PARTS)):
                if key in s and s[key] not in allowed:
                    problems.append("sensors.%s = %r is not one of %s" % (key, s[key], ", ".join(allowed)))
    if "faults" in data:
        f = data["faults"]
        if not isinstance(f, dict):
            problems.append("faults must be an object, not %r" % (f,))
        else:
            _check_keys(problems, "faults.", f, list(FAULTS))
            for key in FAULTS:
                if key in f and f[key] is not None and f[key] not in FAULTS[key]:
                    problems.append("faults.%s = %r is not one of %s" % (key, f[key], ", ".join(FAULTS[key])))
    if "stall" in data:
        st = data["stall"]
        if not isinstance(st, dict):
            problems.append("stall must be an object with every_s and ms, not %r" % (st,))
        else:
            _check_keys(problems, "stall.", st, list(_STALL_RANGES))
            for key in _STALL_RANGES:
                if key in st:
                    lo, hi = _STALL_RANGES[key]
                    _check_num(problems, "stall." + key, st[key], lo, hi)
    if "wifi" in data:
        w = data["wifi"]
        if not isinstance(w, dict):
            problems.append("wifi must be an object with up, rssi, ssids, password, not %r" % (w,))
        else:
            _check_keys(problems, "wifi.", w, _WIFI_KEYS)
            if "up" in w and not isinstance(w["up"], bool):
                problems.append("wifi.up must be true or false, not %r" % (w["up"],))
            if "rssi" in w:
                _check_num(problems, "wifi.rssi", w["rssi"], -120, 0)
            ssids = w.get("ssids")
            if ssids is not None and (not isinstance(ssids, list) or not all(isinstance(x, str) for x in ssids)):
                problems.append("wifi.ssids must be a list of names or null, not %r" % (ssids,))
            if w.get("password") is not None and not isinstance(w["password"], str):
                problems.append("wifi.password must be text or null, not %r" % (w["password"],))
    if "seed" in data:
        v = data["seed"]
        if not isinstance(v, int) or isinstance(v, bool) or not 0 <= v < 2**31:
            problems.append("seed must be an integer 0..2**31-1, not %r" % (v,))
    if "comment" in data and not isinstance(data["comment"], str):
        problems.append("comment must be a string")
    return problems


class Scenario:
    """The scenario in force: `data` (every key, defaults filled in), `version`
    (bumped on each change), `error` (None, or why the file was refused), `source`.

    Scenario()             defaults only (no file)
    Scenario(path)         read path now, and again on poll() when it changes
    Scenario(data=dict)    fixed values (tests); update() changes them
    report: called with one line when a changed file is refused, and when a good
    one is in force again after that.
    """

    def __init__(self, path=None, data=None, report=None):
        self.path = path
        self.data = defaults()
        self.version = 0
        self.error = None
        self.source = "defaults"
        self.report = report
        self._stamp = None
        self._text = None
        self._checked = ticks_ms()
        if data is not None:
            self.update(data)
        if path:
            self._look()

    def _refuse(self, why):
        """A changed file cannot be used: say why, once, and what stays in force."""
        keep = "keeping the last good values" if self.version else "using the defaults"
        self.error = "scenario %s: %s; %s" % (self.path, why, keep)
        if self.report is not None:
            self.report(self.error)

    def update(self, data):
        """Put a dict in force (a partial one is laid over the defaults); ValueError if it is bad."""
        problems = validate(data)
        if problems:
            raise ValueError("; ".join(problems))
        self.data = merged(data)
        self.version += 1
        self.error = None
        self.source = "data"

    def poll(self, force=False):
        """Re-read the file if it changed; True if new values came into force. Cheap:
        it looks at the file at most every CHECK_MS unless force."""
        if not self.path:
            return False
        now = ticks_ms()
        if not force and ticks_diff(now, self._checked) < CHECK_MS:
            return False
        self._checked = now
        return self._look()

    def _look(self):
        try:
            st = os.stat(self.path)
        except OSError:
            if self._stamp is not None:
                self._refuse("the file is gone")
                self._text = None  # the same text coming back is a change
            elif not self.version:
                self.source = "defaults (no file %s)" % self.path
            self._stamp = None
            return False
        stamp = (st[8], st[6])  # mtime, size
        racy = time.time() - st[8] < RACY_S
        if stamp == self._stamp and not racy:
            return False
        self._stamp = stamp
        return self._load()

    def _load(self):
        try:
            with open(self.path) as f:
                text = f.read()
        except OSError as e:
            self._refuse("cannot read it (%s)" % e)
            return False
        if text == self._text:
            return False
        self._text = text
        try:
            data = json.loads(text)
        except ValueError as e:
            self._refuse("not valid JSON (%s)" % e)
            return False
        problems = validate(data)
        if problems:
            self._refuse("; ".join(problems))
            return False
        self.data = merged(data)
        self.version += 1
        if self.error is not None and self.report is not None:
            self.report("scenario %s: read again, in force" % self.path)
        self.error = None
        self.source = self.path
        return True


def load(path=None, report=None):
    """The scenario from path, else from env CITYNODE_SCENARIO, else defaults."""
    if path is None:
        path = os.getenv(ENV)
    return Scenario(path or None, report=report)
