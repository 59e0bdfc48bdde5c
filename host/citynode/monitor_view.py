"""What `citynode monitor` shows: per-node state from live messages, and its rich rendering.

`MonitorState.add(message)` keeps the latest climate, features, status and
time of each node and the last few seconds of acceleration; `render()` turns
that and the decoder's statistics into a rich renderable: a table of values, a
line of link statistics and a braille plot of each acceleration axis.
`message_line()` is the one-line text form used when stdout is not a terminal.
"""

import collections
import time

import numpy as np
from rich.console import Group
from rich.table import Table
from rich.text import Text

from citynode.tables import iso_utc
from citynode.units import counts_to_g
from citynode_protocol import messages

AXES = ("x", "y", "z")
AXIS_STYLES = ("red", "green", "blue")
DEFAULT_WINDOW_S = 5.0
PLOT_ROWS = 3  # text rows per axis: 12 braille dots high
_BRAILLE_BITS = ((0x01, 0x08), (0x02, 0x10), (0x04, 0x20), (0x40, 0x80))  # [dot row][dot column]
_MIN_SPAN_G = 0.002  # a quiet axis is drawn on at least this span, so noise does not fill the plot


# -- link statistics -------------------------------------------------------------


def lost(stats):
    """Frames lost over all nodes (from sequence gaps)."""
    return sum(n.lost for n in stats.nodes.values())


def link_line(stats):
    """One line of link statistics from a citynode_protocol DecoderStats."""
    text = "%d frames, %d lost, %d CRC errors, %d bytes skipped of %d" % (
        stats.frames, lost(stats), stats.crc_errors, stats.bytes_skipped, stats.bytes_in)
    extra = []
    for name in ("bad_frames", "duplicates", "unknown_type", "unsupported_version", "bad_length", "newer_minor"):
        value = getattr(stats, name)
        if value:
            extra.append("%s %d" % (name.replace("_", " "), value))
    restarts = sum(n.restarts for n in stats.nodes.values())
    if restarts:
        extra.append("node restarts %d" % restarts)
    return text + ("" if not extra else " (" + ", ".join(extra) + ")")


# -- one line per message ----------------------------------------------------------


def _value(name, value):
    if name in ("status", "flags", "sensors_fitted", "sensors_ok") and isinstance(value, int):
        return "0x%02x" % value
    if isinstance(value, float):
        return "%g" % value
    if isinstance(value, str):
        return '"%s"' % value.replace("\\", "\\\\").replace('"', '\\"').replace("\n", "\\n")
    return str(value)


def message_line(msg):
    """`name node=N seq=S t=SECONDS key=value ...`; accel blocks are summarised, not listed."""
    parts = [msg.name, "node=%d" % msg.node_id, "seq=%d" % msg.seq, "t=%.3f" % (msg.time_ms / 1000.0)]
    fields = msg.fields
    if msg.name == "accel":
        g = block_g(msg)
        mean = g.mean(axis=0) if len(g) else (0.0, 0.0, 0.0)
        parts += [
            "n_samples=%d" % fields["n_samples"],
            "odr_hz=%g" % fields["odr_hz"],
            "range_g=%d" % fields["range_g"],
            "first_index=%d" % fields["first_index"],
            "age_ms=%d" % fields["age_ms"],
            "flags=0x%02x" % fields["flags"],
            "encoding=%s" % messages.ENCODING_NAMES.get(fields["encoding"], fields["encoding"]),
            "mean_g=%.4f,%.4f,%.4f" % tuple(mean),
        ]
    elif msg.name == "log":
        level = fields["level"]
        parts.append("level=%s" % (messages.LOG_LEVELS[level] if level < len(messages.LOG_LEVELS) else level))
        parts.append("text=%s" % _value("text", fields.get("text", "")))
    else:
        for name, value in fields.items():
            if name == "reserved":
                continue
            text = ("" if value is None else _json(value)) if name == "body" else _value(name, value)
            parts.append("%s=%s" % (name, text))
        if msg.name == "time":
            parts.append("utc=%s" % utc_text(fields["utc_ms"]))
    return " ".join(parts)


def _json(value):
    import json

    return json.dumps(value, separators=(",", ":"), sort_keys=True)


def block_g(msg):
    """An accel message's samples as an (n, 3) array in g."""
    n = msg["n_samples"]
    return counts_to_g(np.asarray(msg["samples"], dtype=np.float64).reshape(n, 3), msg["range_g"])


def utc_text(utc_ms):
    """UTC as the tables write it (citynode.tables.iso_utc), or "invalid"."""
    if not 0 <= utc_ms < 1 << 53:
        return "invalid"
    return iso_utc([utc_ms * 1000])[0]


# -- state -----------------------------------------------------------------------------


