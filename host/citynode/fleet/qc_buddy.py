"""The buddy check of climate rows: titanlib.buddy_check on the city's scene of each minute.

    buddies = BuddyCheck(lat, lon, elev, params)        # one variable's `buddy` parameters
    failed, isolated = buddies.check(place, t, v, origin, usable)

A row is checked in the scene of its clock minute (`SLICE_US`): its own value
and, for every other positioned node, that node's latest usable reading in the
`time_window_s` before the minute began. Everything a scene holds is older than
the rows checked in it, so a row's flags do not depend on how rows are batched.

titanlib checks many observations in one call, but in one call they are each
other's buddies. So the rows of a minute are checked in groups whose nodes are
not within `radius_m` of each other (a colouring of the nodes, made once):
one call per group, each over the same cached titanlib.Points.
"""

from collections import OrderedDict

import numpy as np

from citynode.errors import CitynodeError
from citynode.fleet.qc_config import BUDDY_SLICE_S

SLICE_US = BUDDY_SLICE_S * 1_000_000
_POINTS_KEPT = 16  # scenes of different node sets kept as titanlib.Points


def _titanlib():
    try:
        import titanlib
    except ImportError:
        raise CitynodeError("the buddy check needs titanlib: pip install 'citynode[fleet]'") from None
    return titanlib


