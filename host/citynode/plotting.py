"""What a capture shows: climate and acceleration series, the acceleration spectrum, a figure.

The analysis (`series`, `welch`, `dominant_peak`, `accel_spectrum`) is plain
numpy, so the demo, the monitor and tests use it without matplotlib;
`figure()` imports matplotlib with the Agg backend only when it draws.

Times are node time in seconds since the node's first frame in the capture,
unwrapped across the 2^32 ms wrap; a node restart (its clock going back, SPEC
§5.3) continues the time axis from the last frame before it. Accel samples and
feature windows are placed at their first sample (frame time − `age_ms`).
"""

import math

import numpy as np

from citynode.calibrate import mount
from citynode.units import counts_to_g
from citynode_protocol import messages

AXES = ("x", "y", "z")
AXIS_COLOURS = {"x": "tab:red", "y": "tab:green", "z": "tab:blue"}
MIN_PEAK_HZ = 0.2  # below this a "peak" is drift or what is left of gravity, not a vibration
MIN_PEAK_RATIO = 20.0  # a peak must stand this far above the median PSD (13 dB) to count


class Series:
    """One node's data from a capture, as numpy arrays in the message table's units."""

    def __init__(self, node_id):
        self.node_id = node_id
        self.counts = {}  # message name -> frames
        self.climate_t = np.zeros(0)
        self.temperature_c = np.zeros(0)
        self.humidity_pct = np.zeros(0)
        self.accel_t = np.zeros(0)
        self.accel_g = np.zeros((0, 3))
        self.odr_hz = None  # of the longest contiguous run
        self.runs = []  # (start, stop, odr_hz): contiguous accel runs (same rate, range, mode)
        self.features = []  # (t, fields) of each features message
        self.status = None  # fields of the last status message
        self.restarts = 0

    @property
    def duration_s(self):
        ends = [a[-1] for a in (self.climate_t, self.accel_t) if len(a)]
        ends += [t for t, _ in self.features]
        return max(ends) if ends else 0.0

    def longest_run(self):
        """(t, samples) of the longest contiguous accel run, or None."""
        if not self.runs:
            return None
        start, stop, _odr = max(self.runs, key=lambda r: r[1] - r[0])
        return self.accel_t[start:stop], self.accel_g[start:stop]


def node_ids(msgs):
    """Node ids in a capture, the one with the most frames first."""
    counts = {}
    for m in msgs:
        counts[m.node_id] = counts.get(m.node_id, 0) + 1
    return sorted(counts, key=lambda n: (-counts[n], n))


def series(msgs, node_id):
    """Series of one node from decoded messages (citynode_protocol Message objects)."""
    out = Series(node_id)
    clock = _Clock()
    climate = []
    accel_t, accel = [], []
    run_key = None
    next_index = None
    run_start = 0
    n_total = 0
    runs = []
    for m in msgs:
        if m.node_id != node_id:
            continue
        out.counts[m.name] = out.counts.get(m.name, 0) + 1
        t = clock.seconds(m.time_ms)
        if m.name == "climate":
            if not m["status"] & messages.CLIMATE_SENSOR_ERROR:
                climate.append((t, m["temperature_c"], m["relative_humidity_pct"]))
        elif m.name == "accel":
            odr = m["odr_hz"]
            n = m["n_samples"]
            if odr <= 0 or n <= 0:
                continue
            key = (odr, m["range_g"], m["flags"] & messages.ACCEL_UNCALIBRATED_MODE)
            if key != run_key or m["first_index"] != next_index:
                if n_total > run_start:
                    runs.append((run_start, n_total, run_key[0]))
                run_key, run_start = key, n_total
            next_index = (m["first_index"] + n) & 0xFFFFFFFF
            counts = np.asarray(m["samples"], dtype=np.float64).reshape(n, 3)
            accel.append(counts_to_g(counts, m["range_g"]))
            accel_t.append(t - m["age_ms"] / 1000.0 + np.arange(n) / odr)
            n_total += n
        elif m.name == "features":
            out.features.append((t - m["age_ms"] / 1000.0, m.fields))  # the window's start
        elif m.name == "status":
            out.status = m.fields
    if n_total > run_start:
        runs.append((run_start, n_total, run_key[0]))
    out.restarts = clock.restarts
    if climate:
        arr = np.asarray(climate, dtype=np.float64)
        out.climate_t, out.temperature_c, out.humidity_pct = arr[:, 0], arr[:, 1], arr[:, 2]
    if accel:
        out.accel_t = np.concatenate(accel_t)
        out.accel_g = np.concatenate(accel)
        out.runs = runs
        out.odr_hz = max(runs, key=lambda r: r[1] - r[0])[2]
    return out


