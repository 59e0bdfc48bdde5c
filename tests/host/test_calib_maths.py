"""Calibration maths on synthetic data: ellipsoid fit, stillness, faces, climate fits, mount, limits."""

import math
import re

import numpy as np
import pytest

from citynode.calibrate import accel, climate, limits, mount
from citynode.errors import CitynodeError, UsageError

SIX = np.array([[1, 0, 0], [-1, 0, 0], [0, 1, 0], [0, -1, 0], [0, 0, 1], [0, 0, -1]], dtype=float)


def _rot(rng, max_deg):
    """A random rotation of at most max_deg."""
    axis = rng.normal(size=3)
    axis /= np.linalg.norm(axis)
    ang = math.radians(rng.uniform(0, max_deg))
    k = np.array([[0, -axis[2], axis[1]], [axis[2], 0, -axis[0]], [-axis[1], axis[0], 0]])
    return np.eye(3) + math.sin(ang) * k + (1 - math.cos(ang)) * k @ k


def _capture(rng, g_true, bias, sensor_scale, noise_g=0.001, n=400):
    """Raw samples as the simulated sensor gives them: scale * g + bias + noise."""
    raw = sensor_scale * g_true + bias
    return raw + rng.normal(scale=noise_g, size=(n, 3))


def _six_positions(rng, bias, sensor_scale, tilt_deg=5.0, noise_g=0.001):
    positions = []
    for up in SIX:
        g = _rot(rng, tilt_deg) @ up
        positions.append(accel.make_position(_capture(rng, g, bias, sensor_scale, noise_g)))
    return positions


@pytest.mark.parametrize("seed", range(20))
def test_fit_recovers_bias_and_scale_from_six_noisy_positions(seed):
    rng = np.random.default_rng(seed)
    bias = rng.uniform(-0.12, 0.12, size=3)
    sensor_scale = rng.uniform(0.92, 1.08, size=3)
    positions = _six_positions(rng, bias, sensor_scale)
    fit = accel.fit_ellipsoid([p.mean_g for p in positions], [accel.position_sigma(p) for p in positions])
    assert fit.converged, fit.reason
    assert np.max(np.abs(fit.bias_g - bias)) < 0.002
    # the node multiplies by scale: it is the inverse of the sensor's gain
    assert np.max(np.abs(fit.scale * sensor_scale - 1)) < 0.002
    # and the propagated uncertainty is honest: small, and covers the error
    assert np.all(fit.sigma_bias_g < 0.0005)
    assert np.all(np.abs(fit.bias_g - bias) < 6 * fit.sigma_bias_g + 1e-5)
    assert not accel.check_limits(fit)


def test_fit_is_exact_with_six_and_has_a_residual_with_more():
    rng = np.random.default_rng(1)
    bias = np.array([0.05, -0.03, 0.02])
    gain = np.array([1.02, 0.97, 1.01])
    positions = _six_positions(rng, bias, gain)
    fit6 = accel.fit_ellipsoid([p.mean_g for p in positions])
    assert fit6.rms_g < 1e-9  # six equations, six unknowns
    # six more tilted positions: now the residual measures the noise
    for _ in range(6):
        g = _rot(rng, 180) @ np.array([0, 0, 1.0])
        positions.append(accel.make_position(_capture(rng, g, bias, gain, noise_g=0.002)))
    fit12 = accel.fit_ellipsoid([p.mean_g for p in positions])
    assert 0 < fit12.rms_g < 0.001
    assert fit12.sigma_bias_g is not None


def test_fit_reports_convergence_and_iterations():
    rng = np.random.default_rng(3)
    positions = _six_positions(rng, np.array([0.1, -0.1, 0.2]), np.array([0.9, 1.1, 1.05]), tilt_deg=20)
    fit = accel.fit_ellipsoid([p.mean_g for p in positions])
    assert fit.converged and 1 <= fit.iterations < 30
    assert fit.history[-1] <= fit.history[0]
    assert fit.reason


def test_fit_refuses_four_distinct_orientations():
    rng = np.random.default_rng(2)
    positions = _six_positions(rng, np.zeros(3), np.ones(3))
    means = [p.mean_g for p in positions[:4]] + [positions[0].mean_g + 0.01, positions[1].mean_g - 0.01]
    with pytest.raises(accel.CalibrationError, match="only 4 distinct orientations"):
        accel.fit_ellipsoid(means)


