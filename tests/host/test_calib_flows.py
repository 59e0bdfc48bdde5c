"""`citynode calibrate ...` end to end against the scripted fake node: the flows and their failures.

Every failure must be one line on stderr, a non-zero exit, and the node's
calibration as it was (the fake's call log shows no calib_write, or the
fake's stored document is unchanged).
"""

import json
import math

import numpy as np
import pytest

from citynode import cli
from citynode.commands import calibrate as calibrate_cmd
from test_calib_fakenode import FACES, FakeClient, World, six_faces, tilted

OLD = {"id": 5, "date": "2026-01-01", "method": "six-position", "site": {"name": "lab"},
       "climate": {"t_gain": 1.0, "t_offset_c": 0.1, "rh_gain": 1.0, "rh_offset_pct": 0.0},
       "accel": {"bias_g": [0.0, 0.0, 0.0], "scale": [1.0, 1.0, 1.0]}}


def run(mocker, capsys, fake, *argv, report_dir=None):
    opened = mocker.patch.object(calibrate_cmd, "open_client", return_value=fake)
    args = ["calibrate", *argv, "--port", "/dev/fake"]
    if report_dir is not None:
        args += ["--report-dir", str(report_dir)]
    else:
        args += ["--no-report"]
    code = cli.main(args)
    out, err = capsys.readouterr()
    return code, out, err, opened


def one_line(err):
    lines = [ln for ln in err.splitlines() if ln.strip()]
    assert len(lines) == 1, err
    assert lines[0].startswith("citynode: ") and "Traceback" not in err
    return lines[0]


# -- accelerometer --------------------------------------------------------------------


BIAS = (0.05, -0.03, 0.08)
GAIN = (1.03, 0.97, 1.01)


def test_accel_six_positions_recover_bias_and_scale(mocker, capsys, tmp_path):
    fake = FakeClient(World(six_faces(), bias_g=BIAS, scale=GAIN, noise_g=0.001), calib=OLD)
    code, out, err, _ = run(mocker, capsys, fake, "accel", "--installer", "ann", report_dir=tmp_path)
    assert code == 0, err
    assert "position 6/6 taken" in out and "written and read back" in out
    cal = fake.calib["accel"]
    assert np.max(np.abs(np.array(cal["bias_g"]) - BIAS)) < 0.002
    assert np.max(np.abs(np.array(cal["scale"]) * GAIN - 1)) < 0.002
    assert fake.calib["method"] == "six-position" and fake.calib["site"]["installer"] == "ann"
    assert fake.calib["climate"] == OLD["climate"]  # the other part is kept
    assert fake.prev["id"] == 5 and fake.calib["id"] > 5
    assert fake.raw is False  # raw mode off again
    # the node's own calibrated output in the last position reads 1 g
    assert "node now reads |a| = 1.00" in out
    folder = next(tmp_path.glob("node-7/*-accel-*"))
    data = json.loads((folder / "report.json").read_text())
    assert data["status"] == "written" and len(data["positions"]) == 6
    assert {p["face"] for p in data["positions"]} == set(FACES)
    for name in ("positions.png", "before_after.png", "residuals.png", "report.md"):
        assert (folder / name).stat().st_size > 1000


def test_accel_moved_during_capture_retries_then_gives_up(mocker, capsys):
    shaky = []
    for _ in range(3):  # still long enough to start a capture, then a bump, each time
        shaky += [("still", (0, 0, 1), 1.5), ("shake", (0, 0, 1), 0.5, 0.05), ("turn", 0.3)]
    fake = FakeClient(World(shaky + [("still", (0, 0, 1), 30)]), calib=OLD)
    code, out, err, _ = run(mocker, capsys, fake, "accel")
    line = one_line(err)
    assert code == 1 and "moved during the capture of position 1 (z axis up (lying flat, label up)) 3 times" in line
    assert "nothing was changed" in line
    assert out.count("the node moved during the capture") == 2
    assert "calib_write" not in fake.commands() and fake.calib == OLD and fake.raw is False


