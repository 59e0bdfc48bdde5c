"""`citynode calibrate *` as a command: every bad argument is one line before anything is measured,
and `--json` prints the report's document with real UTC times."""

import json

import numpy as np
import pytest

from test_calib_fakenode import FACES, FakeClient, World, six_faces, tilted
from test_calib_flows import OLD, one_line, run

BAD = [
    # mount: the axes first of all (it used to measure for 10 s before refusing the same axis)
    (("mount", "--up=+z", "--along=+z"), "are the same line"),
    (("mount", "--up=-y", "--along=+y"), "are the same line"),
    (("mount", "--up=+q", "--along=+x"), "'+q' is not a sensor axis"),
    (("mount", "--along=up"), "'up' is not a sensor axis"),
    (("mount", "--up=-y", "--along=+x", "--seconds", "0"), "--seconds must be a positive number"),
    (("mount", "--up=-y", "--along=+x", "--seconds", "nan"), "--seconds must be a positive number"),
    (("mount", "--up=-y", "--along=+x", "--timeout", "-5"), "--timeout must be a positive number"),
    (("mount", "--up=-y", "--along=+x", "--seconds", "200"), "--seconds 200 is longer than --timeout 120"),
    # verify
    (("verify", "--reference-humidity", "120"), "reference humidity 120 %RH is out of range"),
    (("verify", "--reference-temperature", "inf"), "reference temperature inf degC is out of range"),
    (("verify", "--seconds", "-1"), "--seconds must be a positive number"),
    (("verify", "--timeout", "0"), "--timeout must be a positive number"),
    (("verify", "--seconds", "90"), "--seconds 90 is longer than --timeout 60"),
    # accel
    (("accel", "--positions", "5"), "--positions must be 6..12"),
    (("accel", "--capture", "0"), "--capture must be a positive number"),
    (("accel", "--window", "-1"), "--window must be a positive number"),
    (("accel", "--timeout", "inf"), "--timeout must be a positive number"),
    (("accel", "--attempts", "0"), "--attempts must be 1 or more"),
    # climate
    (("climate", "--point", "21,48", "--period", "1"), "--period must be 2..86400 s"),
    (("climate", "--point", "21,48", "--stable-window", "4"), "--stable-window 4 s holds fewer than 5 readings"),
    (("climate", "--point", "21,48", "--stable-temperature", "0"), "--stable-temperature must be a positive"),
    (("climate", "--point", "21,48", "--stable-humidity", "-0.5"), "--stable-humidity must be a positive"),
    (("climate", "--point", "21,48", "--point-timeout", "0"), "--point-timeout must be a positive"),
    (("climate", "--point", "21,48", "--duration", "0"), "--duration must be a positive"),
    (("climate", "--point", "21,48", "--min-overlap", "-1"), "--min-overlap must be 0 or more"),
    (("climate", "--point", "21,120"), "reference humidity 120 %RH is out of range"),
    (("climate", "--point", "21,48", "--reference-csv", "x.csv"), "either reference points or --reference-csv"),
    (("climate", "--reference-csv", "/no/such/folder/x.csv"), "its folder is missing"),
    (("climate", "--reference-csv", "x.csv", "--duration", "100"), "--duration 100 s is shorter than --min-overlap"),
    (("climate", "--reference-csv", "x.csv", "--csv-shift", "nan"), "--csv-shift must be a number"),
    # every writing flow: a record the node could not keep
    (("climate", "--point", "21,48", "--note", "n" * 600), "shorten --site, --installer or --note"),
    (("accel", "--installer", "i" * 600), "shorten --site, --installer or --note"),
    (("mount", "--up=-y", "--along=+x", "--site", "s" * 600), "shorten --site, --installer or --note"),
    # every subcommand: the report options
    (("rollback", "--no-report", "--report-dir", "r"), "--no-report and --report-dir contradict"),
]


