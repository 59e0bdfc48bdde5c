"""Tables from decoded messages, and writers for CSV, JSON Lines and Parquet.

One table per message kind, one row per message, except `accel`: one row per
sample (with `accel_blocks` holding one row per block). Every table starts with
the same columns:

    node_id      the node
    time         UTC of the row, once the node's clock is anchored by a plausible
                 TIME message in the same epoch (citynode.timebase); empty (CSV),
                 null (JSON Lines, Parquet) where the node did not know UTC.
                 CSV and JSON Lines: ISO 8601 (`2026-11-26T06:12:24.125000Z`) or,
                 with time format `epoch-us`, µs since 1970; Parquet:
                 timestamp[us, tz=UTC]
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
`counts × range_g / 32768`. The `time` table keeps the message's `utc_ms` as
sent (u64), its UTC in `utc` where `plausible` (SPEC §6 time), and nothing
there where not: such a message anchors nothing.

Blocks are joined only where the sample index runs on: `segment` (in `accel`
and `accel_blocks`) counts, per node, the runs of contiguous samples, and goes
up at every gap in `first_index` (samples lost in a FIFO overflow, the node's
estimate, flag ACCEL_GAP_ESTIMATED; frames lost on the link), at a restart of
the stream (the index starts again) and of the node. `gap_before` (in
`accel_blocks`) says how many samples are missing before the block: 0 when it
continues the last one, -1 when the stream or the node started again.

Numbers are exact: integers as integers (u64 where the wire has one), floats
as the shortest text that reads back as the same double (Arrow's formatting:
`2`, `0.1`, `1e-05` is `0.00001`, `1e+20`), NaN and infinities as `nan`/`inf`
in CSV and `NaN`/`Infinity` in JSON Lines (as Python's json writes them).
Times never pass through int64 arithmetic that could wrap: UTC is only formed
for plausible anchors, node seconds from huge node clocks in two parts.

Writers stream: each `TableSet.append()` adds the rows of one decoded batch
with Arrow's CSV and Parquet writers (JSON Lines: Arrow's text of each column,
joined per row), so a capture of any length is written in bounded memory.
"""

import json
import os
import weakref

import numpy as np

from citynode.table_formats import EXTENSIONS, FORMATS, TIME_FORMATS
from citynode.timebase import plausible_utc
from citynode.units import g_per_count
from citynode_protocol.messages import LOG_LEVELS, reply_word

WRITE_ROWS = 1 << 18  # rows given to a writer at once (JSON Lines text: 1/16 of it)
NO_UTC = np.iinfo(np.int64).min  # in a `time` column: the node did not know UTC
_SAFE_NODE_MS = (1 << 53) // 1000  # node ms whose µs are exact in a double

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
    "time": [("utc_ms", "u64"), ("utc", "time"), ("plausible", "bool")],
    "reply": [("request_id", "int"), ("code", "int"), ("code_word", "str"), ("body", "str")],
}
TABLE_ORDER = tuple(SCHEMAS)


def columns_of(name):
    return list(_FRONT) + SCHEMAS[name]


# -- times ---------------------------------------------------------------------

_US_PER_DAY = 86_400_000_000
_ISO_WIDTH = 27  # 2026-11-26T06:12:24.125000Z


