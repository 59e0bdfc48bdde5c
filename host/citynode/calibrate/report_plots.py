"""The calibration report's PNG plots, one plotter per flow (matplotlib, no display).

- accel: `positions.png` (the stream while the installer turned the node, with
  each captured position), `before_after.png` (|a| per position raw and
  calibrated), `residuals.png`;
- climate: `before_after.png` (reading against reference before and after),
  `residuals.png`, and `series.png` for a reference logger's time series;
- mount: `gravity.png` (gravity in sensor and in structure axes).
"""

import numpy as np

from citynode.calibrate import accel, climate, limits


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
        fig, ax = plt.subplots(figsize=(10, 4.2))
        for i, (a, b) in enumerate(_capture_spans(result, timeline)):
            # a band as wide as the capture, at least visible at the plot's scale
            mid, half = (a + b) / 2 - t0, max((b - a) / 2, 0.004 * (t[-1] - t[0]))
            ax.axvspan(mid - half, mid + half, color="0.82", lw=0, label="capture" if i == 0 else None)
            if i < len(positions):
                ax.annotate("%d: %s" % (i + 1, positions[i].face), (mid, 1.15), ha="center", fontsize=8)
        for i, name in enumerate("xyz"):
            ax.plot(t, xyz[:, i], lw=1, label=name)
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


def _capture_spans(result, timeline):
    """(t start, t end) of each position taken: the flow's record, else the runs of "capture" in the timeline."""
    if result.get("captures"):
        return [(c[0], c[1]) for c in result["captures"]]
    spans, start, prev = [], None, None
    for row in timeline:
        if row[4] == "capture" and start is None:
            start = prev if prev is not None else row[0]
        elif row[4] != "capture" and start is not None:
            spans.append((start, prev))
            start = None
        prev = row[0]
    if start is not None:
        spans.append((start, prev))
    return spans


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
        ax.set_xlim(0.5, f.n + 0.5)  # one point would otherwise get an axis of 0.96..1.04
        if f.n <= 30:
            ax.set_xticks(np.arange(1, f.n + 1))
        ax.set_xlabel("point" if f.n <= 30 else "pair")
        ax.set_ylabel("residual (%s)" % unit)
        ax.set_title("%s residuals: RMS %.3f %s" % (f.quantity, f.rms, unit))
        if f.n == 1:
            ax.text(0.5, 0.25, "one point: an offset only;\nthe residual is zero by construction",
                    transform=ax.transAxes, ha="center", va="center", fontsize=8, color="0.3")
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
