"""The static page of `citynode fleet report -o DIR`: the fleet table and per-node plots.

    write_report(store, "reports/fleet", since_us, now_us)

DIR gets `index.html` and one PNG per node with data in the window (matplotlib,
Agg backend): `node-<id>-climate.png` (temperature and humidity) for a node
with climate rows, `node-<id>-bridge.png` (tilt, dominant frequency, RMS of the
features windows) for a node with features rows. The page has no scripts or
styles from elsewhere, so it opens from the file system with no server and no
network; its one inline script marks `<body data-images-loaded="all">` once
every picture has loaded (for checks in a headless browser).

The page is written to a staging folder beside DIR and renamed into place, so
DIR is either the previous report or the new one, never half of one. An
existing DIR is replaced only if it is empty or holds a report (index.html).
"""

import html
import os
import shutil
import tempfile

import numpy as np

from citynode.errors import UsageError
from citynode.fleet.health import WARNINGS, Thresholds, fleet_health
from citynode.fleet.when import iso, span_words

AXIS_COLOURS = {"x": "tab:red", "y": "tab:green", "z": "tab:blue"}
# The columns the plots read of the window's climate and features rows
CLIMATE_COLUMNS = ("node_id", "time", "received", "temperature_c", "relative_humidity_pct")
FEATURES_COLUMNS = ("node_id", "time", "received", "pitch_deg", "roll_deg") + tuple(
    "%s_%s_%s" % (measure, axis, unit) for measure, unit in (("dominant_freq", "hz"), ("rms", "g")) for axis in AXIS_COLOURS)
DPI = 80


def check_output(out_dir):
    """UsageError if `out_dir` could not take a report (before any work is done)."""
    if os.path.lexists(out_dir):
        if not os.path.isdir(out_dir):
            raise UsageError("%s exists and is not a folder" % out_dir)
        if os.listdir(out_dir) and not os.path.isfile(os.path.join(out_dir, "index.html")):
            raise UsageError("%s holds files but no report (no index.html): give a new or empty folder" % out_dir)


def write_report(store, out_dir, since_us, now_us, thresholds=Thresholds(), rows=None):
    """Write the report into `out_dir`; return (rows, [plot file names])."""
    check_output(out_dir)
    out_dir = os.path.abspath(out_dir)
    parent = os.path.dirname(out_dir)
    try:
        os.makedirs(parent, exist_ok=True)
        staging = tempfile.mkdtemp(prefix=".%s." % os.path.basename(out_dir), dir=parent)
    except OSError as exc:
        raise UsageError("cannot write in %s: %s" % (parent, exc.strerror or exc))
    try:
        if rows is None:
            rows = fleet_health(store, since_us, now_us, thresholds)
        plots = draw_plots(store, rows, since_us, now_us, staging)
        with open(os.path.join(staging, "index.html"), "w", encoding="utf-8") as f:
            f.write(page(rows, plots, since_us, now_us, thresholds))
        _publish(staging, out_dir)
    except BaseException:
        shutil.rmtree(staging, ignore_errors=True)
        raise
    return rows, [name for names in plots.values() for name, _ in names]


def _publish(staging, out_dir):
    check_output(out_dir)
    if not os.path.lexists(out_dir):
        os.rename(staging, out_dir)
        return
    old = staging + ".old"
    os.rename(out_dir, old)
    os.rename(staging, out_dir)
    shutil.rmtree(old, ignore_errors=True)


# -- plots ----------------------------------------------------------------------


def _times(table):
    """datetime64[us] of each row: its UTC `time`, else when it was received."""
    time = table["time"].cast("int64").to_numpy(zero_copy_only=False)
    received = table["received"].cast("int64").to_numpy(zero_copy_only=False)
    time = np.where(table["time"].is_valid().to_numpy(zero_copy_only=False), time, received)
    return time.astype("datetime64[us]")


def _column(table, name):
    return table[name].to_numpy(zero_copy_only=False).astype(float)


def _per_node(table):
    """A function giving one node's rows of `table`, in the order they were received."""
    table = table.sort_by([("node_id", "ascending"), ("received", "ascending")])
    node = table["node_id"].to_numpy(zero_copy_only=False)

    def rows(node_id):
        start, stop = np.searchsorted(node, [node_id, node_id + 1])
        return table.slice(start, stop - start)

    return rows