class NodeView:
    """What we last heard from one node."""

    def __init__(self, node_id):
        self.node_id = node_id
        self.counts = collections.Counter()
        self.latest = {}  # message name -> (host monotonic time, Message)
        self.blocks = collections.deque()  # (node time s of the first sample, odr, (n, 3) g)
        self.odr_hz = None
        self.range_g = None

    def add(self, msg, now, window_s):
        self.counts[msg.name] += 1
        self.latest[msg.name] = (now, msg)
        if msg.name != "accel" or msg["n_samples"] <= 0 or msg["odr_hz"] <= 0:
            return
        t0 = (msg.time_ms - msg["age_ms"]) / 1000.0
        if self.blocks and t0 < self.blocks[-1][0]:
            self.blocks.clear()  # node time went back: a restart (or a wrap); start over
        self.odr_hz, self.range_g = msg["odr_hz"], msg["range_g"]
        self.blocks.append((t0, self.odr_hz, block_g(msg)))
        while len(self.blocks) > 1 and self.blocks[1][0] <= t0 - window_s:
            self.blocks.popleft()

    def accel_window(self, window_s):
        """The last window_s seconds of acceleration as an (n, 3) array in g."""
        if not self.blocks:
            return np.zeros((0, 3))
        g = np.concatenate([b[2] for b in self.blocks])
        keep = int(round(window_s * self.blocks[-1][1]))
        return g[-keep:] if keep > 0 else g[:0]


class MonitorState:
    def __init__(self, window_s=DEFAULT_WINDOW_S, clock=time.monotonic):
        self.window_s = window_s
        self.nodes = {}
        self.clock = clock
        self.started = clock()
        self.note = None  # a line for the user about the link (shown under the title)
        self.older_bytes = 0  # bytes the node had buffered before the monitor started, skipped

    def add(self, msg):
        node = self.nodes.get(msg.node_id)
        if node is None:
            node = self.nodes[msg.node_id] = NodeView(msg.node_id)
        node.add(msg, self.clock(), self.window_s)

    def plotted_node(self):
        """The node whose acceleration is plotted: the lowest id that sends accel."""
        for node_id in sorted(self.nodes):
            if self.nodes[node_id].blocks:
                return self.nodes[node_id]
        return None


# -- rendering -------------------------------------------------------------------------


