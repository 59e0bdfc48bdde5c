"""The calibration report: JSON for machines, Markdown with PNG plots for people.

Filed with the node's inventory record: `reports/node-<id>/<UTC time>-<kind>-<cal id>/`
beside the inventory database (`citynode.inventory.resolve_path`), and the
report's path written into the node's inventory record (`calibration` column)
when the node is in the inventory. `--report-dir` files it elsewhere.

Each report folder holds `report.json`, `report.md` and the PNGs it links:
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

from citynode.calibrate import accel, climate, limits

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
    if v is None:
        return None
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


def summary(result, node, status, error=None):
    """The JSON document of a report (plain types only)."""
    doc = {
        "kind": result.get("kind"),
        "created_utc": datetime.now(timezone.utc).strftime("%Y-%m-%dT%H:%M:%SZ"),
        "status": status,
        "error": error,
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
        if fit is not None:
            for d, p in zip(doc["positions"], result["positions"]):
                d["calibrated_g"] = _f(fit.apply(p.mean_g))
    for key in ("t_fit", "rh_fit"):
        if result.get(key) is not None:
            doc[key] = result[key].as_dict()
    if result.get("points"):
        doc["points"] = [_f({"reading_c": p["reading"][0], "reading_pct": p["reading"][1],
                             "reference_c": p["ref_t"], "reference_pct": p["ref_rh"], "salt": p["salt"]})
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
    return doc


# -- plots -------------------------------------------------------------------------------


def _plt():
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    return plt


def _save(plt, fig, folder, name):
    """Lay out, write and close one figure; returns its file name for the report's list."""
    fig.tight_layout()
    fig.savefig(folder / name, dpi=110)
    plt.close(fig)
    return name


def plot_accel(result, folder):
    plt = _plt()
    files = []
    positions = result.get("positions") or []
    fit = result.get("fit")
    timeline = result.get("timeline") or []
    if timeline:
        t0 = timeline[0][0]
        t = np.array([r[0] - t0 for r in timeline])
        xyz = np.array([r[1:4] for r in timeline], dtype=float)
        cap = np.array([r[4] == "capture" for r in timeline])
        fig, ax = plt.subplots(figsize=(10, 4.2))
        for i, name in enumerate("xyz"):
            ax.plot(t, xyz[:, i], lw=1, label=name)
        ax.fill_between(t, -1.3, 1.3, where=cap, color="0.85", step="mid", label="capture")
        for i, p in enumerate(positions):
            # label each position near the middle of its capture, at the axis that points up
            idx = int(np.argmin(np.linalg.norm(xyz - p.mean_g, axis=1) + (~cap) * 10))
            ax.annotate("%d: %s" % (i + 1, p.face), (t[idx], 1.15), ha="center", fontsize=8)
        ax.set_ylim(-1.3, 1.3)
        ax.set_xlabel("time (s)")
        ax.set_ylabel("raw acceleration (g)")
        ax.set_title("The positions as the node was turned (raw data; grey: captures)")
        ax.legend(loc="lower right", ncol=4, fontsize=8)
        ax.grid(alpha=0.3)
        files.append(_save(plt, fig, folder, "positions.png"))
    if positions and fit is not None:
        raw = np.array([np.linalg.norm(p.mean_g) for p in positions])
        cal = np.array([np.linalg.norm(fit.apply(p.mean_g)) for p in positions])
        sig = np.array([accel.position_sigma(p) for p in positions]) * 1000
        labels = ["%d %s" % (i + 1, p.face) for i, p in enumerate(positions)]
        x = np.arange(len(positions))
        fig, ax = plt.subplots(figsize=(8, 3.8))
        ax.bar(x - 0.2, 1000 * (raw - 1), 0.4, label="before (raw)")
        ax.bar(x + 0.2, 1000 * (cal - 1), 0.4, yerr=sig, capsize=3, label="after (calibrated), ± noise of the mean")
        top = max(1.0, float(np.max(np.abs(1000 * (raw - 1)))))
        for xi, v in zip(x, 1000 * (cal - 1)):
            ax.annotate("%+.2f" % v, (xi + 0.2, 0), xytext=(0, 4 if v >= 0 else -12), textcoords="offset points",
                        ha="center", fontsize=7, color="C1")
        ax.set_ylim(-1.15 * top, 1.15 * top)
        ax.axhline(0, color="k", lw=0.8)
        ax.set_xticks(x, labels)
        ax.set_ylabel("|a| - 1 g (mg)")
        ax.set_title("Gravity per position: before and after calibration")
        ax.legend(fontsize=8)
        ax.grid(axis="y", alpha=0.3)
        files.append(_save(plt, fig, folder, "before_after.png"))
        fig, ax = plt.subplots(figsize=(8, 3.2))
        ax.bar(x, 1000 * fit.residuals_g, 0.5, color="C2", yerr=sig, capsize=3, label="residual ± noise of the mean")
        lim = 1000 * limits.LIMITS["accel_residual_g"].hi
        ax.axhline(lim, color="C3", ls="--", lw=0.8, label="limit (RMS) %.0f mg" % lim)
        ax.axhline(-lim, color="C3", ls="--", lw=0.8)
        ax.set_xticks(x, labels)
        ax.set_ylabel("residual (mg)")
        ax.set_title("Fit residual per position: RMS %.3f mg" % (1000 * fit.rms_g))
        if len(positions) == 6:
            ax.text(0.5, 0.5, "six positions, six unknowns: the residual is zero by construction;\n"
                    "the uncertainty of bias and scale is in the report", transform=ax.transAxes,
                    ha="center", va="center", fontsize=8, color="0.3")
        ax.legend(fontsize=8, loc="lower right")
        ax.grid(axis="y", alpha=0.3)
        files.append(_save(plt, fig, folder, "residuals.png"))
    return files