def test_fit_refuses_an_axis_never_pointing_down():
    # six distinct orientations, but z never points down
    ups = [[1, 0, 0], [-1, 0, 0], [0, 1, 0], [0, -1, 0], [0, 0, 1], [0.577, 0.577, 0.577]]
    with pytest.raises(accel.CalibrationError, match="-z"):
        accel.fit_ellipsoid(np.array(ups, dtype=float))


def test_fit_refuses_too_few_and_non_finite():
    with pytest.raises(accel.CalibrationError, match="at least 6"):
        accel.fit_ellipsoid(SIX[:5])
    bad = SIX.copy()
    bad[2, 1] = np.nan
    with pytest.raises(accel.CalibrationError, match="finite"):
        accel.fit_ellipsoid(bad)


def test_fit_says_why_when_it_cannot_converge():
    rng = np.random.default_rng(5)
    positions = _six_positions(rng, np.zeros(3), np.ones(3))
    with pytest.raises(accel.CalibrationError, match="did not converge in 1 iterations"):
        accel.fit_ellipsoid([p.mean_g + 0.05 for p in positions], max_iterations=1)


def test_implausible_fit_is_named_with_limit_and_source():
    rng = np.random.default_rng(4)
    positions = _six_positions(rng, np.array([0.3, 0.0, 0.0]), np.array([1.0, 1.3, 1.0]))
    fit = accel.fit_ellipsoid([p.mean_g for p in positions])
    problems = [str(v) for v in accel.check_limits(fit)]
    assert any("bias on x" in p and "ADXL345" in p for p in problems)
    assert any("scale on y" in p and "0.9" in p for p in problems)


def test_stillness_accepts_noise_and_refuses_motion():
    rng = np.random.default_rng(7)
    still = np.array([0, 0, 1.0]) + rng.normal(scale=0.004, size=(200, 3))  # ADXL345-like noise
    assert accel.stillness(still).still
    shaking = still + np.outer(np.sin(np.arange(200) * 0.9), [0.05, 0, 0])
    s = accel.stillness(shaking)
    assert not s.still and "shaking" in s.reason
    turning = np.array([0, 0, 1.0]) + np.outer(np.linspace(0, 0.03, 200), [1, 0, 0])
    turning += rng.normal(scale=0.0005, size=(200, 3))
    s = accel.stillness(turning)
    assert not s.still and "moving" in s.reason
    assert not accel.stillness(still[:4]).still


def test_faces_and_repeats():
    assert accel.face_of([0.02, -0.98, 0.1])[0] == "-y"
    face, tilt = accel.face_of([0.5, 0, 0.866])
    assert face == "+z" and abs(tilt - 30) < 0.1
    taken = [accel.make_position(np.tile(v, (10, 1))) for v in SIX[:3]]
    again = accel.make_position(np.tile([0.95, 0.05, 0.2], (10, 1)))
    assert accel.same_as(again, taken) == 0
    new = accel.make_position(np.tile([0, -1.0, 0], (10, 1)))
    assert accel.same_as(new, taken) is None
    assert abs(accel.min_separation_g(6) - 2 * math.sin(math.radians(22.5))) < 1e-9


# -- climate -------------------------------------------------------------------


def test_one_point_offset():
    f = climate.fit("temperature", [22.31], [21.5])
    assert f.gain == 1.0 and abs(f.offset + 0.81) < 1e-9
    part = climate.node_part(t_fit=f)
    assert part["t_offset_c"] == pytest.approx(-0.81)


def test_salt_points_recover_gain_and_offset():
    true = np.array([climate.salt_rh(s, 25.0) for s in ("LiCl", "MgCl2", "NaCl")])
    assert list(true) == [11.3, 32.8, 75.3]
    reading = true * 1.1 - 3.0  # the sensor's error, as the simulator applies it
    f = climate.fit("humidity", reading, true)
    assert f.gain == pytest.approx(1 / 1.1) and f.offset == pytest.approx(3.0 / 1.1)
    assert f.rms < 1e-9
    assert not climate.check_limits(rh_fit=f)


def test_two_close_points_give_offset_only_with_a_note():
    f = climate.fit("temperature", [21.0, 22.0], [20.2, 21.3])
    assert f.gain == 1.0 and f.offset == pytest.approx(-0.75) and "offset only" in f.note
    assert f.rms == pytest.approx(0.05)


