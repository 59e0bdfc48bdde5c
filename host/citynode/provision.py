"""Write a node's config through the app: node id, site, sampling and uplink settings.

The key table is the firmware's own (`citynode_fw.config.SCHEMA`), loaded from
the firmware folder, so host and node check values the same way and the host
refuses a bad value before anything is sent.

Secrets (keys flagged SECRET, e.g. `wifi_password`) are never echoed, printed or
logged: they come from a file or an environment variable, never from the
command line; every message that could carry one is scrubbed; reports show
"***". They do travel to the node, inside the armoured command line.
"""

import hashlib
import importlib
import json
import os
import sys
import time

from citynode.errors import CitynodeError, DeviceError, TransportError, UsageError

MASK = "***"
SECRET_ENV = {"wifi_password": "CITYNODE_WIFI_PASSWORD"}

def firmware_module(name):
    """A module of the node's firmware (citynode_fw.<name>), imported under CPython: the
    config table and the checked-file format are plain Python, shared rather than copied."""
    full = "citynode_fw." + name
    if full in sys.modules:
        return sys.modules[full]
    from citynode import paths

    root = str(paths.firmware_root())
    added = root not in sys.path
    if added:
        sys.path.insert(0, root)
    try:
        return importlib.import_module(full)
    except ImportError as exc:
        raise CitynodeError("cannot load the node's %s from %s: %s" % (full, root, exc))
    finally:
        if added:
            sys.path.remove(root)


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
    else:
        for key, env in SECRET_ENV.items():
            if os.environ.get(env) and key not in values:
                values[key] = os.environ[env]
    if node_id is not None:
        values["node_id"] = node_id
    return check_values(values)


# -- on the node ------------------------------------------------------------------------


def wait_for_app(port, timeout=20.0, baudrate=115200, client_factory=None):
    """A NodeClient once the app answers `info` (after a deploy or reboot it is still booting).

    One session while the node answers nothing: the client resends the same
    line while the app boots, and a late answer to any of them counts (a new
    session would flush it away on opening the port)."""
    from citynode import serial_link

    factory = client_factory or (lambda: serial_link.NodeClient(port, baudrate))
    deadline = time.monotonic() + timeout
    last = None
    while True:
        client = factory()
        try:
            info = client.command("info", timeout=max(0.5, deadline - time.monotonic()))
            return client, info
        except TransportError as exc:
            last = exc
            client.close()
            if "busy" in str(exc) or "no such port" in str(exc) or "permission" in str(exc):
                raise
        if time.monotonic() >= deadline:
            raise TransportError("%s (waited %.0f s for the app to answer)" % (last, timeout))
        time.sleep(0.3)


def provision(port, values, progress=None, timeout=20.0, baudrate=115200):
    """Write `values` to the node's config; reboot it when a key needs it. Returns the node's info."""
    progress = progress or (lambda *a, **k: None)
    progress("provision")
    client, _info = wait_for_app(port, timeout, baudrate)
    try:
        try:
            reply = client.command("config_set", values=values)
        except DeviceError as exc:
            raise DeviceError(scrub(str(exc), values), exc.code)
        need_restart = reply.get("restart_required") or []
        if need_restart:
            progress("restart")
            try:
                client.command("reboot")
            except TransportError:
                pass  # it may go before the reply leaves
    finally:
        client.close()
    if need_restart:
        time.sleep(0.3)
    client, info = wait_for_app(port, timeout, baudrate)
    client.close()
    return info


# -- backup and restore of the node's own files -------------------------------------------

# (file on the node, key inside it): the node's config and calibration, never part of a deploy
NODE_FILES = (("config.json", "config"), ("calib.json", "calib"), ("calib.prev.json", "calib"))
BACKUP_MANIFEST = "manifest.json"
BACKUP_FORMAT = 1

_READ = r"""
import os,binascii,hashlib
def _rb(p):
 try:
  with open(p,'rb') as f:d=f.read()
 except OSError:return None
 return (binascii.hexlify(hashlib.sha256(d).digest()).decode(),binascii.b2a_base64(d).decode().strip())
print(repr([_rb(p) for p in %r]))
"""

# through the node's own tmp name: a cut between the FAT remove and the rename
# leaves <name>.tmp, which the node's store loads and moves into place
_WRITE = r"""
import os,binascii,hashlib
def _wf(p,s):
 t=p+'.tmp'
 with open(t,'wb') as f:f.write(binascii.a2b_base64(s))
 try:os.rename(t,p)
 except OSError:
  os.remove(p);os.rename(t,p)
 with open(p,'rb') as f:return binascii.hexlify(hashlib.sha256(f.read()).digest()).decode()
"""


def check_node_file(name, key, data):
    """'ok', or why the firmware would not load this file (bad JSON, checksum mismatch)."""
    store = firmware_module("store")
    try:
        store.parse(data.decode("utf-8"), key)
    except UnicodeDecodeError:
        return "not text"
    except ValueError as exc:  # store.StoreError
        return getattr(exc, "reason", None) or str(exc)
    return "ok"


def read_node_files(transport):
    """{name: bytes} of the node's config and calibration files that exist, SHA-256 checked."""
    import ast
    import base64

    from citynode.deploy import _exec

    names = [n for n, _k in NODE_FILES]
    out = _exec(transport, _READ % (names,), what="backup")
    try:
        got = ast.literal_eval(out.decode("utf-8", "replace").strip())
    except (ValueError, SyntaxError):
        raise DeviceError("node gave an unreadable answer during backup")
    files = {}
    for name, item in zip(names, got):
        if item is None:
            continue
        digest, b64 = item
        data = base64.b64decode(b64)
        if hashlib.sha256(data).hexdigest() != digest:
            raise TransportError("%s changed in transit (SHA-256 differs); retry the backup" % name)
        files[name] = data
    return files


