"""The PostgreSQL store: day partitions, binary COPY, and a frame ledger for idempotence.

    store = PgStore("postgresql://collector:secret@db.example/citynode")

The schema comes from versioned migrations (pg_migrations/NNNN_*.sql, the
applied ones listed in `schema_migrations`); opening with create=True applies
the missing ones in one transaction, under an advisory lock so two collectors
starting together do not both migrate. Data tables are partitioned by day of
`received`; a write first makes the partitions it needs (their own short
transaction: creating a partition locks its parent table), then, in one
transaction:

    COPY frames ─▶ temp table ─▶ INSERT INTO frames ... ON CONFLICT DO NOTHING
                                 RETURNING the new keys ─▶ temp table `new`
    COPY each data table ─▶ temp table ─▶ INSERT only the rows joined to `new`
                            (all frames new, the usual case: COPY into the table itself)
    COPY rejects ─▶ rejects

A second collector writing the same frames at the same moment waits on the
ledger's primary key and then finds them there, so each frame is stored once.
Reads are `COPY (SELECT ...) TO STDOUT` as CSV, timestamps as µs, streamed
into Arrow's incremental CSV reader (the rejects' bytes through a server-side
cursor); `citynode fleet`'s reads put their window on `received`, so only the
window's partitions are read. A lost connection is a StoreError; the next call
connects again (or call `reconnect()`).

`PgStore(url, partitioning="none")` (or CITYNODE_PG_PARTITIONING=none) makes
the data tables plain tables when it makes the schema: the layout TimescaleDB's
create_hypertable takes (it refuses a declaratively partitioned table).
"""

import datetime
import importlib.resources
import io
import os
import re

import pyarrow as pa
import pyarrow.compute as pc

from citynode.fleet import schema, stamps
from citynode.fleet.pg_copy import PG_EPOCH_US, binary_copy
from citynode.fleet.store import Store, StoreError, Written, check_columns
from citynode_protocol.wire import UTC_MAX_MS, UTC_MIN_MS

CONNECT_TIMEOUT_S = 5
_MIGRATION_LOCK = 0x63697479  # pg_advisory_xact_lock key: "city"
_PARTITION_LOCK = _MIGRATION_LOCK + 1
_UTC = datetime.timezone.utc
_EPOCH = datetime.datetime(1970, 1, 1, tzinfo=_UTC)


def migrations():
    """[(version, name, sql)] of the migrations shipped with this citynode, in order."""
    found = []
    for entry in importlib.resources.files("citynode.fleet").joinpath("pg_migrations").iterdir():
        match = re.fullmatch(r"(\d{4})_\w+\.sql", entry.name)
        if match:
            found.append((int(match.group(1)), entry.name, entry.read_text(encoding="utf-8")))
    return sorted(found)


_PASSWORD = (re.compile(r"^([a-z]+://[^:/@]*:)([^@]*)(@)"), re.compile(r"([?&]password=)([^&]*)()"))


def mask_url(url):
    """The URL with its password replaced by ***."""
    for pattern in _PASSWORD:
        url = pattern.sub(r"\1***\3", url)
    return url


def _passwords(url):
    """The URL's passwords as written and %-decoded, longest first."""
    from urllib.parse import unquote

    found = {p for pattern in _PASSWORD for m in pattern.finditer(url) for p in (m.group(2), unquote(m.group(2))) if p}
    return sorted(found, key=len, reverse=True)


def _timestamptz_loader():
    """A binary loader giving timestamptz as µs since 1970 (int): no datetime per value."""
    from psycopg.adapt import Loader

    class MicrosLoader(Loader):
        format = 1

        def load(self, data):
            return int.from_bytes(data, "big", signed=True) + PG_EPOCH_US

    return MicrosLoader


_MIN_US = int((datetime.datetime(1, 1, 2, tzinfo=_UTC) - _EPOCH) / datetime.timedelta(microseconds=1))
_MAX_US = int((datetime.datetime(9999, 12, 30, tzinfo=_UTC) - _EPOCH) / datetime.timedelta(microseconds=1))