def test_salt_interpolates_and_refuses_unknown_or_far_temperatures():
    assert climate.salt_rh("mgcl2", 20.0) == pytest.approx(33.1)
    assert climate.salt_rh("NaBr", 22.5) == pytest.approx(58.35)
    with pytest.raises(UsageError, match="unknown salt"):
        climate.salt_rh("sugar", 25)
    with pytest.raises(UsageError, match="tabulated"):
        climate.salt_rh("NaCl", 45)


def test_references_out_of_range_are_refused():
    with pytest.raises(UsageError, match="reference humidity 120"):
        climate.check_reference("humidity", 120)
    with pytest.raises(UsageError, match="reference temperature -60"):
        climate.check_reference("temperature", -60)


def test_implausible_climate_fit_is_refused_with_reason():
    t = climate.fit("temperature", [30.0], [21.0])
    rh = climate.fit("humidity", [20.0, 80.0], [11.3, 75.3])  # gain 1.07: fine
    rh_bad = climate.fit("humidity", [20.0, 50.0], [11.3, 75.3])  # gain 2.1
    problems = [str(v) for v in climate.check_limits(t, rh)]
    assert len(problems) == 1 and "temperature offset -9" in problems[0] and "5 degC" in problems[0]
    assert any("humidity gain 2.13" in str(v) for v in climate.check_limits(rh_fit=rh_bad))


def test_uncalibrate_inverts_the_node_part():
    part = {"t_gain": 1.0, "t_offset_c": -0.8, "rh_gain": 0.9, "rh_offset_pct": 2.0}
    t, rh = climate.uncalibrate(21.0, 47.0, part)
    assert t == pytest.approx(21.8) and 0.9 * rh + 2.0 == pytest.approx(47.0)


def test_stability():
    t = np.arange(0, 120, 2.0)
    v = 21.5 + 0.01 * np.sin(t)
    assert climate.stability(t, v, 60, 0.1).stable
    drifting = 21.5 + 0.01 * t
    s = climate.stability(t, drifting, 60, 0.1)
    assert not s.stable and s.slope_per_min == pytest.approx(0.6)


def _write_csv(tmp_path, text, name="ref.csv"):
    p = tmp_path / name
    p.write_text(text)
    return p


def test_reference_csv_formats(tmp_path):
    p = _write_csv(tmp_path, "Zeit;Temperatur [°C];Feuchte [%RH]\n"
                             "01.06.2026 10:00:00;21,50;48,0\n01.06.2026 10:01:00;21,60;47,5\n")
    s = climate.read_reference_csv(p, tz=climate.timezone.utc)
    assert list(s.temperature_c) == [21.5, 21.6] and list(s.humidity_pct) == [48.0, 47.5]
    assert s.times_s[1] - s.times_s[0] == 60
    p2 = _write_csv(tmp_path, "timestamp,temperature_c\n1780000060,20.0\n1780000000,19.0\n", "b.csv")
    s2 = climate.read_reference_csv(p2)
    assert list(s2.times_s) == [1780000000, 1780000060] and s2.humidity_pct is None
    p3 = _write_csv(tmp_path, "time,rh\n2026-06-01T10:00:00Z,50\n", "c.csv")
    assert climate.read_reference_csv(p3).times_s[0] == climate.parse_time("2026-06-01 10:00:00+00:00")


@pytest.mark.parametrize(
    "text, words",
    [
        ("time,temperature\n2026-06-01 10:00,abc\n", "line 2: temperature 'abc' is not a number"),
        ("time,temperature\nyesterday,21\n", "line 2: cannot read time"),
        ("when,temperature\n2026-06-01 10:00,21\n", "no time column"),
        ("time,colour\n2026-06-01 10:00,red\n", "neither a temperature nor a humidity"),
        ("time,temperature\n", "no data rows"),
        ("time,rh\n2026-06-01 10:00,140\n", "reference humidity 140"),
        ("time,temperature\n2026-06-01 10:00\n", "1 fields, the header has 2"),
    ],
)
def test_reference_csv_that_does_not_parse(tmp_path, text, words):
    p = _write_csv(tmp_path, text)
    with pytest.raises(UsageError) as info:
        climate.read_reference_csv(p)
    assert words in str(info.value) and "\n" not in str(info.value)


def _ref_series(t0, n, dt, temp, rh=None):
    times = t0 + np.arange(n) * dt
    return climate.ReferenceSeries("ref.csv", times, temp(times), None if rh is None else rh(times))


