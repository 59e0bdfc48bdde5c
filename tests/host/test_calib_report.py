"""The report writer on synthetic results: JSON, Markdown, PNGs, where it is filed."""

import json
import re

import numpy as np

from citynode.calibrate import accel, climate, mount, report

NODE = {"node_id": 12, "site": "Lamp post 4", "port": "/dev/ttyUSB0", "parts": {"accel": "adxl345"},
        "app_version": "0.1.0", "uid": "x"}


def _accel_result():
    rng = np.random.default_rng(0)
    ups = [(0, 0, 1), (0, 0, -1), (1, 0, 0), (-1, 0, 0), (0, 1, 0), (0, -1, 0), (0.6, 0.6, 0.53)]
    positions, timeline, t = [], [], 0.0
    for up in ups:
        raw = np.asarray(up, float) / np.linalg.norm(up) * [1.02, 0.98, 1.0] + [0.04, -0.02, 0.01]
        samples = raw + rng.normal(scale=0.002, size=(300, 3))
        positions.append(accel.make_position(samples))
        for k in range(30):
            timeline.append((t, *samples[k * 10], "capture" if k > 10 else "wait"))
            t += 0.1
    fit = accel.fit_ellipsoid([p.mean_g for p in positions], [accel.position_sigma(p) for p in positions])
    doc = {"id": 1780000000, "date": "2026-06-01", "method": "six-position", "site": {"name": "Lamp post 4"},
           "accel": {"bias_g": list(fit.bias_g), "scale": list(fit.scale)}}
    return {"kind": "accel", "positions": positions, "fit": fit, "timeline": timeline, "document": doc,
            "previous": None, "after": {"node_mean_g": [0.0, 0.0, 1.0001]}}


def test_accel_report_files_json_markdown_and_plots(tmp_path):
    folder = report.folder_for(tmp_path, 12, "accel", 1780000000, when=1780000000)
    assert folder.name == "20260528T202640Z-accel-1780000000" and folder.parent.name == "node-12"
    report.write(_accel_result(), NODE, "written", folder)
    data = json.loads((folder / "report.json").read_text())
    assert data["status"] == "written" and data["node"]["node_id"] == 12
    assert len(data["positions"]) == 7 and data["fit"]["converged"]
    assert 0 < data["fit"]["rms_g"] < 0.001  # seven positions: a real residual
    assert data["plots"] == ["positions.png", "before_after.png", "residuals.png"]
    for name in data["plots"]:
        assert (folder / name).read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    md = (folder / "report.md").read_text()
    assert "![positions](positions.png)" in md and "| x | +39.9" in md
    assert "| accelerometer scale | 0.9 .. 1.1" in md  # the limits table with sources
    # a second report in the same second does not overwrite the first
    again = report.folder_for(tmp_path, 12, "accel", 1780000000, when=1780000000)
    assert again != folder


def test_climate_and_mount_reports(tmp_path):
    t_fit = climate.fit("temperature", [22.3], [21.5])
    rh_fit = climate.fit("humidity", [9.4, 79.8], [11.3, 75.3])
    res = {"kind": "climate", "t_fit": t_fit, "rh_fit": rh_fit, "document": {"id": 3}, "previous": {"id": 2},
           "points": [{"reading": (22.3, 9.4), "ref_t": 21.5, "ref_rh": 11.3, "salt": "LiCl"},
                      {"reading": (22.3, 79.8), "ref_t": None, "ref_rh": 75.3, "salt": "NaCl"}],
           "forced": ["humidity gain 0.64 is outside the limit"]}
    f = tmp_path / "c"
    report.write(res, NODE, "written", f)
    md = (f / "report.md").read_text()
    assert "Stored past the limits" in md and "two-point linear" in md
    assert json.loads((f / "report.json").read_text())["points"][0]["salt"] == "LiCl"
    m = mount.solve([0.01, -0.999, 0.02], "-y", "x")
    res = {"kind": "mount", "mount": m, "gravity_g": [0.01, -0.999, 0.02], "raw_g": [0.01, -0.999, 0.02],
           "document": {"id": 4}}
    f = tmp_path / "m"
    report.write(res, NODE, "written", f)
    assert (f / "gravity.png").exists() and "Rotation (sensor → structure" in (f / "report.md").read_text()