@pytest.mark.parametrize("argv,words", BAD, ids=[" ".join(a)[:60] for a, _ in BAD])
def test_bad_arguments_are_one_line_before_the_node_is_touched(mocker, capsys, tmp_path, monkeypatch, argv, words):
    monkeypatch.chdir(tmp_path)
    fake = FakeClient(World([("still", FACES["-y"], 100)]), calib=OLD)
    code, out, err, opened = run(mocker, capsys, fake, *argv)
    assert code == 2 and words in one_line(err), err
    assert not opened.called and fake.calls == []


def test_report_dir_that_is_a_file(mocker, capsys, tmp_path):
    (tmp_path / "r").write_text("")
    fake = FakeClient(calib=OLD)
    code, out, err, opened = run(mocker, capsys, fake, "rollback", report_dir=tmp_path / "r")
    assert code == 2 and "is a file, not a folder" in one_line(err) and not opened.called


def test_a_longest_note_that_fits_is_taken():
    from citynode.calibrate import record
    from citynode.calibrate.record import RecordOptions

    record.check_fits(RecordOptions(installer="i" * 40, note="n" * 120))  # no error: the node keeps it


def _json(out):
    data = json.loads(out)
    for key in ("started_utc", "finished_utc"):
        assert data[key].startswith("2026-05-28T") and data[key].endswith("Z"), data[key]  # the fake's wall clock
    assert data["started_utc"] <= data["finished_utc"]
    return data


def test_json_of_a_verify(mocker, capsys, tmp_path):
    fake = FakeClient(World([("still", FACES["+z"], 1000)]), calib=OLD)
    code, out, err, _ = run(mocker, capsys, fake, "verify", "--json", "--reference-temperature", "21.6",
                            "--installer", "Ann", report_dir=tmp_path)
    assert code == 0, err
    data = _json(out)  # stdout is the JSON alone: the progress went to stderr
    assert "verify passed" in err and "measuring" in err
    assert data["kind"] == "verify" and data["pass"] is True and data["installer"] == "Ann"
    assert {c["check"]: c["result"] for c in data["checks"]}["humidity"] == "not checked"
    assert data["report_folder"] and json.loads((next(tmp_path.glob("node-7/*-verify*")) / "report.json")
                                                .read_text())["checks"] == data["checks"]
    readings = data["measured"]["climate_readings"]
    assert len(readings) == 5 and all(r["utc"].startswith("2026-05-28T") for r in readings)
    assert [r["utc"] for r in readings] == sorted(r["utc"] for r in readings)
    assert data["measured"]["gravity"]["samples"] >= 1000  # 5 s at 200 Hz


def test_json_of_a_failed_verify_then_one_line(mocker, capsys):
    fake = FakeClient(World([("still", FACES["+z"], 1000)]), calib=OLD)
    code, out, err, _ = run(mocker, capsys, fake, "verify", "--json", "--reference-temperature", "25")
    assert code == 1 and err.splitlines()[-1] == "citynode: verify failed: temperature" and "Traceback" not in err
    data = _json(out)
    assert data["pass"] is False and data["status"] == "fail" and data["report_folder"] is None


def test_json_of_an_accel_calibration_has_the_time_of_each_position(mocker, capsys):
    fake = FakeClient(World(six_faces(), noise_g=0.001), calib=OLD)
    code, out, err, _ = run(mocker, capsys, fake, "accel", "--json")
    assert code == 0, err
    data = _json(out)
    times = [p["captured_utc"] for p in data["positions"]]
    assert len(times) == 6 and times == sorted(times) and times[0] > data["started_utc"]
    assert data["calibration"]["id"] == fake.calib["id"]


def test_json_of_climate_mount_and_rollback(mocker, capsys):
    world = World(temperature=21.5, humidity=48.0, t_offset=0.4)
    fake = FakeClient(world, parts=("climate",), calib=OLD)
    code, out, err, _ = run(mocker, capsys, fake, "climate", "--json", "--point", "21.5,48", "--stable-window", "20")
    assert code == 0, err
    point = _json(out)["points"][0]
    assert point["taken_utc"].startswith("2026-05-28T") and point["reference_c"] == 21.5
    g = tilted(FACES["-y"], 2.0)
    fake = FakeClient(World([("still", g, 100)]), calib=OLD)
    code, out, err, _ = run(mocker, capsys, fake, "mount", "--json", "--up=-y", "--along=+x")
    assert code == 0, err
    assert _json(out)["mount"]["up_axis"] == "-y"
    fake = FakeClient(calib=dict(OLD, id=6), prev=OLD)
    code, out, err, _ = run(mocker, capsys, fake, "rollback", "--json")
    assert code == 0, err
    data = _json(out)
    assert data["calibration"]["id"] == 5 and data["previous"]["id"] == 6


