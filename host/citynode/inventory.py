"""The node inventory: one SQLite file, one row per node id, plus a log of every run.

Where: `--inventory PATH`, else env `CITYNODE_INVENTORY`, else
`$XDG_DATA_HOME/citynode/inventory.sqlite` (`~/.local/share/citynode/...`).

Two tables:

- `nodes`: the current record of each node id (`FIELDS`). A node id is claimed
  once a node has been provisioned with it; `record()` refuses an id that is
  already recorded unless `force`, or unless the old record is a failed run of
  the same board, which a technician retries after a fix. The same board is
  the same MAC; a board that reports none (a virtual node) is known by its port.
  One board holds one id: recording a MAC under a new id drops its old record.
- `runs`: every recorded flash/verify/restore run, pass or fail, never rewritten.

Writes are single transactions (`BEGIN IMMEDIATE`), so parallel flashing
threads or processes never see half a record, and the check-then-write of
`record(..., force=False)` cannot race another writer.
"""

import csv
import io
import json
import sqlite3
import time

from citynode.errors import CitynodeError, UsageError
from citynode.paths import chosen_file, data_file

ENV = "CITYNODE_INVENTORY"

# (column, SQL type, header for tables and exports)
COLUMNS = (
    ("node_id", "INTEGER PRIMARY KEY", "node id"),
    ("mac", "TEXT", "MAC"),
    ("chip", "TEXT", "chip"),
    ("micropython", "TEXT", "MicroPython"),
    ("app_version", "TEXT", "app version"),
    ("app_hash", "TEXT", "app hash"),
    ("config_hash", "TEXT", "config hash"),
    ("calibration", "TEXT", "calibration"),
    ("sensors", "TEXT", "sensors"),
    ("site", "TEXT", "site"),
    ("recorded_at", "TEXT", "recorded (UTC)"),
    ("result", "TEXT", "result"),
    ("port", "TEXT", "port"),
    ("detail", "TEXT", "detail"),
)
FIELDS = tuple(c[0] for c in COLUMNS)
RESULTS = ("pass", "fail")
_SCHEMA_VERSION = 2
_ADDED = {2: ("sensors",)}  # schema version -> columns it added to both tables


def default_path():
    return data_file("inventory.sqlite")


def resolve_path(arg=None):
    """The inventory file: the --inventory argument, else $CITYNODE_INVENTORY, else the default."""
    return chosen_file(arg, ENV, "inventory.sqlite")


def add_argument(parser):
    """`--inventory PATH` for any command that reads or writes the inventory."""
    parser.add_argument(
        "--inventory", metavar="PATH",
        help="inventory file (default: $%s, else %s)" % (ENV, default_path()),
    )


def utc_iso(seconds=None):
    """A wall-clock time (now by default) as the inventory and every report write it: 2026-12-06T23:40:00Z."""
    return time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime(seconds))


def utc_now():
    return utc_iso()


class DuplicateNode(CitynodeError):
    """The node id is already recorded for another board (or passed); --force replaces it."""

    exit_code = 3