def test_pairing_estimates_a_clock_shift_and_recovers_the_fit():
    t0 = 1_780_000_000.0
    truth = lambda t: 20 + 3 * np.sin((t - t0) / 900.0)  # noqa: E731
    # the logger's clock is 90 s behind: at true time t it writes t - 90
    ref = _ref_series(t0 - 120, 200, 30.0, lambda t: truth(t + 90))
    node_t = t0 + np.arange(0, 3600, 10.0)
    node_temp = truth(node_t) + 0.7
    pairing = climate.pair_series(node_t, node_temp, np.full(len(node_t), 50.0), ref)
    assert pairing.shift_estimated and abs(pairing.shift_s - 90) <= 15
    f = climate.fit("temperature", pairing.node_values["temperature"], pairing.ref_values["temperature"])
    assert f.gain == pytest.approx(1.0, abs=0.01) and f.rms < 0.05
    assert abs(f.apply(22.0) - 21.3) < 0.05


def test_pairing_refuses_no_overlap():
    t0 = 1_780_000_000.0
    ref = _ref_series(t0 - 7200, 60, 60.0, lambda t: 20 + 0 * t)
    node_t = t0 + np.arange(0, 600, 10.0)
    with pytest.raises(UsageError, match="overlap for 0 s"):
        climate.pair_series(node_t, np.full(len(node_t), 20.5), np.full(len(node_t), 50.0), ref)


# -- mount ---------------------------------------------------------------------


@pytest.mark.parametrize("align", ["gravity", "axes"])
def test_mount_rotation_and_zero_tilt(align):
    # node on its side: sensor -y points up, sensor +x along the bridge, tilted 3 degrees
    tilt = math.radians(3)
    g = np.array([math.sin(tilt), -math.cos(tilt), 0.2 * math.sin(tilt)])
    g /= np.linalg.norm(g)
    m = mount.solve(g, "-y", "x", align=align)
    r = m.rotation
    assert np.allclose(r @ r.T, np.eye(3), atol=1e-9) and np.linalg.det(r) == pytest.approx(1.0)
    pitch, roll = mount.tilt_relative(m, g)
    assert abs(pitch) < 1e-6 and abs(roll) < 1e-6
    if align == "gravity":
        assert np.allclose(r @ g, [0, 0, 1], atol=1e-9) and m.tilt_zero_deg == (0.0, 0.0)
    else:
        assert np.allclose(r, [[1, 0, 0], [0, 0, 1], [0, -1, 0]])
        assert max(abs(v) for v in m.tilt_zero_deg) > 2.5
    # the along axis stays along the bridge (up to the tilt)
    assert (r @ np.array([1.0, 0, 0]))[0] > 0.99
    # a later tilt of 1 degree about the bridge axis shows as 1 degree of roll
    later = np.linalg.inv(r) @ (np.array([[1, 0, 0], [0, math.cos(0.01745), -math.sin(0.01745)],
                                          [0, math.sin(0.01745), math.cos(0.01745)]]) @ (r @ g))
    pitch, roll = mount.tilt_relative(m, later)
    assert abs(abs(roll) - 1.0) < 0.01 and abs(pitch) < 0.01


def test_mount_refuses_wrong_axes():
    with pytest.raises(UsageError, match="gravity says \\+z is up"):
        mount.solve([0, 0, 1.0], "x", "y")
    with pytest.raises(UsageError, match="same line"):
        mount.solve([0, 0, 1.0], "z", "-z")
    with pytest.raises(UsageError, match="not a sensor axis"):
        mount.solve([0, 0, 1.0], "up", "x")


def test_limits_table_is_documented():
    md = limits.table_markdown()
    for row in limits.LIMITS.values():
        assert row.source and row.why and row.lo <= row.hi
        assert row.what.replace("|", "\\|") in md
    for line in md.splitlines():  # four cells in every row: a `|` in the text is escaped
        assert len(re.split(r"(?<!\\)\|", line)) == 6, line
    assert limits.check("t_offset_c", 4.9) is None
    assert limits.check("t_offset_c", float("nan")) is not None
    assert isinstance(accel.CalibrationError("x"), CitynodeError)


def test_stability_slope_against_noise():
    rng = np.random.default_rng(3)
    t = np.arange(0, 10, 2.0)  # five readings of a short window
    noisy = 21.5 + rng.normal(scale=0.013, size=len(t))
    # a slope of noise cannot be measured over 8 s: the spread decides
    assert climate.stability(t, noisy, 8, 0.1, 0.02).stable
    # a slow, clean creep over a long window is seen
    t = np.arange(0, 600, 10.0)
    creeping = 75.0 + 0.3 * t / 60 + rng.normal(scale=0.03, size=len(t))
    s = climate.stability(t, creeping, 600, 5.0, 0.1)
    assert not s.stable and s.slope_per_min == pytest.approx(0.3, abs=0.03)


