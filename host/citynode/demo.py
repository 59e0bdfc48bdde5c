"""`make demo` (`python -m citynode.demo`): the main job end to end, with no hardware.

1. Write a scenario: a lamp post on a bridge deck: mild damp air, the deck's
   first vertical mode at 2.85 Hz plus a weaker lateral one, and a small tilt.
2. Start a virtual node with the app (the real MicroPython interpreter on a
   pseudo-terminal, simulated sensors reading the scenario) and set its config
   as a technician would (climate every 2 s, 5 s feature windows).
3. `citynode record` ~12 s from its port, `citynode decode` the capture into
   CSV tables, `citynode plot` it.
4. Print what came out against what the scenario says, and the files left in
   demo-out/.

The virtual node is stopped on every way out: normal end, an error, Ctrl-C,
SIGTERM or SIGHUP.
"""

import argparse
import json
import math
import shutil
import signal
import sys
import tempfile
import time
from pathlib import Path

from citynode import cli, plotting
from citynode.commands.common import interrupt_on
from citynode.decode import decode_messages
from citynode.errors import CitynodeError
from citynode.serial_link import NodeClient
from citynode.virtual_node import VirtualNode

OUT_DIR = "demo-out"
RECORD_S = 12.0
PITCH_DEG, ROLL_DEG = 1.2, -0.7
MODE_HZ = 2.85  # the deck's first vertical mode
# The Unix port is 64-bit and compiles the app from source at boot, so it needs
# far more heap than an ESP32 running the precompiled .mpy files.
NODE_HEAP = "1m"
# What a technician would provision for a short session: climate every 2 s,
# 5 s feature windows (two in a 12 s recording), status every 5 s.
NODE_CONFIG = {"climate_period_s": 2, "feature_window_s": 5, "status_period_s": 5}
READY_S = 10.0


def gravity(pitch_deg, roll_deg):
    """The unit gravity vector whose pitch and roll (SPEC §4 features) are these angles."""
    p, r = math.radians(pitch_deg), math.radians(roll_deg)
    return [round(-math.sin(p), 6), round(math.cos(p) * math.sin(r), 6), round(math.cos(p) * math.cos(r), 6)]


SCENARIO = {
    "comment": "citynode demo: a lamp post on a bridge deck, first vertical mode 2.85 Hz, tilted 1.2/-0.7 deg",
    "temperature_c": 14.6,
    "relative_humidity_pct": 72.5,
    "gravity": gravity(PITCH_DEG, ROLL_DEG),
    "vibration": [
        {"freq_hz": MODE_HZ, "amp_g": 0.015, "axis": [0.0, 0.0, 1.0]},
        {"freq_hz": 4.1, "amp_g": 0.003, "axis": [0.0, 1.0, 0.0]},
    ],
    "noise_g": 0.0005,
    "seed": 7,
}


def main(argv=None):
    parser = argparse.ArgumentParser(prog="python -m citynode.demo", description=__doc__.split("\n")[0])
    parser.add_argument("--out", default=OUT_DIR, help="folder for what the demo leaves (default: %(default)s)")
    parser.add_argument("--seconds", type=float, default=RECORD_S, help="how long to record (default: %(default)g)")
    args = parser.parse_args(argv)
    start = time.monotonic()
    try:
        with interrupt_on(signal.SIGTERM, signal.SIGHUP):  # so the node is stopped on the way out
            lines = run(Path(args.out), args.seconds)
    except CitynodeError as exc:
        print("citynode demo: %s" % exc, file=sys.stderr)
        return 1
    except KeyboardInterrupt:
        print("citynode demo: interrupted; the virtual node is stopped", file=sys.stderr)
        return 130
    for line in lines:
        print(line)
    print("demo finished in %.1f s" % (time.monotonic() - start))
    return 0


