"""A Store held in memory, for tests of what sits above a store (collector, fleet, query).

It follows citynode.fleet.store's contract with plain Arrow tables: atomic
writes (a batch is checked whole before anything is kept), the frames ledger
for idempotence, the same query ordering, and the stamps a collector left null
filled in from the time and status rows (citynode.fleet.stamps) at read. `fail_next` makes the next
write raise StoreError, as a database that went away does.
"""

import pyarrow as pa
import pyarrow.compute as pc

from citynode.fleet import schema, stamps
from citynode.fleet.store import Store, StoreError, Written, within


class MemoryStore(Store):
    target = "memory"

    def __init__(self):
        self.tables = {name: [] for name in schema.TABLES}
        self.ledger = set()
        self.fail_next = False
        self.writes = 0

    def write(self, batch):
        if self.fail_next:
            self.fail_next = False
            raise StoreError("memory store: write failed (test)")
        for name, table in batch.tables.items():
            if not table.schema.equals(schema.SCHEMAS[name]):
                raise StoreError("memory store: %s has schema %s" % (name, table.schema))
        written = Written()
        frames = batch.tables.get("frames", schema.empty("frames"))
        new = set()
        for key in zip(*(frames.column(c).to_pylist() for c in schema.KEYS["frames"])):
            if key in self.ledger or key in new:
                written.frames_duplicate += 1
                if key in self.ledger:
                    written.duplicates.append(key)
            else:
                new.add(key)
        written.frames_new = len(new)
        for name, table in batch.tables.items():
            if not table.num_rows:
                continue
            keys = zip(*(table.column(c).to_pylist() for c in ("node_id", "boot", "seq")))
            keep = pa.array([k in new for k in keys])
            kept = table.filter(keep)
            if name == "frames":  # keep one ledger row per new frame
                seen, mask = set(), []
                for k in zip(*(kept.column(c).to_pylist() for c in ("node_id", "boot", "seq"))):
                    mask.append(k not in seen)
                    seen.add(k)
                kept = kept.filter(pa.array(mask, pa.bool_()))
            else:
                written.rows += kept.num_rows
            self.tables[name].append(kept)
        self.ledger |= new
        if batch.rejects is not None and batch.rejects.num_rows:
            self.tables["rejects"].append(batch.rejects)
            written.rejects = batch.rejects.num_rows
        self.writes += 1
        return written

    def _all(self, name):
        parts = self.tables[name]
        return pa.concat_tables(parts) if parts else schema.empty(name)

    def _stamped(self, table, rows):
        """The rows with the stamps a collector left null filled in, as the engines do (citynode.fleet.stamps)."""
        anchors = self._all("time")
        anchors = anchors.filter(pc.and_(pc.and_(pc.fill_null(anchors["plausible"], False), anchors["utc_ms"].is_valid()),
                                         anchors["node_time_s"].is_valid()))
        parts = {name: self._all(name) for name in stamps.FRAME_TIME}
        return stamps.fill(table, rows, anchors, self._all("status"), stamps.frame_times(parts))

    def anchor(self, node_id, boot):
        t = self._all("time")
        t = t.filter(pc.and_(pc.and_(pc.equal(t["node_id"], node_id), pc.equal(t["boot"], boot)), t["plausible"]))
        if not t.num_rows:
            return None
        last = t.sort_by([("seq", "descending")]).slice(0, 1).to_pylist()[0]
        return round(last["node_time_s"] * 1000), last["utc_ms"]

    def latest_status(self, node_id, boot):
        t = self._all("status")
        t = t.filter(pc.and_(pc.equal(t["node_id"], node_id), pc.equal(t["boot"], boot)))
        if not t.num_rows:
            return None
        last = t.sort_by([("seq", "descending")]).slice(0, 1).to_pylist()[0]
        return {"calibration_id": last["calibration_id"], "firmware": last["firmware"]}

    def climate_history(self, node_ids, since_us):
        t = self._all("climate")
        t = t.filter(pc.is_in(t["node_id"], pa.array(list(node_ids), pa.int64())))
        t = t.filter(pc.fill_null(pc.greater_equal(t["time"].cast(pa.int64()), since_us), False))
        return t.select(["node_id", "time", "temperature_c", "relative_humidity_pct"])

    def query(self, table, start=None, end=None, nodes=None):
        t = self._stamped(table, self._all(table))
        if nodes is not None:
            t = t.filter(pc.is_in(t["node_id"], pa.array(list(nodes), pa.int64())))
        if start is not None or end is not None:
            t = within(t, "time" if "time" in t.column_names else "received", start, end)
        order = [(k, "ascending") for k in schema.KEYS.get(table, ("received",)) if k in t.column_names]
        return t.sort_by(order) if order else t
