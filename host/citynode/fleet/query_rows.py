"""A store's rows as the columns `citynode decode` writes, for `citynode query`.

decode's columns come first, in decode's order (citynode.tables.columns_of),
then the store's own: boot, received, calibration_id, firmware (and qc_flags,
qc_score for climate). decode's `epoch` counts the node's restarts seen
before the row; here it is the number of distinct earlier boots of that node
in the result (the dense rank of boot per node, minus 1). The rows go to
citynode.tables.TableSet with `columns=output_columns`.
"""

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc

from citynode.fleet import schema
from citynode.tables import NO_UTC, columns_of

_KINDS = {pa.int64(): "int", pa.int32(): "int", pa.float64(): "float", pa.bool_(): "bool", pa.string(): "str", schema.TIME: "time"}


def output_columns(table):
    """[(column, kind)] of a store table as `query` writes it: decode's, then the store's extras."""
    decode = columns_of(table)
    names = {c for c, _ in decode}
    extra = [(f.name, _KINDS[f.type]) for f in schema.SCHEMAS[table] if f.name not in names]
    return decode + extra


def decode_rows(table, rows):
    """{column: values} of a store query result (schema.SCHEMAS[table]) for TableSet.append.

    Times are int64 µs with tables.NO_UTC where null; columns that may hold
    nulls stay Arrow arrays (text: lists), so the writers write them empty."""
    out = {}
    for name, kind in output_columns(table):
        if name == "epoch":
            out[name] = epochs(rows["node_id"], rows["boot"])
            continue
        column = rows[name].combine_chunks() if isinstance(rows[name], pa.ChunkedArray) else rows[name]
        if kind == "time":
            out[name] = pc.fill_null(column.cast(pa.int64()), NO_UTC).to_numpy(zero_copy_only=False)
        elif kind == "str":
            out[name] = column.to_pylist()
        elif column.null_count:
            out[name] = column
        else:
            out[name] = column.to_numpy(zero_copy_only=False)
    return out


def epochs(node_ids, boots):
    """Per row: how many distinct boots of its node in these rows come before its own."""
    nodes = np.asarray(node_ids, np.int64)
    boots = np.asarray(boots, np.int64)
    if not len(nodes):
        return np.zeros(0, np.int64)
    pairs, inverse = np.unique(np.stack([nodes, boots], axis=1), axis=0, return_inverse=True)
    # pairs are sorted by node then boot: a pair's rank is its place after the node's first pair
    firsts = np.searchsorted(pairs[:, 0], pairs[:, 0], side="left")
    rank = np.arange(len(pairs)) - firsts
    return rank[inverse.ravel()]
