"""QC flags on climate rows (citynode.fleet.qc): each check flags what it is for, and
nothing else on a realistic diurnal series; batches give the flags one batch gives."""

import json

import numpy as np
import pyarrow as pa
import pytest

from citynode.errors import UsageError
from citynode.fleet import schema
from citynode.fleet.qc import (
    CHECK_BITS, DEFAULTS, QcChecker, QcConfig, flag_bit, history_window_us, load_positions,
)

T0 = 1_780_000_000 * 1_000_000  # 2026-05-28, µs
MINUTE = 60 * 1_000_000
DAY = 1440
T_RANGE, T_PERSIST, T_SPIKE, T_BUDDY, T_ISOLATED = (flag_bit("temperature_c", c) for c in CHECK_BITS)
RH_RANGE, RH_PERSIST, RH_SPIKE, RH_BUDDY, RH_ISOLATED = (flag_bit("relative_humidity_pct", c) for c in CHECK_BITS)

# five nodes 1.8 ... 2.6 km around node 1 in the city, node 7 20 km out, node 8 nobody placed
CENTRE = (51.48, 7.22, 100.0)
POSITIONS = {1: CENTRE, 7: (51.66, 7.22, 110.0)}
for _k, (_dlat, _dlon) in enumerate([(0.018, 0), (-0.015, 0.01), (0, 0.03), (0.01, -0.03), (-0.02, -0.02)]):
    POSITIONS[2 + _k] = (CENTRE[0] + _dlat, CENTRE[1] + _dlon, 95.0 + 5 * _k)


def diurnal(node, minutes, offset_s=0, seed=0):
    """A node's day: 21 °C ± 3 K and 60 % ∓ 15 % sines over 24 h, a reading each minute,
    noise 0.05 K and 0.2 %, in the node's hundredths."""
    rng = np.random.default_rng(seed * 1000 + node)
    m = np.arange(minutes)
    phase = np.sin(2 * np.pi * m / DAY)
    t = T0 + m * MINUTE + offset_s * 1_000_000
    temp = np.round(21 + 3 * phase + rng.normal(0, 0.05, minutes), 2)
    rh = np.round(60 - 15 * phase + rng.normal(0, 0.2, minutes), 2)
    return {"node_id": np.full(minutes, node), "time": t, "temperature_c": temp, "relative_humidity_pct": rh}


def climate(*series, null_time=()):
    """A climate table (schema.SCHEMAS['climate']) of the series, concatenated in order."""
    cols = {k: np.concatenate([s[k] for s in series]) for k in series[0]}
    n = len(cols["node_id"])
    time = pa.array(cols["time"], pa.int64(), mask=np.isin(np.arange(n), list(null_time))).cast(schema.TIME)
    arrays = []
    for name, type_ in zip(schema.SCHEMAS["climate"].names, schema.SCHEMAS["climate"].types):
        if name == "time":
            arrays.append(time)
        elif name in cols:
            arrays.append(pa.array(cols[name], type_))
        elif name == "seq":
            arrays.append(pa.array(np.arange(n), type_))
        elif name == "boot":
            arrays.append(pa.array(np.zeros(n, dtype=np.int64), type_))
        else:
            arrays.append(pa.nulls(n, type_))
    return pa.Table.from_arrays(arrays, schema=schema.SCHEMAS["climate"])


def flags_of(table):
    return table["qc_flags"].to_numpy().copy()


def settled(table):
    """Rows whose clock minute began after every node's first reading (T0 + 5 ... 40 s): the
    buddy check sees the readings from before a row's minute, so these have every buddy."""
    t = table["time"].cast(pa.int64()).to_numpy()
    return t // MINUTE * MINUTE > T0 + 40 * 1_000_000


@pytest.fixture(scope="module")
def day():
    return diurnal(1, DAY)


def test_a_clean_diurnal_day_has_no_flags(day):
    out = QcChecker().apply(climate(day))
    assert out.schema.equals(schema.SCHEMAS["climate"])
    assert not flags_of(out).any() and not out["qc_score"].to_numpy().any()


