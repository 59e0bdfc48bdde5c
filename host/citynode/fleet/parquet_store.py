"""The embedded default store: Parquet files by table and day in one folder, read with DuckDB.

    <folder>/store.json                                  {"kind": "citynode-store", "schema_version": 1}
    <folder>/<table>/day=YYYY-MM-DD/part-<µs>-<pid>-<n>.parquet

A row's day is that of its `time`, or of `received` where `time` is null.
Every file is written whole (a hidden `.tmp`, fsync, rename), the `frames`
ledger file of a batch last: a batch whose ledger file is there is stored.
The ledger's keys are held in memory from the open on, so a re-delivered
frame's rows are dropped. Two processes may write one folder (two collectors),
and a crash may leave a batch's data files without its ledger file, to be
written again on re-delivery: so `query` keeps one row per key
(schema.KEYS) whatever the files hold. `compact` merges a day's part files
into one; `write` runs it on a partition past COMPACT_AFTER files.
`query_received`, `last_received` and `calibrations_first_seen` (what
`citynode fleet` asks) are DuckDB SQL over the files with the same dedupe.
"""

import json
import os
import threading
import time

import pyarrow as pa
import pyarrow.parquet as pq

from citynode.fleet import schema, stamps
from citynode.fleet.store import SCHEMA_VERSION, Store, StoreError, Written, check_columns, within

KIND = "citynode-store"
META = "store.json"
COMPACT_AFTER = 64  # part files in one day partition before `write` merges them
REREAD_S = 10.0  # a cached anchor or status is read from the files again after this
_US_PER_DAY = 86_400_000_000