def test_reports_root_and_inventory_without_the_node(tmp_path, monkeypatch):
    monkeypatch.setenv("CITYNODE_INVENTORY", str(tmp_path / "db" / "inventory.sqlite"))
    assert report.reports_root() == tmp_path / "db" / "reports"
    assert report.reports_root(report_dir=tmp_path / "x") == tmp_path / "x"
    words = report.record_in_inventory(None, 12, {"id": 1}, tmp_path / "r")
    assert words.startswith("no inventory at")
    from citynode import inventory

    inventory.Inventory().record({"node_id": 3, "result": "pass"})
    assert "node 12 is not in the inventory" in report.record_in_inventory(None, 12, {"id": 1}, tmp_path / "r")


def _table_rows(md):
    """The Markdown table rows of md, each split into its cells at the unescaped `|`."""
    return [re.split(r"(?<!\\)\|", ln)[1:-1] for ln in md.splitlines() if ln.startswith("|")]


def test_report_page_names_the_installer_and_keeps_its_tables_whole(tmp_path):
    t_fit = climate.fit("temperature", [22.3], [21.5])
    rh_fit = climate.fit("humidity", [49.8], [48.0])
    method = "climate: temperature one-point offset; humidity one-point offset"
    res = {"kind": "climate", "t_fit": t_fit, "rh_fit": rh_fit, "previous": None,
           "document": {"id": 3, "date": "2026-06-01", "method": method,
                        "site": {"name": "Bridge 3", "installer": "A. Name | crew 2"}},
           "points": [{"reading": (22.3, 49.8), "ref_t": 21.5, "ref_rh": 48.0, "salt": None,
                       "taken_utc": "2026-06-01T10:00:00.000Z"}],
           "after": {"temperature_c": 21.49, "humidity_pct": 47.99, "n": 3}}
    run = {"started_utc": "2026-06-01T09:58:00.000Z", "finished_utc": "2026-06-01T10:01:00.000Z"}
    data = report.write(res, NODE, "written", tmp_path / "c", run=run)
    md = (tmp_path / "c" / "report.md").read_text()
    assert data["installer"] == "A. Name | crew 2" and "| installer | A. Name \\| crew 2 |" in md
    assert method in md  # the method whole, not cut at 60 characters
    assert "| measured (UTC) | 2026-06-01T09:58:00.000Z to 2026-06-01T10:01:00.000Z |" in md
    assert "| temperature (°C) | 21.490 |" in md and "| humidity (%RH) | 47.990 |" in md
    assert "temperature c" not in md and "humidity pct" not in md
    widths = {len(cells) for cells in _table_rows(md[md.index("## Limits"):])}
    assert widths == {4}  # `|g|` in a limit's text no longer splits a row
    assert "measured \\|g\\| while mounted" in md


def test_one_point_residual_plot_and_visible_capture_bands(tmp_path, mocker):
    from citynode.calibrate import report_plots

    figures = {}

    def keep(plt, fig, folder, name):
        figures[name] = fig
        return name

    mocker.patch.object(report_plots, "_save", side_effect=keep)
    res = {"t_fit": climate.fit("temperature", [22.3], [21.5]), "rh_fit": None}
    report_plots.plot_climate(res, tmp_path)
    ax = figures["residuals.png"].axes[0]
    assert ax.get_xlim() == (0.5, 1.5) and list(ax.get_xticks()) == [1]
    # a virtual node sends 1 s blocks: a capture is one or two of them, and its band must still show
    timeline = [(float(t), 0.0, 0.0, 1.0, "capture" if t in (3, 4) else "wait") for t in range(10)]
    result = _accel_result()
    result.update(timeline=timeline, captures=[(2.5, 4.0, "+z")])
    report_plots.plot_accel(result, tmp_path)
    bands = [p for p in figures["positions.png"].axes[0].patches]
    assert len(bands) == 1
    x0, x1 = bands[0].get_x(), bands[0].get_x() + bands[0].get_width()
    assert (x0, x1) == (2.5, 4.0)
    # without the flow's record, the runs of "capture" in the timeline, from the block before
    assert report_plots._capture_spans({}, timeline) == [(2.0, 4.0)]