def test_a_spike_flags_that_reading_and_not_its_neighbours(day):
    s = {k: v.copy() for k, v in day.items()}
    s["temperature_c"][600] += 3.0
    s["relative_humidity_pct"][900] -= 12.0
    f = flags_of(QcChecker().apply(climate(s)))
    assert f[600] == T_SPIKE and f[900] == RH_SPIKE
    f[[600, 900]] = 0
    assert not f.any()  # the return to the level before is no spike, nor any other row


def test_a_level_shift_flags_only_its_first_reading(day):
    s = {k: v.copy() for k, v in day.items()}
    s["temperature_c"][700:] += 2.0
    f = flags_of(QcChecker().apply(climate(s)))
    assert f[700] == T_SPIKE and not np.delete(f, 700).any()


@pytest.mark.parametrize("variable, first, last, hours, bit", [
    ("temperature_c", 240, 480, 3, T_PERSIST),          # the 4 h around the warmest minute
    ("relative_humidity_pct", 180, 540, 5, RH_PERSIST),  # the 6 h around the driest
])
def test_a_frozen_sensor_is_flagged_once_frozen_for_the_window(day, variable, first, last, hours, bit):
    s = {k: v.copy() for k, v in day.items()}
    s[variable][first:last] = s[variable][first]
    f = flags_of(QcChecker().apply(climate(s)))
    flagged = np.flatnonzero(f)
    assert list(flagged) == list(range(first + hours * 60, last))
    assert (f[flagged] == bit).all()


def test_out_of_range_readings(day):
    s = {k: v.copy() for k, v in day.items()}
    s["temperature_c"][100] = 55.0
    s["relative_humidity_pct"][1000] = 5.0
    out = QcChecker().apply(climate(s))
    f = flags_of(out)
    # a reading out of range is also a jump from the one before
    assert f[100] == T_RANGE | T_SPIKE and f[1000] == RH_RANGE | RH_SPIKE
    assert out["qc_score"].to_numpy()[100] == 100 + 30
    f[[100, 1000]] = 0
    assert not f.any()


@pytest.fixture(scope="module")
def neighbourhood():
    """30 minutes of 8 nodes; node 1 reads 6 K warm; 7 is 20 km out; 8 has no position."""
    series = [diurnal(n, 30, offset_s=5 * n) for n in range(1, 9)]
    series[0]["temperature_c"] = series[0]["temperature_c"] + 6.0
    return series


def test_the_buddy_check_flags_the_warm_node_and_not_its_neighbours(neighbourhood):
    table = climate(*neighbourhood)
    f = flags_of(QcChecker(positions=POSITIONS).apply(table))
    node = table["node_id"].to_numpy()
    ready = settled(table)
    assert ready.sum() >= 6 * 27
    assert (f[(node == 1) & ready] == T_BUDDY).all()
    for n in (2, 3, 4, 5, 6):
        assert not f[(node == n) & ready].any(), n
    assert (f[node == 7] == T_ISOLATED | RH_ISOLATED).all()
    assert not f[node == 8].any()  # no position: neither buddy-checked nor isolated


def test_titanlib_decides_the_buddy_flag(neighbourhood, monkeypatch):
    """titanlib.buddy_check made to flag node 3 and nothing else: node 3's rows carry the buddy
    bits and the warm node 1's none, so the flag is titanlib's answer, not the checker's own."""
    titanlib = pytest.importorskip("titanlib")
    lat3, lon3, _ = POSITIONS[3]

    def flag_node_3(points, values, radius, num_min, threshold, max_elev_diff, elev_gradient, min_std,
                    num_iterations, obs_to_check):
        here = np.isclose(points.get_lats(), lat3, atol=1e-5) & np.isclose(points.get_lons(), lon3, atol=1e-5)
        return (here & (np.asarray(obs_to_check) == 1)).astype(np.int32)

    monkeypatch.setattr(titanlib, "buddy_check", flag_node_3)
    table = climate(*neighbourhood)
    f = flags_of(QcChecker(positions=POSITIONS).apply(table))
    node, ready = table["node_id"].to_numpy(), settled(table)
    assert (f[(node == 3) & ready] == T_BUDDY | RH_BUDDY).all()
    assert not f[(node != 3) & (node != 7) & ready].any()
    assert (f[node == 7] == T_ISOLATED | RH_ISOLATED).all()  # no buddies: titanlib is not asked