class Inventory:
    """The inventory file. Each method opens its own connection: safe to share between threads."""

    def __init__(self, path=None):
        self.path = resolve_path(path)

    # -- plumbing -----------------------------------------------------------

    def _connect(self):
        try:
            self.path.parent.mkdir(parents=True, exist_ok=True)
        except OSError as exc:
            raise CitynodeError("inventory %s: cannot create its folder: %s" % (self.path, exc.strerror or exc))
        try:
            db = sqlite3.connect(str(self.path), timeout=30, isolation_level=None)
            db.row_factory = sqlite3.Row
            self._ensure_schema(db)
        except sqlite3.DatabaseError as exc:
            raise CitynodeError("inventory %s: not a usable SQLite file: %s" % (self.path, exc))
        return db

    @staticmethod
    def _ensure_schema(db):
        version = db.execute("PRAGMA user_version").fetchone()[0]
        if version == _SCHEMA_VERSION:
            return
        if version > _SCHEMA_VERSION:
            raise sqlite3.DatabaseError("written by a newer citynode (schema %d)" % version)
        if version:
            db.execute("BEGIN IMMEDIATE")
            try:
                kinds = dict((name, kind) for name, kind, _ in COLUMNS)
                version = db.execute("PRAGMA user_version").fetchone()[0]  # another writer may have been first
                for v in range(version + 1, _SCHEMA_VERSION + 1):
                    for name in _ADDED.get(v, ()):
                        for table in ("nodes", "runs"):
                            db.execute("ALTER TABLE %s ADD COLUMN %s %s" % (table, name, kinds[name]))
                db.execute("PRAGMA user_version = %d" % _SCHEMA_VERSION)
                db.execute("COMMIT")
            except BaseException:
                db.execute("ROLLBACK")
                raise
            return
        cols = ", ".join("%s %s" % (name, kind) for name, kind, _ in COLUMNS)
        run_cols = ", ".join("%s %s" % (name, "INTEGER" if name == "node_id" else kind)
                             for name, kind, _ in COLUMNS)
        db.execute("BEGIN IMMEDIATE")
        try:
            db.execute("CREATE TABLE IF NOT EXISTS nodes (%s)" % cols)
            db.execute("CREATE TABLE IF NOT EXISTS runs (run INTEGER PRIMARY KEY AUTOINCREMENT, %s)" % run_cols)
            db.execute("PRAGMA user_version = %d" % _SCHEMA_VERSION)
            db.execute("COMMIT")
        except BaseException:
            db.execute("ROLLBACK")
            raise

    def _run(self, fn):
        db = self._connect()
        try:
            return fn(db)
        except sqlite3.OperationalError as exc:
            raise CitynodeError("inventory %s: %s" % (self.path, exc))
        finally:
            db.close()

    # -- reading ------------------------------------------------------------

    def get(self, node_id):
        """The record of node_id as a dict, or None."""
        def fn(db):
            row = db.execute("SELECT * FROM nodes WHERE node_id = ?", (int(node_id),)).fetchone()
            return dict(row) if row is not None else None
        return self._run(fn)

    def nodes(self):
        """Every node record, by node id."""
        return self._run(lambda db: [dict(r) for r in db.execute("SELECT * FROM nodes ORDER BY node_id")])

    def runs(self, node_id=None):
        """The run log, oldest first (of one node id, if given)."""
        def fn(db):
            if node_id is None:
                rows = db.execute("SELECT * FROM runs ORDER BY run")
            else:
                rows = db.execute("SELECT * FROM runs WHERE node_id = ? ORDER BY run", (int(node_id),))
            return [dict(r) for r in rows]
        return self._run(fn)

    # -- the duplicate rule ---------------------------------------------------

    @staticmethod
    def same_board(existing, mac=None, port=None):
        """Whether a record is of this board: the same MAC, or (neither knowing a MAC) the same port."""
        if mac or existing.get("mac"):
            return bool(mac) and existing.get("mac") == mac
        return bool(port) and existing.get("port") == port

    @classmethod
    def conflict(cls, existing, mac=None, port=None):
        """Why a new run may not take over `existing` (a record), or None when it may.

        A failed record of the same board is free to retry.
        """
        if existing is None:
            return None
        if existing.get("result") == "fail" and cls.same_board(existing, mac, port):
            return None
        who = "MAC %s" % existing["mac"] if existing.get("mac") else "port %s" % (existing.get("port") or "?")
        return "node id %d is already in the inventory (%s, %s, recorded %s); use --force to replace it" % (
            existing["node_id"], who, existing.get("result") or "?", existing.get("recorded_at") or "?")

    def check_free(self, node_id, mac=None, force=False, port=None):
        """Raise DuplicateNode when node_id may not be (re)used by this board."""
        if force:
            return
        reason = self.conflict(self.get(node_id), mac, port)
        if reason:
            raise DuplicateNode(reason)

    # -- writing ------------------------------------------------------------

    def record(self, rec, force=False):
        """Write one node record (a dict with FIELDS) and log it in `runs`. Atomic.

        Without force, refuses (DuplicateNode) when the id is held as conflict() says.
        """
        rec = self._clean(rec)

        def fn(db):
            db.execute("BEGIN IMMEDIATE")
            try:
                if not force:
                    row = db.execute("SELECT * FROM nodes WHERE node_id = ?", (rec["node_id"],)).fetchone()
                    reason = self.conflict(dict(row) if row is not None else None, rec.get("mac"), rec.get("port"))
                    if reason:
                        raise DuplicateNode(reason)
                if rec.get("mac"):  # one board, one id: the board's older record under another id goes
                    db.execute("DELETE FROM nodes WHERE mac = ? AND node_id != ?", (rec["mac"], rec["node_id"]))
                names = ", ".join(FIELDS)
                marks = ", ".join("?" for _ in FIELDS)
                values = [rec.get(f) for f in FIELDS]
                db.execute("INSERT OR REPLACE INTO nodes (%s) VALUES (%s)" % (names, marks), values)
                db.execute("INSERT INTO runs (%s) VALUES (%s)" % (names, marks), values)
                db.execute("COMMIT")
            except BaseException:
                db.execute("ROLLBACK")
                raise
            return rec
        return self._run(fn)

    def log_run(self, rec):
        """Log a run in `runs` only (a run that never claimed its id, e.g. refused or unreachable)."""
        rec = self._clean(rec)

        def fn(db):
            names = ", ".join(FIELDS)
            marks = ", ".join("?" for _ in FIELDS)
            db.execute("INSERT INTO runs (%s) VALUES (%s)" % (names, marks), [rec.get(f) for f in FIELDS])
        return self._run(fn)

    def holder(self, mac):
        """The record that holds this board's MAC, or None."""
        if not mac:
            return None

        def fn(db):
            row = db.execute("SELECT * FROM nodes WHERE mac = ?", (mac,)).fetchone()
            return dict(row) if row is not None else None
        return self._run(fn)

    def update(self, node_id, **fields):
        """Change some fields of a record (not logged as a run): keeps site and config hash in step
        when `citynode config set` changes the node. False when the id is not recorded."""
        bad = set(fields) - (set(FIELDS) - {"node_id"})
        if bad:
            raise ValueError("unknown inventory fields: %s" % ", ".join(sorted(bad)))
        if not fields:
            return False

        def fn(db):
            sets = ", ".join("%s = ?" % f for f in fields)
            cur = db.execute("UPDATE nodes SET %s WHERE node_id = ?" % sets, list(fields.values()) + [int(node_id)])
            return cur.rowcount > 0
        return self._run(fn)

    def remove(self, node_id):
        """Forget node_id (the run log keeps its history). False when it was not there."""
        def fn(db):
            return db.execute("DELETE FROM nodes WHERE node_id = ?", (int(node_id),)).rowcount > 0
        return self._run(fn)

    @staticmethod
    def _clean(rec):
        unknown = set(rec) - set(FIELDS)
        if unknown:
            raise ValueError("unknown inventory fields: %s" % ", ".join(sorted(unknown)))
        out = {f: rec.get(f) for f in FIELDS}
        try:
            out["node_id"] = int(out["node_id"])
        except (TypeError, ValueError):
            raise UsageError("inventory record without a node id")
        if out["result"] not in RESULTS:
            raise ValueError("result must be one of %s, not %r" % (RESULTS, out["result"]))
        if not out["recorded_at"]:
            out["recorded_at"] = utc_now()
        for f in FIELDS:
            if isinstance(out[f], (dict, list)):
                out[f] = json.dumps(out[f], sort_keys=True)
        return out


def calibration_words(value):
    """The calibration column in words: "id 100 2026-01-01" for the JSON a calibration report
    stores there, the text itself otherwise."""
    if isinstance(value, str) and value.startswith("{"):
        try:
            doc = json.loads(value)
        except ValueError:
            return value
        if isinstance(doc, dict):
            words = "id %s" % doc.get("id") if doc.get("id") is not None else "calibrated"
            return words + (" %s" % doc["date"] if doc.get("date") else "")
    return value


# -- exports -------------------------------------------------------------------


def to_csv(records):
    buf = io.StringIO()
    writer = csv.DictWriter(buf, fieldnames=FIELDS, lineterminator="\n")
    writer.writeheader()
    for rec in records:
        writer.writerow({f: ("" if rec.get(f) is None else rec.get(f)) for f in FIELDS})
    return buf.getvalue()


def to_json(records):
    return json.dumps([{f: rec.get(f) for f in FIELDS} for rec in records], indent=2) + "\n"


EXPORTERS = {"csv": to_csv, "json": to_json}
