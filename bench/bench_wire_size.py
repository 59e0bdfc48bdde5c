"""Bytes on the wire for the same data: our frames against JSON, Cayenne LPP, MAVLink 2 and CBOR.

    python bench/bench_wire_size.py [--quick] [--seconds N]

Data (as in shared/reference/protocols.md section 7): one climate record
(node 1, 23.45 degC, 45.67 %RH, t = 1718000000 s) and one second of 200 Hz
3-axis acceleration, quiet (a bridge at rest: about 0.5 mg of noise on +-2 g,
sigma = 8 LSB) and loud (3 g rms broadband on +-16 g). Acceleration sizes are
averaged over N seconds of citynode.traffic signal (the same seeded samples for
every encoding).

Peers, each measured here on the same values:
- JSON as MicroPython projects send it: json.dumps default separators, int
  counts, plus the newline that delimits it;
- Cayenne LPP from the type table (protocols.md 3.1): temperature 103,
  humidity 104, unix time 133, accelerometer 113 (lossy: 0.1 degC, 0.5 %RH,
  1 mG; no framing or integrity of its own: LoRaWAN supplies them);
- MAVLink 2 through pymavlink: HYGROMETER_SENSOR (no timestamp), SCALED_IMU per
  sample in mG (lossy), zero fields truncated as MAVLink 2 does;
- CBOR through cbor2: [node, t, T, RH] and {n, t, f, x[], y[], z[]} (no framing,
  no integrity).

Ours is the whole frame on the wire: COBS, the 0x00 delimiter, header (node id,
sequence, time), payload and CRC-32, for blocks of 50, 100, 200 (the
firmware's default) and 400 samples. Targets (pass/fail printed): a climate
record <= 20 bytes; quiet acceleration <= 0.45 x the bytes of raw int16, for one
second in one frame (the exit status follows that case, which is also the
firmware's default block; every block size is printed); loud acceleration never more than the raw-int16 frames (raw plus
the frame's own overhead) at every block size.
"""

import argparse
import json
import struct
import sys
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent
sys.path[:0] = [str(REPO / "host"), str(REPO / "protocol"), str(REPO / "bench")]

import numpy as np  # noqa: E402

from _report import table  # noqa: E402
from citynode import traffic  # noqa: E402
from citynode_protocol import frame, payload  # noqa: E402

TS = 1718000000
TEMP_C = 23.45
RH_PCT = 45.67
ODR = 200
CLIMATE_TARGET = 20
QUIET_TARGET = 0.45
BLOCK_SIZES = (50, 100, 200, 400)
def _firmware_block():
    """accel_block_samples' default, read from the firmware's config table."""
    import re

    text = (REPO / "firmware" / "citynode_fw" / "config.py").read_text()
    return int(re.search(r'\("accel_block_samples", "int", (\d+),', text).group(1))


FIRMWARE_BLOCK = _firmware_block()
TARGET_BLOCK = 200  # the target is for one second in one frame (200 samples at 200 Hz)


# -- peers ------------------------------------------------------------------------


def json_climate():
    return len((json.dumps({"node": "node01", "ts": TS, "temp": TEMP_C, "hum": RH_PCT}) + "\n").encode())


def json_accel(block):
    doc = {"node": "node01", "t0": TS, "fs": ODR, "x": block[:, 0].tolist(), "y": block[:, 1].tolist(), "z": block[:, 2].tolist()}
    return len((json.dumps(doc) + "\n").encode())


def lpp(channel, type_id, fmt, *values):
    """One Cayenne LPP item: channel, type, big-endian data."""
    return bytes([channel, type_id]) + struct.pack(">" + fmt, *values)


def lpp_climate():
    data = lpp(1, 103, "h", round(TEMP_C * 10)) + lpp(2, 104, "B", round(RH_PCT * 2)) + lpp(3, 133, "I", TS)
    return len(data)


def lpp_accel(block, range_g):
    milli_g = np.rint(block * (range_g / 32768.0) * 1000).astype(int)
    return len(b"".join(lpp(1, 113, "hhh", *map(int, s)) for s in milli_g))


def mavlink():
    try:
        from pymavlink.dialects.v20 import common as mav
    except ImportError:
        return None
    return mav