class ParquetStore(Store):
    def __init__(self, folder, create=True):
        self.folder = os.path.abspath(folder)
        self.target = folder
        self._files = 0  # part files this process made: the <n> of their names
        # (node, boot) -> [seq, value, when read]: kept up by write(), read again after REREAD_S
        # (another collector on this folder may have stored a later one)
        self._anchors = {}
        self._statuses = {}
        self._db = None
        _open_folder(self.folder, folder, create)
        self._ledger = set()
        if self._has("frames"):
            self._ledger = set(self._sql("SELECT DISTINCT node_id, boot, seq FROM %s" % self._source("frames"), _rows))

    # -- writing --------------------------------------------------------------------

    def write(self, batch):
        tables = {name: _conform(name, t) for name, t in batch.tables.items()}
        written = Written()
        new = set()
        frames = tables.get("frames", schema.empty("frames"))
        first = []  # the first ledger row of each new frame
        for i, key in enumerate(_keys(frames)):
            if key in self._ledger or key in new:
                written.frames_duplicate += 1
                if key in self._ledger:
                    written.duplicates.append(key)
            else:
                new.add(key)
                first.append(i)
        written.frames_new = len(new)
        files = []
        for name, table in tables.items():
            if name == "frames" or not table.num_rows:
                continue
            kept = table.filter(pa.array([k in new for k in _keys(table)], pa.bool_()))
            files.append((name, kept))
            written.rows += kept.num_rows
        if batch.rejects is not None and batch.rejects.num_rows:
            files.append(("rejects", _conform("rejects", batch.rejects)))
            written.rejects = batch.rejects.num_rows
        if first:
            files.append(("frames", frames.take(pa.array(first, pa.int64()))))  # last: it says the batch is stored
        done, partitions = [], set()
        try:
            for name, table in files:
                for day, rows in _by_day(table):
                    partition = os.path.join(self.folder, name, "day=" + day)
                    done.append(self._write_file(partition, rows))
                    partitions.add((name, day))
        except OSError as exc:
            _remove(done)
            raise StoreError("%s: cannot write (%s)" % (self.target, exc.strerror or exc)) from None
        except BaseException:
            _remove(done)
            raise
        self._ledger |= new
        self._remember(tables, new)
        for name, day in partitions:
            if len(_parts(os.path.join(self.folder, name, "day=" + day))) > COMPACT_AFTER:
                try:
                    self.compact(name, day)
                except StoreError:  # the batch is stored; the next write tries again
                    pass
        return written

    def _write_file(self, partition, table):
        os.makedirs(partition, exist_ok=True)
        self._files += 1
        name = "part-%d-%d-%d.parquet" % (time.time_ns() // 1000, os.getpid(), self._files)
        path = os.path.join(partition, name)
        _write_atomic(path, table)
        return path

    def compact(self, table=None, day=None):
        """Merge each day's part files into one, keeping one row per key; returns files removed."""
        removed = 0
        for name in [table] if table else schema.TABLES:
            root = os.path.join(self.folder, name)
            days = [day] if day else [d[4:] for d in _listdir(root) if d.startswith("day=")]
            for d in days:
                partition = os.path.join(root, "day=" + d)
                _remove_stale_tmp(partition)
                parts = _parts(partition)
                if len(parts) < 2:
                    continue
                paths = [os.path.join(partition, p) for p in parts]
                try:
                    merged = self._sql("SELECT %s FROM read_parquet(%s, union_by_name=true)%s ORDER BY %s" % (
                        _columns(name), _sql_list(paths), _one_per_key(name), _order(name)), _arrow)
                except StoreError:  # another process compacted these meanwhile
                    continue
                try:
                    self._write_file(partition, _conform(name, merged))
                except OSError as exc:
                    raise StoreError("%s: cannot compact %s (%s)" % (self.target, partition, exc.strerror or exc)) from None
                _remove(paths)
                removed += len(paths)
        return removed

    def _remember(self, tables, new):
        """Keep the cached anchors and statuses up to date with the rows just written."""
        for name, cache, value in (("time", self._anchors, _anchor_of), ("status", self._statuses, _status_of)):
            table = tables.get(name)
            if table is None or not table.num_rows:
                continue
            for row in table.to_pylist():
                key = (row["node_id"], row["boot"])
                if key in cache and (key + (row["seq"],)) in new and (name != "time" or row["plausible"]):
                    entry = cache[key]
                    if entry[0] is None or row["seq"] > entry[0]:
                        entry[:2] = row["seq"], value(row)

    # -- reading ---------------------------------------------------------------------

    def query(self, table, start=None, end=None, nodes=None):
        if table not in schema.SCHEMAS:
            raise StoreError("no table %r in the store; tables: %s" % (table, ", ".join(schema.TABLES)))
        if not self._has(table):
            return schema.empty(table)
        when = "time" if "time" in schema.SCHEMAS[table].names else "received"
        window = []
        if start is not None:
            window += ["epoch_us(%s) >= %d" % (when, start), "day >= DATE '%s'" % _day(start)]
        if end is not None:
            window += ["epoch_us(%s) < %d" % (when, end), "day <= DATE '%s'" % _day(end)]
        stamped = table in stamps.STAMPED
        if window and stamped:  # a row without time may get it from an anchor stored later: read it too
            window = ["((%s) OR \"time\" IS NULL)" % " AND ".join(window)]
        where = window + _node_filter(nodes)
        sql = "SELECT %s FROM %s%s%s ORDER BY %s" % (
            _columns(table), self._source(table), " WHERE " + " AND ".join(where) if where else "", _one_per_key(table), _order(table))
        rows = _conform(table, self._sql(sql, _arrow))
        if stamped:
            rows = self._stamped(table, rows)
            if window:
                rows = within(rows, "time", start, end)
        return rows

    def _stamped(self, table, rows):
        """The rows with the stamps a collector left null filled in from the time and status
        tables (citynode.fleet.stamps): the files are never rewritten, so this is done at read."""
        todo = stamps.needs(table, rows)
        if not todo.any():
            return rows
        where = _node_filter(sorted(set(rows["node_id"].filter(pa.array(todo)).to_pylist())))
        anchors = self._read("time", ("node_id", "boot", "seq", "node_time_s", "utc_ms"),
                             where + ["plausible", "utc_ms IS NOT NULL", "node_time_s IS NOT NULL"])
        statuses = None if table == "frames" else self._read(
            "status", ("node_id", "boot", "seq", "calibration_id", "firmware"), where)
        return stamps.fill(table, rows, anchors, statuses, self._frame_times)

    def _frame_times(self, nodes, boots, seqs):
        """stamps.frame_times of the data rows of those nodes from the lowest of those seqs on."""
        where = _node_filter(sorted(set(nodes.tolist()))) + ["seq >= %d" % int(seqs.min())]
        parts = {}
        for name, has_age in stamps.FRAME_TIME.items():
            found = self._read(name, ("node_id", "boot", "seq", "node_time_s") + (("age_ms",) if has_age else ()), where)
            if found is not None:
                parts[name] = found
        return stamps.frame_times(parts)

    def _read(self, table, columns, where):
        """Those columns of a table's rows (not deduplicated: copies are the same rows), or None."""
        if not self._has(table):
            return None
        return self._sql("SELECT %s FROM %s%s" % (", ".join('"%s"' % c for c in columns), self._source(table),
                                                    " WHERE " + " AND ".join(where) if where else ""), _arrow)

    # What `citynode fleet` asks, in SQL over the files: only the columns asked for
    # are read, and DuckDB can skip row groups outside the window by their statistics.
    # (No day pruning here: a row's day is that of its `time`, which a node that
    # buffered its frames may have had days before they were received.)

    def query_received(self, table, start=None, end=None, nodes=None, columns=None):
        """See Store.query_received. One row per key: the first received in the window."""
        fields = check_columns(table, columns)
        if not self._has(table):
            return pa.schema(fields).empty_table()
        asked = fields
        if table in stamps.STAMPED and {"time", "calibration_id", "firmware"} & {f.name for f in fields}:
            # what filling in the stamps needs (see _stamped)
            names = {f.name for f in fields}
            fields = fields + [f for f in schema.SCHEMAS[table] if f.name not in names and f.name in (
                "node_id", "boot", "seq", "time", "node_time_s", "calibration_id", "firmware")]
        where = _node_filter(nodes)
        if start is not None:
            where.append("received >= make_timestamp(%d)::TIMESTAMPTZ" % start)
        if end is not None:
            where.append("received < make_timestamp(%d)::TIMESTAMPTZ" % end)
        sql = "SELECT %s FROM %s%s%s ORDER BY %s" % (
            ", ".join('"%s"' % f.name for f in fields), self._source(table),
            " WHERE " + " AND ".join(where) if where else "", _one_per_key(table), _order(table))
        rows = _conform_fields(table, fields, self._sql(sql, _arrow))
        if fields is asked:
            return rows
        return self._stamped(table, rows).select([f.name for f in asked])

    def last_received(self, nodes=None):
        if not self._has("frames"):
            return {}
        where = _node_filter(nodes)
        # a frame twice in the ledger (two collectors) counts when it was first received, as query() keeps it
        sql = ("SELECT node_id, epoch_us(max(first)) FROM (SELECT node_id, min(received) AS first FROM %s%s "
               "GROUP BY node_id, boot, seq) GROUP BY node_id" % (
                   self._source("frames"), " WHERE " + " AND ".join(where) if where else ""))
        return dict(self._sql(sql, _rows))

    def calibrations_first_seen(self, nodes=None):
        if not self._has("status"):
            return {}
        where = ["calibration_id IS NOT NULL"] + _node_filter(nodes)
        sql = "SELECT node_id, calibration_id, epoch_us(min(received)) FROM %s WHERE %s GROUP BY node_id, calibration_id" % (
            self._source("status"), " AND ".join(where))
        return {(n, c): us for n, c, us in self._sql(sql, _rows)}

    def anchor(self, node_id, boot):
        return self._latest(self._anchors, "time", (int(node_id), int(boot)), "plausible",
                            lambda seq, node_time_s, utc_ms: _anchor_of({"node_time_s": node_time_s, "utc_ms": utc_ms}))

    def latest_status(self, node_id, boot):
        return self._latest(self._statuses, "status", (int(node_id), int(boot)), "true",
                            lambda seq, calibration_id, firmware: _status_of({"calibration_id": calibration_id, "firmware": firmware}))

    def _latest(self, cache, table, key, condition, value):
        """The value of the row of that (node, boot) with the highest seq, from the cache or the files."""
        entry = cache.get(key)
        now = time.monotonic()
        if entry is not None and now - entry[2] < REREAD_S:
            return entry[1]
        columns = {"time": "seq, node_time_s, utc_ms", "status": "seq, calibration_id, firmware"}[table]
        rows = self._sql("SELECT %s FROM %s WHERE node_id = %d AND boot = %d AND %s ORDER BY seq DESC LIMIT 1"
                         % (columns, self._source(table), key[0], key[1], condition), _rows) if self._has(table) else []
        if entry is None:
            entry = cache[key] = [None, None, now]
        entry[2] = now
        if rows and (entry[0] is None or rows[0][0] > entry[0]):
            entry[:2] = rows[0][0], value(*rows[0])
        return entry[1]

    def climate_history(self, node_ids, since_us):
        return self.query("climate", start=since_us, nodes=list(node_ids)).select(
            ["node_id", "time", "temperature_c", "relative_humidity_pct"])

    def close(self):
        if self._db is not None:
            self._db.close()
            self._db = None

    def _has(self, table):
        root = os.path.join(self.folder, table)
        return any(_parts(os.path.join(root, d)) for d in _listdir(root) if d.startswith("day="))

    def _source(self, table):
        glob = os.path.join(self.folder, table, "day=*", "part-*.parquet")
        return "read_parquet(%s, hive_partitioning=true, hive_types={'day': DATE}, union_by_name=true)" % _sql_text(glob)

    def _sql(self, sql, fetch):
        """fetch(relation) of the query; a read that fails is a StoreError."""
        try:
            import duckdb
        except ImportError:
            raise StoreError("the embedded store is read with DuckDB, which is not installed: pip install duckdb") from None

        if self._db is None:
            self._db = duckdb.connect()
            self._db.execute("SET TimeZone = 'UTC'")
        for attempt in range(3):  # a file may go between DuckDB's listing and its read: another compaction
            try:
                return fetch(self._db.sql(sql))
            except duckdb.IOException as exc:
                error = exc
            except duckdb.Error as exc:
                raise StoreError("%s: cannot read (%s)" % (self.target, str(exc).splitlines()[0])) from None
        raise StoreError("%s: cannot read (%s)" % (self.target, str(error).splitlines()[0]))


# -- the folder ---------------------------------------------------------------------------


def _open_folder(folder, shown, create):
    meta = os.path.join(folder, META)
    if os.path.exists(folder) and not os.path.isdir(folder):
        raise StoreError("%s: not a store (a file, not a folder)" % shown)
    names = [name for name in _listdir(folder) if not name.startswith(META + ".tmp")]  # another one making it
    if META in names or os.path.isfile(meta):
        _check_meta(meta, shown)
    elif names:
        raise StoreError("%s: not a citynode store (a folder with files and no %s); give an empty or new folder" % (shown, META))
    elif not create:
        raise StoreError("no store at %s (nothing collected there yet?)" % shown)
    try:
        if not os.path.isfile(meta):
            os.makedirs(folder, exist_ok=True)
            _write_text(meta, json.dumps({"kind": KIND, "schema_version": SCHEMA_VERSION}) + "\n")
        elif create:  # a store to write into: say now if it cannot be written
            probe = os.path.join(folder, ".probe-%d-%d" % (os.getpid(), threading.get_ident()))
            with open(probe, "w"):
                pass
            os.remove(probe)
    except OSError as exc:
        raise StoreError("cannot write the store at %s: %s" % (shown, exc.strerror or exc)) from None


def _check_meta(meta, shown):
    try:
        with open(meta, encoding="utf-8") as f:
            doc = json.load(f)
    except (OSError, ValueError) as exc:
        raise StoreError("%s: cannot read %s (%s)" % (shown, META, getattr(exc, "strerror", None) or exc)) from None
    if not isinstance(doc, dict) or doc.get("kind") != KIND:
        raise StoreError("%s: %s is not a citynode store's" % (shown, META))
    version = doc.get("schema_version")
    if version != SCHEMA_VERSION:
        newer = isinstance(version, int) and version > SCHEMA_VERSION
        raise StoreError("%s: store schema version %s, this citynode reads version %d (%s)" % (
            shown, version, SCHEMA_VERSION, "upgrade citynode" if newer else "an older store; collect into a new folder"))


def _listdir(folder):
    try:
        return sorted(os.listdir(folder))
    except OSError:
        return []


def _parts(partition):
    return [n for n in _listdir(partition) if n.startswith("part-") and n.endswith(".parquet")]


def _remove(paths):
    for path in paths:
        try:
            os.remove(path)
        except FileNotFoundError:  # another process removed it first
            pass


def _remove_stale_tmp(partition):
    """Remove the `.part-<µs>-<pid>-<n>.parquet.tmp` files of processes that are gone (killed mid-write)."""
    for name in _listdir(partition):
        fields = name.split("-")
        if name.startswith(".part-") and name.endswith(".tmp") and len(fields) == 4 and fields[2].isdigit():
            pid = int(fields[2])
            if pid != os.getpid() and not _running(pid):
                _remove([os.path.join(partition, name)])


def _running(pid):
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except OSError:  # another user's live process
        return True
    return True


def _fsync_dir(folder):
    fd = os.open(folder, os.O_RDONLY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


def _write_atomic(path, table):
    folder, name = os.path.split(path)
    tmp = os.path.join(folder, ".%s.tmp" % name)
    try:
        with open(tmp, "wb") as f:
            pq.write_table(table, f, compression="zstd")
            f.flush()
            os.fsync(f.fileno())
        os.replace(tmp, path)
    except BaseException:
        _remove([tmp])
        raise
    _fsync_dir(folder)


def _write_text(path, text):
    tmp = "%s.tmp-%d-%d" % (path, os.getpid(), threading.get_ident())  # two collectors may make one store at once
    with open(tmp, "w", encoding="utf-8") as f:
        f.write(text)
        f.flush()
        os.fsync(f.fileno())
    os.replace(tmp, path)
    _fsync_dir(os.path.dirname(path))


# -- rows ----------------------------------------------------------------------------------


def _conform(name, table):
    """The table with exactly schema.SCHEMAS[name]'s columns and types, or StoreError."""
    return _conform_fields(name, list(schema.SCHEMAS[name]), table)


def _conform_fields(table, fields, rows):
    """The rows with exactly these fields of schema.SCHEMAS[table], in their order and types."""
    want = pa.schema(fields)
    if rows.schema.equals(want):
        return rows
    try:
        return rows.select(want.names).cast(want)
    except (KeyError, ValueError, pa.ArrowInvalid, pa.ArrowNotImplementedError) as exc:
        raise StoreError("%s rows do not fit the store's columns (%s)" % (table, str(exc).splitlines()[0])) from None


def _keys(table):
    return zip(*(table.column(c).to_pylist() for c in ("node_id", "boot", "seq")))


def _by_day(table):
    """(YYYY-MM-DD, rows) of each day of the table: of `time`, of `received` where it is null."""
    import numpy as np
    import pyarrow.compute as pc

    if not table.num_rows:
        return []
    us = table["received"].cast(pa.int64())
    if "time" in table.column_names:
        us = pc.coalesce(table["time"].cast(pa.int64()), us)
    days = np.floor_divide(pc.fill_null(us, 0).to_numpy(), _US_PER_DAY)
    if days.min() == days.max():
        return [(_day(int(days[0]) * _US_PER_DAY), table)]
    return [(_day(int(d) * _US_PER_DAY), table.filter(pa.array(days == d))) for d in np.unique(days)]


def _day(us):
    return time.strftime("%Y-%m-%d", time.gmtime(us // 1_000_000))


def _anchor_of(row):
    return round(row["node_time_s"] * 1000), row["utc_ms"]


def _status_of(row):
    return {"calibration_id": row["calibration_id"], "firmware": row["firmware"]}


# -- SQL -------------------------------------------------------------------------------------


def _node_filter(nodes):
    """[the WHERE term] for those nodes; None: every node, no term."""
    if nodes is None:
        return []
    return ["node_id IN (%s)" % ", ".join(str(int(n)) for n in nodes) if nodes else "false"]


def _sql_text(text):
    return "'%s'" % text.replace("'", "''")


def _sql_list(texts):
    return "[%s]" % ", ".join(_sql_text(t) for t in texts)


def _columns(table):
    return ", ".join('"%s"' % c for c in schema.SCHEMAS[table].names)


def _rows(relation):
    return [tuple(r) for r in relation.fetchall()]


def _arrow(relation):
    to_arrow = getattr(relation, "to_arrow_table", None) or relation.arrow  # DuckDB 2 renamed it
    return to_arrow()


def _order(table):
    return ", ".join(schema.KEYS.get(table, ("received",)))


def _one_per_key(table):
    """The SQL that keeps one row per key: the first received (copies of a row are the same rows)."""
    keys = schema.KEYS.get(table)
    return " QUALIFY row_number() OVER (PARTITION BY %s ORDER BY received) = 1" % ", ".join(keys) if keys else ""
