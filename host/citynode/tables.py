"""Tables from decoded messages, and writers for CSV, JSON Lines and Parquet.

One table per message kind, one row per message, except `accel`: one row per
sample (with `accel_blocks` holding one row per block). Every table starts with
the same columns:

    node_id      the node
    time         ISO 8601 UTC text (`2026-11-26T06:12:24.125000Z`) once the node's
                 clock is anchored by a TIME message in the same epoch, else the
                 node time in seconds (the same number as node_time_s)
    node_time_s  seconds on the node's clock, unwrapped across its 2^32 ms wrap;
                 always there, always a number
    epoch        how many restarts of this node were seen before this row, counted
                 from the messages (node_time_s starts again at each restart;
                 see citynode.timebase for the one exception, features frames)
    seq          the frame's sequence number

Rows are stamped with the moment they describe: the frame's time for most
kinds; for a features window its first sample (frame time − `age_ms`); for
accel samples the block's first sample t0 = frame time − `age_ms`, then
interpolated from the output data rate: `t = t0 + i / odr_hz`. `sample_index`
is the block's `first_index + i`. Accelerations are in g:
`counts × range_g / 32768`.

Blocks are joined only where the sample index runs on: `segment` (in `accel`
and `accel_blocks`) counts, per node, the runs of contiguous samples, and goes
up at every gap in `first_index` (samples lost in a FIFO overflow, the node's
estimate, flag ACCEL_GAP_ESTIMATED; frames lost on the link), at a restart of
the stream (the index starts again) and of the node. `gap_before` (in
`accel_blocks`) says how many samples are missing before the block: 0 when it
continues the last one, -1 when the stream or the node started again.

Writers stream: each `TableSet.append()` adds the rows of one decoded batch,
so a capture of any length is written in bounded memory. CSV and JSON Lines
write every number with Python's shortest round-trip repr; Parquet keeps types
(`time` is text there too, the same text as in CSV).
"""

import json
import os
import weakref

import numpy as np

from citynode.units import g_per_count
from citynode_protocol.messages import LOG_LEVELS, reply_word

FORMATS = ("csv", "jsonl", "parquet")
WRITE_ROWS = 1 << 16
EXTENSIONS = {"csv": ".csv", "jsonl": ".jsonl", "parquet": ".parquet"}

_FRONT = (("node_id", "int"), ("time", "time"), ("node_time_s", "float"), ("epoch", "int"), ("seq", "int"))

_FEATURES = [("window_s", "float"), ("age_ms", "int"), ("n_samples", "int"), ("flags", "int")]
for _axis in "xyz":
    _FEATURES += [("rms_%s_g" % _axis, "float"), ("peak_%s_g" % _axis, "float"), ("dominant_freq_%s_hz" % _axis, "float")]
_FEATURES += [("pitch_deg", "float"), ("roll_deg", "float")]

_STATUS = [
    ("uptime_s", "int"),
    ("free_heap", "int"),
    ("mpy_major", "int"),
    ("mpy_minor", "int"),
    ("mpy_patch", "int"),
    ("app_major", "int"),
    ("app_minor", "int"),
    ("app_patch", "int"),
    ("protocol_minor", "int"),
    ("sensors_fitted", "int"),
    ("sensors_ok", "int"),
    ("flags", "int"),
    ("supply_v", "float"),
    ("calibration_id", "int"),
    ("sensor_errors", "int"),
    ("crc_errors", "int"),
    ("timeouts", "int"),
    ("fifo_overruns", "int"),
    ("tx_dropped", "int"),
    ("command_errors", "int"),
]

# table name -> columns after the common ones: (name, type)
SCHEMAS = {
    "climate": [("temperature_c", "float"), ("relative_humidity_pct", "float"), ("status", "int")],
    "accel": [("sample_index", "int"), ("ax_g", "float"), ("ay_g", "float"), ("az_g", "float"), ("segment", "int")],
    "accel_blocks": [
        ("encoding", "int"),
        ("flags", "int"),
        ("range_g", "int"),
        ("odr_hz", "float"),
        ("first_index", "int"),
        ("n_samples", "int"),
        ("age_ms", "int"),
        ("gap_before", "int"),
        ("segment", "int"),
    ],
    "features": _FEATURES,
    "status": _STATUS,
    "log": [("level", "int"), ("level_name", "str"), ("text", "str")],
    "time": [("utc_ms", "int"), ("utc", "str")],
    "reply": [("request_id", "int"), ("code", "int"), ("code_word", "str"), ("body", "str")],
}
TABLE_ORDER = tuple(SCHEMAS)