_PAIRS = np.array([[48 + k // 10, 48 + k % 10] for k in range(100)], np.uint8).view("<u2").ravel()  # "00" … "99"
# 2026-11-26T06:12:24.125000Z as a packed record: two digits at a time
_ISO_RECORD = np.dtype({
    "names": ["date", "T", "hh", "c1", "mm", "c2", "ss", "dot", "f1", "f2", "f3", "Z"],
    "formats": ["S10", "S1", "<u2", "S1", "<u2", "S1", "<u2", "S1", "<u2", "<u2", "<u2", "S1"],
    "offsets": [0, 10, 11, 13, 14, 16, 17, 19, 20, 22, 24, 26],
    "itemsize": _ISO_WIDTH,
})


def _iso_chars(us):
    """ISO 8601 text of µs since 1970 as an (n, 27) uint8 array; None if a year is not 4 digits."""
    days, tod = np.divmod(us, _US_PER_DAY)
    first, last = (int(days.min()), int(days.max())) if len(days) else (0, 0)
    if last - first < 1 << 16:  # a span of days, as in any capture: no sort
        uniq, inv = np.arange(first, last + 1), days - first
    else:
        uniq, inv = np.unique(days, return_inverse=True)
    dates = np.datetime_as_string(uniq.astype("datetime64[D]"))
    if (np.char.str_len(dates) != 10).any():  # a year before 0000 or after 9999
        return None
    out = np.empty(len(us), _ISO_RECORD)
    out["date"] = dates.astype("S10")[inv]
    for name, char in (("T", b"T"), ("c1", b":"), ("c2", b":"), ("dot", b"."), ("Z", b"Z")):
        out[name] = char
    secs, frac = np.divmod(tod, 1_000_000)
    secs = secs.astype(np.int32)
    frac = frac.astype(np.int32)
    out["hh"] = _PAIRS[secs // 3600]
    out["mm"] = _PAIRS[secs // 60 % 60]
    out["ss"] = _PAIRS[secs % 60]
    out["f1"] = _PAIRS[frac // 10000]
    out["f2"] = _PAIRS[frac // 100 % 100]
    out["f3"] = _PAIRS[frac % 100]
    return out.view(np.uint8).reshape(-1, _ISO_WIDTH)


def iso_utc(us):
    """ISO 8601 UTC text with microseconds and Z for an int64 array of µs since 1970."""
    us = np.asarray(us, np.int64)
    if not len(us):
        return []
    chars = _iso_chars(us)
    if chars is not None:
        return chars.view("S%d" % _ISO_WIDTH).ravel().astype("U").tolist()
    sec, frac = np.divmod(us, 1_000_000)
    text = np.datetime_as_string(sec.astype("datetime64[s]"), unit="s").tolist()
    return ["%s.%06dZ" % (t, f) for t, f in zip(text, frac.tolist())]


def _node_seconds(node_ms, step_us=None):
    """Seconds on the node's clock from unwrapped ms (int64) and µs after them.

    Exact to the µs while the clock fits a double's µs; past that (hundreds of
    years, only from a corrupt stream) ms and µs are added as doubles."""
    safe = (node_ms < _SAFE_NODE_MS) & (node_ms > -_SAFE_NODE_MS)
    if step_us is None:
        step_us = 0
    if safe.all():
        return (node_ms * 1000 + step_us) / 1e6
    exact = (np.where(safe, node_ms, 0) * 1000 + step_us) / 1e6
    return np.where(safe, exact, node_ms / 1e3 + np.asarray(step_us) / 1e6)


def _utc_us(utc_ms, has_utc, step_us=None):
    """µs since 1970 where the row has UTC (plausible, so no product wraps), NO_UTC elsewhere."""
    if has_utc.all():
        ms = utc_ms
    else:
        ms = np.where(has_utc, utc_ms, 0)
    us = ms * 1000
    if step_us is not None:
        us += step_us
    if not has_utc.all():
        us[~has_utc] = NO_UTC
    return us


# -- rows from a batch -------------------------------------------------------------


def batch_tables(batch, timebase):
    """Columns of every table present in a `decode.Batch`: {table: {column: list or array}}.

    `timebase` (a `timebase.Timebase`) carries node clocks from batch to batch.
    A `time` column holds µs since 1970 (int64), NO_UTC where there is none.
    """
    times = timebase.assign(batch)
    out = {}
    for kind, cols in batch.kinds.items():
        n = len(cols["order"])
        if not n:
            continue
        epoch, node_ms, utc_ms, has_utc = times[kind]
        if "age_ms" in cols:  # the row is about an earlier moment than the frame
            age = cols["age_ms"].astype(np.int64)
            node_ms = node_ms - age
            utc_ms = utc_ms - age
        if kind == "accel":
            out.update(_accel_tables(cols, epoch, node_ms, utc_ms, has_utc, timebase))
            continue
        table = _front(cols, epoch, _utc_us(utc_ms, has_utc), _node_seconds(node_ms))
        if kind == "log":
            table["level"] = cols["level"]
            table["level_name"] = [LOG_LEVELS[v] if 0 <= v < len(LOG_LEVELS) else str(v) for v in cols["level"].tolist()]
            table["text"] = list(cols["text"])
        elif kind == "time":
            sent = cols["utc_ms"].astype(np.uint64)
            plausible = plausible_utc(sent)
            table["utc_ms"] = sent
            table["utc"] = _utc_us(np.where(plausible, sent, 0).astype(np.int64), plausible)
            table["plausible"] = plausible
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


def _front(cols, epoch, t, node_s):
    return {"node_id": cols["node_id"], "time": t, "node_time_s": node_s, "epoch": epoch, "seq": cols["seq"]}


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


def _accel_tables(cols, epoch, node_ms, utc_ms, has_utc, timebase):
    counts = cols["n_samples"]
    blocks = _front(cols, epoch, _utc_us(utc_ms, has_utc), _node_seconds(node_ms))
    gap, segment = _runs(cols, epoch, timebase)
    for name, _type in SCHEMAS["accel_blocks"]:
        if name in cols:
            blocks[name] = cols[name]
    blocks["gap_before"] = gap
    blocks["segment"] = segment

    def per_sample(a):  # each block's value repeated for its samples
        return np.repeat(a, counts)

    # i: the sample's place within its block
    i = np.arange(int(counts.sum())) - per_sample(cols["sample_start"])
    odr_mhz = per_sample(np.rint(cols["odr_hz"] * 1000.0))
    with np.errstate(divide="ignore", invalid="ignore"):
        step_us = np.where(odr_mhz > 0, np.rint(i * 1e9 / odr_mhz), 0).astype(np.int64)
    samples = cols["samples"]
    scale = per_sample(g_per_count(cols["range_g"]))
    t = _utc_us(per_sample(utc_ms), per_sample(has_utc), step_us)
    accel = {
        "node_id": per_sample(cols["node_id"]),
        "time": t,
        "node_time_s": _node_seconds(per_sample(node_ms), step_us),
        "epoch": per_sample(epoch),
        "seq": per_sample(cols["seq"]),
        "sample_index": per_sample(cols["first_index"]) + i,
        "ax_g": samples[:, 0] * scale,
        "ay_g": samples[:, 1] * scale,
        "az_g": samples[:, 2] * scale,
        "segment": per_sample(segment),
    }
    return {"accel": accel, "accel_blocks": blocks}


def rows_without_utc(tables):
    """How many rows of these tables (accel_blocks aside: accel counts them) have no UTC."""
    return sum(int(np.count_nonzero(t["time"] == NO_UTC)) for name, t in tables.items() if name != "accel_blocks")


# -- writers -------------------------------------------------------------------------


def _arrow_column(pa, values, kind, time_format):
    """One column as an Arrow array; `time` as timestamp (Parquet), ISO text or µs.

    A column given as an Arrow array (a store's, which may hold nulls) is cast as it is."""
    if isinstance(values, (pa.Array, pa.ChunkedArray)) and kind != "time":
        return values.cast(_arrow_type(pa, kind, time_format))
    if kind == "time":
        us = np.asarray(values, np.int64)
        missing = us == NO_UTC
        if time_format == "iso":
            return _iso_arrow(pa, us, missing)
        typ = pa.int64() if time_format == "epoch-us" else pa.timestamp("us", tz="UTC")
        return pa.array(us, type=typ, mask=missing if missing.any() else None)
    if kind in _NUMPY:
        return pa.array(np.asarray(values, _NUMPY[kind]))
    return pa.array(values, type=pa.string())


_NUMPY = {"int": np.int64, "u64": np.uint64, "float": np.float64, "bool": np.bool_}


def _iso_arrow(pa, us, missing):
    n = len(us)
    chars = _iso_chars(np.where(missing, 0, us)) if n else np.zeros((0, _ISO_WIDTH), np.uint8)
    if chars is None:  # a year outside 0000-9999 (plausible UTC never is)
        text = iso_utc(np.where(missing, 0, us))
        return pa.array([None if m else t for t, m in zip(text, missing.tolist())], type=pa.string())
    offsets = np.arange(0, (n + 1) * _ISO_WIDTH, _ISO_WIDTH, dtype=np.int32)
    validity = pa.py_buffer(np.packbits(~missing, bitorder="little")) if missing.any() else None
    return pa.StringArray.from_buffers(n, pa.py_buffer(offsets), pa.py_buffer(chars), validity)


def _arrow_type(pa, kind, time_format):
    if kind == "time":
        return {"iso": pa.string(), "epoch-us": pa.int64(), None: pa.timestamp("us", tz="UTC")}[time_format]
    return {"int": pa.int64(), "u64": pa.uint64(), "float": pa.float64(), "bool": pa.bool_(), "str": pa.string()}[kind]


def _arrow_schema(pa, columns, time_format):
    return pa.schema([(c, _arrow_type(pa, k, time_format)) for c, k in columns])


def _arrow_table(pa, schema, columns, table, time_format):
    arrays = [_arrow_column(pa, table[c], kind, time_format) for c, kind in columns]
    return pa.Table.from_arrays(arrays, schema=schema)


class _CsvWriter:
    rows_at_once = 1

    def __init__(self, path, columns, time_format):
        import pyarrow as pa
        import pyarrow.csv as pa_csv

        self.pa = pa
        self.columns = columns
        self.time_format = time_format
        self.schema = _arrow_schema(pa, self.columns, time_format)
        self.f = open(path, "wb")
        self.f.write((",".join(c for c, _ in self.columns) + "\n").encode())
        # free text is quoted; numbers and times never hold a comma or a quote
        quoting = "needed" if any(k == "str" for _, k in self.columns) else "none"
        options = pa_csv.WriteOptions(include_header=False, quoting_style=quoting)
        self.writer = pa_csv.CSVWriter(self.f, self.schema, write_options=options)

    def write(self, table):
        self.writer.write_table(_arrow_table(self.pa, self.schema, self.columns, table, self.time_format))

    def close(self):
        try:
            self.writer.close()
        finally:
            self.f.close()


# Times and counters step by small amounts (deltas pack them to a few bits);
# a double's bytes split into streams compress well. Text keeps dictionaries.
_PARQUET_ENCODING = {"int": "DELTA_BINARY_PACKED", "u64": "DELTA_BINARY_PACKED", "time": "DELTA_BINARY_PACKED", "float": "BYTE_STREAM_SPLIT"}


class _ParquetWriter:
    rows_at_once = 1

    def __init__(self, path, columns, time_format):
        import pyarrow as pa
        import pyarrow.parquet as pq

        self.pa = pa
        self.columns = columns
        self.schema = _arrow_schema(pa, self.columns, None)
        encodings = {c: _PARQUET_ENCODING[k] for c, k in self.columns if k in _PARQUET_ENCODING}
        self.writer = pq.ParquetWriter(
            path,
            self.schema,
            use_dictionary=[c for c, k in self.columns if k not in _PARQUET_ENCODING],
            column_encoding=encodings,
            compression="zstd",
            compression_level=1,
        )

    def write(self, table):
        self.writer.write_table(_arrow_table(self.pa, self.schema, self.columns, table, None))

    def close(self):
        self.writer.close()


_JSON_FLOATS = {"nan": "NaN", "inf": "Infinity", "-inf": "-Infinity", "-0": "-0.0"}  # JSON -0 reads as 0


class _JsonlWriter:
    rows_at_once = 16  # Python text per row: a smaller piece at a time

    def __init__(self, path, columns, time_format):
        import pyarrow as pa

        self.pa = pa
        self.columns = columns
        self.time_format = time_format
        self.row = "{" + ",".join("%s:%%s" % json.dumps(c) for c, _ in self.columns) + "}\n"
        self.f = open(path, "w", encoding="utf-8")

    def write(self, table):
        cols = [self._json_texts(table[c], kind) for c, kind in self.columns]
        row = self.row
        self.f.write("".join(row % values for values in zip(*cols)))

    def _json_texts(self, values, kind):
        pa = self.pa
        if kind == "str":
            return [json.dumps(v, ensure_ascii=False) for v in values]
        array = _arrow_column(pa, values, kind, self.time_format)
        if kind == "bool":
            return ["true" if v else "false" for v in array.to_pylist()]
        text = array.cast(pa.string()).to_pylist()
        if kind == "time" and self.time_format == "iso":
            return ["null" if t is None else '"%s"' % t for t in text]
        if kind == "float":
            return ["null" if t is None else _JSON_FLOATS.get(t, t) for t in text]
        return ["null" if t is None else t for t in text]

    def close(self):
        self.f.close()


_WRITERS = {"csv": _CsvWriter, "jsonl": _JsonlWriter, "parquet": _ParquetWriter}


def require_format(fmt, time_format=None):
    """Check up front that a format can be written; raises ImportError naming what is missing."""
    if fmt not in FORMATS:
        raise ValueError("unknown table format %r; known: %s" % (fmt, ", ".join(FORMATS)))
    if time_format is not None and time_format not in TIME_FORMATS:
        raise ValueError("unknown time format %r; known: %s" % (time_format, ", ".join(TIME_FORMATS)))
    import pyarrow  # noqa: F401
    import pyarrow.csv  # noqa: F401

    if fmt == "parquet":
        import pyarrow.parquet  # noqa: F401


class TableSet:
    """Writers for the tables of one run, opened as their first rows arrive, in `folder`.

    time_format: how CSV and JSON Lines write times (TIME_FORMATS); Parquet
    always writes a timestamp type. A batch is written in a thread while the
    caller decodes the next one (Arrow writes without the GIL); at most one
    batch waits, so memory stays bounded, and a writer's error comes back
    from the next `append()` or from `close()`. `columns(name)` gives a table's
    columns, [(column, kind)]: decode's by default; `citynode query` adds the store's.
    """

    def __init__(self, folder, fmt, time_format="iso", columns=columns_of):
        self.folder = folder
        self.columns = columns  # table name -> [(column, kind)]
        self.fmt = fmt
        self.time_format = None if fmt == "parquet" else time_format
        self.writers = {}
        self.rows = {}
        self.without_utc = 0  # rows (accel: samples) whose time is not UTC
        self._pool = None
        self._pending = None

    def path(self, name):
        return os.path.join(self.folder, name + EXTENSIONS[self.fmt])

    def append(self, tables):
        self.without_utc += rows_without_utc(tables)
        jobs = []
        for name in TABLE_ORDER:
            table = tables.get(name)
            if not table:
                continue
            n = len(table["node_id"])
            if not n:
                continue
            writer = self.writers.get(name)
            if writer is None:
                writer = self.writers[name] = _WRITERS[self.fmt](self.path(name), self.columns(name), self.time_format)
                self.rows[name] = 0
            step = max(1, WRITE_ROWS // writer.rows_at_once)
            jobs += [(writer, {k: v[at : at + step] for k, v in table.items()}) for at in range(0, n, step)]
            self.rows[name] += n
        self._wait()
        if self._pool is None:
            from concurrent.futures import ThreadPoolExecutor

            self._pool = ThreadPoolExecutor(1, thread_name_prefix="citynode-tables")
        self._pending = self._pool.submit(_write_all, jobs)

    def _wait(self):
        pending, self._pending = self._pending, None
        if pending is not None:
            pending.result()  # raises the writer's error here

    def close(self):
        try:
            self._wait()
        finally:
            if self._pool is not None:
                self._pool.shutdown()
            for writer in self.writers.values():
                writer.close()

    def files(self):
        return [os.path.basename(self.path(name)) for name in TABLE_ORDER if name in self.writers]


def _write_all(jobs):
    for writer, piece in jobs:
        writer.write(piece)


# -- atomic output ---------------------------------------------------------------------


_STAGING_INSIDE = ".citynode-staging-"


def _staging_beside(target):
    return ".%s.staging-" % os.path.basename(target)


class StagedDir:
    """Write a run's files into a hidden staging folder, then move them into place.

    If `target` does not exist, the staging folder is made beside it and renamed
    to it; if it does, the staging folder is made inside it and each file is
    renamed into it (replacing files of the same name, leaving others alone).
    Either way nothing appears under the target's name until `commit()`, and
    `abort()` removes everything the run made, missing parent folders included.
    Raises OSError when the target cannot be made or written.

    The staging folder's name carries the process id; staging folders of this
    target whose process is gone (a run killed with SIGKILL) are removed first.
    """

    def __init__(self, target):
        self.target = os.path.abspath(target)
        self.existed = os.path.isdir(self.target)
        self.created = []  # parent folders made for the target, outermost first
        if os.path.exists(self.target) and not self.existed:
            raise NotADirectoryError(20, "exists and is not a folder", target)
        import tempfile

        if self.existed:
            remove_stale_staging(self.target, _STAGING_INSIDE)
            self.path = tempfile.mkdtemp(prefix="%s%d-" % (_STAGING_INSIDE, os.getpid()), dir=self.target)
        else:
            parent = os.path.dirname(self.target)
            missing = []
            while parent and not os.path.isdir(parent):
                missing.append(parent)
                parent = os.path.dirname(parent)
            if not missing:
                remove_stale_staging(os.path.dirname(self.target), _staging_beside(self.target))
            try:
                for folder in reversed(missing):
                    os.mkdir(folder)
                    self.created.append(folder)
                prefix = "%s%d-" % (_staging_beside(self.target), os.getpid())
                self.path = tempfile.mkdtemp(prefix=prefix, dir=os.path.dirname(self.target))
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


def remove_stale_staging(folder, prefix):
    """Remove the folders `prefix<pid>-*` in `folder` whose process no longer runs."""
    import shutil

    try:
        names = os.listdir(folder)
    except OSError:
        return
    for name in names:
        pid = name[len(prefix) :].split("-", 1)[0] if name.startswith(prefix) else ""
        path = os.path.join(folder, name)
        if pid.isdigit() and not _running(int(pid)) and os.path.isdir(path) and not os.path.islink(path):
            shutil.rmtree(path, ignore_errors=True)


def _running(pid):
    if pid <= 0 or pid == os.getpid():
        return True  # never ours to judge: 0 would mean our own process group
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except OSError:  # PermissionError: another user's live process
        return True
    return True