class BuddyCheck:
    """titanlib's buddy check over the nodes at (lat, lon, elev), with one variable's parameters."""

    def __init__(self, lat, lon, elev, params):
        self.titanlib = _titanlib()
        self.lat, self.lon, self.elev = lat, lon, elev
        self.params = params
        self.window = int(params["time_window_s"] * 1_000_000)
        self.starts, self.indices = self._neighbours(params["radius_m"])
        self.colour = _colours(self.starts, self.indices, np.argsort(lat, kind="stable"))
        self._points = OrderedDict()

    def neighbours_of(self, places):
        """(k, neighbour) for every neighbour within radius_m of every places[k]."""
        return _gather(self.starts, self.indices, places)

    def check(self, place, t, v, origin, usable):
        """Batch rows failing the buddy check, and those of isolated nodes (arrays of row indices).

        Entries sorted by place and time, each positioned, in range and finite:
        `origin` is the batch row of an entry (-1 for history), `usable` says
        which may be a buddy (not a spike).
        """
        checked = np.flatnonzero(origin >= 0)
        minute = t[checked] // SLICE_US * SLICE_US
        failed, isolated = [], []
        for start in np.unique(minute):
            rows = checked[minute == start]
            base = self._scene(place, t, v, usable, start)
            lonely = self._isolated(place[rows], base[0])
            isolated.append(origin[rows[lonely]])
            failed.append(origin[self._failed(place, v, rows[~lonely], base)])
        none = np.zeros(0, dtype=np.int64)
        return (np.concatenate(failed) if failed else none), (np.concatenate(isolated) if isolated else none)

    def _scene(self, place, t, v, usable, start):
        """(places, values): each node's latest usable reading in [start - window, start)."""
        at = np.flatnonzero(usable & (t < start) & (t >= start - self.window))
        last = at[np.append(place[at][1:] != place[at][:-1], True)] if len(at) else at
        return place[last], v[last]

    def _isolated(self, places, base_places):
        """Which of `places` have fewer than num_min other nodes of the scene within radius_m."""
        in_scene = np.zeros(len(self.lat), dtype=bool)
        in_scene[base_places] = True
        seen = np.concatenate([[0], np.cumsum(in_scene[self.indices], dtype=np.int32)])
        return seen[self.starts[places + 1]] - seen[self.starts[places]] < self.params["num_min"]

    def _failed(self, place, v, rows, base):
        """The entries of `rows` that titanlib.buddy_check flags, a group of non-neighbours per call."""
        base_places, base_values = base
        places = place[rows]
        known = np.isin(places, base_places)  # with a reading before the minute: in every call's scene
        flagged = []
        if known.any():
            points = self._points_of(base_places)
            at = np.searchsorted(base_places, places[known])
            for group in self._groups(places[known]):
                flagged.append(rows[known][group][self._call(points, base_values, at[group], v[rows[known][group]])])
        for row in rows[~known]:  # back from a break, or new: checked alone, in the scene plus itself
            scene = np.union1d(base_places, place[row:row + 1])
            values = np.zeros(len(scene))
            values[np.searchsorted(scene, base_places)] = base_values
            at = np.searchsorted(scene, place[row:row + 1])
            points = self.titanlib.Points(self.lat[scene], self.lon[scene], self.elev[scene])  # not kept
            flagged.append(np.array([row])[self._call(points, values, at, v[row:row + 1])])
        return np.concatenate(flagged) if flagged else rows[:0]

    def _groups(self, places):
        """Indices of `places` (sorted) in groups without two neighbours: the n-th row of a
        node in round n, in a round one group per colour."""
        first = np.searchsorted(places, places)
        group = (np.arange(len(places)) - first) * (int(self.colour.max()) + 1) + self.colour[places]
        order = np.argsort(group, kind="stable")
        _ids, starts = np.unique(group[order], return_index=True)
        return np.split(order, starts[1:])

    def _call(self, points, scene_values, at, values):
        """titanlib.buddy_check of `values` put in the scene at `at`: which of them it flags."""
        p = self.params
        scene_values = scene_values.copy()
        scene_values[at] = values
        obs_to_check = np.zeros(len(scene_values), dtype=np.int32)
        obs_to_check[at] = 1
        flags = self.titanlib.buddy_check(
            points, scene_values, [p["radius_m"]], [p["num_min"]], p["threshold"], p["max_elev_diff_m"],
            p["elev_gradient"], p["min_std"], p["num_iterations"], obs_to_check)
        return np.asarray(flags)[at] != 0

    def _points_of(self, scene):
        """titanlib.Points of the nodes `scene`, built once per set of nodes."""
        key = scene.tobytes()
        points = self._points.pop(key, None)
        if points is None:
            points = self.titanlib.Points(self.lat[scene], self.lon[scene], self.elev[scene])
            if len(self._points) >= _POINTS_KEPT:
                self._points.popitem(last=False)
        self._points[key] = points
        return points

    def _neighbours(self, radius_m):
        """Each node's other nodes within radius_m, by titanlib's distance, as (starts, indices):
        node i's are indices[starts[i]:starts[i + 1]]."""
        every = self.titanlib.Points(self.lat, self.lon, self.elev)
        lists = []
        for i in range(len(self.lat)):
            found = np.asarray(every.get_neighbours(self.lat[i], self.lon[i], radius_m, True), dtype=np.int64)
            lists.append(np.sort(found[found != i]))
        counts = np.array([len(found) for found in lists], dtype=np.int64)
        starts = np.concatenate([[0], np.cumsum(counts)]).astype(np.int64)
        indices = np.concatenate(lists) if lists else np.zeros(0, dtype=np.int64)
        return starts, indices.astype(np.int64)


def _colours(starts, indices, order):
    """A colour per node, no two neighbours alike: greedy, in `order` (south to north
    takes about a sixth fewer colours, so fewer calls, than node order)."""
    colour = np.full(len(starts) - 1, -1, dtype=np.int64)
    for i in order:
        taken = set(colour[indices[starts[i]:starts[i + 1]]].tolist())
        c = 0
        while c in taken:
            c += 1
        colour[i] = c
    return colour


def _gather(starts, indices, places):
    """(k, neighbour) for every neighbour of every places[k]."""
    counts = starts[places + 1] - starts[places]
    k = np.repeat(np.arange(len(places)), counts)
    offsets = np.arange(len(k)) - np.repeat(np.cumsum(counts) - counts, counts)
    return k, indices[starts[places][k] + offsets]