def braille_plot(values, width, height, lo=None, hi=None):
    """Lines of braille characters drawing `values` left to right in width x height cells.

    Each of the 2*width dot columns covers a slice of the values and draws a
    vertical stroke from its minimum to its maximum, joined to the previous
    column, so an oscillation faster than the columns shows as its envelope."""
    values = np.asarray(values, dtype=np.float64)
    cells = [[0] * width for _ in range(height)]
    n = len(values)
    if n and width > 0 and height > 0:
        lo = float(values.min()) if lo is None else lo
        hi = float(values.max()) if hi is None else hi
        span = (hi - lo) or 1.0
        rows = 4 * height
        cols = 2 * width

        def row(v):
            return min(rows - 1, max(0, int(round((hi - v) / span * (rows - 1)))))

        last = None
        for c in range(min(cols, n)):
            a = c * n // min(cols, n)
            b = max(a + 1, (c + 1) * n // min(cols, n))
            seg = values[a:b]
            top, bottom = row(seg.max()), row(seg.min())
            if last is not None:
                top, bottom = min(top, last), max(bottom, last)
            last = row(seg[-1])
            for r in range(top, bottom + 1):
                cells[r // 4][c // 2] |= _BRAILLE_BITS[r % 4][c % 2]
    return ["".join(chr(0x2800 + bits) for bits in line) for line in cells]


def _age(now, stamp):
    return "%.0f s ago" % max(0.0, now - stamp)


def _bits(value, names):
    words = [name for bit, name in names if value & bit]
    return ", ".join(words) if words else "-"


_SENSORS = ((messages.SENSOR_CLIMATE, "climate"), (messages.SENSOR_ACCEL, "accel"))
_STATUS_FLAGS = (
    (messages.STATUS_CONFIG_FALLBACK, "config fallback"),
    (messages.STATUS_CALIB_FALLBACK, "calibration fallback"),
    (messages.STATUS_TIME_ANCHORED, "UTC known"),
    (messages.STATUS_STREAMING, "streaming"),
    (messages.STATUS_UPLINK_DOWN, "uplink down"),
)
_COUNTERS = ("sensor_errors", "crc_errors", "timeouts", "fifo_overruns", "tx_dropped", "command_errors")


def _node_rows(node, now):
    rows = []
    seen = node.latest.get("climate")
    if seen:
        stamp, m = seen
        if m["status"] & messages.CLIMATE_SENSOR_ERROR:
            value = Text("sensor error (status 0x%02x)" % m["status"], style="bold red")
        else:
            value = Text("%.2f °C   %.2f %%RH" % (m["temperature_c"], m["relative_humidity_pct"]), style="bold")
        rows.append(("climate", value, _age(now, stamp)))
    seen = node.latest.get("features")
    if seen:
        stamp, m = seen
        axes = " · ".join(
            "%s %.2f mg %.2f Hz" % (a, 1000 * m["rms_%s_g" % a], m["dominant_freq_%s_hz" % a]) for a in AXES)
        rows.append(("rms, peak f", Text(axes), _age(now, stamp)))
        tilt = Text("pitch %+.2f°  roll %+.2f°" % (m["pitch_deg"], m["roll_deg"]), style="bold")
        relative = " to the mounted zero" if m["flags"] & messages.FEATURES_TILT_RELATIVE else ""
        tilt.append("  (%.0f s window%s)" % (m["window_s"], relative), style="dim")
        rows.append(("tilt", tilt, _age(now, stamp)))
    seen = node.latest.get("status")
    if seen:
        stamp, m = seen
        missing = m["sensors_fitted"] & ~m["sensors_ok"]
        text = Text("up %d s · heap %d B · app %d.%d.%d · sensors ok: %s" % (
            m["uptime_s"], m["free_heap"], m["app_major"], m["app_minor"], m["app_patch"],
            _bits(m["sensors_ok"], _SENSORS)))
        if missing:
            text.append("  NOT OK: %s" % _bits(missing, _SENSORS), style="bold red")
        flags = _bits(m["flags"], _STATUS_FLAGS)
        if flags != "-":
            text.append("  [%s]" % flags)
        counters = ["%s %d" % (c.replace("_", " "), m[c]) for c in _COUNTERS if m[c]]
        if counters:
            text.append("  " + ", ".join(counters), style="yellow")
        rows.append(("status", text, _age(now, stamp)))
    seen = node.latest.get("time")
    if seen:
        rows.append(("UTC", Text(utc_text(seen[1]["utc_ms"])), _age(now, seen[0])))
    seen = node.latest.get("log")
    if seen:
        rows.append(("log", Text(seen[1].fields.get("text", "")), _age(now, seen[0])))
    counts = " · ".join("%s %d" % (name, node.counts[name]) for name in sorted(node.counts))
    rows.append(("frames", Text(counts, style="dim"), ""))
    return rows


def render(state, stats, title="citynode monitor", width=100):
    """A rich renderable of the state and the link statistics, `width` columns wide."""
    now = state.clock()
    parts = []
    header = Text(title, style="bold")
    header.append("   %.0f s" % (now - state.started), style="dim")
    header.append("   q or Ctrl-C quits", style="dim")
    if state.older_bytes:
        header.append("   (skipped %d older bytes)" % state.older_bytes, style="dim")
    parts.append(header)
    if state.note:
        parts.append(Text(state.note, style="yellow"))
    table = Table(show_header=True, header_style="bold", expand=False, box=None, pad_edge=False)
    table.add_column("node", justify="right")
    table.add_column("", style="cyan")
    table.add_column("latest")
    table.add_column("", style="dim")
    if not state.nodes:
        table.add_row("-", "", Text("no frames yet: is the node running the citynode app? "
                                    "(`citynode info` tells; q or Ctrl-C quits)", style="dim"), "")
    for node_id in sorted(state.nodes):
        for i, (what, value, age) in enumerate(_node_rows(state.nodes[node_id], now)):
            table.add_row(str(node_id) if i == 0 else "", what, value, age)
    parts.append(table)
    link = Text("link: " + link_line(stats))
    if lost(stats) or stats.crc_errors or stats.bytes_skipped:
        link.stylize("yellow")
    parts.append(link)
    parts.extend(_accel_plot(state, width))
    return Group(*parts)


def _accel_plot(state, width):
    node = state.plotted_node()
    if node is None:
        return [Text("acceleration: no samples yet", style="dim")]
    g = node.accel_window(state.window_s)
    out = [Text("acceleration of node %d, last %.0f s at %g Hz (each axis around its mean)"
                % (node.node_id, len(g) / node.odr_hz, node.odr_hz), style="bold")]
    label_width = 22
    plot_width = max(10, width - label_width - 1)
    for k, axis in enumerate(AXES):
        v = g[:, k]
        mean = float(v.mean())
        half = max(float(np.abs(v - mean).max()), _MIN_SPAN_G / 2)
        lines = braille_plot(v, plot_width, PLOT_ROWS, mean - half, mean + half)
        labels = ["%s %+.4f g" % (axis, mean + half), "%s mean %+.4f" % (" " * len(axis), mean),
                  "%s %+.4f g" % (" " * len(axis), mean - half)]
        for i, line in enumerate(lines):
            label = labels[i] if i < len(labels) else ""
            row = Text(label.ljust(label_width), style="dim")
            row.append(line, style=AXIS_STYLES[k])
            out.append(row)
    return out