def _us_to_datetime(us):
    """µs since 1970 as a datetime, clamped to the years 1 to 9999 (no row is outside them)."""
    return _EPOCH + datetime.timedelta(microseconds=min(max(int(us), _MIN_US), _MAX_US))


def _day_bounds(day):
    start = datetime.datetime(day.year, day.month, day.day, tzinfo=_UTC)
    return start, start + datetime.timedelta(days=1)


PARTITIONING = ("native", "none")
PARTITIONING_ENV = "CITYNODE_PG_PARTITIONING"


def _unpartitioned(sql):
    """A migration's SQL with its data tables made plain tables: the TimescaleDB variant."""
    return re.sub(r"\)\s*PARTITION BY RANGE \(received\)\s*;", ");", sql)


class PgStore(Store):
    """partitioning: "native" (data tables partitioned by day of `received`) or "none"
    (plain tables, ready for TimescaleDB's create_hypertable); None: $CITYNODE_PG_PARTITIONING,
    else native. It applies when the schema is made: an existing database keeps its layout."""

    def __init__(self, url, create=True, partitioning=None):
        self.url = url
        self.target = mask_url(url)
        self.create = create
        self.partitioning = partitioning or os.environ.get(PARTITIONING_ENV) or "native"
        if self.partitioning not in PARTITIONING:
            raise StoreError("postgresql store %s: partitioning %r: give %s" % (
                self.target, self.partitioning, " or ".join(PARTITIONING)))
        self.conn = None
        self._partitions = set()  # days whose partitions exist
        self._temp = None  # the connection our temp tables belong to
        self._connect()
        self._migrate()

    # -- connection and errors -------------------------------------------------

    def _error(self, exc, doing):
        """A one-line StoreError for exc, the password never in it."""
        return StoreError("postgresql store %s: %s: %s" % (self.target, doing, self._masked(exc)))

    def _masked(self, exc):
        text = " ".join(str(exc).split()) or type(exc).__name__
        text = text.replace(self.url, self.target)
        for password in _passwords(self.url):
            text = text.replace(password, "***")
        return text

    def _connect(self):
        try:
            import psycopg
            from psycopg.conninfo import conninfo_to_dict
        except ImportError:
            raise StoreError("postgresql store %s: psycopg is not installed: pip install 'citynode[fleet]'"
                             % self.target) from None

        try:
            conninfo_to_dict(self.url)
        except psycopg.ProgrammingError as exc:
            raise StoreError("postgresql store %s: not a PostgreSQL URL (%s)" % (self.target, self._masked(exc))) from None
        try:
            self.conn = psycopg.connect(self.url, connect_timeout=CONNECT_TIMEOUT_S, autocommit=True)
        except psycopg.Error as exc:
            self.conn = None
            raise self._error(exc, "cannot connect") from None
        self.conn.adapters.register_loader("timestamptz", _timestamptz_loader())

    def reconnect(self):
        """Drop the connection and open a new one (after the server went away)."""
        if self.conn is not None:
            try:
                self.conn.close()
            except Exception:  # a broken connection may fail to close; it is gone either way
                pass
        self.conn = None
        self._connect()

    def _ready(self):
        """The connection, opened again if the last one broke."""
        if self.conn is None or self.conn.closed or self.conn.broken:
            self.reconnect()
        return self.conn

    def close(self):
        if self.conn is not None:
            self.conn.close()
            self.conn = None

    # -- schema ----------------------------------------------------------------

    def _migrate(self):
        import psycopg

        known = migrations()  # tests/host/test_pg_store.py checks the newest is store.SCHEMA_VERSION
        newest = known[-1][0] if known else 0
        try:
            with self.conn.transaction():
                if self.create:
                    self.conn.execute("SELECT pg_advisory_xact_lock(%s)", (_MIGRATION_LOCK,))
                    self.conn.execute("CREATE TABLE IF NOT EXISTS schema_migrations ("
                                      "version integer PRIMARY KEY, applied timestamptz NOT NULL DEFAULT now())")
                    version = self._version()
                elif self.conn.execute("SELECT to_regclass('schema_migrations')").fetchone()[0] is None:
                    version = 0
                else:
                    version = self._version()
                if version > newest:
                    raise StoreError("postgresql store %s: schema version %d is newer than this citynode (%d): "
                                     "upgrade citynode" % (self.target, version, newest))
                if version == 0 and not self.create:
                    raise StoreError("postgresql store %s: no citynode schema in this database: open it once "
                                     "with create to make it" % self.target)
                if version < newest and not self.create:
                    raise StoreError("postgresql store %s: schema version %d is older than this citynode (%d): "
                                     "open it once with create to migrate" % (self.target, version, newest))
                for number, _name, sql in known:
                    if number > version:
                        self.conn.execute(_unpartitioned(sql) if self.partitioning == "none" and version == 0 else sql)
                        self.conn.execute("INSERT INTO schema_migrations (version) VALUES (%s)", (number,))
                # what the database has, whatever was asked: relkind 'p' is a partitioned table
                kind = self.conn.execute("SELECT relkind FROM pg_class WHERE oid = to_regclass('climate')").fetchone()
                self._native = kind is not None and kind[0] == "p"
        except psycopg.Error as exc:
            raise self._error(exc, "cannot migrate the schema") from None

    def _version(self):
        return self.conn.execute("SELECT coalesce(max(version), 0) FROM schema_migrations").fetchone()[0]

    def schema_version(self):
        """The newest migration applied to the database."""
        return self._one("SELECT coalesce(max(version), 0) FROM schema_migrations", ())[0]

    def _ensure_partitions(self, days):
        missing = sorted(set(days) - self._partitions)
        if not missing or not self._native:  # plain tables (or hypertables, which make their own chunks)
            return
        with self.conn.transaction():
            self.conn.execute("SELECT pg_advisory_xact_lock(%s)", (_PARTITION_LOCK,))
            for day in missing:
                start, end = _day_bounds(day)
                for table in schema.DATA_TABLES:
                    self.conn.execute("CREATE TABLE IF NOT EXISTS %s_%s PARTITION OF %s FOR VALUES FROM ('%s') TO ('%s')" % (
                        table, day.strftime("%Y%m%d"), table, start.isoformat(), end.isoformat()))
        self._partitions.update(missing)

    def _ensure_temp_tables(self):
        if self._temp is self.conn:
            return
        with self.conn.transaction():
            self.conn.execute("CREATE TEMP TABLE IF NOT EXISTS new_frames (node_id bigint, boot bigint, seq bigint) "
                              "ON COMMIT DELETE ROWS")
            self.conn.execute("CREATE TEMP TABLE IF NOT EXISTS fill_from (node_id bigint, boot bigint, seq bigint) "
                              "ON COMMIT DELETE ROWS")
            for table in ("frames",) + schema.DATA_TABLES:
                self.conn.execute("CREATE TEMP TABLE IF NOT EXISTS in_%s (LIKE %s) ON COMMIT DELETE ROWS" % (table, table))
        self._temp = self.conn

    # -- writing ---------------------------------------------------------------

    def write(self, batch):
        import psycopg

        tables = {name: t for name, t in batch.tables.items() if t.num_rows}
        for name, table in tables.items():
            if name not in schema.SCHEMAS or name == "rejects":
                raise StoreError("postgresql store %s: no table %r in a batch" % (self.target, name))
            if not table.schema.equals(schema.SCHEMAS[name]):
                raise StoreError("postgresql store %s: %s has schema %s, not the store's" % (
                    self.target, name, " ".join(str(table.schema).split())))
        rejects = batch.rejects if batch.rejects is not None and batch.rejects.num_rows else None
        if rejects is not None and not rejects.schema.equals(schema.SCHEMAS["rejects"]):
            raise StoreError("postgresql store %s: rejects has schema %s, not the store's" % (
                self.target, " ".join(str(rejects.schema).split())))
        days = set()
        for name, table in tables.items():
            if name in schema.DATA_TABLES:
                received = table.column("received")
                if received.null_count:
                    raise StoreError("postgresql store %s: %s rows without `received`" % (self.target, name))
                days.update(d for d in pc.unique(received.cast(pa.date32())).to_pylist())
        try:
            conn = self._ready()
            self._ensure_partitions(days)
            self._ensure_temp_tables()
            with conn.transaction():
                return self._write(conn, tables, rejects)
        except psycopg.Error as exc:
            self._partitions.clear()  # one may have been dropped (retention): look again next time
            raise self._error(exc, "write failed") from None

    def _copy(self, cursor, table_name, table):
        columns = ", ".join(table.column_names)
        with cursor.copy("COPY %s (%s) FROM STDIN (FORMAT binary)" % (table_name, columns)) as copy:
            copy.write(binary_copy(table))

    def _write(self, conn, tables, rejects):
        written = Written()
        cur = conn.cursor()
        frames = tables.get("frames")
        if frames is not None:
            self._copy(cur, "in_frames", frames)
            # In key order, so two collectors inserting the same frames lock them in the same order (no deadlock).
            cur.execute(
                "WITH new AS (INSERT INTO frames SELECT DISTINCT ON (node_id, boot, seq) * FROM in_frames "
                "ORDER BY node_id, boot, seq ON CONFLICT DO NOTHING RETURNING node_id, boot, seq) "
                "INSERT INTO new_frames SELECT * FROM new")
            written.frames_new = cur.rowcount
            written.frames_duplicate = frames.num_rows - written.frames_new
            if written.frames_duplicate:
                cur.execute("SELECT node_id, boot, seq FROM in_frames EXCEPT SELECT node_id, boot, seq FROM new_frames")
                written.duplicates = [tuple(k) for k in cur.fetchall()]
        # the usual batch: every frame new, so every row is: COPY straight into the table
        all_new = frames is not None and written.frames_new == frames.num_rows
        for name in schema.DATA_TABLES:
            table = tables.get(name)
            if table is None or not written.frames_new:
                continue
            if all_new:
                self._copy(cur, name, table)
                written.rows += table.num_rows
                continue
            self._copy(cur, "in_" + name, table)
            columns = ", ".join(table.column_names)
            picked = ", ".join("t." + c for c in table.column_names)
            cur.execute("INSERT INTO %s (%s) SELECT %s FROM in_%s t JOIN new_frames n "
                        "ON t.node_id = n.node_id AND t.boot = n.boot AND t.seq = n.seq" % (name, columns, picked, name))
            written.rows += cur.rowcount
        if written.frames_new:
            self._fill_stamps(cur, _fill_from(tables))
        if rejects is not None:
            self._copy(cur, "rejects", rejects)
            written.rejects = rejects.num_rows
        return written

    def _fill_stamps(self, cur, start):
        """Fill in the null time, calibration_id and firmware of the rows of the boots in `start`
        ({(node, boot): seq}) from seq on, from the stored time and status rows (citynode.fleet.stamps).

        A collector leaves them null when the boot's anchor or status was not stored when it
        looked: another collector of the group may have been writing them. Both writes lock the
        boot (an advisory lock of one of STAMP_LOCK_SLOTS, taken in order: no deadlock) and fill
        in, so the one that commits second sees the other's rows and fills in what the first could not."""
        if not start:
            return
        keys = sorted(start)
        slots = sorted({_lock_slot(n, b) for n, b in keys})
        cur.execute("SELECT count(pg_advisory_xact_lock(%s, k)) FROM (SELECT k FROM unnest(%s::int4[]) "
                    "WITH ORDINALITY AS u(k, o) ORDER BY o) s", (_MIGRATION_LOCK, slots))
        self._copy(cur, "fill_from", pa.table({"node_id": pa.array([k[0] for k in keys], pa.int64()),
                                                "boot": pa.array([k[1] for k in keys], pa.int64()),
                                                "seq": pa.array([start[k] for k in keys], pa.int64())}))
        # boots with neither a plausible TIME nor a status stored have nothing to fill in from
        cur.execute("DELETE FROM fill_from f WHERE NOT EXISTS (SELECT 1 FROM time a WHERE a.node_id = f.node_id "
                    "AND a.boot = f.boot AND a.plausible AND a.utc_ms IS NOT NULL) AND NOT EXISTS (SELECT 1 FROM "
                    "status z WHERE z.node_id = f.node_id AND z.boot = f.boot AND z.firmware IS NOT NULL)")
        if cur.rowcount == len(keys):
            return
        cur.execute("ANALYZE fill_from")
        limits = {"utc_min_us": UTC_MIN_MS * 1000, "utc_max_us": UTC_MAX_MS * 1000, "wrap_us": stamps.WRAP_US,
                  "half_us": stamps.WRAP_US // 2}
        for name in schema.DATA_TABLES:
            cur.execute(_FILL_DATA.format(table=name, utc=_UTC_SQL.format(node_us=_NODE_US_SQL.format("t"))), limits)
        cur.execute(_FILL_FRAMES.format(utc=_UTC_SQL.format(node_us="s.node_us"),
                                        node_us=" UNION ALL ".join(_FRAME_NODE_US.format(table=name, age=(
                                            " + y.age_ms * 1000" if has_age else ""), where=(
                                            " AND y.age_ms IS NOT NULL" if has_age else ""))
                                            for name, has_age in stamps.FRAME_TIME.items())), limits)

    # -- reading ---------------------------------------------------------------

    def _fetch(self, fields, table_name, where, params, order):
        """The rows as a pyarrow Table of those fields. `COPY (SELECT ...) TO STDOUT` as CSV
        streams from the server into Arrow's incremental CSV reader, block by block (no
        Python object per value, no copy of the whole text); tables with a binary column
        go through a server-side cursor, FETCH_ROWS at a time."""
        import psycopg
        from psycopg import sql

        wanted = pa.schema(fields)
        binary = any(pa.types.is_binary(f.type) for f in fields)
        query = _select(fields, table_name, where, params, order, binary)
        try:
            conn = self._ready()
            with conn.transaction():
                if binary:
                    return _fetch_cursor(conn, query, wanted)
                with conn.cursor() as cur, cur.copy(sql.SQL("COPY ({}) TO STDOUT (FORMAT csv)").format(query)) as copy:
                    return _read_csv(copy, wanted)
        except psycopg.Error as exc:
            raise self._error(exc, "read failed") from None

    def _rows(self, query, params):
        """All rows of a small query (aggregates)."""
        import psycopg

        try:
            conn = self._ready()
            with conn.transaction():
                return conn.execute(query, params).fetchall()
        except psycopg.Error as exc:
            raise self._error(exc, "read failed") from None

    def _one(self, sql, params):
        import psycopg

        try:
            conn = self._ready()
            with conn.transaction():
                return conn.execute(sql, params).fetchone()
        except psycopg.Error as exc:
            raise self._error(exc, "read failed") from None

    def anchor(self, node_id, boot):
        row = self._one("SELECT node_time_s, utc_ms FROM time WHERE node_id = %s AND boot = %s AND plausible "
                        "ORDER BY seq DESC LIMIT 1", (node_id, boot))
        return None if row is None else (round(row[0] * 1000), row[1])

    def latest_status(self, node_id, boot):
        row = self._one("SELECT calibration_id, firmware FROM status WHERE node_id = %s AND boot = %s "
                        "ORDER BY seq DESC LIMIT 1", (node_id, boot))
        return None if row is None else {"calibration_id": row[0], "firmware": row[1]}

    def anchors(self, keys):
        rows = self._latest_of(keys, "node_time_s, utc_ms", "time", "AND t.plausible")
        return {(n, b): (round(node_s * 1000), utc) for n, b, node_s, utc in rows}

    def latest_statuses(self, keys):
        rows = self._latest_of(keys, "calibration_id, firmware", "status", "")
        return {(n, b): {"calibration_id": cal, "firmware": fw} for n, b, cal, fw in rows}

    def _latest_of(self, keys, columns, table, where):
        """(node_id, boot, columns...) of the latest row (by seq) of each (node_id, boot) in keys: one query."""
        import psycopg

        keys = list(keys)
        if not keys:
            return []
        picked = ", ".join("t." + c.strip() for c in columns.split(","))
        sql = ("SELECT DISTINCT ON (t.node_id, t.boot) t.node_id, t.boot, %s FROM %s t "
               "JOIN unnest(%%s::bigint[], %%s::bigint[]) AS k(node_id, boot) ON t.node_id = k.node_id AND t.boot = k.boot "
               "WHERE true %s ORDER BY t.node_id, t.boot, t.seq DESC" % (picked, table, where))
        try:
            conn = self._ready()
            with conn.transaction():
                return conn.execute(sql, ([int(k[0]) for k in keys], [int(k[1]) for k in keys])).fetchall()
        except psycopg.Error as exc:
            raise self._error(exc, "read failed") from None

    def climate_history(self, node_ids, since_us):
        fields = [schema.SCHEMAS["climate"].field(c) for c in ("node_id", "time", "temperature_c", "relative_humidity_pct")]
        return self._fetch(fields, "climate", ["node_id = ANY({})", '"time" >= {}'],
                           [[int(n) for n in node_ids], _us_to_datetime(since_us)], ["node_id", "time"])

    # What `citynode fleet` asks: the window on `received`, the partition key, so
    # PostgreSQL reads only the window's partitions; aggregates are GROUP BYs.

    def query_received(self, table, start=None, end=None, nodes=None, columns=None):
        fields = check_columns(table, columns)
        where, params = _window("received", start, end, nodes)
        return self._fetch(fields, table, where, params, list(schema.KEYS.get(table, ("received",))))

    def last_received(self, nodes=None):
        where, params = _window("received", None, None, nodes)
        rows = self._rows("SELECT node_id, (extract(epoch FROM max(received)) * 1000000)::bigint FROM frames%s "
                          "GROUP BY node_id" % _where_sql(where), params)
        return dict(rows)

    def calibrations_first_seen(self, nodes=None):
        where, params = _window("received", None, None, nodes)
        where.append("calibration_id IS NOT NULL")
        rows = self._rows("SELECT node_id, calibration_id, (extract(epoch FROM min(received)) * 1000000)::bigint "
                          "FROM status%s GROUP BY node_id, calibration_id" % _where_sql(where), params)
        return {(n, c): us for n, c, us in rows}

    def query(self, table, start=None, end=None, nodes=None):
        if table not in schema.SCHEMAS:
            raise StoreError("postgresql store %s: no table %r (tables: %s)" % (self.target, table, ", ".join(schema.TABLES)))
        fields = list(schema.SCHEMAS[table])
        names = [f.name for f in fields]
        where, params = _window('"time"' if "time" in names else "received", start, end, nodes)
        order = [k for k in schema.KEYS.get(table, ("received",)) if k in names]
        return self._fetch(fields, table, where, params, order)


STAMP_LOCK_SLOTS = 1024  # advisory locks a write may hold: a batch of any size stays in the lock table


def _lock_slot(node_id, boot):
    """The advisory lock (with key 1 _MIGRATION_LOCK) of a (node, boot): boots sharing one wait for each other."""
    return (int(node_id) * 1_000_003 + int(boot)) % STAMP_LOCK_SLOTS


def _fill_from(tables):
    """{(node, boot): the lowest seq from which rows of that boot may have a stamp to fill in}: that of
    the batch's rows without one, of its plausible TIME rows and of its status rows."""
    import numpy as np

    start = {}
    for name, table in tables.items():
        if name not in stamps.STAMPED:
            continue
        if name == "time":
            mask = pc.or_(pa.array(stamps.needs(name, table)), pc.and_(pc.and_(pc.fill_null(table["plausible"], False),
                                                                     table["utc_ms"].is_valid()),
                                                             table["node_time_s"].is_valid()))
        elif name == "status":
            mask = np.ones(table.num_rows, bool)
        else:
            mask = stamps.needs(name, table)
        picked = table.select(["node_id", "boot", "seq"]).filter(pa.array(mask))
        if not picked.num_rows:
            continue
        low = picked.group_by(["node_id", "boot"]).aggregate([("seq", "min")])
        for n, b, s in zip(*(low[c].to_pylist() for c in ("node_id", "boot", "seq_min"))):
            start[(n, b)] = s if (n, b) not in start else min(start[(n, b)], s)
    return start


# Filling in stamps (citynode.fleet.stamps), as rows.py computes them: the anchor in force at a
# row is the latest plausible TIME of its boot at or before its seq; utc = anchor utc +
# (node µs - anchor node µs), the difference taken modulo the node's 2^32 ms clock.
_NODE_US_SQL = "round({0}.node_time_s * 1000000)::bigint"
_UTC_SQL = ("(s.a_utc_ms * 1000 + ((({node_us} - s.a_node_ms * 1000 + %(half_us)s) %% %(wrap_us)s + %(wrap_us)s) "
            "%% %(wrap_us)s - %(half_us)s))")
_ANCHOR_SQL = ("LEFT JOIN LATERAL (SELECT round(a.node_time_s * 1000)::bigint AS node_ms, a.utc_ms FROM time a "
               "WHERE a.node_id = c.node_id AND a.boot = c.boot AND a.seq <= c.seq AND a.plausible "
               "AND a.utc_ms IS NOT NULL AND a.node_time_s IS NOT NULL ORDER BY a.seq DESC LIMIT 1) a ON true")
_TIME_FILLS = ("t.time IS NULL AND s.a_utc_ms IS NOT NULL AND t.node_time_s IS NOT NULL "
               "AND {utc} >= %(utc_min_us)s AND {utc} < %(utc_max_us)s")
_STATUS_FILLS = "t.firmware IS NULL AND s.firmware IS NOT NULL"
_FILL_DATA = (
    "UPDATE {table} t SET "
    "time = CASE WHEN " + _TIME_FILLS + " THEN to_timestamp(0) + {utc} * interval '1 microsecond' ELSE t.time END, "
    "calibration_id = CASE WHEN " + _STATUS_FILLS + " THEN s.calibration_id ELSE t.calibration_id END, "
    "firmware = coalesce(t.firmware, s.firmware) "
    "FROM (SELECT c.node_id, c.boot, c.seq, a.node_ms AS a_node_ms, a.utc_ms AS a_utc_ms, st.calibration_id, st.firmware "
    "FROM (SELECT DISTINCT x.node_id, x.boot, x.seq FROM {table} x JOIN fill_from f "
    "ON x.node_id = f.node_id AND x.boot = f.boot AND x.seq >= f.seq WHERE x.time IS NULL OR x.firmware IS NULL) c "
    + _ANCHOR_SQL + " "
    "LEFT JOIN LATERAL (SELECT z.calibration_id, z.firmware FROM status z WHERE z.node_id = c.node_id "
    "AND z.boot = c.boot AND z.seq <= c.seq ORDER BY z.seq DESC LIMIT 1) st ON true "
    "WHERE a.utc_ms IS NOT NULL OR st.firmware IS NOT NULL) s "
    "WHERE t.node_id = s.node_id AND t.boot = s.boot AND t.seq = s.seq "
    "AND ((" + _TIME_FILLS + ") OR (" + _STATUS_FILLS + "))")  # only rows that change
_FRAME_NODE_US = ("SELECT round(y.node_time_s * 1000000)::bigint{age} AS node_us FROM {table} y WHERE y.node_id = c.node_id "
                  "AND y.boot = c.boot AND y.seq = c.seq AND y.node_time_s IS NOT NULL{where}")
_FILL_FRAMES = (
    "UPDATE frames t SET time = to_timestamp(0) + {utc} * interval '1 microsecond' "
    "FROM (SELECT c.node_id, c.boot, c.seq, a.node_ms AS a_node_ms, a.utc_ms AS a_utc_ms, n.node_us "
    "FROM (SELECT x.node_id, x.boot, x.seq FROM frames x JOIN fill_from f "
    "ON x.node_id = f.node_id AND x.boot = f.boot AND x.seq >= f.seq WHERE x.time IS NULL) c "
    + _ANCHOR_SQL + " "
    "JOIN LATERAL (SELECT node_us FROM ({node_us}) u LIMIT 1) n ON true "
    "WHERE a.utc_ms IS NOT NULL) s "
    "WHERE t.node_id = s.node_id AND t.boot = s.boot AND t.seq = s.seq AND t.time IS NULL "
    "AND {utc} >= %(utc_min_us)s AND {utc} < %(utc_max_us)s")

FETCH_ROWS = 10_000  # rows a round trip of a server-side cursor
CSV_BLOCK = 1 << 22  # bytes Arrow's CSV reader parses at a time


def _window(when, start, end, nodes):
    """(WHERE terms with {} placeholders, their values) for a window on `when` and a node list."""
    where, params = [], []
    if nodes is not None:
        where.append("node_id = ANY({})")
        params.append([int(n) for n in nodes])
    if start is not None:
        where.append(when + " >= {}")
        params.append(_us_to_datetime(start))
    if end is not None:
        where.append(when + " < {}")
        params.append(_us_to_datetime(end))
    return where, params


def _select(fields, table_name, where, params, order, binary=False):
    """The SELECT of a read; the values are literals, so the planner prunes partitions by them.
    Timestamps as µs since 1970 (bigint) unless `binary` (read through a binary cursor)."""
    from psycopg import sql

    picked = [sql.Identifier(f.name) if binary or not pa.types.is_timestamp(f.type) else
              sql.SQL("(extract(epoch FROM {0}) * 1000000)::bigint").format(sql.Identifier(f.name))
              for f in fields]
    return sql.SQL("SELECT {} FROM {}{} ORDER BY {}").format(
        sql.SQL(", ").join(picked), sql.Identifier(table_name),
        sql.SQL(" WHERE " + " AND ".join(where)).format(*map(sql.Literal, params)) if where else sql.SQL(""),
        sql.SQL(", ").join(map(sql.Identifier, order)))


def _where_sql(where):
    """The WHERE clause for psycopg's %s parameters of _window's terms."""
    return " WHERE " + " AND ".join(w.replace("{}", "%s") for w in where) if where else ""


class _CopyReader(io.RawIOBase):
    """A file over the chunks of a COPY TO, read as they arrive."""

    def __init__(self, copy):
        self._chunks = iter(copy)
        self._left = memoryview(b"")

    def readable(self):
        return True

    def readinto(self, buffer):
        while not self._left:
            chunk = next(self._chunks, None)
            if chunk is None:
                return 0
            self._left = memoryview(chunk)
        n = min(len(buffer), len(self._left))
        buffer[:n] = self._left[:n]
        self._left = self._left[n:]
        return n


def _read_csv(copy, wanted):
    """PostgreSQL's CSV (timestamps as µs since 1970) from a COPY TO, as a Table of `wanted`."""
    import pyarrow.csv as csv

    types = {f.name: pa.int64() if pa.types.is_timestamp(f.type) else f.type for f in wanted}
    source = io.BufferedReader(_CopyReader(copy), CSV_BLOCK)
    if not source.peek(1):
        return wanted.empty_table()
    reader = csv.open_csv(
        source,
        read_options=csv.ReadOptions(column_names=wanted.names, use_threads=False, block_size=CSV_BLOCK),
        parse_options=csv.ParseOptions(newlines_in_values=True),
        convert_options=csv.ConvertOptions(column_types=types, null_values=[""], strings_can_be_null=True,
                                           quoted_strings_can_be_null=False, true_values=["t"], false_values=["f"]))
    table = reader.read_all()
    return pa.Table.from_arrays([table.column(f.name).cast(f.type) for f in wanted], schema=wanted)


def _fetch_cursor(conn, query, wanted):
    """The rows of a query through a server-side cursor, as a Table of `wanted`."""
    batches = []
    with conn.cursor(name="citynode_read", binary=True) as cur:
        cur.itersize = FETCH_ROWS
        cur.execute(query)
        while True:
            rows = cur.fetchmany(FETCH_ROWS)
            if not rows:
                break
            values = list(zip(*rows))
            batches.append(pa.record_batch([pa.array(v, f.type) for v, f in zip(values, wanted)], schema=wanted))
    return pa.Table.from_batches(batches, schema=wanted)