def plot_climate(result, folder):
    plt = _plt()
    files = []
    fits = [f for f in (result.get("t_fit"), result.get("rh_fit")) if f is not None]
    if not fits:
        return files
    fig, axes = plt.subplots(1, len(fits), figsize=(5.2 * len(fits), 4.2), squeeze=False)
    for ax, f in zip(axes[0], fits):
        unit = climate.UNITS[f.quantity].replace("degC", "°C")
        x, y = f.readings, f.references
        many = len(x) > 30
        ax.plot(y, x - y, "o" if not many else ".", ms=6 if not many else 2, label="before: reading - reference")
        ax.plot(y, f.apply(x) - y, "s" if not many else ".", ms=6 if not many else 2,
                label="after: calibrated - reference")
        ax.axhline(0, color="k", lw=0.8)
        ax.set_xlabel("reference (%s)" % unit)
        ax.set_ylabel("error (%s)" % unit)
        ax.set_title("%s: %s" % (f.quantity, f.method))
        ax.legend(fontsize=8)
        ax.grid(alpha=0.3)
    files.append(_save(plt, fig, folder, "before_after.png"))
    fig, axes = plt.subplots(1, len(fits), figsize=(5.2 * len(fits), 3.4), squeeze=False)
    for ax, f in zip(axes[0], fits):
        unit = climate.UNITS[f.quantity].replace("degC", "°C")
        key = "t_residual_c" if f.quantity == "temperature" else "rh_residual_pct"
        lim = limits.LIMITS[key].hi
        ax.plot(np.arange(1, f.n + 1), f.residuals, "o-" if f.n <= 30 else "-", ms=5, lw=0.8)
        ax.axhline(lim, color="C3", ls="--", lw=0.8, label="limit (RMS) %g" % lim)
        ax.axhline(-lim, color="C3", ls="--", lw=0.8)
        ax.set_xlabel("point" if f.n <= 30 else "pair")
        ax.set_ylabel("residual (%s)" % unit)
        ax.set_title("%s residuals: RMS %.3f %s" % (f.quantity, f.rms, unit))
        ax.legend(fontsize=8)
        ax.grid(alpha=0.3)
    files.append(_save(plt, fig, folder, "residuals.png"))
    pairing = result.get("pairing")
    if pairing is not None:
        t0 = pairing.node_times_s[0]
        mins = (pairing.node_times_s - t0) / 60.0
        fig, axes = plt.subplots(len(fits), 1, figsize=(10, 3.0 * len(fits)), squeeze=False, sharex=True)
        for ax, f in zip(axes[:, 0], fits):
            unit = climate.UNITS[f.quantity].replace("degC", "°C")
            ax.plot(mins, pairing.ref_values[f.quantity], "k-", lw=1.2, label="reference (shifted %+.0f s)"
                    % pairing.shift_s)
            ax.plot(mins, pairing.node_values[f.quantity], "-", lw=0.8, label="node before")
            ax.plot(mins, f.apply(pairing.node_values[f.quantity]), "-", lw=0.8, label="node after")
            ax.set_ylabel("%s (%s)" % (f.quantity, unit))
            ax.legend(fontsize=8)
            ax.grid(alpha=0.3)
        axes[-1, 0].set_xlabel("minutes")
        files.append(_save(plt, fig, folder, "series.png"))
    return files