def test_accel_one_bump_is_retried_and_succeeds(mocker, capsys):
    segs = [("still", (0, 0, 1), 1.5), ("shake", (0, 0, 1), 0.4, 0.05)] + six_faces()
    fake = FakeClient(World(segs, bias_g=BIAS, scale=GAIN), calib=OLD)
    code, out, err, _ = run(mocker, capsys, fake, "accel")
    assert code == 0, err
    assert "the node moved during the capture" in out and "capture 2 of 3" in out


def test_accel_position_taken_twice(mocker, capsys):
    segs = [("still", FACES["+z"], 5), ("turn", 1), ("still", FACES["-z"], 5), ("turn", 1),
            ("still", tilted(FACES["+z"], 4), 400)]
    fake = FakeClient(World(segs), calib=OLD)
    code, out, err, _ = run(mocker, capsys, fake, "accel", "--timeout", "60")
    assert "position taken twice: this is position 1 again (z axis up" in out
    assert out.count("position taken twice") == 1  # said once, not per block
    line = one_line(err)
    assert code == 1 and "no new position within 60 s (taken: +z, -z" in line and "x axis up" in line
    assert "calib_write" not in fake.commands() and fake.calib == OLD


def test_accel_refuses_implausible_result_unless_forced(mocker, capsys, tmp_path):
    world = World(six_faces(), bias_g=(0.3, 0, 0), scale=(1, 1, 1))
    fake = FakeClient(world, calib=OLD)
    code, out, err, _ = run(mocker, capsys, fake, "accel", report_dir=tmp_path)
    line = one_line(err)
    assert code == 1 and "accelerometer calibration rejected: accelerometer bias on x 0.3" in line
    assert "ADXL345" in line and "--force" in line and "report: " in line
    assert fake.calib == OLD
    rejected = next(tmp_path.glob("node-7/*-accel"))
    assert json.loads((rejected / "report.json").read_text())["status"] == "rejected"
    fake2 = FakeClient(World(six_faces(), bias_g=(0.3, 0, 0)), calib=OLD)
    code, out, err, _ = run(mocker, capsys, fake2, "accel", "--force")
    assert code == 0 and "FORCED past the limits" in out
    assert abs(fake2.calib["accel"]["bias_g"][0] - 0.3) < 0.002


def test_accel_without_accelerometer(mocker, capsys):
    fake = FakeClient(parts=("climate",), calib=OLD)
    code, out, err, _ = run(mocker, capsys, fake, "accel")
    line = one_line(err)
    assert code == 1 and "has no accelerometer (it reports: climate sht35); nothing was changed" in line
    assert fake.commands() == ["info"]


def test_accel_node_ignoring_raw_mode(mocker, capsys):
    fake = FakeClient(World(six_faces()), calib=OLD, raw_mode_works=False)
    code, out, err, _ = run(mocker, capsys, fake, "accel")
    assert code == 1 and "does not send raw accelerometer data" in one_line(err)


@pytest.mark.parametrize("mode", ["drop", "drop-after", "dead"])
def test_link_dropped_mid_write(mocker, capsys, mode):
    fake = FakeClient(World(six_faces(), bias_g=BIAS, scale=GAIN), calib=OLD, fail={"calib_write": mode})
    code, out, err, _ = run(mocker, capsys, fake, "accel")
    if mode == "drop":
        line = one_line(err)
        assert code == 1 and "link lost while writing the calibration" in line
        assert "the node kept its calibration id 5 (read back)" in line
        assert fake.calib == OLD
        assert fake.commands()[-3:] == ["calib_write", "calib_get", "raw_mode"]
    elif mode == "drop-after":
        assert code == 0, err
        assert "the node holds the new calibration (read back)" in out
        assert fake.calib["id"] != 5
    else:
        line = one_line(err)
        assert code == 1 and "could not be read back" in line and "calibrate verify --port /dev/fake" in line
        assert fake.calib == OLD  # the fake dropped before storing
        assert "warning: could not turn raw mode off" in out


