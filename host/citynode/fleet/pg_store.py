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
Reads are `COPY (SELECT ...) TO STDOUT` as CSV, timestamps as µs, parsed by
Arrow into the columns of schema.py. A lost connection is a StoreError; the
next call connects again (or call `reconnect()`).
"""

import datetime
import importlib.resources
import re

import pyarrow as pa
import pyarrow.compute as pc

from citynode.fleet import schema
from citynode.fleet.pg_copy import PG_EPOCH_US, binary_copy
from citynode.fleet.store import Store, StoreError, Written

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


class PgStore(Store):
    def __init__(self, url, create=True):
        self.url = url
        self.target = mask_url(url)
        self.create = create
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
                        self.conn.execute(sql)
                        self.conn.execute("INSERT INTO schema_migrations (version) VALUES (%s)", (number,))
        except psycopg.Error as exc:
            raise self._error(exc, "cannot migrate the schema") from None

    def _version(self):
        return self.conn.execute("SELECT coalesce(max(version), 0) FROM schema_migrations").fetchone()[0]

    def schema_version(self):
        """The newest migration applied to the database."""
        return self._one("SELECT coalesce(max(version), 0) FROM schema_migrations", ())[0]

    def _ensure_partitions(self, days):
        missing = sorted(set(days) - self._partitions)
        if not missing:
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
        if rejects is not None:
            self._copy(cur, "rejects", rejects)
            written.rejects = rejects.num_rows
        return written

    # -- reading ---------------------------------------------------------------

    def _fetch(self, fields, table_name, where, params, order):
        """The rows as a pyarrow Table of those fields: COPY ... TO STDOUT as CSV, read by Arrow
        (no Python object per value); tables with a binary column go through a cursor."""
        import psycopg
        from psycopg import sql

        wanted = pa.schema(fields)
        binary = any(pa.types.is_binary(f.type) for f in fields)
        picked = [sql.Identifier(f.name) if binary or not pa.types.is_timestamp(f.type) else
                  sql.SQL("(extract(epoch FROM {0}) * 1000000)::bigint").format(sql.Identifier(f.name))
                  for f in fields]
        query = sql.SQL("SELECT {} FROM {}{} ORDER BY {}").format(
            sql.SQL(", ").join(picked), sql.Identifier(table_name),
            sql.SQL(" WHERE " + " AND ".join(where)).format(*map(sql.Literal, params)) if where else sql.SQL(""),
            sql.SQL(", ").join(map(sql.Identifier, order)))
        try:
            conn = self._ready()
            with conn.transaction(), conn.cursor(binary=True) as cur:
                if binary:
                    rows = cur.execute(query).fetchall()
                    values = list(zip(*rows)) if rows else [[] for _ in fields]
                    return pa.Table.from_arrays([pa.array(v, f.type) for v, f in zip(values, fields)], schema=wanted)
                with cur.copy(sql.SQL("COPY ({}) TO STDOUT (FORMAT csv)").format(query)) as copy:
                    text = b"".join(copy)
        except psycopg.Error as exc:
            raise self._error(exc, "read failed") from None
        return _read_csv(text, wanted)

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

    def query(self, table, start=None, end=None, nodes=None):
        if table not in schema.SCHEMAS:
            raise StoreError("postgresql store %s: no table %r (tables: %s)" % (self.target, table, ", ".join(schema.TABLES)))
        fields = list(schema.SCHEMAS[table])
        names = [f.name for f in fields]
        when = '"time"' if "time" in names else "received"
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
        order = [k for k in schema.KEYS.get(table, ("received",)) if k in names]
        return self._fetch(fields, table, where, params, order)


def _read_csv(text, wanted):
    """PostgreSQL's CSV (timestamps as µs since 1970) as a Table of `wanted`."""
    import io

    import pyarrow.csv as csv

    if not text:
        return wanted.empty_table()
    types = {f.name: pa.int64() if pa.types.is_timestamp(f.type) else f.type for f in wanted}
    table = csv.read_csv(
        io.BytesIO(text),
        read_options=csv.ReadOptions(column_names=wanted.names),
        parse_options=csv.ParseOptions(newlines_in_values=True),
        convert_options=csv.ConvertOptions(column_types=types, null_values=[""], strings_can_be_null=True,
                                           quoted_strings_can_be_null=False, true_values=["t"], false_values=["f"]))
    return pa.Table.from_arrays([table.column(f.name).cast(f.type) for f in wanted], schema=wanted)
