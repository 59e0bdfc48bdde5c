"""The nodes' signing keys on the host: one JSON file that only its owner can read.

Where: `--keystore PATH`, else env `CITYNODE_KEYSTORE`, else
`$XDG_DATA_HOME/citynode/keys.json` (`~/.local/share/citynode/keys.json`).
Not in the inventory: inventory exports are shared, keys never are.

    {"version": 1, "nodes": {"7": {"key": "<64 hex digits>", "created": "2026-12-06T23:40:00Z"}}}

The file is written to a temp file with mode 0600 and renamed; a keystore that
others can read is refused, as ssh refuses a readable private key. Keys are
never printed: what leaves this module for display is `fingerprint(key)`.
"""

import datetime
import hashlib
import json
import os
import secrets
import stat

from citynode.errors import CitynodeError
from citynode.paths import chosen_file, data_file
from citynode_protocol.auth import KEY_SIZE, Signer

ENV = "CITYNODE_KEYSTORE"
VERSION = 1


def default_path():
    return data_file("keys.json")


def resolve_path(arg=None):
    return chosen_file(arg, ENV, "keys.json")


def add_argument(parser):
    parser.add_argument("--keystore", metavar="PATH", help="node keys file (default: $%s or %s)" % (ENV, default_path()))


def fingerprint(key):
    """What may be shown of a key: 8 hex digits of its SHA-256."""
    return hashlib.sha256(key).hexdigest()[:8]


class KeystoreError(CitynodeError):
    pass


class Keystore:
    def __init__(self, path=None):
        self.path = resolve_path(path)
        self._stamp = self._file_stamp()
        self._nodes = self._load()

    def _file_stamp(self):
        try:
            st = os.stat(self.path)
        except OSError:
            return None
        return st.st_ino, st.st_mtime_ns, st.st_size

    def reload_if_changed(self):
        """Read the file again if it changed since it was read (another command made or replaced
        a key while this one runs): True when it did. KeystoreError keeps the keys as they were."""
        stamp = self._file_stamp()
        if stamp == self._stamp:
            return False
        nodes = self._load()
        self._nodes, self._stamp = nodes, stamp
        return True

    def _load(self):
        try:
            st = os.stat(self.path)
        except FileNotFoundError:
            return {}
        except OSError as exc:
            raise KeystoreError("keystore %s: %s" % (self.path, exc.strerror or exc)) from None
        if not stat.S_ISREG(st.st_mode):
            raise KeystoreError("keystore %s is not a file" % self.path)
        if st.st_mode & 0o077:
            raise KeystoreError("keystore %s can be read by others (mode %o): run chmod 600 %s"
                                % (self.path, st.st_mode & 0o777, self.path))
        try:
            doc = json.loads(self.path.read_text())
        except (OSError, UnicodeError) as exc:
            raise KeystoreError("keystore %s unreadable: %s" % (self.path, exc)) from None
        except ValueError:
            raise KeystoreError("keystore %s is not valid JSON" % self.path) from None
        if not isinstance(doc, dict) or doc.get("version") != VERSION or not isinstance(doc.get("nodes"), dict):
            raise KeystoreError("keystore %s: not a version-%d citynode keystore" % (self.path, VERSION))
        nodes = {}
        for text, entry in doc["nodes"].items():
            try:
                node_id = int(text)
                key = bytes.fromhex(entry["key"])
            except (ValueError, TypeError, KeyError):
                raise KeystoreError("keystore %s: the entry of node %r is damaged" % (self.path, text)) from None
            if len(key) != KEY_SIZE or not 0 <= node_id <= 0xFFFF:
                raise KeystoreError("keystore %s: the entry of node %r is damaged" % (self.path, text))
            nodes[node_id] = dict(entry, key=key)
        return nodes

    def __contains__(self, node_id):
        return node_id in self._nodes

    def node_ids(self):
        return sorted(self._nodes)

    def key(self, node_id):
        entry = self._nodes.get(node_id)
        return entry["key"] if entry else None

    def signer(self, node_id):
        key = self.key(node_id)
        return Signer(key) if key is not None else None

    def new_key(self, node_id, replace=False):
        """A fresh random key for node_id, saved at once; the existing one unless replace."""
        if node_id in self._nodes and not replace:
            return self._nodes[node_id]["key"]
        key = secrets.token_bytes(KEY_SIZE)
        now = datetime.datetime.now(datetime.timezone.utc).strftime("%Y-%m-%dT%H:%M:%SZ")
        self._nodes[node_id] = {"key": key, "created": now}
        self.save()
        return key

    def new_keys(self, node_ids):
        """Fresh random keys for those of node_ids that have none, saved once (a simulated fleet)."""
        now = datetime.datetime.now(datetime.timezone.utc).strftime("%Y-%m-%dT%H:%M:%SZ")
        added = [n for n in node_ids if n not in self._nodes]
        for node_id in added:
            self._nodes[node_id] = {"key": secrets.token_bytes(KEY_SIZE), "created": now}
        if added:
            self.save()
        return len(added)

    def remove(self, node_id):
        if self._nodes.pop(node_id, None) is not None:
            self.save()

    def save(self):
        doc = {"version": VERSION, "nodes": {str(n): dict(e, key=e["key"].hex()) for n, e in sorted(self._nodes.items())}}
        folder = self.path.parent
        try:
            folder.mkdir(parents=True, exist_ok=True, mode=0o700)
            tmp = folder / (".%s.%d.tmp" % (self.path.name, os.getpid()))
            fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
            try:
                os.fchmod(fd, 0o600)
                os.write(fd, (json.dumps(doc, indent=1, sort_keys=True) + "\n").encode())
                os.fsync(fd)
            finally:
                os.close(fd)
            os.replace(tmp, self.path)
            self._stamp = self._file_stamp()
        except OSError as exc:
            raise KeystoreError("cannot write keystore %s: %s" % (self.path, exc.strerror or exc)) from None