def mav_climate(mav):
    link = mav.MAVLink(None, srcSystem=1, srcComponent=1)
    msg = mav.MAVLink_hygrometer_sensor_message(id=1, temperature=round(TEMP_C * 100), humidity=round(RH_PCT * 100))
    return len(msg.pack(link))


def mav_accel(mav, block, range_g):
    link = mav.MAVLink(None, srcSystem=1, srcComponent=1)
    milli_g = np.rint(block * (range_g / 32768.0) * 1000).astype(int)
    total = 0
    for i, (x, y, z) in enumerate(milli_g.tolist()):
        msg = mav.MAVLink_scaled_imu_message(i * 5, x, y, z, 0, 0, 0, 0, 0, 0, 0)
        total += len(msg.pack(link))
    return total


def cbor():
    try:
        import cbor2
    except ImportError:
        return None
    return cbor2


def cbor_climate(cbor2):
    return len(cbor2.dumps([1, TS, round(TEMP_C * 100), round(RH_PCT * 100)]))


def cbor_accel(cbor2, block):
    return len(cbor2.dumps({"n": 1, "t": TS, "f": ODR, "x": block[:, 0].tolist(), "y": block[:, 1].tolist(), "z": block[:, 2].tolist()}))


# -- ours -------------------------------------------------------------------------


def our_climate():
    node = traffic.TrafficBuilder(1)
    return len(node.climate(TS % 2**32, TEMP_C, RH_PCT))


def our_accel(stream, range_g, per_frame, encoding=None):
    """Wire bytes of a stream of samples sent in frames of per_frame samples; and the encodings used."""
    node = traffic.TrafficBuilder(1)
    total = 0
    used = []
    for i in range(0, len(stream), per_frame):
        block = stream[i : i + per_frame]
        age = 1000 * len(block) // ODR
        wire = node.accel_block(1000 + i * 5 + age, block, odr_hz=ODR, range_g=range_g, encoding=encoding, age_ms=age)
        total += len(wire)
        used.append(payload.unpack(2, frame.parse(_unstuff(wire))[5])[0]["encoding"])
    return total, used


def _unstuff(wire):
    from citynode_protocol.cobs import decode

    return decode(wire[:-1])


# -- the run ----------------------------------------------------------------------


def seconds_of(kind, seconds, seed):
    rng = np.random.default_rng(seed)
    if kind == "quiet":
        range_g = 2
        s = traffic.quiet_accel(ODR * seconds, rng, odr_hz=ODR, range_g=range_g)
    else:
        range_g = 16
        s = traffic.loud_accel(ODR * seconds, rng, odr_hz=ODR, range_g=range_g)
    return [s[i * ODR : (i + 1) * ODR].astype(np.int64) for i in range(seconds)], range_g