def test_each_row_is_checked_in_the_scene_of_its_minute(neighbourhood, monkeypatch):
    """What titanlib is given: the row's value and each other node's latest reading before the
    row's clock minute began (within time_window_s); one row per call here, where every
    checked node is within radius_m of the others (in one call they would be each other's buddies)."""
    titanlib = pytest.importorskip("titanlib")
    real, calls = titanlib.buddy_check, []

    def recording(points, values, *params):
        calls.append((list(zip(points.get_lats(), points.get_lons())), np.asarray(values), np.asarray(params[-1])))
        return real(points, values, *params)

    monkeypatch.setattr(titanlib, "buddy_check", recording)
    table = climate(*neighbourhood)
    off = {"buddy": {"enabled": False}}
    QcChecker(QcConfig({"relative_humidity_pct": off}), positions=POSITIONS).apply(table)
    node, t = table["node_id"].to_numpy(), table["time"].cast(pa.int64()).to_numpy()
    temp = table["temperature_c"].to_numpy()
    window = DEFAULTS["temperature_c"]["buddy"]["time_window_s"] * 1_000_000

    def scene(start):  # node: its latest reading in [start - window, start)
        return {int(n): temp[t == t[(node == n) & (t < start) & (t >= start - window)].max()][0]
                for n in POSITIONS if ((node == n) & (t < start) & (t >= start - window)).any()}

    def node_at(lat, lon):
        return next(n for n, p in POSITIONS.items() if abs(p[0] - lat) < 1e-5 and abs(p[1] - lon) < 1e-5)

    checked = []
    for places, values, obs_to_check in calls:
        nodes = [node_at(*p) for p in places]
        assert obs_to_check.sum() == 1
        mine = nodes[int(np.argmax(obs_to_check))]
        match = [r for r in np.flatnonzero(node == mine) if abs(temp[r] - values[nodes.index(mine)]) < 1e-3
                 and {n: v for n, v in scene(t[r] // MINUTE * MINUTE).items() if n != mine}
                 == pytest.approx({n: v for n, v in zip(nodes, values) if n != mine}, abs=1e-3)]
        assert match, mine
        checked.append(match[0])
    ready = settled(table)
    assert set(np.flatnonzero(ready & (node <= 6))) <= set(checked)
    assert len(checked) == len(set(checked))


@pytest.mark.parametrize("variable", ["temperature_c", "relative_humidity_pct"])
def test_the_parameters_reach_titanlib_in_its_order(variable):
    """Random scenes, nodes in and out of the radius and of the elevation limit: the row's
    flag is what titanlib.buddy_check, called by hand on that scene, says of it."""
    titanlib = pytest.importorskip("titanlib")
    rng = np.random.default_rng(7)
    buddy = DEFAULTS[variable]["buddy"]
    other = "relative_humidity_pct" if variable == "temperature_c" else "temperature_c"
    outcomes = set()
    for trial in range(150):
        n = int(rng.integers(2, 12))
        lat = CENTRE[0] + rng.uniform(-0.07, 0.07, n)
        lon = CENTRE[1] + rng.uniform(-0.1, 0.1, n)
        elev = rng.uniform(40, 260, n)
        base, spread = (21, 1.5) if variable == "temperature_c" else (60, 4)
        value = np.round(base + rng.normal(0, spread, n), 2)
        value[0] += rng.uniform(-4, 4) * spread
        checker = QcChecker(positions={k: (lat[k], lon[k], elev[k]) for k in range(n)})
        history = pa.table({"node_id": pa.array(np.arange(1, n), pa.int64()),  # the minute before the row's
                            "time": pa.array(T0 - MINUTE + np.arange(1, n), pa.int64()).cast(schema.TIME),
                            variable: pa.array(value[1:]), other: pa.array(np.full(n - 1, np.nan))})
        row = {"node_id": np.array([0]), "time": np.array([T0 + 100]), variable: value[:1], other: np.array([np.nan])}
        flags = flags_of(QcChecker.apply(checker, climate(row), history))[0]
        check = np.zeros(n, dtype=np.int64)
        check[0] = 1
        theirs = titanlib.buddy_check(
            titanlib.Points(lat, lon, elev), value, [buddy["radius_m"]], [buddy["num_min"]], buddy["threshold"],
            buddy["max_elev_diff_m"], buddy["elev_gradient"], buddy["min_std"], buddy["num_iterations"], check)[0]
        assert bool(flags & flag_bit(variable, "buddy")) == bool(theirs), (trial, value)
        outcomes.add((bool(theirs), bool(flags & flag_bit(variable, "isolated"))))
    assert outcomes == {(True, False), (False, False), (False, True)}  # flagged, passed, isolated


def test_batches_give_the_flags_of_one_batch():
    """Eight hours of the neighbourhood with every kind of fault, fed as the collector would:
    in time order, in batches, with the store's history of the window before each batch."""
    hours = 8 * 60
    series = [diurnal(n, hours, offset_s=5 * n, seed=3) for n in range(1, 9)]
    series[0]["temperature_c"] = series[0]["temperature_c"] + 6.0  # buddy
    series[1]["temperature_c"][100] += 4.0                          # spike
    series[2]["relative_humidity_pct"][50:400] = series[2]["relative_humidity_pct"][50]  # frozen 5 h+
    series[3]["temperature_c"][200] = -45.0                         # range
    series[4]["temperature_c"][300:] += 1.0                         # level shift
    whole = climate(*series)
    whole = whole.take(np.argsort(whole["time"].cast(pa.int64()).to_numpy(), kind="stable"))
    checker = QcChecker(positions=POSITIONS)
    one = flags_of(checker.apply(whole))
    node = whole["node_id"].to_numpy()
    ready = settled(whole)
    assert (one[(node == 1) & ready] == T_BUDDY).all()
    assert not one[((node == 6) & ready) | (node == 8)].any()  # clean, and clean without a position
    assert (one[node == 7] == T_ISOLATED | RH_ISOLATED).all()
    assert {T_SPIKE, RH_PERSIST, T_RANGE | T_SPIKE} <= set(one[(node >= 2) & (node <= 5)])

    window = history_window_us(checker.config)
    times = whole["time"].cast(pa.int64()).to_numpy()
    streamed, start = [], 0
    for size in [1, 7, 97, 333, 5, 1000] * 10:
        if start >= whole.num_rows:
            break
        batch = whole.slice(start, size)
        first = times[start]
        earlier = whole.slice(0, start)
        history = earlier.filter(pa.array(times[:start] >= first - window)).select(
            ["node_id", "time", "temperature_c", "relative_humidity_pct"])
        streamed.append(flags_of(checker.apply(batch, history)))
        start += size
    assert start >= whole.num_rows
    assert (np.concatenate(streamed) == one).all()


def test_rows_without_time_get_the_range_check_only(day):
    s = {k: v[:20].copy() for k, v in day.items()}
    s["temperature_c"][5] = 60.0
    s["temperature_c"][6] = 35.0  # a jump, were its time known
    out = QcChecker().apply(climate(s, null_time=(5, 6)))
    f = flags_of(out)
    assert f[5] == T_RANGE and f[6] == 0
    assert not np.delete(f, 5).any()  # the timed rows around them compare with each other


def test_config_overrides_a_threshold_and_a_weight(tmp_path, day):
    s = {k: v.copy() for k, v in day.items()}
    s["temperature_c"][600] += 3.0
    path = tmp_path / "qc.toml"
    path.write_text("[temperature_c.spike]\nmax_rate_per_min = 5.0\n")
    assert not flags_of(QcChecker(QcConfig.load(path)).apply(climate(s))).any()
    path = tmp_path / "qc.json"
    path.write_text(json.dumps({"weights": {"spike": 7}, "temperature_c": {"range": {"enabled": False}}}))
    s["temperature_c"][100] = 55.0
    out = QcChecker(QcConfig.load(path)).apply(climate(s))
    assert flags_of(out)[600] == T_SPIKE and out["qc_score"].to_numpy()[600] == 7
    assert flags_of(out)[100] == T_SPIKE  # range off, the jump still seen
    assert QcConfig().check("temperature_c", "spike")["max_rate_per_min"] == 0.3  # defaults untouched


@pytest.mark.parametrize("text, words", [
    ("[temperature_c.spike]\nmax_rate = 5\n", "unknown setting temperature_c.spike.max_rate"),
    ("[temperature_c.spike]\nmax_rate_per_min = 'fast'\n", "must be a number"),
    ("[relative_humidity_pct.buddy]\nnum_min = 2.5\n", "whole number"),
    ("[temperature_c.persistence]\nresolution = 0\n", "must be above 0"),
    ("[temperature_c.range]\nmin = 60\n", "min is above its max"),
    ("[temperature_c\n", "not valid TOML"),
])
def test_bad_config_is_one_clear_error(tmp_path, text, words):
    path = tmp_path / "qc.toml"
    path.write_text(text)
    with pytest.raises(UsageError, match=words):
        QcConfig.load(path)


def test_positions_from_csv_and_json(tmp_path):
    csv_path = tmp_path / "nodes.csv"
    csv_path.write_text("node_id,lat,lon,elevation_m\n3,51.48,7.21,95\n4,51.49,7.22,101.5\n")
    json_path = tmp_path / "nodes.json"
    json_path.write_text(json.dumps({"3": [51.48, 7.21, 95], "4": [51.49, 7.22, 101.5]}))
    list_path = tmp_path / "list.json"
    list_path.write_text(json.dumps([{"node_id": 3, "lat": 51.48, "lon": 7.21, "elevation_m": 95},
                                     {"node_id": 4, "lat": 51.49, "lon": 7.22, "elevation_m": 101.5}]))
    want = {3: (51.48, 7.21, 95.0), 4: (51.49, 7.22, 101.5)}
    assert load_positions(csv_path) == load_positions(json_path) == load_positions(list_path) == want
    json_path.write_text(json.dumps({"3": [151.48, 7.21, 95]}))
    with pytest.raises(UsageError, match="node 3 has no place on Earth"):
        load_positions(json_path)
    with pytest.raises(UsageError, match="positions"):
        load_positions(tmp_path / "missing.csv")


def test_history_window_covers_the_longest_look_back():
    assert history_window_us(QcConfig()) == 5 * 3600 * 1_000_000
    off = QcConfig({"temperature_c": {"persistence": {"enabled": False}},
                    "relative_humidity_pct": {"persistence": {"enabled": False}}})
    # two readings back from the oldest buddy reading, a window before the row's minute began
    assert history_window_us(off) == 31 * 60 * 1_000_000


def test_history_is_asked_for_the_nodes_and_their_buddies():
    checker = QcChecker(positions=POSITIONS)
    assert checker.history_nodes([1]) == [1, 2, 3, 4, 5, 6]
    assert checker.history_nodes([7, 8]) == [7, 8]  # 20 km out, and nowhere
    assert QcChecker().history_nodes([3, 1]) == [1, 3]


def test_empty_and_timeless_batches(day):
    checker = QcChecker(positions=POSITIONS)
    empty = climate(day).slice(0, 0)
    assert checker.apply(empty).num_rows == 0
    history = climate(day).select(["node_id", "time", "temperature_c", "relative_humidity_pct"])
    s = {k: v[:3].copy() for k, v in day.items()}
    s["relative_humidity_pct"][1] = 120.0
    out = checker.apply(climate(s, null_time=(0, 1, 2)), history)
    assert list(flags_of(out)) == [0, RH_RANGE, 0]
    assert list(out["qc_score"].to_numpy()) == [0, 100, 0]


def test_the_bench_runs_and_flags_the_warm_nodes(capsys):
    """bench/bench_qc.py --quick as a smoke test: titanlib flags its warm nodes and no other
    (its speed target is not asserted: a loaded machine says nothing about it)."""
    pytest.importorskip("titanlib")
    import importlib.util
    from pathlib import Path

    path = Path(__file__).resolve().parents[2] / "bench" / "bench_qc.py"
    spec = importlib.util.spec_from_file_location("bench_qc", path)
    bench = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(bench)
    bench.main(["--quick"])
    out = capsys.readouterr().out
    assert "titanlib.buddy_check once per variable" in out
    assert "temperature 4 of 4 warm nodes, 0 others; humidity 0" in out


def test_docs_table_is_the_code_s():
    """docs/qc.md's table of checks says the defaults, bits and weights the code has."""
    import re
    from pathlib import Path

    doc = (Path(__file__).resolve().parents[2] / "docs" / "qc.md").read_text()
    rows = re.findall(r"^\| (range|persistence|spike/dip|buddy|isolated) \| (\w+) \| (.*?) \| (\d+) \| (\d+) \|",
                      doc, re.M)
    assert len(rows) == 10
    for check, variable, params, bit, weight in rows:
        check = "spike" if check == "spike/dip" else check
        assert int(bit) == flag_bit(variable, check) and int(weight) == DEFAULTS["weights"][check], check
        for key, number in re.findall(r"`(\w+)` ([−-]?\d[\d ]*(?:\.\d+)?)", params):
            assert float(number.replace(" ", "").replace("−", "-")) == DEFAULTS[variable][check][key], (variable, key)
        if check != "isolated":
            documented = set(re.findall(r"`(\w+)` [−-]?\d", params))
            assert documented == set(DEFAULTS[variable][check]) - {"enabled"}, (variable, check)


def test_a_collector_loop_over_a_store(neighbourhood):
    """History from Store.climate_history (the in-memory store), flagged rows written back:
    the stored flags are those of one batch."""
    from fleet_memory_store import MemoryStore

    from citynode.fleet.store import IngestBatch

    whole = climate(*neighbourhood)
    whole = whole.take(np.argsort(whole["time"].cast(pa.int64()).to_numpy(), kind="stable"))
    checker = QcChecker(positions=POSITIONS)
    store = MemoryStore()
    times = whole["time"].cast(pa.int64()).to_numpy()
    for start in range(0, whole.num_rows, 24):
        batch = whole.slice(start, 24)
        nodes = checker.history_nodes(batch["node_id"].to_pylist())
        history = store.climate_history(nodes, int(times[start]) - history_window_us(checker.config))
        flagged = checker.apply(batch, history)
        frames = pa.table({"node_id": flagged["node_id"], "boot": flagged["boot"], "seq": flagged["seq"],
                           "type": pa.array(np.ones(batch.num_rows), pa.int32()), "time": flagged["time"],
                           "received": flagged["time"]}, schema=schema.SCHEMAS["frames"])
        store.write(IngestBatch({"climate": flagged, "frames": frames}))
    stored = store.query("climate").sort_by([("seq", "ascending")])
    assert stored.num_rows == whole.num_rows
    one = checker.apply(whole).sort_by([("seq", "ascending")])
    assert stored["qc_flags"].to_pylist() == one["qc_flags"].to_pylist()
    assert stored["qc_score"].to_pylist() == one["qc_score"].to_pylist()
    assert T_BUDDY in stored["qc_flags"].to_pylist()


def test_without_titanlib_positions_are_one_clear_error(monkeypatch, day):
    """The buddy check is titanlib's: without it, positions are refused in one line; the
    other checks still run."""
    import sys

    from citynode.errors import CitynodeError

    monkeypatch.setitem(sys.modules, "titanlib", None)
    with pytest.raises(CitynodeError, match="needs titanlib"):
        QcChecker(positions=POSITIONS)
    assert not flags_of(QcChecker().apply(climate(day))).any()