def write_node_files(transport, files):
    """Write {name: bytes} on the node (temp name, then rename); check each by SHA-256 read back."""
    import base64

    from citynode.deploy import _exec

    _exec(transport, _WRITE, what="restore")
    for name, data in files.items():
        if name not in dict(NODE_FILES):
            raise CitynodeError("refusing to write %s: a restore writes only %s"
                                % (name, ", ".join(n for n, _k in NODE_FILES)))
        b64 = base64.b64encode(data).decode()
        out = _exec(transport, "print(_wf(%r,%r))" % (name, b64), what="restore")
        if out.decode("utf-8", "replace").strip() != hashlib.sha256(data).hexdigest():
            raise DeviceError("%s did not read back as written; run the restore again" % name)


def save_backup(folder, files, identity):
    """Write the files and a manifest (SHA-256 of each) into folder, atomically: a temp
    folder renamed when complete. Files are readable by the owner only (the config holds secrets)."""
    import shutil
    import tempfile
    from pathlib import Path

    folder = Path(folder)
    if folder.exists() and any(folder.iterdir()):
        raise UsageError("%s exists and is not empty; give a new folder" % folder)
    parent = folder.resolve().parent
    try:
        parent.mkdir(parents=True, exist_ok=True)
        tmp = Path(tempfile.mkdtemp(prefix=".backup-", dir=str(parent)))
    except OSError as exc:
        raise UsageError("cannot write into %s: %s" % (parent, exc.strerror or exc))
    try:
        manifest = {"format": BACKUP_FORMAT, "created": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()),
                    "node": identity, "files": {}}
        keys = dict(NODE_FILES)
        for name, data in sorted(files.items()):
            path = tmp / name
            with open(os.open(str(path), os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600), "wb") as f:
                f.write(data)
            manifest["files"][name] = {"sha256": hashlib.sha256(data).hexdigest(), "size": len(data),
                                       "status": check_node_file(name, keys[name], data)}
        with open(os.open(str(tmp / BACKUP_MANIFEST), os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600), "w") as f:
            json.dump(manifest, f, indent=2, sort_keys=True)
            f.write("\n")
        if folder.exists():
            folder.rmdir()
        os.rename(str(tmp), str(folder))
    except BaseException:
        shutil.rmtree(str(tmp), ignore_errors=True)
        raise
    return manifest


def load_backup(folder):
    """(manifest, {name: bytes}) from a backup folder, every file checked against its SHA-256."""
    from pathlib import Path

    folder = Path(folder)
    try:
        with open(folder / BACKUP_MANIFEST, encoding="utf-8") as f:
            manifest = json.load(f)
    except FileNotFoundError:
        raise UsageError("%s: no %s: not a citynode backup folder" % (folder, BACKUP_MANIFEST))
    except (OSError, ValueError) as exc:
        raise UsageError("%s: unreadable %s: %s" % (folder, BACKUP_MANIFEST, exc))
    if not isinstance(manifest, dict) or manifest.get("format") != BACKUP_FORMAT or \
            not isinstance(manifest.get("files"), dict):
        raise UsageError("%s: %s is not a citynode backup manifest (format %s)"
                         % (folder, BACKUP_MANIFEST, BACKUP_FORMAT))
    keys = dict(NODE_FILES)
    files = {}
    for name, meta in sorted(manifest["files"].items()):
        if name not in keys:
            raise UsageError("%s: the manifest lists %s, which a restore never writes" % (folder, name))
        try:
            data = (folder / name).read_bytes()
        except OSError as exc:
            raise UsageError("%s: %s: %s" % (folder, name, exc.strerror or exc))
        if hashlib.sha256(data).hexdigest() != meta.get("sha256"):
            raise UsageError("%s: %s does not match its SHA-256 in the manifest: the backup is damaged"
                             % (folder, name))
        status = check_node_file(name, keys[name], data)
        if status != "ok":
            raise UsageError("%s: %s would not load on the node (%s)" % (folder, name, status))
        files[name] = data
    if "config.json" not in files:
        raise UsageError("%s: the backup holds no config.json" % folder)
    return manifest, files


def node_identity(files):
    """node_id and site from a config.json's bytes (None when unreadable)."""
    data = files.get("config.json")
    ident = {"node_id": None, "site": None, "calibration_id": None}
    if data is not None:
        try:
            cfg = firmware_module("store").parse(data.decode("utf-8"), "config")
            ident["node_id"], ident["site"] = cfg.get("node_id"), cfg.get("site")
        except (ValueError, UnicodeDecodeError):
            pass
    data = files.get("calib.json")
    if data is not None:
        try:
            cal = firmware_module("store").parse(data.decode("utf-8"), "calib")
            ident["calibration_id"] = cal.get("id")
        except (ValueError, UnicodeDecodeError):
            pass
    return ident


def sync_inventory(port, inventory_path=None):
    """After a config change or a restore: the inventory's site and config hash follow the node
    (when its node id is recorded). Best effort: a node that does not answer leaves it as it was."""
    from citynode.inventory import Inventory

    try:
        client, info = wait_for_app(port, timeout=15)
    except CitynodeError:
        return False
    try:
        cfg = client.command("config_get").get("config")
    except CitynodeError:
        return False
    finally:
        client.close()
    node_id = info.get("node_id")
    if not isinstance(node_id, int) or not isinstance(cfg, dict):
        return False
    inv = Inventory(inventory_path)
    if inv.get(node_id) is None:
        return False
    return inv.update(node_id, site=cfg.get("site"), config_hash=config_hash(cfg))