def mean(values):
    return sum(values) / len(values)


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--quick", action="store_true", help="3 seconds of signal instead of --seconds (CI smoke)")
    parser.add_argument("--seconds", type=int, default=30, help="seconds of acceleration to average over (default 30)")
    parser.add_argument("--seed", type=int, default=1)
    args = parser.parse_args(argv)
    seconds = 3 if args.quick else args.seconds
    mav = mavlink()
    cb = cbor()
    results = []
    ok = True

    print("One climate record (bytes on the wire)")
    ours = our_climate()
    rows = [
        ("citynode frame", ours, "node, seq, ms time, CRC-32, framing"),
        ("JSON (MicroPython default) + \\n", json_climate(), "node name, s time, framing"),
        ("Cayenne LPP temp+RH+unixtime", lpp_climate(), "s time; lossy 0.1 C / 0.5 %RH; no framing, no CRC"),
        ("MAVLink 2 HYGROMETER_SENSOR", mav_climate(mav) if mav else None, "sysid, seq (u8), CRC-16, framing; no time"),
        ("CBOR [node, t, T, RH]", cbor_climate(cb) if cb else None, "s time; no framing, no CRC"),
    ]
    _print_table(rows, ours)
    passed = ours <= CLIMATE_TARGET
    ok &= passed
    results.append("climate record %d bytes <= %d: %s" % (ours, CLIMATE_TARGET, "PASS" if passed else "FAIL"))

    for kind in ("quiet", "loud"):
        secs, range_g = seconds_of(kind, seconds, args.seed)
        stream = np.concatenate(secs)
        raw_int16 = 6 * ODR
        print()
        print("One second of 200 Hz 3-axis acceleration, %s (+-%d g), mean of %d s (bytes a second)" % (kind, range_g, seconds))
        sizes = {}
        encodings = {}
        raw_sizes = {}
        for per_frame in BLOCK_SIZES:
            total, used = our_accel(stream, range_g, per_frame)
            sizes[per_frame] = total / seconds
            encodings[per_frame] = sorted(set(used))
            raw_sizes[per_frame] = our_accel(stream, range_g, per_frame, encoding=0)[0] / seconds
        ours = sizes[FIRMWARE_BLOCK]
        rows = []
        for per_frame in BLOCK_SIZES:
            note = "node, seq, ms time, odr, index, age, CRC-32"
            if per_frame == FIRMWARE_BLOCK:
                note += " (firmware default block)"
            rows.append(("citynode, blocks of %d (%s)" % (per_frame, _enc(encodings[per_frame])), sizes[per_frame], note))
        rows += [
            ("citynode, forced raw, blocks of %d" % FIRMWARE_BLOCK, raw_sizes[FIRMWARE_BLOCK], "the node's fallback"),
            ("raw int16 samples alone", raw_int16, "no header, no framing"),
            ("JSON (MicroPython default) + \\n", mean([json_accel(s) for s in secs]), "int counts"),
            ("Cayenne LPP accelerometer x200", mean([lpp_accel(s, range_g) for s in secs]), "lossy 1 mG; no time"),
            ("MAVLink 2 SCALED_IMU x200", mean([mav_accel(mav, s, range_g) for s in secs]) if mav else None, "lossy 1 mG; a frame per sample"),
            ("CBOR {n,t,f,x[],y[],z[]}", mean([cbor_accel(cb, s) for s in secs]) if cb else None, "int counts; no framing, no CRC"),
        ]
        _print_table(rows, ours, raw=raw_int16)
        if kind == "quiet":
            for per_frame in BLOCK_SIZES:
                ratio = sizes[per_frame] / raw_int16
                passed = ratio <= QUIET_TARGET
                results.append(
                    "quiet acceleration, blocks of %3d: %4.0f bytes/s = %.3f x raw int16 (%d) <= %.2f: %s"
                    % (
                        per_frame,
                        sizes[per_frame],
                        ratio,
                        raw_int16,
                        QUIET_TARGET,
                        ("PASS" if passed else "FAIL") if per_frame == TARGET_BLOCK else ("within" if passed else "over") + " (not the target's block size)",
                    )
                )
                if per_frame == TARGET_BLOCK:
                    ok &= passed
        else:
            for per_frame in BLOCK_SIZES:
                worst = sizes[per_frame] - raw_sizes[per_frame]
                over = (sizes[per_frame] - raw_int16) * per_frame / ODR
                passed = worst <= 0
                results.append(
                    "loud acceleration, blocks of %3d: %+.0f bytes/s against the raw-int16 frames; %.1f bytes a block over raw int16 samples: %s"
                    % (per_frame, worst, over, "PASS" if passed else "FAIL")
                )
                ok &= passed

    print()
    print("Targets")
    for line in results:
        print("  " + line)
    return 0 if ok else 1


def _enc(codes):
    names = {0: "raw", 1: "delta"}
    return "+".join(names.get(c, str(c)) for c in codes)


def _print_table(rows, ours, raw=None):
    header = ["encoding", "bytes", "x ours"] + (["x raw int16"] if raw else []) + ["carries / notes"]
    body = []
    for name, size, note in rows:
        if size is None:
            body.append([name, "n/a", "", ""] if raw else [name, "n/a", ""] + ["(peer library not installed)"])
            continue
        cells = [name, "%.0f" % size, "%.2f" % (size / ours)]
        if raw:
            cells.append("%.3f" % (size / raw))
        cells.append(note)
        body.append(cells)
    table(header, body, left=(0, len(header) - 1))


if __name__ == "__main__":
    sys.exit(main())
