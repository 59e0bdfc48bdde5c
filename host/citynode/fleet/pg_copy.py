"""Arrow tables as PostgreSQL's binary COPY stream, built with numpy, column by column.

    copy.write(binary_copy(table))   # inside cursor.copy("COPY t (...) FROM STDIN (FORMAT binary)")

The binary format (PostgreSQL docs, "COPY", Binary Format): a header, then per
row a 16-bit field count and per field a 32-bit length (-1 for null) and the
value in network byte order; timestamps as µs since 2000-01-01. Each column is
turned into pieces (a length word, the value bytes), every piece a run of
per-row byte strings; the pieces are scattered into the output in row order.
No Python loop runs per row. NUL characters, which PostgreSQL's text cannot
hold, become U+FFFD.
"""

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc

HEADER = b"PGCOPY\n\xff\r\n\x00" + bytes(8)  # signature, flags 0, no header extension
TRAILER = b"\xff\xff"
PG_EPOCH_US = 946_684_800_000_000  # 2000-01-01 in µs since 1970
_FIXED = {  # Arrow type -> big-endian numpy type of the value
    pa.int64(): ">i8", pa.int32(): ">i4", pa.float64(): ">f8", pa.bool_(): ">u1",
}


def _fixed(array, dtype):
    """One piece: the 4-byte length then the value, or only the length -1 for a null."""
    n = len(array)
    width = np.dtype(dtype).itemsize
    if pa.types.is_timestamp(array.type):
        values = array.cast(pa.int64()).fill_null(0).to_numpy() - PG_EPOCH_US
    else:
        values = array.fill_null(False if pa.types.is_boolean(array.type) else 0).to_numpy(zero_copy_only=False)
    rec = np.empty(n, dtype=[("len", ">i4"), ("value", dtype)])
    rec["len"] = width
    rec["value"] = values
    raw = rec.view(np.uint8).reshape(n, 4 + width)
    if array.null_count:
        nulls = array.is_null().to_numpy(zero_copy_only=False)
        rec["len"][nulls] = -1
        keep = np.ones((n, 4 + width), bool)
        keep[nulls, 4:] = False
        sizes = np.where(nulls, 4, 4 + width)
        return [(sizes, raw[keep])]
    return [(np.full(n, 4 + width, np.int64), raw.reshape(-1))]


def _variable(array):
    """Two pieces: the length (-1 for null), then the bytes."""
    if pa.types.is_string(array.type):
        array = pc.replace_substring(array, "\x00", "\ufffd")
    nulls = array.is_null().to_numpy(zero_copy_only=False) if array.null_count else None
    array = array.fill_null(b"" if pa.types.is_binary(array.type) else "")
    offsets_buf, data_buf = array.buffers()[1:3]
    offsets = np.frombuffer(offsets_buf, np.int32)[array.offset:array.offset + len(array) + 1].astype(np.int64)
    data = np.frombuffer(data_buf, np.uint8)[offsets[0]:offsets[-1]] if data_buf is not None else np.empty(0, np.uint8)
    lengths = np.diff(offsets)
    words = lengths.astype(">i4")
    if nulls is not None:
        words[nulls] = -1
    return [(np.full(len(array), 4, np.int64), words.view(np.uint8)), (lengths, data)]


def _pieces(array):
    if isinstance(array, pa.ChunkedArray):
        array = array.combine_chunks()
    if pa.types.is_timestamp(array.type):
        return _fixed(array, ">i8")
    if array.type in _FIXED:
        return _fixed(array, _FIXED[array.type])
    if pa.types.is_string(array.type) or pa.types.is_binary(array.type):
        return _variable(array)
    raise TypeError("no binary COPY for Arrow type %s" % array.type)


def binary_copy(table):
    """The whole COPY stream of `table` (its columns in order) as bytes."""
    n = table.num_rows
    pieces = [p for column in table.columns for p in _pieces(column)]
    row_sizes = 2 + sum(sizes for sizes, _ in pieces) if pieces else np.full(n, 2, np.int64)
    row_starts = len(HEADER) + np.concatenate(([0], np.cumsum(row_sizes)[:-1])) if n else np.empty(0, np.int64)
    total = len(HEADER) + int(row_sizes.sum()) + len(TRAILER)
    out = np.empty(total, np.uint8)
    out[:len(HEADER)] = np.frombuffer(HEADER, np.uint8)
    out[total - 2:] = np.frombuffer(TRAILER, np.uint8)
    count = np.array([table.num_columns], ">i2").view(np.uint8)
    out[row_starts[:, None] + np.arange(2)] = count
    at = row_starts + 2  # where the next piece of each row goes
    for sizes, data in pieces:
        if len(data):
            starts_in_data = np.cumsum(sizes) - sizes
            out[np.repeat(at - starts_in_data, sizes) + np.arange(len(data))] = data
        at = at + sizes
    return out.tobytes()
