"""Decoding speed: the bulk decoder against pymavlink and the reference decoder, in the same run.

    python bench/bench_decode_speed.py [--quick] [--mb N] [--reps N]

Captures are built with citynode.traffic signals (200 Hz, blocks of 200
samples, one node, sequence and time counting up, every byte through the
protocol package's framing): quiet acceleration sent raw-int16 (the encoding
the MB/s target is about), quiet acceleration as the node sends it
(delta-bitpack), and loud acceleration (raw, the node's fallback). The peer is
pymavlink parsing the same samples as a MAVLink 2 SCALED_IMU stream (one
message per sample, in mG) with `MAVLink.parse_buffer` on bytes. The
reference decoder (`citynode_protocol.decoder.decode_all`) is timed on a
slice. All on one core; each figure is the best of --reps runs.

Samples/s counts 3-axis samples decoded to numbers (int16 counts for us,
message objects for pymavlink). Targets: bulk >= 100 x pymavlink's samples/s,
and >= 100 MB/s of raw-int16 capture.
"""

import argparse
import os
import platform
import struct
import sys
import time
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent
sys.path[:0] = [str(REPO / "host"), str(REPO / "protocol"), str(REPO / "bench")]

import numpy as np  # noqa: E402

from _report import cpu_model, table  # noqa: E402
from citynode import traffic  # noqa: E402
from citynode.decode import BulkDecoder  # noqa: E402
from citynode_protocol import codec, frame, messages  # noqa: E402
from citynode_protocol.decoder import decode_all  # noqa: E402

ODR = 200
BLOCK = 200
DISTINCT = 64  # distinct blocks of signal, cycled: encoding 64 blocks is enough to stay realistic
RATIO_TARGET = 100
MBPS_TARGET = 100


def stuff(raw):
    """COBS + delimiter: the C `cobs` package when installed (byte-identical, SPEC 2.2), else ours."""
    try:
        from cobs import cobs
    except ImportError:
        return frame.to_wire(raw)
    return cobs.encode(raw) + b"\x00"


def accel_capture(kind, n_blocks, encoding, seed=1):
    """(wire bytes, samples in it, the distinct (BLOCK, 3) blocks cycled) for one node."""
    rng = np.random.default_rng(seed)
    range_g = 2 if kind == "quiet" else 16
    make = traffic.quiet_accel if kind == "quiet" else traffic.loud_accel
    blocks = [make(BLOCK, rng, odr_hz=ODR, range_g=range_g, t0_s=k * BLOCK / ODR) for k in range(DISTINCT)]
    fmt = messages.BY_NAME["accel"][2]
    tails = [codec.encode(b.reshape(-1).tolist(), encoding) for b in blocks]
    parts = []
    step_ms = 1000 * BLOCK // ODR
    for i in range(n_blocks):
        enc, tail = tails[i % DISTINCT]
        body = struct.pack(fmt, enc, messages.ACCEL_CALIBRATED, range_g, 0, ODR * 1000, i * BLOCK, BLOCK, step_ms) + tail
        parts.append(stuff(frame.build(messages.ACCEL, 1, i, 1000 + (i + 1) * step_ms, body)))
    return b"".join(parts), n_blocks * BLOCK, blocks, range_g


def best(fn, reps):
    times = []
    out = None
    for _ in range(reps):
        t0 = time.perf_counter()
        out = fn()
        times.append(time.perf_counter() - t0)
    return min(times), out


def bulk_decode(wire, feed=8 << 20):
    """Feed the capture as the CLI does (pieces of a file), keep every block's samples."""
    dec = BulkDecoder()
    samples = []
    for at in range(0, len(wire), feed):
        batch = dec.feed(wire[at : at + feed])
        if "accel" in batch.kinds:
            samples.append(batch.kinds["accel"]["samples"])
    dec.flush()
    return sum(len(s) for s in samples), dec.stats