def test_accel_link_silent(mocker, capsys):
    fake = FakeClient(World(six_faces()), calib=OLD)
    fake.streaming = False
    mocker.patch.object(fake, "_cmd_stream_start", return_value={"streaming": True})
    code, out, err, _ = run(mocker, capsys, fake, "accel")
    assert code == 1 and "no accelerometer data from the node on /dev/fake for 5 s" in one_line(err)


# -- mount --------------------------------------------------------------------------------


def test_mount_stores_rotation_and_zero_tilt(mocker, capsys, tmp_path):
    g = tilted(FACES["-y"], 2.0)
    fake = FakeClient(World([("still", g, 100)], bias_g=(0.01, 0.02, -0.01), noise_g=0.002), calib={
        "id": 9, "accel": {"bias_g": [0.01, 0.02, -0.01], "scale": [1.0, 1.0, 1.0]}})
    code, out, err, _ = run(mocker, capsys, fake, "mount", "--up=-y", "--along=+x", report_dir=tmp_path)
    assert code == 0, err
    acal = fake.calib["accel"]
    r = np.array(acal["rotation"])
    assert np.allclose(r @ r.T, np.eye(3), atol=1e-5)
    assert np.allclose(r @ g, [0, 0, 1], atol=0.002) and acal["tilt_zero_deg"] == [0.0, 0.0]
    assert acal["bias_g"] == [0.01, 0.02, -0.01]  # the six-position part is kept
    assert "tilt against the installed zero: pitch" in out
    assert (next(tmp_path.glob("node-7/*-mount-*")) / "gravity.png").exists()


def test_mount_wrong_axis_named(mocker, capsys):
    fake = FakeClient(World([("still", FACES["-y"], 100)]), calib=OLD)
    code, out, err, _ = run(mocker, capsys, fake, "mount", "--up", "z", "--along", "x")
    line = one_line(err)
    assert code == 2 and "you named +z as up, but gravity says -y is up" in line
    assert "calib_write" not in fake.commands() and fake.raw is False


def test_mount_without_axes_and_no_terminal(mocker, capsys):
    fake = FakeClient(World([("still", FACES["-y"], 100)]), calib=OLD)
    code, out, err, _ = run(mocker, capsys, fake, "mount")
    assert code == 2 and "stdin is not a terminal, give --up" in one_line(err)


# -- climate -------------------------------------------------------------------------------


def test_climate_one_point(mocker, capsys, tmp_path):
    world = World(temperature=21.5, humidity=48.0, t_offset=0.8, rh_gain=1.1, rh_offset=-3.0, climate_noise=0.01)
    fake = FakeClient(world, parts=("climate",), calib=OLD)
    code, out, err, _ = run(mocker, capsys, fake, "climate", "--reference-temperature", "21.5",
                            "--reference-humidity", "48", "--stable-window", "20", report_dir=tmp_path)
    assert code == 0, err
    c = fake.calib["climate"]
    assert c["t_gain"] == 1.0 and abs(c["t_offset_c"] + 0.8) < 0.02
    assert c["rh_gain"] == 1.0 and abs(c["rh_offset_pct"] - (48 - (48 * 1.1 - 3))) < 0.05
    assert fake.calib["accel"] == OLD["accel"]
    # the node's calibrated output matches the truth at the calibration point
    assert fake.config["climate_period_s"] == 60  # set back
    [after] = [ln for ln in out.splitlines() if "node now reports" in ln]
    t, h = (float(v.split()[0]) for v in after.split("reports ")[1].split(", "))
    assert abs(t - 21.5) < 0.05 and abs(h - 48.0) < 0.5
    folder = next(tmp_path.glob("node-7/*-climate-*"))
    assert (folder / "before_after.png").exists() and "one-point offset" in (folder / "report.md").read_text()


def _step(t_switch, a, b, tau=120.0):
    """A value that moves from a to b after t_switch (the node moved to another salt box)."""
    return lambda t: a if t < t_switch else b + (a - b) * math.exp(-(t - t_switch) / tau)