class _Clock:
    """Node time_ms (u32, wraps) to seconds on one rising axis.

    A running node's frame times never go back (SPEC §2.1), so a clock that
    does is a restart: the axis carries on from the last frame before it."""

    def __init__(self):
        self.first = None
        self.last = None
        self.offset = 0  # ms added to time_ms
        self.restarts = 0

    def seconds(self, time_ms):
        if self.first is None:
            self.first = self.last = time_ms
        back = (self.last - time_ms) & 0xFFFFFFFF
        if back >= 0x80000000 and time_ms < self.last:
            self.offset += 1 << 32  # forward across the u32 wrap
        elif 0 < back < 0x80000000:
            self.restarts += 1
            self.offset += self.last - time_ms
        self.last = time_ms
        return (time_ms + self.offset - self.first) / 1000.0


# -- spectrum ------------------------------------------------------------------


def welch(x, fs, nperseg=None, pad=4):
    """One-sided power spectral density by Welch's method (numpy only).

    Hann window, 50 % overlap, the mean taken out of each segment, zero-padded to
    `pad` times the segment for a finer frequency grid. Returns (freqs in Hz,
    PSD in unit²/Hz). nperseg defaults to the largest power of two up to half
    the signal (at least 64 samples, at most the whole signal), which averages a
    few segments while keeping the resolution fs/nperseg.
    """
    x = np.asarray(x, dtype=np.float64)
    n = len(x)
    if n < 8:
        raise ValueError("%d samples are too few for a spectrum" % n)
    nperseg = min(n, nperseg or _segment(n))
    step = max(1, nperseg // 2)
    nfft = nperseg * pad
    window = np.hanning(nperseg)
    scale = 1.0 / (fs * np.sum(window**2))
    acc = np.zeros(nfft // 2 + 1)
    segments = 0
    for start in range(0, n - nperseg + 1, step):
        seg = x[start : start + nperseg]
        spec = np.fft.rfft((seg - seg.mean()) * window, nfft)
        acc += np.abs(spec) ** 2
        segments += 1
    psd = acc * scale / segments
    psd[1:-1] *= 2  # one-sided: fold the negative frequencies in
    if nfft % 2:
        psd[-1] *= 2
    return np.fft.rfftfreq(nfft, 1.0 / fs), psd


def _segment(n):
    return min(n, max(64, 1 << int(math.log2(max(1, n // 2)))))


def dominant_peak(freqs, psd, fmin=MIN_PEAK_HZ, min_ratio=MIN_PEAK_RATIO):
    """Frequency of the highest peak at or above fmin, refined by a parabola through
    the log power of the three bins around it.

    None when there is no bin there or the highest one is not `min_ratio` times
    the median PSD above fmin (noise has no dominant frequency)."""
    idx = np.nonzero(freqs >= fmin)[0]
    if len(idx) == 0:
        return None
    i = idx[np.argmax(psd[idx])]
    if not psd[i] > min_ratio * np.median(psd[idx]):
        return None
    if 0 < i < len(psd) - 1 and np.all(psd[i - 1 : i + 2] > 0):
        a, b, c = np.log(psd[i - 1 : i + 2])
        denom = a - 2 * b + c
        shift = 0.5 * (a - c) / denom if denom < 0 else 0.0
        return float(freqs[i] + shift * (freqs[1] - freqs[0]))
    return float(freqs[i])


def accel_spectrum(s):
    """Spectrum of the longest contiguous accel run of a Series.

    Returns a dict: freqs, psd (3 x n, g²/Hz), peaks (axis -> Hz or None),
    odr_hz, seconds; or None when there are too few samples."""
    run = s.longest_run()
    if run is None or s.odr_hz is None or len(run[0]) < 64:
        return None
    _t, samples = run
    psds = []
    peaks = {}
    freqs = None
    for k, axis in enumerate(AXES):
        freqs, psd = welch(samples[:, k], s.odr_hz)
        psds.append(psd)
        peaks[axis] = dominant_peak(freqs, psd)
    return {
        "freqs": freqs,
        "psd": np.asarray(psds),
        "peaks": peaks,
        "odr_hz": s.odr_hz,
        "seconds": len(samples) / s.odr_hz,
        "resolution_hz": s.odr_hz / _segment(len(samples)),
    }


def strongest_axis(spectrum):
    """(axis, peak Hz) of the axis whose dominant peak carries the most power."""
    best = None
    freqs = spectrum["freqs"]
    for k, axis in enumerate(AXES):
        f = spectrum["peaks"][axis]
        if f is None:
            continue
        power = float(np.interp(f, freqs, spectrum["psd"][k]))
        if best is None or power > best[0]:
            best = (power, axis, f)
    return (best[1], best[2]) if best else (None, None)


def tilt_deg(samples):
    """(pitch, roll) in degrees of the mean gravity vector of (n, 3) samples in g (SPEC §4 features)."""
    return mount.tilt_deg(np.asarray(samples, dtype=np.float64).mean(axis=0))


# -- the figure ----------------------------------------------------------------


def figure(s, title=None):
    """A matplotlib Figure of a Series: climate, acceleration, spectrum (Agg backend)."""
    import matplotlib

    matplotlib.use("Agg", force=True)
    from matplotlib.figure import Figure

    fig = Figure(figsize=(11, 11), dpi=100, layout="constrained")
    ax_climate, ax_accel, ax_spec = fig.subplots(3, 1)
    fig.suptitle(title or "citynode node %d" % s.node_id, fontsize=13, fontweight="bold")
    _draw_climate(ax_climate, s)
    _draw_accel(ax_accel, s)
    _draw_spectrum(ax_spec, s)
    return fig


def save(s, path, title=None):
    fig = figure(s, title)
    fig.savefig(path, format="png")
    return path


def _empty(ax, text):
    ax.text(0.5, 0.5, text, ha="center", va="center", transform=ax.transAxes, color="0.4")
    ax.set_xticks([])
    ax.set_yticks([])


def _draw_climate(ax, s):
    ax.set_title("Climate")
    if not len(s.climate_t):
        _empty(ax, "no valid climate readings in this capture")
        return
    (t_line,) = ax.plot(s.climate_t, s.temperature_c, "o-", color="tab:red", ms=3,
                        label="temperature (mean %.2f °C)" % s.temperature_c.mean())
    ax.set_xlabel("node time (s)")
    ax.set_ylabel("temperature (°C)", color="tab:red")
    _pad_limits(ax, s.temperature_c, 0.2)
    ax.grid(True, alpha=0.3)
    rh = ax.twinx()
    (h_line,) = rh.plot(s.climate_t, s.humidity_pct, "s-", color="tab:blue", ms=3,
                        label="relative humidity (mean %.2f %%RH)" % s.humidity_pct.mean())
    rh.set_ylabel("relative humidity (%RH)", color="tab:blue")
    _pad_limits(rh, s.humidity_pct, 1.0)
    ax.legend(handles=[t_line, h_line], loc="upper left", fontsize=9)


def _pad_limits(ax, values, min_span):
    lo, hi = float(np.min(values)), float(np.max(values))
    mid, half = (lo + hi) / 2, max(hi - lo, min_span) / 2
    ax.set_ylim(mid - 1.3 * half, mid + 1.3 * half)


def _draw_accel(ax, s):
    ax.set_title("Acceleration, each axis minus its mean")
    if not len(s.accel_t):
        _empty(ax, "no acceleration samples in this capture")
        return
    means = s.accel_g.mean(axis=0)
    for k, axis in enumerate(AXES):
        for r, (start, stop, _odr) in enumerate(s.runs):  # a line never bridges a gap
            ax.plot(s.accel_t[start:stop], s.accel_g[start:stop, k] - means[k], lw=0.8, color=AXIS_COLOURS[axis],
                    label="%s (mean %+.4f g)" % (axis, means[k]) if r == 0 else None)
    reach = max(float(np.abs(s.accel_g - means).max()), 1e-4)
    ax.set_ylim(-1.15 * reach, 1.7 * reach)  # headroom above the traces for the legend
    ax.set_xlabel("node time (s)")
    ax.set_ylabel("acceleration − mean (g)")
    ax.grid(True, alpha=0.3)
    pitch, roll = tilt_deg(s.accel_g)
    ax.legend(loc="upper right", fontsize=9, ncol=3,
              title="tilt from mean gravity: pitch %+.2f°, roll %+.2f°" % (pitch, roll), title_fontsize=9)


def _draw_spectrum(ax, s):
    spec = accel_spectrum(s)
    if spec is None:
        ax.set_title("Acceleration spectrum")
        _empty(ax, "too few contiguous acceleration samples for a spectrum")
        return
    ax.set_title("Acceleration spectrum (Welch, %.1f s at %g Hz, %.2f Hz resolution)"
                 % (spec["seconds"], spec["odr_hz"], spec["resolution_hz"]))
    freqs = spec["freqs"]
    floor = max(float(spec["psd"][:, 1:].max()) * 1e-9, 1e-20)
    for k, axis in enumerate(AXES):
        peak = spec["peaks"][axis]
        label = "%s (no clear peak)" % axis if peak is None else "%s (peak %.2f Hz)" % (axis, peak)
        ax.loglog(freqs[1:], np.maximum(spec["psd"][k][1:], floor), lw=0.9,
                  color=AXIS_COLOURS[axis], label=label)
    axis, f = strongest_axis(spec)
    if f is not None:
        k = AXES.index(axis)
        p = float(np.interp(f, freqs, spec["psd"][k]))
        ax.annotate("dominant: %.2f Hz (%s)" % (f, axis), xy=(f, p), xytext=(25, -5),
                    textcoords="offset points", fontsize=10, fontweight="bold", va="top",
                    arrowprops={"arrowstyle": "->", "color": "0.2"})
    # log frequency: structural modes of a few Hz get as much room as the rest
    ax.set_xlim(max(freqs[1], MIN_PEAK_HZ / 2), spec["odr_hz"] / 2)
    ax.set_xlabel("frequency (Hz)")
    ax.set_ylabel("PSD (g²/Hz)")
    ax.grid(True, which="both", alpha=0.3)
    ax.legend(loc="upper right", fontsize=9)