def mavlink_stream(blocks, range_g, n_samples):
    from pymavlink.dialects.v20 import common as mav

    link = mav.MAVLink(None, srcSystem=1, srcComponent=1)
    per_block = []
    for b in blocks:
        milli_g = np.rint(b * (range_g / 32768.0) * 1000).astype(int).tolist()
        per_block.append(milli_g)
    parts = []
    i = 0
    while i < n_samples:
        for x, y, z in per_block[(i // BLOCK) % len(per_block)]:
            msg = mav.MAVLink_scaled_imu_message((i * 5) & 0xFFFFFFFF, x, y, z, 0, 0, 0, 0, 0, 0, 0)
            parts.append(msg.pack(link))
            i += 1
    return b"".join(parts), mav


def mavlink_parse(wire, mav):
    rx = mav.MAVLink(None)
    rx.robust_parsing = True
    msgs = rx.parse_buffer(wire) or []
    return sum(1 for m in msgs if m.get_type() == "SCALED_IMU")


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--quick", action="store_true", help="small captures, one rep (CI smoke)")
    parser.add_argument("--mb", type=float, default=64, help="size of the raw-int16 capture in MB (default 64)")
    parser.add_argument("--reps", type=int, default=3, help="runs of each measurement; the best is kept")
    args = parser.parse_args(argv)
    mb = 4 if args.quick else args.mb
    reps = 1 if args.quick else args.reps
    raw_frame = 13 + 16 + 6 * BLOCK
    n_blocks = max(DISTINCT, int(mb * 1e6 / raw_frame))
    mav_samples = 5_000 if args.quick else 40_000
    ref_blocks = 50 if args.quick else 400

    print("machine: %s, %d logical CPUs (os.cpu_count), Python %s, numpy %s" % (cpu_model(), os.cpu_count(), platform.python_version(), np.__version__))
    print("captures: %d blocks of %d samples at %d Hz per capture; best of %d" % (n_blocks, BLOCK, ODR, reps))
    print()
    rows = []
    results = {}
    for label, kind, encoding in (
        ("quiet, raw-int16", "quiet", 0),
        ("quiet, delta-bitpack (node's choice)", "quiet", None),
        ("loud, raw-int16 (node's choice)", "loud", None),
    ):
        wire, n, blocks, range_g = accel_capture(kind, n_blocks, encoding)
        seconds, (got, stats) = best(lambda: bulk_decode(wire), reps)
        assert got == n and stats.frames == n_blocks and stats.bad_frames == 0, (got, n, stats.as_dict())
        results[label] = (n / seconds, len(wire) / seconds / 1e6)
        rows.append(("bulk decoder, " + label, len(wire), n, seconds))
        if label.startswith("quiet, raw"):
            raw_case = (wire, blocks, range_g)
    # the reference decoder, on a slice of the raw capture
    wire, blocks, range_g = raw_case
    ref_wire = wire[: ref_blocks * (len(wire) // n_blocks)]
    ref_wire = ref_wire[: ref_wire.rfind(b"\x00") + 1]
    seconds, (msgs, _stats) = best(lambda: decode_all(ref_wire), max(1, reps - 1))
    ref_n = sum(m["n_samples"] for m in msgs)
    rows.append(("reference decoder, quiet raw-int16", len(ref_wire), ref_n, seconds))
    results["reference"] = (ref_n / seconds, len(ref_wire) / seconds / 1e6)
    # pymavlink on the same samples as SCALED_IMU
    try:
        mav_wire, mav = mavlink_stream(blocks, range_g, mav_samples)
    except ImportError:
        mav_wire = None
        print("pymavlink not installed: no peer to compare against")
    if mav_wire is not None:
        seconds, parsed = best(lambda: mavlink_parse(mav_wire, mav), max(1, reps - 1))
        assert parsed == mav_samples, parsed
        rows.append(("pymavlink parse_buffer, SCALED_IMU", len(mav_wire), mav_samples, seconds))
        results["pymavlink"] = (mav_samples / seconds, len(mav_wire) / seconds / 1e6)

    header = ["decoder, capture", "MB", "samples", "s", "Msamples/s", "MB/s", "x pymavlink"]
    body = []
    peer = results.get("pymavlink", (None,))[0]
    for name, size, n, seconds in rows:
        rate = n / seconds
        body.append([name, "%.1f" % (size / 1e6), "%d" % n, "%.3f" % seconds, "%.3f" % (rate / 1e6), "%.1f" % (size / seconds / 1e6), "%.0f" % (rate / peer) if peer else "n/a"])
    table(header, body)

    print()
    print("Targets")
    ok = True
    mbps = results["quiet, raw-int16"][1]
    passed = mbps >= MBPS_TARGET
    ok &= passed
    print("  raw-int16 capture: %.0f MB/s >= %d MB/s: %s" % (mbps, MBPS_TARGET, "PASS" if passed else "FAIL"))
    if peer:
        for label in ("quiet, raw-int16", "quiet, delta-bitpack (node's choice)", "loud, raw-int16 (node's choice)"):
            ratio = results[label][0] / peer
            passed = ratio >= RATIO_TARGET
            ok &= passed
            print("  %s: %.0f x pymavlink's samples/s >= %d x: %s" % (label, ratio, RATIO_TARGET, "PASS" if passed else "FAIL"))
    print("  (reference decoder: %.3f Msamples/s, %.2f MB/s; the bulk decoder is %.0f x faster on raw-int16)"
          % (results["reference"][0] / 1e6, results["reference"][1], results["quiet, raw-int16"][0] / results["reference"][0]))
    return 0 if ok else 1


if __name__ == "__main__":
    sys.exit(main())