def test_climate_two_salts_fit_gain_and_offset(mocker, capsys, tmp_path):
    world = World(temperature=25.0, humidity=_step(900, 11.3, 75.3), t_offset=0.3, rh_gain=1.1, rh_offset=-3.0,
                  climate_noise=0.01)
    fake = FakeClient(world, parts=("climate",), calib=None)
    code, out, err, _ = run(mocker, capsys, fake, "climate", "--point", "25,LiCl", "--point", "25,NaCl",
                            report_dir=tmp_path)
    assert code == 0, err
    c = fake.calib["climate"]
    assert abs(c["rh_gain"] - 1 / 1.1) < 0.005 and abs(c["rh_offset_pct"] - 3 / 1.1) < 0.3
    assert c["t_gain"] == 1.0 and abs(c["t_offset_c"] + 0.3) < 0.02  # two points at 25 degC: offset only
    for truth in (11.3, 75.3):
        assert abs(c["rh_gain"] * (truth * 1.1 - 3) + c["rh_offset_pct"] - truth) < 0.3
    assert "waiting for the node to be moved to the new reference" in out
    assert (next(tmp_path.glob("node-7/*-climate-*")) / "residuals.png").exists()


def test_climate_implausible_offset_refused_then_forced(mocker, capsys):
    world = World(temperature=21.5, humidity=48.0, t_offset=7.0)
    fake = FakeClient(world, parts=("climate",), calib=OLD)
    code, out, err, _ = run(mocker, capsys, fake, "climate", "--point", "21.5,48", "--stable-window", "20")
    line = one_line(err)
    assert code == 1 and "temperature offset -7" in line and "5 degC" in line and "--force" in line
    assert fake.calib == OLD and fake.config["climate_period_s"] == 60 and fake.raw is False
    fake = FakeClient(World(temperature=21.5, humidity=48.0, t_offset=7.0), parts=("climate",), calib=OLD)
    code, out, err, _ = run(mocker, capsys, fake, "climate", "--point", "21.5,48", "--stable-window", "20",
                            "--force")
    assert code == 0 and abs(fake.calib["climate"]["t_offset_c"] + 7) < 0.02


@pytest.mark.parametrize("argv, words", [
    (["--reference-humidity", "120"], "reference humidity 120 %RH is out of range"),
    (["--reference-temperature", "-80"], "reference temperature -80 degC is out of range"),
    (["--point", "21,sugar"], "neither a humidity nor a known salt"),
    (["--point", "21,48,3"], "expected TEMPERATURE,HUMIDITY"),
    (["--point", "21,48", "--reference-csv", "x.csv"], "not both"),
])
def test_climate_bad_references_refused_before_touching_the_node(mocker, capsys, argv, words):
    fake = FakeClient(parts=("climate",), calib=OLD)
    code, out, err, opened = run(mocker, capsys, fake, "climate", *argv)
    assert code == 2 and words in one_line(err)
    assert not opened.called and fake.calls == []


def test_climate_without_climate_sensor(mocker, capsys):
    fake = FakeClient(parts=("accel",), calib=OLD)
    code, out, err, _ = run(mocker, capsys, fake, "climate", "--point", "21.5,48")
    assert code == 1 and "has no temperature/humidity sensor" in one_line(err)
    assert fake.commands() == ["info"]


def test_climate_not_settling(mocker, capsys):
    world = World(temperature=lambda t: 20 + 0.01 * t, humidity=48.0)
    fake = FakeClient(world, parts=("climate",), calib=OLD)
    code, out, err, _ = run(mocker, capsys, fake, "climate", "--point", "21.5,48", "--point-timeout", "600")
    assert code == 1 and "did not settle within 600 s" in one_line(err)
    assert fake.calib == OLD


def _csv(tmp_path, rows, name="ref.csv"):
    p = tmp_path / name
    p.write_text("time,temperature,humidity\n" + "".join("%s,%.2f,%.2f\n" % r for r in rows))
    return p


def _iso(t):
    from datetime import datetime, timezone

    return datetime.fromtimestamp(t, timezone.utc).strftime("%Y-%m-%d %H:%M:%S")


