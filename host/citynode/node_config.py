"""The node's config keys on the host: the firmware's own table (`citynode_fw.config.SCHEMA`),
values parsed from the command line and checked as the node checks them, secrets kept out
of sight, and the config's hash.

Secrets (keys flagged SECRET, e.g. `wifi_password`) are never echoed, printed or
logged: they come from a file or an environment variable, never from the
command line; every message that could carry one is scrubbed; reports show
"***". They do travel to the node, inside the armoured command line.
"""

import hashlib
import json
import os

from citynode.errors import UsageError
from citynode.node_code import firmware_module

MASK = "***"
SECRET_ENV = {"wifi_password": "CITYNODE_WIFI_PASSWORD", "mqtt_password": "CITYNODE_MQTT_PASSWORD"}


def config_module():
    return firmware_module("config")


def schema():
    """{key: (key, kind, default, allowed, flags)}."""
    return dict(config_module().BY_KEY)


def secret_keys():
    mod = config_module()
    return {row[0] for row in mod.SCHEMA if row[4] & mod.SECRET}


def restart_keys():
    mod = config_module()
    return {row[0] for row in mod.SCHEMA if row[4] & mod.RESTART}


def parse_value(key, text):
    """A command-line string as the key's kind ("200" -> 200, "true" -> True), checked."""
    rows = schema()
    row = rows.get(key)
    if row is None:
        raise UsageError("unknown config key %r; keys: %s" % (key, ", ".join(sorted(rows))))
    kind, allowed = row[1], row[3]
    value = text
    if kind == "bool":
        low = text.strip().lower()
        if low in ("1", "true", "yes", "on"):
            value = True
        elif low in ("0", "false", "no", "off"):
            value = False
        else:
            raise UsageError("%s must be true or false" % key)
    elif kind in ("int", "num"):
        value = _number(key, text)
    elif kind == "enum":
        for choice in allowed:
            if str(choice) == text.strip():
                value = choice
                break
        else:
            raise UsageError("%s must be one of %s" % (key, ", ".join(str(c) for c in allowed)))
    return check_value(key, value)


def _number(key, text):
    try:
        return int(text)
    except ValueError:
        pass
    try:
        return float(text)
    except ValueError:
        raise UsageError("%s must be a number" % key)


def check_value(key, value):
    """The value checked against the firmware's table; the message never shows a secret."""
    try:
        return config_module().check(key, value)
    except ValueError as exc:
        if key in secret_keys():
            raise UsageError("%s: bad value (not shown: it is secret)" % key)
        raise UsageError(str(exc))


def check_values(values):
    return {k: check_value(k, v) for k, v in values.items()}


def scrub(text, values):
    """text with every secret value in `values` replaced by ***."""
    for key in secret_keys():
        v = values.get(key)
        if isinstance(v, str) and v:
            text = text.replace(v, MASK)
    return text


def masked(values):
    secrets = secret_keys()
    return {k: (MASK if k in secrets and v not in ("", None) else v) for k, v in values.items()}


def config_hash(config):
    """SHA-256 (16 hex digits) of the config as the node reports it (secrets masked)."""
    text = json.dumps(config, sort_keys=True, separators=(",", ":"))
    return hashlib.sha256(text.encode()).hexdigest()[:16]


# -- assembling the values to write ---------------------------------------------------


def load_profile(path):
    """A JSON object of config keys (sampling and uplink settings of a deployment)."""
    try:
        with open(path, encoding="utf-8") as f:
            doc = json.load(f)
    except OSError as exc:
        raise UsageError("profile %s: %s" % (path, exc.strerror or exc))
    except ValueError as exc:
        raise UsageError("profile %s: not JSON: %s" % (path, exc))
    if not isinstance(doc, dict):
        raise UsageError("profile %s: must be a JSON object of config keys" % path)
    rows = schema()
    for key in doc:
        if key not in rows:
            raise UsageError("profile %s: unknown config key %r" % (path, key))
        if key == "node_id":
            raise UsageError("profile %s: node_id is given with --node-id, not in a profile" % path)
    return doc


def read_secret_file(path):
    try:
        with open(path, encoding="utf-8") as f:
            return f.read().rstrip("\r\n")
    except OSError as exc:
        raise UsageError("secret file %s: %s" % (path, exc.strerror or exc))


def values_from_args(args, node_id=None):
    """The config to write, from --profile, --set, --site, --wifi-* and the environment."""
    values = {}
    if getattr(args, "profile", None):
        values.update(load_profile(args.profile))
    for item in getattr(args, "set", None) or []:
        if "=" not in item:
            raise UsageError("--set %s: expected KEY=VALUE" % item)
        key, text = item.split("=", 1)
        key = key.strip()
        if key in secret_keys():
            raise UsageError("--set %s=...: secrets are not taken on the command line (they end up in the shell "
                             "history); use --wifi-password-file or $%s" % (key, SECRET_ENV.get(key, "?")))
        if key == "node_id":
            raise UsageError("--set node_id: use --node-id")
        values[key] = parse_value(key, text)
    if getattr(args, "site", None) is not None:
        values["site"] = args.site
    if getattr(args, "wifi_ssid", None) is not None:
        values["wifi_ssid"] = args.wifi_ssid
    if getattr(args, "wifi_password_file", None):
        values["wifi_password"] = read_secret_file(args.wifi_password_file)
    if getattr(args, "mqtt_password_file", None):
        values["mqtt_password"] = read_secret_file(args.mqtt_password_file)
    for key, env in SECRET_ENV.items():
        if os.environ.get(env) and key not in values:
            values[key] = os.environ[env]
    if node_id is not None:
        values["node_id"] = node_id
    return check_values(values)


def with_node_key(values, node_id, keystore_path=None, node_has_key=False):
    """values, with a node_key from the keystore when they turn the network uplink on:
    the node's existing key if the keystore has one, else a new one, kept there first.
    The key is never shown; the keystore file is the host's only copy."""
    if values.get("uplink") != "wifi" or values.get("node_key") or node_has_key:
        return values
    from citynode.keystore import Keystore

    key = Keystore(keystore_path).new_key(node_id)
    return dict(values, node_key=key.hex())
