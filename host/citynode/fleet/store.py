"""The Store interface: what the collector, `query` and `fleet` need of any engine.

    store = open_store(None)                       # the embedded default folder
    store = open_store("/srv/citynode/store")      # Parquet files in that folder
    store = open_store("postgresql://u:p@h/db")    # PostgreSQL
    written = store.write(batch)                   # one transaction: all rows or none
    table = store.query("climate", start=..., end=..., nodes=[3, 4])

A store is opened by one process and used from one thread. `write` is atomic
and idempotent: rows of a frame whose (node_id, boot, seq) is already in the
store's `frames` ledger are dropped and counted, so re-delivering a message
changes nothing. Only after `write` returns may the collector acknowledge the
message to the broker. Errors are `StoreError`: one line, secrets masked.

A data row written with a null `time`, `calibration_id` or `firmware` (the
collector did not know its boot's anchor or status yet: another collector of
the group was writing them) is read with them filled in from the store's
`time` and `status` rows of that boot, as citynode.fleet.stamps says; so is
the `frames` ledger's `time`. An engine may fill them in when it writes.
"""

import dataclasses
import os

from citynode.errors import CitynodeError
from citynode.fleet import schema

SCHEMA_VERSION = 1


class StoreError(CitynodeError):
    """A store that cannot be opened, written or read; the message is one line."""


@dataclasses.dataclass
class IngestBatch:
    """Rows of one or more MQTT messages, stored together or not at all.

    `tables`: {table name: pyarrow.Table with schema.SCHEMAS[name]} for the data
    tables and `frames` (one ledger row per verified frame); `rejects` likewise.
    """

    tables: dict
    rejects: object = None

    def rows(self):
        return sum(t.num_rows for t in self.tables.values())


@dataclasses.dataclass
class Written:
    frames_new: int = 0
    frames_duplicate: int = 0
    rows: int = 0  # data rows stored
    rejects: int = 0
    # (node_id, boot, seq) of the frames dropped because the ledger held them before this write:
    # the collector tells a replay another collector stored from a redelivery by its message
    duplicates: list = dataclasses.field(default_factory=list)


class Store:
    """Base of the engines; each method below is implemented by every engine."""

    target = None  # what was opened, secrets masked, for messages

    def write(self, batch):
        """Store the batch in one transaction; return Written. Raises StoreError."""
        raise NotImplementedError

    def anchor(self, node_id, boot):
        """(node_ms, utc_ms) of the latest plausible TIME of that boot, or None."""
        raise NotImplementedError

    def latest_status(self, node_id, boot):
        """{"calibration_id": int, "firmware": str} from the latest status of that boot, or None."""
        raise NotImplementedError

    def anchors(self, keys):
        """{(node_id, boot): anchor(node_id, boot)} for those of keys that have one. The collector asks
        for all the (node, boot) of a batch it does not know at once: an engine answers in one query."""
        found = {}
        for node_id, boot in keys:
            got = self.anchor(node_id, boot)
            if got is not None:
                found[(node_id, boot)] = got
        return found

    def latest_statuses(self, keys):
        """{(node_id, boot): latest_status(node_id, boot)} for those of keys that have one (as anchors())."""
        found = {}
        for node_id, boot in keys:
            got = self.latest_status(node_id, boot)
            if got is not None:
                found[(node_id, boot)] = got
        return found

    def climate_history(self, node_ids, since_us):
        """Climate rows (node_id, time, temperature_c, relative_humidity_pct) since then, for QC."""
        raise NotImplementedError

    def query(self, table, start=None, end=None, nodes=None):
        """A pyarrow.Table of that table's rows with start <= time < end (µs since 1970,
        None for open), of those nodes (None: all), ordered by node_id, boot, seq
        (and sample_index). Rows whose time is null are included when start and end are None."""
        raise NotImplementedError

    # What `citynode fleet` asks. Each has a default through query(), which reads
    # the whole table; an engine may answer the same with its own index or SQL.

    def query_received(self, table, start=None, end=None, nodes=None, columns=None):
        """Like query(), but the window is on `received` (µs since 1970): rows
        with start <= received < end, those whose `time` is null included (a
        node that does not know UTC still sends, and is still seen).
        `columns`: only these columns, in this order (None: all)."""
        rows = self.query(table, nodes=nodes)
        if columns is not None:
            check_columns(table, columns)
            rows = rows.select(list(columns) + ([] if "received" in columns else ["received"]))
        if start is None and end is None:
            return rows if columns is None else rows.select(list(columns))
        rows = within(rows, "received", start, end)
        return rows if columns is None else rows.select(list(columns))

    def last_received(self, nodes=None):
        """{node_id: the latest `received` (µs) in the frames ledger}, over all time."""
        frames = self.query("frames", nodes=nodes).select(["node_id", "received"])
        latest = frames.group_by("node_id").aggregate([("received", "max")])
        return {n: r.value for n, r in zip(latest["node_id"].to_pylist(), latest["received_max"])}

    def calibrations_first_seen(self, nodes=None):
        """{(node_id, calibration_id): the earliest `received` (µs) of a status row
        carrying that calibration id}, over all time."""
        status = self.query("status", nodes=nodes).select(["node_id", "calibration_id", "received"])
        status = status.filter(status["calibration_id"].is_valid())
        first = status.group_by(["node_id", "calibration_id"]).aggregate([("received", "min")])
        return {(n, c): r.value for n, c, r in zip(first["node_id"].to_pylist(), first["calibration_id"].to_pylist(),
                                                   first["received_min"])}

    def close(self):
        pass

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        self.close()


def check_columns(table, columns):
    """The fields of those columns of a store table (all for None); StoreError for an unknown one."""
    fields = schema.SCHEMAS[table]
    if columns is None:
        return list(fields)
    unknown = [c for c in columns if c not in fields.names]
    if unknown:
        raise StoreError("no column %s in table %s" % (", ".join(map(repr, unknown)), table))
    return [fields.field(c) for c in columns]


def within(rows, column, start=None, end=None):
    """The rows with start <= column < end (µs since 1970; None for open); null never inside."""
    import pyarrow.compute as pc

    us = rows[column].cast("int64")
    keep = pc.is_valid(us)
    if start is not None:
        keep = pc.and_(keep, pc.greater_equal(us, start))
    if end is not None:
        keep = pc.and_(keep, pc.less(us, end))
    return rows.filter(pc.fill_null(keep, False))


def default_folder():
    from citynode.paths import data_file

    return str(data_file("store"))


def open_store(target=None, create=True):
    """The store at `target`: None (the default folder), a folder path, or a postgresql:// URL."""
    if target is not None and target.startswith(("postgresql://", "postgres://")):
        from citynode.fleet.pg_store import PgStore

        return PgStore(target, create=create)
    from citynode.fleet.parquet_store import ParquetStore

    return ParquetStore(os.path.expanduser(target) if target else default_folder(), create=create)


__all__ = ["IngestBatch", "SCHEMA_VERSION", "Store", "StoreError", "Written", "open_store", "schema"]