class _Opts:
    positions = 6
    window_s = 1.0
    capture_s = 2.0
    max_attempts = 2
    still_std_g = accel.STILL_STD_G
    still_jerk_g = accel.STILL_JERK_G


def _feed(collector, rng, up, seconds, t0, move=0.0, odr=100):
    events = []
    for k in range(int(seconds * 10)):  # blocks of 0.1 s
        t = t0 + k * 0.1
        g = np.tile(np.asarray(up, float), (odr // 10, 1))
        if move:
            g = g + move * np.sin(np.arange(odr // 10) + 10 * t)[:, None] * [1, 0, 0]
        events += collector.feed(t, g + rng.normal(scale=0.001, size=g.shape))
    return events, t0 + seconds


def test_collector_finds_faces_ignores_the_same_face_and_names_a_repeat():
    rng = np.random.default_rng(0)
    c = accel.PositionCollector(_Opts(), 100)
    ev, t = _feed(c, rng, [0, 0, 1], 4, 0)
    assert [e.kind for e in ev] == ["capturing", "taken"] and c.taken[0].face == "+z"
    ev, t = _feed(c, rng, [0, 0, 1], 3, t)  # still there: waiting silently for the turn
    assert ev == []
    ev, t = _feed(c, rng, [0, 0, -1], 4, t)
    assert [e.kind for e in ev] == ["capturing", "taken"]
    ev, t = _feed(c, rng, [0, 0, 1], 0.5, t, move=0.05)  # picked up ...
    ev, t = _feed(c, rng, [0, 0.05, 1], 4, t)  # ... and put back on the first face
    assert [e.kind for e in ev] == ["repeat"] and "position 1 again" in ev[0].text
    ev, t = _feed(c, rng, [0.7071, 0, 0.7071], 3, t)  # resting on an edge
    assert [e.kind for e in ev] == ["still-tilted"]


def test_collector_gives_up_after_disturbed_captures():
    rng = np.random.default_rng(1)
    c = accel.PositionCollector(_Opts(), 100)
    t = 0.0
    with pytest.raises(accel.CalibrationError, match="moved during the capture of position 1 .* 2 times"):
        for _ in range(3):
            ev, t = _feed(c, rng, [1, 0, 0], 1.5, t)
            ev, t = _feed(c, rng, [1, 0, 0], 0.5, t, move=0.05)


def test_long_mean_of_a_vibrating_node_and_of_one_that_moved():
    rng = np.random.default_rng(3)
    t = np.arange(2000) / 200.0  # 10 s at 200 Hz
    still = np.array([0.02, -0.99, 0.01]) + rng.normal(scale=0.004, size=(2000, 3))
    m = accel.long_mean(still)
    assert np.allclose(m.mean_g, [0.02, -0.99, 0.01], atol=0.0005)
    assert 0.5 * 0.004 / math.sqrt(2000) < m.sigma_g < 2 * 0.004 / math.sqrt(2000)  # white noise: std/sqrt(n)
    # a deck mode of 40 mg at 4.1 Hz: far from still, and its mean still known to about a milli-g
    deck = still + 0.04 * np.sin(2 * math.pi * 4.1 * t)[:, None] * [0.3, 0.9, 0.3]
    assert not accel.stillness(deck[:200]).still
    m = accel.long_mean(deck)
    assert np.max(np.abs(m.mean_g - [0.02, -0.99, 0.01])) < 0.001 and m.sigma_g < 0.00125
    assert 0.024 < np.max(m.vibration_g) < 0.027  # 36 mg amplitude on y: 25 mg rms
    assert m.tilt_sigma_deg == pytest.approx(math.degrees(m.sigma_g / m.norm_g))
    # turned by 5 degrees half way: the batch means disagree, the sample count alone would not see it
    turned = still.copy()
    turned[1000:] = mount_rotated(still[1000:], 5.0)
    m = accel.long_mean(turned)
    assert m.sigma_g > 0.01 and m.sigma_g > 10 * np.max(m.vibration_g) / math.sqrt(2000)
    with pytest.raises(ValueError):
        accel.long_mean(still[:10])


def mount_rotated(samples, deg):
    a = math.radians(deg)
    r = np.array([[1, 0, 0], [0, math.cos(a), -math.sin(a)], [0, math.sin(a), math.cos(a)]])
    return samples @ r.T