def test_climate_reference_csv_with_clock_shift(mocker, capsys, tmp_path):
    t0 = 1_780_000_000.0
    temp = lambda t: 18 + 6 * math.sin(t / 700.0)  # noqa: E731
    hum = lambda t: 50 + 25 * math.sin(t / 500.0)  # noqa: E731
    world = World(temperature=temp, humidity=hum, t_offset=0.5, rh_gain=1.05, rh_offset=-2)
    # the logger's clock runs 60 s behind: at fake time s it writes t0 + s - 60
    rows = [(_iso(t0 + s - 60), temp(s), hum(s)) for s in range(-300, 2400, 30)]
    csv = _csv(tmp_path, rows)
    fake = FakeClient(world, parts=("climate",), calib=None)
    code, out, err, _ = run(mocker, capsys, fake, "climate", "--reference-csv", str(csv), "--csv-utc",
                            "--duration", "1800", report_dir=tmp_path / "r")
    assert code == 0, err
    assert "reference clock shift +60 s estimated" in out
    c = fake.calib["climate"]
    assert abs(c["t_gain"] - 1) < 0.01 and abs(c["t_offset_c"] + 0.5) < 0.1
    assert abs(c["rh_gain"] - 1 / 1.05) < 0.01
    assert (next((tmp_path / "r").glob("node-7/*-climate-*")) / "series.png").exists()


def test_climate_reference_csv_that_does_not_parse(mocker, capsys, tmp_path):
    bad = tmp_path / "bad.csv"
    bad.write_text("time,temperature\n2026-06-01 10:00:00,21.0\n2026-06-01 10:01:00,warm\n")
    fake = FakeClient(World(), parts=("climate",), calib=OLD)
    code, out, err, opened = run(mocker, capsys, fake, "climate", "--reference-csv", str(bad), "--duration", "600")
    line = one_line(err)
    assert code == 2 and "bad.csv line 3: temperature 'warm' is not a number" in line
    assert not opened.called  # a CSV already there is read before anything is measured


def test_climate_reference_csv_without_overlap(mocker, capsys, tmp_path):
    rows = [(_iso(1_700_000_000 + 60 * i), 21.0, 48.0) for i in range(60)]  # months earlier
    csv = _csv(tmp_path, rows)
    fake = FakeClient(World(), parts=("climate",), calib=OLD)
    code, out, err, _ = run(mocker, capsys, fake, "climate", "--reference-csv", str(csv), "--csv-utc",
                            "--duration", "600")
    line = one_line(err)
    assert code == 2 and "overlap for 0 s, need 300 s" in line and "time zone" in line
    assert fake.calib == OLD


# -- verify, rollback, inventory ------------------------------------------------------------------


def test_verify_pass_and_fail(mocker, capsys, tmp_path):
    cal = dict(OLD, climate={"t_gain": 1.0, "t_offset_c": -0.8, "rh_gain": 1.0, "rh_offset_pct": 0.0})
    world = World([("still", FACES["+z"], 1000)], temperature=21.5, humidity=48.0, t_offset=0.8)
    fake = FakeClient(world, calib=cal)
    code, out, err, _ = run(mocker, capsys, fake, "verify", "--reference-temperature", "21.5",
                            "--reference-humidity", "48", report_dir=tmp_path)
    assert code == 0, err
    assert "temperature" in out and "PASS" in out and "verify passed" in out
    fake = FakeClient(World([("still", FACES["+z"], 1000)], bias_g=(0.02, 0, 0), temperature=21.5), calib=cal)
    code, out, err, _ = run(mocker, capsys, fake, "verify", "--reference-temperature", "23")
    line = one_line(err)
    assert code == 1 and line == "citynode: verify failed: temperature"
    assert "gravity |a|" in out


def test_rollback(mocker, capsys, tmp_path):
    fake = FakeClient(calib=dict(OLD, id=6), prev=OLD)
    code, out, err, _ = run(mocker, capsys, fake, "rollback", report_dir=tmp_path)
    assert code == 0 and "calibration id 5" in out and fake.calib["id"] == 5 and fake.prev["id"] == 6
    fake = FakeClient(calib=OLD)
    code, out, err, _ = run(mocker, capsys, fake, "rollback")
    assert code == 1 and "no previous calibration" in one_line(err)


