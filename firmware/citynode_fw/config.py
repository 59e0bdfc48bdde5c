"""The node's config: one table of keys, loaded from `config.json` with checks.

SCHEMA is the single source for firmware and docs: one row a key,
(key, kind, default, allowed, flags):

- kind: "int", "num" (int or float), "str", "bool", "enum" (one of a tuple);
- allowed: (lo, hi) for "int"/"num", the choices for "enum", the maximum
  length for "str", None for "bool";
- flags: SECRET (never echoed back: `config_get` shows "***"), RESTART (takes
  effect after a reboot; everything else is applied live).

Loading never stops the boot. A missing or damaged file (and no good copy
left by an interrupted save) gives all defaults; a bad value gives that key's
default and keeps the others; a copy recovered from `config.json.tmp` is used.
In every such case `fallback` says what happened in a technician's words and
STATUS carries STATUS_CONFIG_FALLBACK. Keys missing from an intact file
(written by an older firmware) take their defaults silently; unknown keys are
dropped.

File format, atomic write and recovery: see store.py (`{"crc":N,"config":{...}}`).
"""

from citynode_fw import store

PATH = "config.json"
KEY = "config"

SECRET = 1
RESTART = 2

# climate_part / accel_part say what is fitted: "none" not fitted (never probed),
# a part name fitted and required (the self-test fails without it), "auto"
# whichever known part answers (none answering is no fault of the node, so long
# as some sensor answers).
# accel_odr_hz: the default is the ADXL355's 250 Hz; a part without the
# configured rate runs the nearest it has (the default silently, a set rate
# with a warning).
# uplink "wifi": frames also go, signed with node_key (64 hex digits), through
# a flash ring of ring_kb to the MQTT broker at broker_url (mqtt://host[:port],
# or mqtts:// with the CA in the DER file mqtt_ca); UTC from ntp_server
# (host[:port]) when set. Secrets are never echoed, not even in an error.
# uplink_linger_s: a node without an accelerometer holds its frames this long
# as one signed bundle (SPEC.md §4, type 8) before they leave: fewer bytes on
# the network, readings that arrive up to that much later (0: each at once).
# mode: "raw" streams accel blocks and features (the USB serial link carries a
# 200 Hz block stream with room to spare, and the host tools plot it);
# "features" sends only the per-window features, for narrow uplinks.
SCHEMA = (
    ("node_id", "int", 1, (0, 65535), RESTART),
    ("site", "str", "", 64, 0),
    ("climate_part", "enum", "auto", ("auto", "sht4x", "sht3x", "none"), RESTART),
    ("accel_part", "enum", "auto", ("auto", "adxl355", "adxl345", "lis3dh", "none"), RESTART),
    ("climate_period_s", "int", 60, (2, 86400), 0),
    ("accel_odr_hz", "num", 250, (1, 4000), 0),
    ("accel_range_g", "enum", 2, (2, 4, 8, 16), 0),
    ("accel_block_samples", "int", 200, (8, 600), 0),
    ("feature_window_s", "int", 10, (1, 60), 0),
    ("mode", "enum", "raw", ("raw", "features"), 0),
    ("accel_encoding", "enum", "auto", ("auto", "raw"), 0),
    ("stream_at_boot", "bool", True, None, 0),
    ("status_period_s", "int", 30, (5, 3600), 0),
    ("watchdog_s", "int", 30, (0, 600), RESTART),
    ("i2c_id", "int", 0, (0, 1), RESTART),
    ("i2c_sda", "int", 21, (0, 48), RESTART),
    ("i2c_scl", "int", 22, (0, 48), RESTART),
    ("i2c_freq", "int", 400000, (10000, 1000000), RESTART),
    ("uplink", "enum", "serial", ("serial", "wifi"), RESTART),
    ("wifi_ssid", "str", "", 32, RESTART),
    ("wifi_password", "str", "", 64, SECRET | RESTART),
    ("broker_url", "url", "", 128, RESTART),
    ("mqtt_user", "str", "", 64, RESTART),
    ("mqtt_password", "str", "", 64, SECRET | RESTART),
    ("mqtt_ca", "str", "ca.der", 32, RESTART),
    ("node_key", "key", "", 64, SECRET | RESTART),
    ("ring_kb", "int", 256, (8, 8192), RESTART),
    ("ntp_server", "str", "", 64, RESTART),
    ("uplink_linger_s", "int", 300, (0, 3600), RESTART),
)

BY_KEY = {}
for _row in SCHEMA:
    BY_KEY[_row[0]] = _row

MASK = "***"