def columns_of(name):
    return list(_FRONT) + SCHEMAS[name]


# -- times ---------------------------------------------------------------------


def iso_utc(us):
    """ISO 8601 UTC text with microseconds and Z for an int64 array of µs since 1970."""
    us = np.asarray(us, np.int64)
    if not len(us):
        return []
    sec, frac = np.divmod(us, 1_000_000)
    uniq, inv = np.unique(sec, return_inverse=True)
    prefix = np.datetime_as_string(uniq.astype("datetime64[s]"), unit="s").tolist()
    return ["%s.%06dZ" % (prefix[i], f) for i, f in zip(inv.tolist(), frac.tolist())]


def _times(node_us, offset_ms, anchored):
    """(time column values, node_time_s floats) from node µs, UTC offsets in ms and anchored flags."""
    node_s = node_us / 1e6
    if not anchored.any():
        return node_s.tolist(), node_s
    text = np.array(node_s.tolist(), dtype=object)
    where = np.flatnonzero(anchored)
    text[where] = iso_utc(node_us[where] + offset_ms[where] * 1000)
    return text.tolist(), node_s


# -- rows from a batch -------------------------------------------------------------


def batch_tables(batch, timebase):
    """Columns of every table present in a `decode.Batch`: {table: {column: list or array}}.

    `timebase` (a `timebase.Timebase`) carries node clocks from batch to batch.
    """
    times = timebase.assign(batch)
    out = {}
    for kind, cols in batch.kinds.items():
        n = len(cols["order"])
        if not n:
            continue
        epoch, node_ms, offset, anchored = times[kind]
        if "age_ms" in cols:  # the row is about an earlier moment than the frame
            node_ms = node_ms - cols["age_ms"]
        if kind == "accel":
            out.update(_accel_tables(cols, epoch, node_ms, offset, anchored, timebase))
            continue
        t, node_s = _times(node_ms * 1000, offset, anchored)
        table = _front(cols, epoch, t, node_s)
        if kind == "log":
            table["level"] = cols["level"]
            table["level_name"] = [LOG_LEVELS[v] if 0 <= v < len(LOG_LEVELS) else str(v) for v in cols["level"].tolist()]
            table["text"] = list(cols["text"])
        elif kind == "time":
            table["utc_ms"] = cols["utc_ms"]
            table["utc"] = iso_utc(cols["utc_ms"].astype(np.int64) * 1000)
        elif kind == "reply":
            table["request_id"] = cols["request_id"]
            table["code"] = cols["code"]
            table["code_word"] = [reply_word(c) for c in cols["code"].tolist()]
            table["body"] = ["" if b is None else json.dumps(b, sort_keys=True) for b in cols["body"]]
        else:
            for name, _type in SCHEMAS[kind]:
                table[name] = cols[name]
        out[kind] = table
    return out


def _front(cols, epoch, t, node_s, pick=None):
    def take(a):
        return a if pick is None else a[pick]

    return {
        "node_id": take(cols["node_id"]),
        "time": t,
        "node_time_s": node_s,
        "epoch": take(epoch),
        "seq": take(cols["seq"]),
    }


_INDEX_WRAP = 1 << 32  # first_index is a u32
# per Timebase (one decode): node -> (epoch, next first_index, segment) of its last block
_RUNS = weakref.WeakKeyDictionary()


