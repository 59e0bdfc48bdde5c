"""The calibration report: JSON for machines, Markdown with PNG plots for people.

Filed with the node's inventory record: `reports/node-<id>/<UTC time>-<kind>-<cal id>/`
beside the inventory database (`citynode.inventory.resolve_path`), and the
report's path written into the node's inventory record (`calibration` column)
when the node is in the inventory. `--report-dir` files it elsewhere.

Each report folder holds `report.json`, `report.md` and the PNGs it links
(report_plots.py):
- accel: `positions.png` (the stream while the installer turned the node, with
  each captured position), `before_after.png` (|a| per position raw and
  calibrated), `residuals.png`;
- climate: `before_after.png` (reading against reference before and after),
  `residuals.png`, and `series.png` for a reference logger's time series;
- mount: `gravity.png` (gravity in sensor and in structure axes).
"""

import json
import os
import time
from datetime import datetime, timezone
from pathlib import Path

import numpy as np

from citynode.calibrate import climate, limits, md
from citynode.calibrate.report_plots import PLOTTERS

_JSON_LIMIT = 2000  # points kept per series in report.json


def reports_root(inventory_path=None, report_dir=None):
    """Where reports go: --report-dir, else `reports/` beside the inventory file."""
    if report_dir:
        return Path(report_dir).expanduser()
    from citynode import inventory

    return inventory.resolve_path(inventory_path).parent / "reports"


def folder_for(root, node_id, kind, cal_id=None, when=None):
    stamp = time.strftime("%Y%m%dT%H%M%SZ", time.gmtime(when))
    name = "%s-%s" % (stamp, kind) + ("-%s" % cal_id if cal_id is not None else "")
    path = Path(root) / ("node-%s" % node_id) / name
    n = 2
    base = path
    while path.exists():
        path = base.with_name("%s-%d" % (base.name, n))
        n += 1
    return path


# -- turning flow results into plain data ---------------------------------------------


def _f(v):
    if v is None or isinstance(v, (bool, np.bool_)):
        return None if v is None else bool(v)
    if isinstance(v, (np.floating, float)):
        return float(v)
    if isinstance(v, (np.integer, int)):
        return int(v)
    if isinstance(v, np.ndarray):
        return [_f(x) for x in v.tolist()]
    if isinstance(v, (list, tuple)):
        return [_f(x) for x in v]
    if isinstance(v, dict):
        return {k: _f(x) for k, x in v.items()}
    return v


def summary(result, node, status, error=None, run=None):
    """The JSON document of a report (plain types only).

    run: who and when, {"installer", "note", "started_utc", "finished_utc"}: the
    installer is also in a written calibration's site, but a verify or a
    rollback writes none.
    """
    run = run or {}
    site = (result.get("document") or {}).get("site") or {}
    doc = {
        "kind": result.get("kind"),
        "created_utc": datetime.now(timezone.utc).strftime("%Y-%m-%dT%H:%M:%SZ"),
        "started_utc": run.get("started_utc"),
        "finished_utc": run.get("finished_utc"),
        "status": status,
        "error": error,
        "installer": run.get("installer") or site.get("installer"),
        "note": run.get("note") or site.get("note"),
        "node": node,
        "calibration": result.get("document"),
        "previous": result.get("previous"),
        "forced_past_limits": result.get("forced") or [],
        "notes": result.get("notes") or [],
        "after": _f(result.get("after")),
        "limits": {k: {"lo": v.lo, "hi": v.hi, "unit": v.unit, "source": v.source}
                   for k, v in limits.LIMITS.items()},
    }
    fit = result.get("fit")
    if fit is not None:
        doc["fit"] = fit.as_dict()
    if result.get("positions"):
        doc["positions"] = [p.as_dict() for p in result["positions"]]
        for d, c in zip(doc["positions"], result.get("captures_utc") or []):
            d["captured_utc"] = c
        if fit is not None:
            for d, p in zip(doc["positions"], result["positions"]):
                d["calibrated_g"] = _f(fit.apply(p.mean_g))
    for key in ("t_fit", "rh_fit"):
        if result.get(key) is not None:
            doc[key] = result[key].as_dict()
    if result.get("points"):
        doc["points"] = [_f({"reading_c": p["reading"][0], "reading_pct": p["reading"][1],
                             "reference_c": p["ref_t"], "reference_pct": p["ref_rh"], "salt": p["salt"],
                             "taken_utc": p.get("taken_utc")})
                         for p in result["points"]]
    pairing = result.get("pairing")
    if pairing is not None:
        doc["pairing"] = {"shift_s": pairing.shift_s, "shift_estimated": pairing.shift_estimated,
                          "pairs": int(len(pairing.node_times_s)), "overlap_s": pairing.overlap_s,
                          "note": pairing.note, "reference_csv": result["reference"].path,
                          "columns": result["reference"].columns}
    m = result.get("mount")
    if m is not None:
        doc["mount"] = _f(m.as_dict())
        doc["raw_g"] = _f(result.get("raw_g"))
        doc["gravity_g"] = _f(result.get("gravity_g"))
    if result.get("checks") is not None:
        doc["checks"] = result["checks"]
        doc["pass"] = result.get("pass")
        doc["measured"] = _f(result.get("measured"))
    return _f(doc)


