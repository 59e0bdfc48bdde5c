"""`citynode plot CAPTURE -o FILE.png`: climate and acceleration time series and the spectrum.

The capture is decoded with the bulk decoder (citynode.decode: the reference
decoder's messages, vectorised), so hours of acceleration plot in seconds."""

import os

from citynode import plotting
from citynode.commands.common import check_output_path
from citynode.decode import decode_messages
from citynode.errors import UsageError


def add_arguments(parser):
    parser.add_argument("capture", help="raw capture, as written by `citynode record`")
    parser.add_argument("-o", "--output", required=True, metavar="FILE.png", help="the PNG to write")
    parser.add_argument("--node", type=int, help="node id to plot (default: the one with the most frames)")


def run(args):
    output = args.output
    if not output.lower().endswith(".png"):
        raise UsageError("-o %s: plot writes a PNG image; give a file name ending in .png" % output)
    check_output_path(output)
    try:
        with open(args.capture, "rb") as f:
            data = f.read()
    except OSError as exc:
        raise UsageError("capture %s: %s" % (args.capture, exc.strerror or exc)) from None
    msgs, stats = decode_messages(data)
    nodes = plotting.node_ids(msgs)
    if not nodes:
        raise UsageError(
            "capture %s: no citynode frames in %d bytes (%d skipped): is it a capture of a node's stream?"
            % (args.capture, len(data), stats.bytes_skipped)
        )
    node = nodes[0] if args.node is None else args.node
    if node not in nodes:
        raise UsageError("capture %s has no frames of node %d; it has node %s"
                         % (args.capture, node, ", ".join(str(n) for n in sorted(nodes))))
    s = plotting.series(msgs, node)
    link = stats.nodes[node]
    title = "%s: node %d, %.1f s, %d frames, %d lost, %d CRC errors" % (
        os.path.basename(args.capture), node, s.duration_s, link.frames, link.lost, stats.crc_errors)
    try:
        plotting.save(s, output, title)
    except OSError as exc:
        raise UsageError("cannot write %s: %s" % (output, exc.strerror or exc)) from None
    print("wrote %s: %s" % (output, describe(s)))
    return 0


def describe(s):
    """One line on what a Series holds: climate means, accel rate, dominant frequency."""
    parts = ["node %d" % s.node_id]
    if len(s.climate_t):
        parts.append("%d climate readings (mean %.2f °C, %.2f %%RH)"
                     % (len(s.climate_t), s.temperature_c.mean(), s.humidity_pct.mean()))
    if len(s.accel_t):
        parts.append("%d accel samples at %g Hz" % (len(s.accel_t), s.odr_hz))
        spec = plotting.accel_spectrum(s)
        axis, f = plotting.strongest_axis(spec) if spec else (None, None)
        parts.append("dominant %.2f Hz (%s)" % (f, axis) if f is not None else "no dominant frequency")
    return ", ".join(parts)