def test_json_of_a_rejected_calibration(mocker, capsys):
    world = World(temperature=21.5, humidity=48.0, t_offset=7.0)
    fake = FakeClient(world, parts=("climate",), calib=OLD)
    code, out, err, _ = run(mocker, capsys, fake, "climate", "--json", "--point", "21.5,-", "--stable-window", "20")
    assert code == 1 and "climate calibration rejected" in err.splitlines()[-1]
    data = _json(out)
    assert data["status"] == "rejected" and "temperature offset" in data["error"]


def test_mount_on_a_vibrating_bridge(mocker, capsys):
    """The mount itself averages gravity over the vibration (a long mean, not stillness)."""
    g = tilted(FACES["-y"], 2.5)
    fake = FakeClient(World([("shake", g, 10000, 0.03)]), calib=OLD)
    code, out, err, _ = run(mocker, capsys, fake, "mount", "--up=-y", "--along=+x")
    assert code == 0, err
    rot = np.array(fake.calib["accel"]["rotation"])
    assert np.allclose(rot @ g, [0, 0, 1], atol=0.003)  # the measured gravity turned straight up
    assert "vibration 21." in out


def test_first_calibration_says_there_was_none_before(mocker, capsys):
    fake = FakeClient(World(temperature=21.5, humidity=48.0, t_offset=0.4), parts=("climate",), calib=None)
    code, out, err, _ = run(mocker, capsys, fake, "climate", "--point", "21.5,48", "--stable-window", "20")
    assert code == 0, err
    assert "written and read back (no previous calibration)" in out and "None" not in out
    assert fake.calib["method"] == "climate: temperature one-point offset; humidity one-point offset"


def test_reports_that_cannot_be_filed_are_said_before_measuring(mocker, capsys, tmp_path):
    (tmp_path / "file").write_text("")
    fake = FakeClient(calib=OLD)
    code, out, err, opened = run(mocker, capsys, fake, "rollback", report_dir=tmp_path / "file" / "sub")
    assert code == 2 and "is not a writable folder" in one_line(err) and not opened.called


def test_a_report_that_fails_to_write_after_the_calibration_is_one_line(mocker, capsys, tmp_path):
    from citynode.calibrate import report

    mocker.patch.object(report, "write", side_effect=PermissionError(13, "Permission denied"))
    fake = FakeClient(calib=dict(OLD, id=6), prev=OLD)
    code, out, err, _ = run(mocker, capsys, fake, "rollback", report_dir=tmp_path)
    line = one_line(err)
    assert code == 1 and "the node holds the new calibration, but the report could not be written" in line
    assert fake.calib["id"] == 5


def test_the_node_facts_the_command_checks_against_are_the_firmware_s():
    from citynode.calibrate import record
    from citynode.commands import calibrate as calibrate_cmd
    from citynode_fw import config  # on the path through test_calib_fakenode

    assert config.BY_KEY["climate_period_s"][3] == calibrate_cmd.CLIMATE_PERIOD_RANGE_S
    assert config.BY_KEY["site"][3] == record.NODE_SITE_MAX


@pytest.mark.parametrize("argv,words", [
    (("mount", "--align", "sideways"), "calibrate mount: argument --align: invalid choice: 'sideways'"),
    (("verify", "--seconds", "abc"), "calibrate verify: argument --seconds: invalid float value: 'abc'"),
    (("accel", "--positions", "6.5"), "calibrate accel: argument --positions: invalid int value: '6.5'"),
])
def test_argument_parse_errors_are_one_line_too(mocker, capsys, argv, words):
    code, _out, err, _opened = run(mocker, capsys, FakeClient(calib=OLD), *argv)
    assert code == 2 and words in one_line(err)