# -- the page -------------------------------------------------------------------------------


def _md_doc(doc):
    if not doc:
        return "none"
    return md.cell("id %s (%s, %s)" % (doc.get("id"), doc.get("date"), doc.get("method")))


# the rows of "the node afterwards": key -> label
AFTER_LABELS = {
    "temperature_c": "temperature (°C)",
    "humidity_pct": "humidity (%RH)",
    "n": "readings averaged",
    "node_mean_g": "node's mean acceleration (g)",
    "host_expected_g": "expected from the fit (g)",
    "tilt_deg": "tilt against the installed zero: pitch, roll (°)",
}


def markdown(data, plots):
    kind = data["kind"]
    node = data.get("node") or {}
    lines = [
        "# Calibration report: %s, node %s" % (kind, node.get("node_id")),
        "",
        "| | |",
        "|---|---|",
        "| result | **%s**%s |" % (data["status"], (": " + data["error"]) if data.get("error") else ""),
        "| created (UTC) | %s |" % data["created_utc"],
        "| measured (UTC) | %s to %s |" % (data.get("started_utc") or "?", data.get("finished_utc") or "?"),
        "| installer | %s |" % md.cell(data.get("installer") or "not given (--installer)"),
        "| node | %s, site %s, port %s |" % (node.get("node_id"), md.cell(repr(node.get("site"))), node.get("port")),
        "| sensors | %s |" % ", ".join("%s %s" % kv for kv in sorted((node.get("parts") or {}).items())),
        "| app | %s |" % node.get("app_version"),
        "| calibration now | %s |" % _md_doc(data.get("calibration")),
    ]
    if kind != "verify":  # a verify changes nothing: there is no previous calibration to name
        lines.append("| previous | %s |" % _md_doc(data.get("previous")))
    if data.get("note"):
        lines.append("| note | %s |" % md.cell(data["note"]))
    lines.append("")
    if data.get("forced_past_limits"):
        lines += ["**Stored past the limits (--force):**", ""] + ["- " + v for v in data["forced_past_limits"]] + [""]
    for note in data.get("notes") or []:
        lines += ["Note: " + note, ""]
    fit = data.get("fit")
    if fit:
        lines += ["## Fit (axis-aligned ellipsoid, Levenberg-Marquardt)", "",
                  "| axis | bias (mg) | ± (mg) | scale | ± |", "|---|---|---|---|---|"]
        for i, axis in enumerate("xyz"):
            sb = fit["sigma_bias_g"][i] * 1000 if fit["sigma_bias_g"] else float("nan")
            ss = fit["sigma_scale"][i] if fit["sigma_scale"] else float("nan")
            lines.append("| %s | %+.3f | %.3f | %.6f | %.6f |" % (axis, 1000 * fit["bias_g"][i], sb, fit["scale"][i], ss))
        lines += ["", "Residual %.3f mg RMS; %s after %d iterations." % (1000 * fit["rms_g"], fit["reason"],
                                                                          fit["iterations"]), ""]
        if len(data.get("positions") or []) == 6:
            lines += ["With six positions and six unknowns the fit is exact: the residual is zero by "
                      "construction; the ± columns come from each position's noise.", ""]
    if data.get("positions"):
        lines += ["## Positions", "", "| # | face | tilt (°) | mean raw (g) | noise (mg rms) | samples | \\|a\\| after (g) |",
                  "|---|---|---|---|---|---|---|"]
        for i, p in enumerate(data["positions"]):
            after = p.get("calibrated_g")
            lines.append("| %d | %s | %.1f | %s | %s | %d | %s |" % (
                i + 1, p["face"], p["tilt_deg"], ", ".join("%+.4f" % v for v in p["mean_g"]),
                ", ".join("%.2f" % (1000 * v) for v in p["std_g"]), p["n"],
                "%.5f" % np.linalg.norm(after) if after else ""))
        lines.append("")
    for key in ("t_fit", "rh_fit"):
        f = data.get(key)
        if f:
            unit = climate.UNITS[f["quantity"]]
            lines += ["## %s" % f["quantity"].capitalize(), "",
                      "%s: gain %.5f, offset %+.3f %s, residual %.3f %s RMS over %d point(s). %s" % (
                          f["method"], f["gain"], f["offset"], unit, f["rms"], unit, f["n"], f["note"]), ""]
            if f["n"] <= 30:
                lines += ["| reading | reference | before | after |", "|---|---|---|---|"]
                for p in f["points"]:
                    after = f["gain"] * p["reading"] + f["offset"]
                    lines.append("| %.2f | %.2f | %+.2f | %+.3f |" % (
                        p["reading"], p["reference"], p["reading"] - p["reference"], after - p["reference"]))
                lines.append("")
    if data.get("pairing"):
        p = data["pairing"]
        lines += ["Reference logger %s, columns %s: %d pairs over %.0f s; clock shift %+.0f s (%s). %s" % (
            p["reference_csv"], p["columns"], p["pairs"], p["overlap_s"], p["shift_s"],
            "estimated" if p["shift_estimated"] else "given or assumed", p["note"]), ""]
    if data.get("mount"):
        m = data["mount"]
        lines += ["## Mount", "",
                  "Sensor %s up, %s along the bridge (align: %s). Gravity %s g; the named up axis is %.2f° from "
                  "vertical; installed pitch %.2f°, roll %.2f°; zero-tilt reference stored: %s." % (
                      m["up_axis"], m["along_axis"], m["align"], ", ".join("%+.4f" % v for v in data["gravity_g"]),
                      m["axis_error_deg"], m["install_tilt_deg"][0], m["install_tilt_deg"][1], m["tilt_zero_deg"]),
                  "", "Rotation (sensor → structure, rows along / across / up):", "", "```"]
        lines += ["  ".join("%+.6f" % v for v in row) for row in m["rotation"]]
        lines += ["```", ""]
    if data.get("checks") is not None:
        lines += ["## Checks", "", "| check | result | detail |", "|---|---|---|"]
        for c in data["checks"]:
            lines.append("| %s | %s | %s |" % (md.cell(c["check"]), c["result"], md.cell(c["detail"])))
        lines.append("")
    if data.get("after"):
        lines += ["## The node afterwards (its own calibrated output)", "", "| | |", "|---|---|"]
        for key, value in data["after"].items():
            if isinstance(value, list):
                value = ", ".join("%.5f" % v for v in value)
            elif isinstance(value, float):
                value = "%.3f" % value
            lines.append("| %s | %s |" % (AFTER_LABELS.get(key, key.replace("_", " ")), value))
        lines.append("")
    for name in plots:
        lines += ["![%s](%s)" % (name[:-4].replace("_", " "), name), ""]
    lines += ["## Limits", "", limits.table_markdown(), ""]
    return "\n".join(lines)