def draw_plots(store, rows, since_us, now_us, folder):
    """{node_id: [(file name, caption)]} of the plots drawn into `folder`."""
    from matplotlib.figure import Figure  # no pyplot: no global state, the Agg canvas by default

    climate = _per_node(store.query_received("climate", start=since_us, columns=CLIMATE_COLUMNS))
    features = _per_node(store.query_received("features", start=since_us, columns=FEATURES_COLUMNS))
    span = (np.datetime64(since_us, "us"), np.datetime64(now_us, "us"))
    plots = {}
    for h in rows:
        mine = climate(h.node_id)
        if mine.num_rows:
            fig = Figure(figsize=(9, 4.2))
            t = _times(mine)
            ax_t, ax_h = fig.subplots(2, 1, sharex=True)
            ax_t.plot(t, _column(mine, "temperature_c"), ".-", ms=2, lw=0.8, color="tab:red")
            ax_t.set_ylabel("temperature °C")
            ax_h.plot(t, _column(mine, "relative_humidity_pct"), ".-", ms=2, lw=0.8, color="tab:blue")
            ax_h.set_ylabel("humidity %RH")
            _finish(fig, "node %d: climate" % h.node_id, span)
            plots.setdefault(h.node_id, []).append(_save(fig, folder, "node-%d-climate.png" % h.node_id,
                                                         "node %d: temperature and humidity" % h.node_id))
        mine = features(h.node_id)
        if mine.num_rows:
            fig = Figure(figsize=(9, 6))
            t = _times(mine)
            ax_tilt, ax_f, ax_rms = fig.subplots(3, 1, sharex=True)
            ax_tilt.plot(t, _column(mine, "pitch_deg"), lw=0.8, label="pitch")
            ax_tilt.plot(t, _column(mine, "roll_deg"), lw=0.8, label="roll")
            ax_tilt.set_ylabel("tilt °")
            for axis, colour in AXIS_COLOURS.items():
                ax_f.plot(t, _column(mine, "dominant_freq_%s_hz" % axis), ".", ms=3, color=colour, label=axis)
                ax_rms.plot(t, _column(mine, "rms_%s_g" % axis), lw=0.8, color=colour, label=axis)
            ax_f.set_ylabel("dominant Hz")
            ax_rms.set_ylabel("RMS g")
            for ax in (ax_tilt, ax_f, ax_rms):
                ax.legend(loc="upper right", fontsize="small", ncol=3)
            _finish(fig, "node %d: bridge features" % h.node_id, span)
            plots.setdefault(h.node_id, []).append(_save(fig, folder, "node-%d-bridge.png" % h.node_id,
                                                         "node %d: tilt, dominant frequency and RMS" % h.node_id))
    return plots


def _finish(fig, title, span):
    axes = fig.get_axes()
    for ax in axes:
        ax.grid(True, alpha=0.3)
    axes[-1].set_xlim(*span)
    axes[-1].set_xlabel("UTC")
    hours = (span[1] - span[0]) / np.timedelta64(1, "h")
    if hours <= 48:  # hours of the day; longer windows keep matplotlib's own date ticks
        from matplotlib import dates

        axes[-1].xaxis.set_major_locator(dates.HourLocator(interval=3 if hours > 12 else 1))
        axes[-1].xaxis.set_major_formatter(dates.DateFormatter("%H:%M"))
    fig.suptitle(title)
    fig.autofmt_xdate()


def _save(fig, folder, name, caption):
    fig.savefig(os.path.join(folder, name), dpi=DPI)
    return name, caption


# -- the page --------------------------------------------------------------------

_STYLE = """
body { font-family: sans-serif; margin: 1.5em; color: #222; }
table { border-collapse: collapse; font-size: 0.9em; }
th, td { border-bottom: 1px solid #ddd; padding: 0.3em 0.6em; text-align: left; vertical-align: top; }
th { background: #f3f3f3; }
tr.warn td { background: #fff4e5; }
td.warnings, p.warnings { color: #b00020; font-weight: bold; }
td.num { text-align: right; font-variant-numeric: tabular-nums; }
section.node { margin-top: 2em; }
img { max-width: 100%; border: 1px solid #eee; }
"""

