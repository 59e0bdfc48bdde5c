"""Quality-control flags on climate rows, the checks the city's climate researchers use.

The checks and their parameters follow Data2Resilience's d2r-api (`app/qc.py`,
rules from WMO-No. 488, 2017); titanlib makes the buddy check (qc_buddy.py).
docs/qc.md has the table, the sources and the choices made for streaming.

    checker = QcChecker(QcConfig.load("qc.toml"), load_positions("nodes.csv"))
    since = earliest_row_us - history_window_us(checker.config)
    history = store.climate_history(checker.history_nodes(nodes), since)
    climate = checker.apply(climate, history)

Each (variable, check) has its own bit in `qc_flags`: temperature in the low
byte, humidity in the next (`flag_bit`). `qc_score` is the sum of the weights of
the bits set, so 0 is a row that passed every check it could be given.
"""

import numpy as np
import pyarrow as pa

from citynode.fleet.qc_buddy import SLICE_US, BuddyCheck
from citynode.fleet.qc_config import (
    CHECK_BITS, DEFAULTS, VARIABLE_SHIFT, VARIABLES, QcConfig, flag_bit, history_window_us, load_positions,
)

_US = 1_000_000


class QcChecker:
    """Flags climate rows as they arrive, given the earlier rows of their nodes."""

    def __init__(self, config=None, positions=None):
        self.config = config or QcConfig()
        positions = positions or {}
        self.position_nodes = np.array(sorted(positions), dtype=np.int64)
        place = np.array([positions[n] for n in self.position_nodes], dtype=np.float64).reshape(-1, 3)
        self.buddies = {}  # variable: its BuddyCheck over position_nodes
        for variable in VARIABLES:
            buddy = self.config.check(variable, "buddy")
            if buddy and len(self.position_nodes):
                self.buddies[variable] = BuddyCheck(place[:, 0], place[:, 1], place[:, 2], buddy)

    def history_nodes(self, node_ids):
        """The nodes whose history apply() needs for rows of `node_ids`: those and their buddies."""
        nodes = set(int(n) for n in node_ids)
        ids = np.array(sorted(nodes), dtype=np.int64)
        where = np.minimum(np.searchsorted(self.position_nodes, ids), max(len(self.position_nodes) - 1, 0))
        placed = where[self.position_nodes[where] == ids] if len(self.position_nodes) else where[:0]
        for check in self.buddies.values():
            _k, buddies = check.neighbours_of(placed)
            nodes.update(self.position_nodes[buddies].tolist())
        return sorted(nodes)

    def apply(self, climate, history=None):
        """`climate` with qc_flags and qc_score (int32) filled.

        `history`: the stored climate rows (node_id, time, temperature_c,
        relative_humidity_pct) of history_nodes(climate's nodes) from
        history_window_us(config) before the batch's earliest row; None at the start.
        """
        batch = _Rows(climate)
        series = _Series(batch, _Rows(history) if history is not None and history.num_rows else None)
        flags = np.zeros(climate.num_rows, dtype=np.int32)
        for variable in VARIABLES:
            flags |= self._flags(variable, batch, series)
        score = np.zeros(climate.num_rows, dtype=np.int32)
        for variable in VARIABLES:
            for check, bit in CHECK_BITS.items():
                weight = self.config.weight(check)
                if weight:
                    score += np.where(flags & (bit << VARIABLE_SHIFT[variable]), weight, 0).astype(np.int32)
        return _with_column(_with_column(climate, "qc_flags", flags), "qc_score", score)

    def _flags(self, variable, batch, series):
        shift = VARIABLE_SHIFT[variable]
        value = batch.values[variable]
        flags = np.zeros(len(value), dtype=np.int32)
        bounds = self.config.check(variable, "range")
        if bounds:
            flags[_out_of_range(value, bounds)] |= CHECK_BITS["range"] << shift

        node, t, v, origin = series.node, series.time, series.values[variable], series.origin
        keep = np.isfinite(v)
        if not keep.all():
            node, t, v, origin = node[keep], t[keep], v[keep], origin[keep]
        mine = np.flatnonzero(origin >= 0)
        if not len(mine):
            return flags
        persistence = self.config.check(variable, "persistence")
        if persistence:
            hit = _persistent(node, t, v, mine, persistence)
            flags[origin[mine[hit]]] |= CHECK_BITS["persistence"] << shift
        spike = self.config.check(variable, "spike")
        buddy = self.config.check(variable, "buddy")
        suspect = np.zeros(len(node), dtype=bool)  # spikes, also among the buddies' readings
        if spike:  # two readings back from the oldest buddy reading, and the alternation before them
            reach = 2 * int(spike["max_gap_s"] * _US) + (int(buddy["time_window_s"] * _US) + SLICE_US if buddy else 0)
            near = np.flatnonzero(t >= t[mine].min() - reach)
            suspect[near[_spikes(node[near], t[near], v[near], spike)]] = True
            flags[origin[suspect & (origin >= 0)]] |= CHECK_BITS["spike"] << shift
        if variable in self.buddies:
            buddy_hit, isolated = self._buddy(self.buddies[variable], node, t, v, origin, suspect, bounds)
            flags[buddy_hit] |= CHECK_BITS["buddy"] << shift
            flags[isolated] |= CHECK_BITS["isolated"] << shift
        return flags

    def _buddy(self, check, node, t, v, origin, suspect, bounds):
        """Batch rows failing the buddy check, and those of isolated nodes (arrays of row indices):
        titanlib's check over the positioned, in-range readings of the window (qc_buddy.py)."""
        mine = origin >= 0
        near = np.flatnonzero((t >= t[mine].min() // SLICE_US * SLICE_US - check.window) & (t <= t[mine].max()))
        node, t, v, origin, suspect = node[near], t[near], v[near], origin[near], suspect[near]
        where = np.minimum(np.searchsorted(self.position_nodes, node), len(self.position_nodes) - 1)
        placed = self.position_nodes[where] == node
        if bounds:
            placed &= ~_out_of_range(v, bounds)
        return check.check(where[placed], t[placed], v[placed], origin[placed], ~suspect[placed])


class _Rows:
    """node_id, time (µs, with validity) and the two variables of a table, as numpy arrays."""

    def __init__(self, table):
        self.node = _ints(table.column("node_id"))
        time = table.column("time")
        if pa.types.is_timestamp(time.type):  # µs whatever the engine's unit
            time = time.cast(pa.timestamp("us", tz=time.type.tz)).cast(pa.int64())
        self.time_valid = ~_nulls(time)
        self.time = _ints(time)
        self.values = {name: _floats(table.column(name)) for name in VARIABLES}


class _Series:
    """Every timed reading, the history's then the batch's, ordered by node and time.

    `origin` is the batch row of an entry, -1 for history (and sorts first on a tie).
    """

    def __init__(self, batch, past):
        parts = [(past, _valid(past.time_valid))] if past is not None else []
        rows = np.flatnonzero(batch.time_valid)
        parts.append((batch, rows))
        node = np.concatenate([_take(p.node, i) for p, i in parts])
        time = np.concatenate([_take(p.time, i) for p, i in parts])
        origin = np.full(len(node), -1, dtype=np.int64)
        origin[len(node) - len(rows):] = rows
        order = _node_time_order(node, time)
        self.node, self.time, self.origin = node[order], time[order], origin[order]
        self.values = {name: np.concatenate([_take(p.values[name], i) for p, i in parts])[order] for name in VARIABLES}


def _valid(mask):
    return None if mask.all() else np.flatnonzero(mask)


def _take(array, rows):
    return array if rows is None else array[rows]


def _node_time_order(node, t):
    """A stable order by (node, time): one sort on a combined key when it fits in 63 bits."""
    if not len(node):
        return np.zeros(0, dtype=np.int64)
    t0, span = t.min(), int(t.max() - t.min()) + 1
    base = node.min()
    if (int(node.max()) - int(base) + 1) * span < 1 << 62:
        return np.argsort((node - base) * span + (t - t0), kind="stable")
    return np.lexsort((t, node))


def _nulls(column):
    return np.asarray(column.is_null().to_numpy(zero_copy_only=False), dtype=bool)


def _ints(column):
    return np.asarray(column.fill_null(0).to_numpy(zero_copy_only=False), dtype=np.int64)


def _floats(column):
    return np.asarray(column.cast(pa.float64()).fill_null(np.nan).to_numpy(zero_copy_only=False), dtype=np.float64)


def _with_column(table, name, values):
    column = pa.array(values, pa.int32())
    if name in table.column_names:
        return table.set_column(table.column_names.index(name), name, column)
    return table.append_column(name, column)


def _out_of_range(v, bounds):
    with np.errstate(invalid="ignore"):
        return (v < bounds["min"]) | (v > bounds["max"])


def _persistent(node, t, v, at, params):
    """Which entries `at` (of a series sorted by node, time) have kept their value,
    rounded to the resolution, for at least the window."""
    level = np.round(v / params["resolution"])
    starts = np.flatnonzero((node[1:] != node[:-1]) | (level[1:] != level[:-1])) + 1
    k = np.searchsorted(starts, at, side="right") - 1
    run_start = np.where(k >= 0, starts[np.maximum(k, 0)] if len(starts) else 0, 0)
    return t[at] - t[run_start] >= int(params["window_s"] * _US)


def _spikes(node, t, v, params):
    """Entries (sorted by node, time) that change faster than the rate from the previous reading.

    The reading after a one-reading spike, back at the level before it, is not a
    spike: it is compared with the reading before the spike instead.
    """
    fast = _too_fast(node, t, v, 1, params)
    back = fast & ~_too_fast(node, t, v, 2, params) & _comparable(node, t, 2, params)
    # flagged[i] = fast[i] and not (back[i] and flagged[i - 1]): along a run of `back`
    # entries the flag alternates, starting from the negation of the entry before the run
    index = np.arange(len(node))
    run_start = np.maximum.accumulate(np.where(back & ~np.roll(back, 1), index, 0))
    before = np.where(run_start > 0, fast[np.maximum(run_start - 1, 0)], False)
    alternate = before ^ ((index - run_start) % 2 == 0)
    return np.where(back, alternate, fast)


def _comparable(node, t, lag, params):
    ok = np.zeros(len(node), dtype=bool)
    if len(node) > lag:
        dt = t[lag:] - t[:-lag]
        ok[lag:] = (node[lag:] == node[:-lag]) & (dt > 0) & (dt <= int(params["max_gap_s"] * _US))
    return ok


def _too_fast(node, t, v, lag, params):
    fast = np.zeros(len(node), dtype=bool)
    ok = _comparable(node, t, lag, params)
    if len(node) > lag:
        minutes = np.maximum(t[lag:] - t[:-lag], 1) / (60 * _US)
        fast[lag:] = ok[lag:] & (np.abs(v[lag:] - v[:-lag]) / minutes > params["max_rate_per_min"])
    return fast


__all__ = ["CHECK_BITS", "DEFAULTS", "QcChecker", "QcConfig", "VARIABLES", "flag_bit", "history_window_us",
           "load_positions"]