def write(result, node, status, folder, error=None, run=None):
    """Write report.json, report.md and the plots into folder; returns the summary (as in report.json)."""
    folder = Path(folder)
    folder.mkdir(parents=True, exist_ok=True)
    data = summary(result, node, status, error, run)
    plots = []
    plotter = PLOTTERS.get(result.get("kind"))
    if plotter is not None:
        try:
            plots = plotter(result, folder)
        except Exception as exc:  # a plot must never lose the report
            data["notes"].append("plots failed: %s: %s" % (type(exc).__name__, exc))
    data["plots"] = plots
    tmp = folder / "report.json.tmp"
    tmp.write_text(json.dumps(_f(data), indent=2, default=str) + "\n")
    os.replace(tmp, folder / "report.json")
    (folder / "report.md").write_text(markdown(_f(data), plots))
    return _f(data)


def record_in_inventory(inventory_path, node_id, doc, folder):
    """Put the calibration and the report's path into the node's inventory record.

    Returns None when recorded, else words saying why not (no inventory, node
    not in it). Never raises for that: the report is filed either way.
    """
    try:
        from citynode import inventory
    except ImportError:
        return "no inventory module"
    inv = inventory.Inventory(inventory_path)
    if not inv.path.exists():
        return "no inventory at %s" % inv.path
    rec = inv.get(node_id)
    if rec is None:
        return "node %s is not in the inventory %s" % (node_id, inv.path)
    value = {"report": str(folder)}
    if doc:
        value.update({"id": doc.get("id"), "date": doc.get("date"), "method": doc.get("method")})
    text = json.dumps(value, sort_keys=True)
    if hasattr(inv, "update"):  # change the record in place, not logged as a flash run
        inv.update(node_id, calibration=text)
    else:
        rec["calibration"] = text
        rec["recorded_at"] = inventory.utc_now()
        inv.record(rec, force=True)
    return None