def test_report_path_goes_into_the_inventory(mocker, capsys, tmp_path):
    from citynode import inventory

    inv_path = tmp_path / "inv" / "inventory.sqlite"
    inv = inventory.Inventory(inv_path)
    inv.record({"node_id": 7, "mac": "aa:bb", "result": "pass", "site": "Bridge 3"})
    fake = FakeClient(World(temperature=21.5, humidity=48.0, t_offset=0.4), parts=("climate",), calib=OLD)
    mocker.patch.object(calibrate_cmd, "open_client", return_value=fake)
    code = cli.main(["calibrate", "climate", "--port", "/dev/fake", "--inventory", str(inv_path),
                     "--point", "21.5,-", "--stable-window", "20"])
    out, err = capsys.readouterr()
    assert code == 0, err
    rec = json.loads(inv.get(7)["calibration"])
    assert rec["id"] == fake.calib["id"] and rec["report"].startswith(str(tmp_path / "inv" / "reports" / "node-7"))
    assert (inv_path.parent / "reports").is_dir() and "record of node 7 updated" in out
    assert inv.get(7)["mac"] == "aa:bb"  # the rest of the record is kept
    if hasattr(inv, "update"):
        assert len(inv.runs(7)) == 1  # a calibration is not a flash run


def test_climate_asks_for_the_reference_once_settled_in_a_terminal(mocker, capsys):
    world = World(temperature=21.5, humidity=48.0, t_offset=0.6)
    fake = FakeClient(world, parts=("climate",), calib=OLD)
    mocker.patch("sys.stdin.isatty", return_value=True)
    answers = iter(["21.5", "120", "21.5", "48"])  # a wrong humidity first: asked again
    asked = mocker.patch("builtins.input", side_effect=lambda prompt="": next(answers))
    code, out, err, _ = run(mocker, capsys, fake, "climate", "--stable-window", "20")
    assert code == 0, err
    assert "the node has settled at 22.10 degC" in out and "out of range" in out
    assert asked.call_count == 4 and abs(fake.calib["climate"]["t_offset_c"] + 0.6) < 0.02


def test_climate_without_reference_and_no_terminal(mocker, capsys):
    fake = FakeClient(World(), parts=("climate",), calib=OLD)
    code, out, err, _ = run(mocker, capsys, fake, "climate")
    assert code == 2 and "no reference: stdin is not a terminal" in one_line(err)
    assert "calib_write" not in fake.commands()


def test_too_long_a_record_is_refused_before_writing(mocker, capsys):
    world = World(temperature=21.5, humidity=48.0, t_offset=0.4)
    fake = FakeClient(world, parts=("climate",), calib=OLD)
    code, out, err, _ = run(mocker, capsys, fake, "climate", "--point", "21.5,48", "--stable-window", "20",
                            "--note", "x" * 900)
    assert code == 2 and "shorten --site, --installer or --note" in one_line(err)
    assert "calib_write" not in fake.commands() and fake.calib == OLD


def test_longest_real_record_fits_the_node():
    from citynode.calibrate import record

    doc = {"id": 4294967295, "date": "2026-11-26", "method": "climate: temperature least-squares line (901 points)",
           "site": {"name": "s" * 64, "installer": "i" * 40, "note": "n" * 120},
           "climate": {"t_gain": 1.012345, "t_offset_c": -0.1234, "rh_gain": 0.912345, "rh_offset_pct": 2.7123},
           "accel": {"bias_g": [-0.123456] * 3, "scale": [1.012345] * 3,
                     "rotation": [[-0.1234567] * 3] * 3, "tilt_zero_deg": [-12.345, 12.345]}}
    assert record.canonical_length(doc) <= record.MAX_DOCUMENT
    from citynode_fw import store

    assert len(store.canonical(doc)) == record.canonical_length(doc)