def plot_mount(result, folder):
    plt = _plt()
    m = result.get("mount")
    if m is None:
        return []
    g = np.asarray(result["gravity_g"])
    s = m.rotation @ g
    fig, axes = plt.subplots(1, 2, figsize=(8, 3.4))
    axes[0].bar(["x", "y", "z"], g, color=["C0", "C1", "C2"])
    axes[0].set_title("gravity in sensor axes (g)")
    axes[1].bar(["along", "across", "up"], s, color=["C0", "C1", "C2"])
    axes[1].set_title("in structure axes (g)")
    for ax in axes:
        ax.axhline(0, color="k", lw=0.8)
        ax.set_ylim(-1.1, 1.1)
        ax.grid(axis="y", alpha=0.3)
    fig.suptitle("Mount: %s up, %s along the bridge; installed pitch %.2f°, roll %.2f°"
                 % (m.up_axis, m.along_axis, *m.install_tilt_deg), fontsize=10)
    return [_save(plt, fig, folder, "gravity.png")]


PLOTTERS = {"accel": plot_accel, "climate": plot_climate, "mount": plot_mount}


# -- the page -------------------------------------------------------------------------------


def _md_doc(doc):
    if not doc:
        return "none"
    return "id %s (%s, %s)" % (doc.get("id"), doc.get("date"), doc.get("method"))


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
        "| node | %s, site %r, port %s |" % (node.get("node_id"), node.get("site"), node.get("port")),
        "| sensors | %s |" % ", ".join("%s %s" % kv for kv in sorted((node.get("parts") or {}).items())),
        "| app | %s |" % node.get("app_version"),
        "| calibration now | %s |" % _md_doc(data.get("calibration")),
        "| previous | %s |" % _md_doc(data.get("previous")),
        "",
    ]
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
            lines.append("| %s | %s | %s |" % (c["check"], "PASS" if c["pass"] else "FAIL", c["detail"]))
        lines.append("")
    if data.get("after"):
        lines += ["## The node afterwards (its own calibrated output)", "", "| | |", "|---|---|"]
        for key, value in data["after"].items():
            if isinstance(value, list):
                value = ", ".join("%.5f" % v for v in value)
            elif isinstance(value, float):
                value = "%.3f" % value
            lines.append("| %s | %s |" % (key.replace("_", " "), value))
        lines.append("")
    for name in plots:
        lines += ["![%s](%s)" % (name[:-4].replace("_", " "), name), ""]
    lines += ["## Limits", "", limits.table_markdown(), ""]
    return "\n".join(lines)


def write(result, node, status, folder, error=None):
    """Write report.json, report.md and the plots into folder; returns the folder."""
    folder = Path(folder)
    folder.mkdir(parents=True, exist_ok=True)
    data = summary(result, node, status, error)
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
    return folder


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