_IMAGES_LOADED = """
window.addEventListener("load", function () {
  var images = Array.prototype.slice.call(document.images);
  var loaded = images.filter(function (i) { return i.complete && i.naturalWidth > 0; }).length;
  document.body.setAttribute("data-images", loaded + "/" + images.length);
  document.body.setAttribute("data-images-loaded", loaded === images.length ? "all" : "missing");
});
"""

HEADERS = ("node", "last seen", "uplink", "frames lost", "drops", "free heap", "errors s/c/t/f/x",
           "firmware / app", "calibration", "QC pass", "warnings")


def cells(h, now_us):
    """The table's cells of one node, as text: shared by the terminal table and the page."""
    seen = "never" if h.last_seen_us is None else "%s ago" % span_words(max(0, now_us - h.last_seen_us) / 1e6)
    uplink = h.uplink + ("" if h.utc_known is None or h.utc_known else ", UTC unknown")
    lost = "%d (%.1f %%)" % (h.frames_lost, 100 * h.lost_share) if h.frames else "-"
    errors = "/".join(str(v) for v in h.errors.values()) if h.errors else "-"
    versions = "%s / %s" % (h.firmware, h.app) if h.app else "-"
    if h.calibration_id is None:
        calibration = "-"
    elif h.calibration_age_days is None:
        calibration = "%d" % h.calibration_id
    else:
        calibration = "%d (%d d)" % (h.calibration_id, h.calibration_age_days)
    qc = "-" if h.qc_pass_rate is None else "%.1f %%" % (100 * h.qc_pass_rate)
    return (str(h.node_id), seen, uplink, lost, str(h.drops), "-" if h.free_heap is None else str(h.free_heap),
            errors, versions, calibration, qc, "; ".join(t for _, t in h.warnings))


def page(rows, plots, since_us, now_us, thresholds):
    e = html.escape
    out = ["<!DOCTYPE html>", '<html lang="en"><head><meta charset="utf-8">',
           "<title>citynode fleet</title><style>%s</style></head><body>" % _STYLE,
           "<h1>citynode fleet</h1>",
           "<p>%d nodes, %d with warnings; window %s to %s (UTC).</p>"
           % (len(rows), sum(1 for h in rows if h.warnings), e(iso(since_us)), e(iso(now_us))),
           '<table id="fleet"><thead><tr>%s</tr></thead><tbody>' % "".join("<th>%s</th>" % e(h) for h in HEADERS)]
    numeric = {3, 4, 5, 9}
    for h in rows:
        row = cells(h, now_us)
        tds = []
        for i, text in enumerate(row):
            cls = ' class="warnings"' if i == len(row) - 1 else (' class="num"' if i in numeric else "")
            if i == 0:
                text = '<a href="#node-%d">%s</a>' % (h.node_id, e(text))
            else:
                text = e(text)
            tds.append("<td%s>%s</td>" % (cls, text))
        out.append('<tr class="%s" data-node="%d">%s</tr>' % ("warn" if h.warnings else "ok", h.node_id, "".join(tds)))
    out.append("</tbody></table>")
    out.append("<h2>Warnings</h2><ul>")
    for kind, words in WARNINGS.items():
        out.append("<li><b>%s</b>: %s</li>" % (e(kind.replace("_", " ")), e(words)))
    limits = dict(thresholds.as_json())
    limits["min_app"] = limits["min_app"] or "the newest in the fleet"
    out.append("</ul><p>Thresholds: %s.</p>" % e(", ".join("%s = %s" % kv for kv in limits.items())))
    for h in rows:
        out.append('<section class="node" id="node-%d"><h2>node %d</h2>' % (h.node_id, h.node_id))
        if h.warnings:
            out.append('<p class="warnings">%s</p>' % e("; ".join(t for _, t in h.warnings)))
        for name, caption in plots.get(h.node_id, []):
            out.append('<figure><img src="%s" alt="%s"><figcaption>%s</figcaption></figure>'
                       % (e(name), e(caption), e(caption)))
        if not plots.get(h.node_id):
            out.append("<p>No climate or features rows in the window.</p>")
        out.append("</section>")
    out.append("<script>%s</script></body></html>" % _IMAGES_LOADED)
    return "\n".join(out) + "\n"
