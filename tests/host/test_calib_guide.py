"""docs/installer-guide.md stays in step with the code: the limits table, the tolerances, the options."""

from pathlib import Path

from citynode.calibrate import accel, limits
from citynode.calibrate.mount_flow import MountOptions
from citynode.calibrate.verify_flow import VerifyOptions
from citynode.commands import calibrate as calibrate_cmd

GUIDE = Path(__file__).resolve().parents[2] / "docs" / "installer-guide.md"
START = "<!-- limits table: generated from citynode.calibrate.limits.table_markdown() -->\n"
END = "<!-- end of limits table -->"


def test_guide_limits_table_is_the_code_table():
    text = GUIDE.read_text()
    table = text[text.index(START) + len(START):text.index(END)]
    assert table.strip() == limits.table_markdown().strip(), (
        "regenerate the table in docs/installer-guide.md from limits.table_markdown()")


def test_guide_states_the_numbers_the_code_uses():
    text = GUIDE.read_text()
    assert "10 mg rms" in text and accel.STILL_STD_G == 0.010
    assert "less than\n4 mg" in text or "less than 4 mg" in text.replace("\n", " ")
    assert accel.STILL_JERK_G == 0.004
    v = limits.VERIFY
    assert "within 0.3 °C" in text and v["t_c"] == 0.3
    assert "within 2 %RH" in text and v["rh_pct"] == 2.0
    assert "1 g within 5 mg" in text and v["g"] == 0.005
    assert "within 0.5°" in text and v["tilt_deg"] == 0.5
    assert "within 30° of the measured vertical" in text and limits.LIMITS["mount_axis_error_deg"].hi == 30


def test_guide_states_how_verify_and_mount_measure():
    text = " ".join(GUIDE.read_text().split())
    v, m = VerifyOptions(), MountOptions()
    assert "calibrated mean of 5 readings" in text and v.climate_readings == 5
    assert "climate period is set to 2 s for the check" in text and v.climate_period_s == 2
    assert "averaged for at least 5 s (`--seconds`)" in text and v.seconds == 5
    assert "within `--timeout` (60 s" in text and v.timeout_s == 60
    assert "a quarter of the tighter tolerance (1.25 mg" in text and v.confidence == 4
    assert abs(v.gravity_sigma_g - 0.00125) < 1e-12
    assert "ten consecutive parts" in text and accel.MEAN_BATCHES == 10
    assert "averages gravity for at least 10 s (`--seconds`)" in text and m.seconds == 10
    assert "known to 1 mg (0.06° of tilt)" in text and m.sigma_g == 0.001
    assert "after `--timeout` 120 s" in text and m.timeout_s == 120


def test_guide_mentions_every_option():
    import argparse

    parser = argparse.ArgumentParser()
    calibrate_cmd.add_arguments(parser)
    text = GUIDE.read_text()
    common = {"--help"}
    sub = next(a for a in parser._actions if isinstance(a, argparse._SubParsersAction))
    missing = []
    for name, p in sub.choices.items():
        for action in p._actions:
            for opt in action.option_strings:
                if opt.startswith("--") and opt not in common and opt not in text:
                    missing.append("%s %s" % (name, opt))
    assert not missing, "options not explained in the guide: %s" % ", ".join(missing)