def run(out, seconds, say=print):
    """Run the demo into folder `out`; returns the summary lines. CitynodeError on failure."""
    try:
        out.mkdir(parents=True, exist_ok=True)
    except OSError as exc:
        raise CitynodeError("cannot make %s: %s" % (out, exc.strerror or exc)) from None
    scenario = out / "scenario.json"
    capture = out / "capture.bin"
    tables = out / "tables"
    png = out / "plot.png"
    scenario.write_text(json.dumps(SCENARIO, indent=2) + "\n")
    with tempfile.TemporaryDirectory(prefix="citynode-demo-node-") as root:
        node = VirtualNode(root, scenario=scenario, with_app=True, heap=NODE_HEAP)
        say("starting a virtual node with the app (scenario %s)" % scenario)
        with node:  # stopped on every way out of this block
            node.wait_ready(READY_S)
            say("virtual node on %s; setting its config: %s" % (node.port, _words(NODE_CONFIG)))
            provision(node, NODE_CONFIG)
            _citynode("record", "--port", node.port, "--duration", "%g" % seconds, "-o", str(capture))
    shutil.rmtree(tables, ignore_errors=True)  # no tables of an earlier run left beside these
    _citynode("decode", str(capture), "--out-dir", str(tables), "--format", "csv")
    _citynode("plot", str(capture), "-o", str(png))
    return summary(capture, [scenario, capture] + sorted(tables.glob("*.csv")) + [png])


def provision(node, config):
    """Set a started virtual node's config over the link, then reboot it so that every
    schedule (climate, status, feature windows) starts from the new values."""
    boots = node.boots
    with NodeClient(node.port) as client:
        client.command("config_set", values=config)
        client.command("reboot")
    node.wait_boots(boots + 1, READY_S)


def _citynode(*argv):
    """Run one `citynode` command in this process; it prints its own lines."""
    print("$ citynode %s" % " ".join(argv), flush=True)
    code = cli.main(list(argv))
    if code == 130:  # record stopped by Ctrl-C or SIGTERM: the demo stops too
        raise KeyboardInterrupt
    if code:
        raise CitynodeError("`citynode %s` failed (exit status %d)" % (argv[0], code))


def _words(values):
    return ", ".join("%s=%s" % kv for kv in values.items())


def summary(capture, paths):
    """The demo's result against the scenario, as lines of text."""
    msgs, stats = decode_messages(capture.read_bytes())
    nodes = plotting.node_ids(msgs)
    if not nodes:
        raise CitynodeError("the capture %s holds no frames: the node did not stream" % capture)
    s = plotting.series(msgs, nodes[0])
    link = stats.nodes[nodes[0]]
    lines = ["", "summary (node %d, %.1f s of node time)" % (s.node_id, s.duration_s)]
    lines.append("  frames     %d (%s), %d lost, %d CRC errors, %d bytes skipped" % (
        link.frames, ", ".join("%s %d" % kv for kv in sorted(s.counts.items())), link.lost,
        stats.crc_errors, stats.bytes_skipped))
    if len(s.climate_t):
        lines.append("  climate    mean %.2f °C, %.2f %%RH over %d readings (scenario %.2f °C, %.2f %%RH)" % (
            s.temperature_c.mean(), s.humidity_pct.mean(), len(s.climate_t),
            SCENARIO["temperature_c"], SCENARIO["relative_humidity_pct"]))
    else:
        lines.append("  climate    no readings")
    spec = plotting.accel_spectrum(s)
    axis, f = plotting.strongest_axis(spec) if spec else (None, None)
    host = "%.2f Hz on %s from the host's spectrum of %.1f s" % (f, axis, spec["seconds"]) if f else "none found"
    node_f = [fields["dominant_freq_z_hz"] for _t, fields in s.features]
    on_node = ", node's features %s Hz" % "/".join("%.2f" % v for v in node_f) if node_f else ""
    lines.append("  vibration  dominant %s%s (scenario %.2f Hz, vertical)" % (host, on_node, MODE_HZ))
    if s.features:
        fields = s.features[-1][1]
        tilt = "pitch %+.2f°, roll %+.2f° from the node's features" % (fields["pitch_deg"], fields["roll_deg"])
    elif len(s.accel_g):
        tilt = "pitch %+.2f°, roll %+.2f° from the mean acceleration" % plotting.tilt_deg(s.accel_g)
    else:
        tilt = "no acceleration"
    lines.append("  tilt       %s (scenario %+.2f°, %+.2f°)" % (tilt, PITCH_DEG, ROLL_DEG))
    lines.append("files")
    lines.extend("  %s" % p for p in paths)
    return lines


if __name__ == "__main__":
    sys.exit(main())