def odr_mhz(hz):
    """accel_odr_hz (Hz, int or float) as the drivers' rates (int mHz): the one conversion."""
    return int(hz * 1000 + 0.5)


def part_rate(hz, rates):
    """The rate (mHz) a part with `rates` (its ODRS_MHZ) runs for accel_odr_hz `hz`:
    that rate when the part has it, else the part's nearest."""
    want = odr_mhz(hz)
    best = rates[0]
    for r in rates:
        if abs(r - want) < abs(best - want):
            best = r
    return best


def default(key):
    return BY_KEY[key][2]


def defaults():
    out = {}
    for row in SCHEMA:
        out[row[0]] = row[2]
    return out


def check(key, value):
    """The value, checked against the table; raises ValueError naming it."""
    row = BY_KEY.get(key)
    if row is None:
        raise ValueError("unknown config key %r" % key)
    kind = row[1]
    allowed = row[3]
    if kind == "enum":
        # bool is an int in Python: never let true stand for 1
        if isinstance(value, bool) or value not in allowed:
            raise ValueError("%s must be one of %s, not %r" % (key, _words(allowed), value))
        return value
    if kind == "bool":
        if not isinstance(value, bool):
            raise ValueError("%s must be true or false, not %r" % (key, value))
        return value
    if kind == "url" or kind == "key":  # the uplink's: checked by a module loaded for the call
        from citynode_fw import config_net, forget

        try:
            return config_net.check(key, kind, value, allowed)
        finally:
            forget("citynode_fw.config_net")
    if kind == "str":
        if not isinstance(value, str):
            raise ValueError("%s must be text, not %r" % (key, value))
        if len(value) > allowed:
            raise ValueError("%s longer than %d characters" % (key, allowed))
        return value
    if isinstance(value, bool) or not isinstance(value, (int, float)):
        raise ValueError("%s must be a number, not %r" % (key, value))
    if kind == "int" and isinstance(value, float):
        if value != int(value):
            raise ValueError("%s must be a whole number, not %r" % (key, value))
        value = int(value)
    if not allowed[0] <= value <= allowed[1]:
        raise ValueError("%s=%r outside %r..%r" % (key, value, allowed[0], allowed[1]))
    return value


def broker(url):
    """(tls, host, port) of a broker URL, else None (config_net.py, loaded for the call)."""
    from citynode_fw import config_net, forget

    try:
        return config_net.broker(url)
    finally:
        forget("citynode_fw.config_net")


def _words(choices):
    return ", ".join([str(c) for c in choices])


def validate(raw):
    """(config, bad keys) from a dict read from flash."""
    cfg = defaults()
    bad = []
    for key in raw:
        if key not in BY_KEY:
            continue
        try:
            cfg[key] = check(key, raw[key])
        except ValueError:
            bad.append(key)
    return cfg, bad


class Config:
    """The loaded config (`values`) and why it fell back, if it did (`fallback`)."""

    def __init__(self, values, fallback=None, path=PATH):
        self.values = values
        self.fallback = fallback
        self.never_saved = False  # no config file at all: a board never provisioned
        self.path = path

    def __getitem__(self, key):
        return self.values[key]

    def masked(self, key=None):
        """A copy for echoing back: secrets shown as "***"."""
        out = {}
        for row in SCHEMA:
            k = row[0]
            if key is not None and k != key:
                continue
            v = self.values[k]
            out[k] = MASK if row[4] & SECRET and v != "" else v
        return out

    def update(self, changes):
        """Check every change first, then apply them all and save.

        Returns the keys that need a restart. Raises ValueError (nothing applied)
        or OSError (applied in memory, not saved).
        """
        checked = {}
        for key in changes:
            checked[key] = check(key, changes[key])
        restart = []
        for key in checked:
            if BY_KEY[key][4] & RESTART and self.values[key] != checked[key]:
                restart.append(key)
            self.values[key] = checked[key]
        save(self.values, self.path)
        self.fallback = None
        return restart


def save(values, path=PATH):
    store.write(path, KEY, values)


def load(path=PATH):
    """A Config from flash by store's recovery rule; never raises for bad content."""
    try:
        parts, from_tmp = store.load(path, KEY)
    except store.StoreError as exc:
        cfg = Config(defaults(), "%s: running on defaults" % store.describe(path, exc.reason), path)
        cfg.never_saved = exc.reason == "missing"
        return cfg
    values, bad = validate(parts[KEY])
    notes = []
    if from_tmp is not None:
        notes.append(store.recovered(path, from_tmp))
    if bad:
        notes.append("bad values in %s for %s: those keys on defaults" % (path, ", ".join(sorted(bad))))
    return Config(values, "; ".join(notes) if notes else None, path)