def _runs(cols, epoch, timebase):
    """(gap_before, segment) of each block, carrying each node's run from batch to batch."""
    runs = _RUNS.setdefault(timebase, {})
    nodes = cols["node_id"]
    first = cols["first_index"].astype(np.int64)
    ends = (first + cols["n_samples"]) % _INDEX_WRAP
    epoch = np.asarray(epoch, np.int64)
    gap = np.zeros(len(first), np.int64)
    segment = np.zeros(len(first), np.int64)
    for node in np.unique(nodes).tolist():
        rows = np.flatnonzero(nodes == node)
        last_epoch, last_end, last_segment = runs.get(node, (-1, 0, -1))
        before = np.concatenate(([last_end], ends[rows[:-1]]))
        before_epoch = np.concatenate(([last_epoch], epoch[rows[:-1]]))
        skip = (first[rows] - before) % _INDEX_WRAP
        g = np.where(skip < _INDEX_WRAP // 2, skip, -1)  # the index went back: the stream started again
        g[epoch[rows] != before_epoch] = -1  # the node started again
        starts = g != 0
        if last_epoch < 0:  # the node's first block: nothing before it
            g[0] = 0
            starts[0] = True
        gap[rows] = g
        segment[rows] = last_segment + np.cumsum(starts)
        runs[node] = (int(epoch[rows[-1]]), int(ends[rows[-1]]), int(segment[rows[-1]]))
    return gap, segment


def _accel_tables(cols, epoch, node_ms, offset, anchored, timebase):
    counts = cols["n_samples"]
    block_t, block_s = _times(node_ms * 1000, offset, anchored)
    blocks = _front(cols, epoch, block_t, block_s)
    gap, segment = _runs(cols, epoch, timebase)
    for name, _type in SCHEMAS["accel_blocks"]:
        if name in cols:
            blocks[name] = cols[name]
    blocks["gap_before"] = gap
    blocks["segment"] = segment
    # per sample: the block's row repeated, i counted within the block
    rows = np.repeat(np.arange(len(counts)), counts)
    i = np.arange(len(rows)) - np.repeat(cols["sample_start"], counts)
    odr_mhz = np.rint(cols["odr_hz"] * 1000.0)
    with np.errstate(divide="ignore", invalid="ignore"):
        step_us = np.where(odr_mhz[rows] > 0, np.rint(i * 1e9 / odr_mhz[rows]), 0).astype(np.int64)
    node_us = node_ms[rows] * 1000 + step_us
    t, node_s = _times(node_us, offset[rows], anchored[rows])
    samples = cols["samples"]
    scale = g_per_count(cols["range_g"][rows])
    accel = _front(cols, epoch, t, node_s, pick=rows)
    accel["sample_index"] = cols["first_index"][rows] + i
    accel["ax_g"] = samples[:, 0] * scale
    accel["ay_g"] = samples[:, 1] * scale
    accel["az_g"] = samples[:, 2] * scale
    accel["segment"] = segment[rows]
    return {"accel": accel, "accel_blocks": blocks}


# -- writers -------------------------------------------------------------------------


def _text_column(values, kind):
    if isinstance(values, np.ndarray):
        values = values.tolist()
    if kind == "float":
        return [repr(v) for v in values]
    if kind == "int":
        return [str(v) for v in values]
    if kind == "time":
        return [v if isinstance(v, str) else repr(v) for v in values]
    return values


def _csv_field(text):
    if any(c in text for c in ',"\r\n'):
        return '"' + text.replace('"', '""') + '"'
    return text


class _CsvWriter:
    def __init__(self, path, name):
        self.columns = columns_of(name)
        self.f = open(path, "w", encoding="utf-8", newline="")
        self.f.write(",".join(c for c, _ in self.columns) + "\n")

    def write(self, table):
        cols = []
        for c, kind in self.columns:
            text = _text_column(table[c], kind)
            if kind == "str":
                text = [_csv_field(t) for t in text]
            cols.append(text)
        self.f.write("".join(",".join(row) + "\n" for row in zip(*cols)))

    def close(self):
        self.f.close()


class _JsonlWriter:
    def __init__(self, path, name):
        self.columns = columns_of(name)
        self.f = open(path, "w", encoding="utf-8")

    def write(self, table):
        names = [c for c, _ in self.columns]
        cols = [table[c].tolist() if isinstance(table[c], np.ndarray) else list(table[c]) for c in names]
        dumps = json.dumps
        self.f.write("".join(dumps(dict(zip(names, row)), ensure_ascii=False) + "\n" for row in zip(*cols)))

    def close(self):
        self.f.close()


class _ParquetWriter:
    def __init__(self, path, name):
        import pyarrow as pa
        import pyarrow.parquet as pq

        self.pa = pa
        self.columns = columns_of(name)
        types = {"int": pa.int64(), "float": pa.float64(), "str": pa.string(), "time": pa.string()}
        self.schema = pa.schema([(c, types[k]) for c, k in self.columns])
        self.writer = pq.ParquetWriter(path, self.schema)

    def write(self, table):
        arrays = []
        for c, kind in self.columns:
            values = table[c]
            if kind == "time":
                values = _text_column(values, "time")
            elif kind == "int" and isinstance(values, np.ndarray):
                values = values.astype(np.int64)
            arrays.append(self.pa.array(values, type=self.schema.field(c).type))
        self.writer.write_table(self.pa.Table.from_arrays(arrays, schema=self.schema))

    def close(self):
        self.writer.close()


_WRITERS = {"csv": _CsvWriter, "jsonl": _JsonlWriter, "parquet": _ParquetWriter}


def require_format(fmt):
    """Check up front that a format can be written; raises ImportError naming what is missing."""
    if fmt not in FORMATS:
        raise ValueError("unknown table format %r; known: %s" % (fmt, ", ".join(FORMATS)))
    if fmt == "parquet":
        import pyarrow  # noqa: F401
        import pyarrow.parquet  # noqa: F401


class TableSet:
    """Writers for the tables of one run, opened as their first rows arrive, in `folder`."""

    def __init__(self, folder, fmt):
        self.folder = folder
        self.fmt = fmt
        self.writers = {}
        self.rows = {}

    def path(self, name):
        return os.path.join(self.folder, name + EXTENSIONS[self.fmt])

    def append(self, tables):
        for name in TABLE_ORDER:
            table = tables.get(name)
            if not table:
                continue
            n = len(table["node_id"])
            if not n:
                continue
            writer = self.writers.get(name)
            if writer is None:
                writer = self.writers[name] = _WRITERS[self.fmt](self.path(name), name)
                self.rows[name] = 0
            for at in range(0, n, WRITE_ROWS):  # text for a bounded number of rows at a time
                writer.write({k: v[at : at + WRITE_ROWS] for k, v in table.items()})
            self.rows[name] += n

    def close(self):
        for writer in self.writers.values():
            writer.close()

    def files(self):
        return [os.path.basename(self.path(name)) for name in TABLE_ORDER if name in self.writers]


# -- atomic output ---------------------------------------------------------------------


class StagedDir:
    """Write a run's files into a hidden staging folder, then move them into place.

    If `target` does not exist, the staging folder is made beside it and renamed
    to it; if it does, the staging folder is made inside it and each file is
    renamed into it (replacing files of the same name, leaving others alone).
    Either way nothing appears under the target's name until `commit()`, and
    `abort()` removes everything the run made, missing parent folders included.
    Raises OSError when the target cannot be made or written.
    """

    def __init__(self, target):
        self.target = os.path.abspath(target)
        self.existed = os.path.isdir(self.target)
        self.created = []  # parent folders made for the target, outermost first
        if os.path.exists(self.target) and not self.existed:
            raise NotADirectoryError(20, "exists and is not a folder", target)
        import tempfile

        if self.existed:
            self.path = tempfile.mkdtemp(prefix=".citynode-staging-", dir=self.target)
        else:
            parent = os.path.dirname(self.target)
            missing = []
            while parent and not os.path.isdir(parent):
                missing.append(parent)
                parent = os.path.dirname(parent)
            try:
                for folder in reversed(missing):
                    os.mkdir(folder)
                    self.created.append(folder)
                name = os.path.basename(self.target)
                self.path = tempfile.mkdtemp(prefix=".%s.staging-" % name, dir=os.path.dirname(self.target))
                # mkdtemp makes it private (0700); as the output folder it gets the usual mode
                umask = os.umask(0)
                os.umask(umask)
                os.chmod(self.path, 0o777 & ~umask)
            except OSError:
                self._remove_created()
                raise

    def commit(self, files):
        if self.existed:
            for name in files:
                os.replace(os.path.join(self.path, name), os.path.join(self.target, name))
            os.rmdir(self.path)
        else:
            os.rename(self.path, self.target)

    def abort(self):
        import shutil

        shutil.rmtree(self.path, ignore_errors=True)
        self._remove_created()

    def _remove_created(self):
        for folder in reversed(self.created):
            try:
                os.rmdir(folder)
            except OSError:
                break
        self.created = []
