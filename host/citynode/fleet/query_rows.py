"""A store's rows as the columns `citynode decode` writes, for `citynode query`.

decode's columns come first, in decode's order (citynode.tables.columns_of),
then the store's own: boot, received, calibration_id, firmware (and qc_flags,
qc_score for climate). decode's `epoch` counts the node's restarts seen
before the row; here it is the number of distinct earlier boots of that node
in the result (the dense rank of boot per node, minus 1). Likewise accel's
`segment` and accel_blocks' `gap_before` and `segment` are decode's, counted
over the rows in the result (`accel_runs`): the values stored are each
collector's view of the blocks it took, and collectors of one group each take
a share of a node's blocks. The rows go to citynode.tables.TableSet with
`columns=output_columns`.
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
        if (table, name) in (("accel", "segment"), ("accel_blocks", "gap_before"), ("accel_blocks", "segment")):
            out[name] = _runs_of(table, rows)[name]
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


def _runs_of(table, rows):
    if table == "accel":  # each sample a run of one
        first = rows["sample_index"]
        count = 1
    else:
        first, count = rows["first_index"], np.asarray(rows["n_samples"], np.int64)
    gap, segment = accel_runs(rows["node_id"], rows["boot"], first, count)
    return {"gap_before": gap, "segment": segment}


_INDEX_WRAP = 1 << 32  # first_index is a u32


def accel_runs(node_ids, boots, first_index, n_samples):
    """(gap_before, segment) of blocks in (node, boot, seq) order, as citynode.tables counts them
    in a decode: samples missing before each block (0 where it runs on, and for a node's first
    block; -1 where the node or its stream started again), and per node the run of contiguous
    samples, from 0."""
    node = np.asarray(node_ids, np.int64)
    boot = np.asarray(boots, np.int64)
    first = np.asarray(first_index, np.int64)
    n = len(node)
    gap = np.zeros(n, np.int64)
    if not n:
        return gap, gap.copy()
    end = (first + n_samples) % _INDEX_WRAP
    skip = (first[1:] - end[:-1]) % _INDEX_WRAP
    g = np.where(skip < _INDEX_WRAP // 2, skip, -1)  # the index went back: the stream started again
    g[boot[1:] != boot[:-1]] = -1
    new_node = np.r_[True, node[1:] != node[:-1]]
    gap[1:] = g
    gap[new_node] = 0
    runs = np.cumsum(new_node | (gap != 0))
    node_first = np.maximum.accumulate(np.where(new_node, np.arange(n), 0))
    return gap, runs - runs[node_first]


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
