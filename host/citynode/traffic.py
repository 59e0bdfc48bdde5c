"""Test traffic: the frames a node would send, one at a time or as whole captures.

    from citynode.traffic import TrafficBuilder, capture

    node = TrafficBuilder(7)
    wire = node.time_anchor(1000, "2026-11-26T06:12:24Z") + node.climate(1500, 21.5, 48.25)
    cap = capture(nodes=(1, 2), duration_s=30, seed=3, loss=0.01)   # cap.wire: bytes

Everything goes through the protocol package (`payload.pack`, `frame.build`,
`frame.to_wire`), so what is built here is what a node sends. Signals are
seeded numpy noise: "quiet" is a bridge at rest (about 0.5 mg of noise on a
±2 g range, σ ≈ 8 LSB, plus small low-frequency sway), "loud" is several g of
broadband vibration on a ±16 g range.
"""

import datetime as _dt

import numpy as np

from citynode.units import g_per_count
from citynode_protocol import PROTOCOL_MINOR, frame, messages, payload

LOG_LEVEL = {name: i for i, name in enumerate(messages.LOG_LEVELS)}


def utc_ms(when):
    """UTC milliseconds from an int (ms), a datetime (naive means UTC) or ISO 8601 text."""
    if isinstance(when, bool):
        raise ValueError("utc time must be ms, a datetime or ISO 8601 text, not %r" % when)
    if isinstance(when, int):
        return when
    if isinstance(when, str):
        text = when.strip()
        if text.endswith(("Z", "z")):
            text = text[:-1] + "+00:00"
        try:
            when = _dt.datetime.fromisoformat(text)
        except ValueError:
            raise ValueError("not an ISO 8601 time: %r" % when) from None
    if isinstance(when, _dt.datetime):
        if when.tzinfo is None:
            when = when.replace(tzinfo=_dt.timezone.utc)
        delta = when - _dt.datetime(1970, 1, 1, tzinfo=_dt.timezone.utc)
        return (delta.days * 86400 + delta.seconds) * 1000 + delta.microseconds // 1000
    raise ValueError("utc time must be ms, a datetime or ISO 8601 text, not %r" % (when,))


class Sent:
    """One frame as built: what a receiver should decode from it, and where it is in a capture."""

    __slots__ = ("name", "node_id", "seq", "time_ms", "fields", "wire", "start", "end", "at")

    def __init__(self, name, node_id, seq, time_ms, fields, wire):
        self.name = name
        self.node_id = node_id
        self.seq = seq
        self.time_ms = time_ms
        self.fields = fields
        self.wire = wire
        self.start = self.end = None
        self.at = time_ms  # the time as given, before the u32 wrap: orders a capture

    def __repr__(self):
        return "Sent(%s node=%d seq=%d t=%d)" % (self.name, self.node_id, self.seq, self.time_ms)


class TrafficBuilder:
    """Frames of one node, with its sequence number and its accel sample index.

    Every method returns the frame's wire bytes (COBS-stuffed, 0x00-ended) and
    appends a `Sent` record to `sent`. `seq` is the next sequence number.
    """

    def __init__(self, node_id, seq=0, first_index=0):
        if not 0 <= node_id <= 0xFFFF:
            raise ValueError("node id %d outside 0..65535" % node_id)
        self.node_id = node_id
        self.seq = seq & 0xFFFF
        self.first_index = first_index
        self.sent = []

    def frame(self, name, time_ms, fields=None, seq=None):
        """Any message of the table by name, fields in their units (see messages.py)."""
        fields = dict(fields or {})
        msg_type, body = payload.pack(name, fields)
        return self._emit(name, msg_type, body, time_ms, fields, seq)

    def unknown(self, time_ms, msg_type, body=b"", seq=None):
        """A frame of a type this protocol version does not know (a newer node's)."""
        return self._emit("unknown", msg_type, bytes(body), time_ms, {"payload": bytes(body)}, seq)

    def _emit(self, name, msg_type, body, time_ms, fields, seq):
        if seq is None:
            seq = self.seq
        seq &= 0xFFFF
        raw = frame.build(msg_type, self.node_id, seq, time_ms & 0xFFFFFFFF, body)
        wire = frame.to_wire(raw)
        self.seq = (seq + 1) & 0xFFFF
        sent = Sent(name, self.node_id, seq, time_ms & 0xFFFFFFFF, fields, wire)
        sent.at = time_ms
        self.sent.append(sent)
        return wire

    def skip(self, n=1):
        """Frames the node sent that never arrive: the receiver sees a gap of n."""
        self.seq = (self.seq + n) & 0xFFFF

    def restart(self):
        """The node rebooted: sequence and sample index start again (its clock too: pass small times)."""
        self.seq = 0
        self.first_index = 0

    def climate(self, time_ms, temperature_c, relative_humidity_pct, status=0):
        return self.frame(
            "climate",
            time_ms,
            {"temperature_c": temperature_c, "relative_humidity_pct": relative_humidity_pct, "status": status},
        )

    def accel_block(self, time_ms, samples, odr_hz=200.0, range_g=2, flags=0, encoding=None, first_index=None, age_ms=0):
        """A block of samples: an (n, 3) array or a flat x, y, z list of int16 counts.

        time_ms is when the frame is sent; the first sample was taken age_ms before.
        encoding None picks the smaller form, as the node does; 0 forces raw, 1 delta-bitpack.
        first_index defaults to where the previous block of this builder ended.
        """
        flat = np.asarray(samples).reshape(-1)
        if flat.size % 3:
            raise ValueError("accel samples must be x, y, z triples")
        n = flat.size // 3
        if first_index is None:
            first_index = self.first_index
        self.first_index = first_index + n
        return self.frame(
            "accel",
            time_ms,
            {
                "samples": [int(v) for v in flat.tolist()],
                "encoding": encoding,
                "flags": flags,
                "range_g": range_g,
                "odr_hz": odr_hz,
                "first_index": first_index,
                "age_ms": age_ms,
            },
        )

    def features(self, time_ms, **fields):
        """A features message, sent at time_ms; its window started `age_ms` (a field) before."""
        return self.frame("features", time_ms, fields)

    def status(self, time_ms, **fields):
        return self.frame("status", time_ms, fields)

    def log(self, time_ms, text, level="info"):
        level = LOG_LEVEL[level] if isinstance(level, str) else level
        return self.frame("log", time_ms, {"level": level, "text": text})

    def time_anchor(self, time_ms, utc):
        """A TIME message: at node time time_ms, UTC was `utc` (ms, datetime or ISO text)."""
        return self.frame("time", time_ms, {"utc_ms": utc_ms(utc)})

    def reply(self, time_ms, request_id, code=0, body=None):
        return self.frame("reply", time_ms, {"request_id": request_id, "code": code, "body": body})


# -- signals ---------------------------------------------------------------------


def counts_per_g(range_g):
    return 1.0 / g_per_count(range_g)


def quiet_accel(n, rng, odr_hz=200.0, range_g=2, sigma_lsb=8.0, t0_s=0.0):
    """A bridge at rest: bias, 1 g on z, sway of a few mg at 2-5 Hz, white noise σ in LSB.

    Returns an (n, 3) int16 array of counts (±32768 = ±range_g).
    """
    k = counts_per_g(range_g)
    t = t0_s + np.arange(n) / odr_hz
    mg = k / 1000.0
    x = 120 + 2 * mg * np.sin(2 * np.pi * 2.1 * t) + 1 * mg * np.sin(2 * np.pi * 5.3 * t + 0.7)
    y = -85 + 1.5 * mg * np.sin(2 * np.pi * 2.1 * t + 1.1) + 0.8 * mg * np.sin(2 * np.pi * 3.7 * t)
    z = k + 0.5 * mg * np.sin(2 * np.pi * 2.1 * t + 2.0) + 0.3 * mg * np.sin(2 * np.pi * 7.9 * t)
    out = np.stack([x, y, z], axis=1) + rng.normal(0.0, sigma_lsb, (n, 3))
    return np.clip(np.rint(out), -32768, 32767).astype(np.int16)


def loud_accel(n, rng, odr_hz=200.0, range_g=16, rms_g=3.0, t0_s=0.0):
    """Several g of broadband vibration (a truck on the deck, a hammer test), clipped to the range."""
    k = counts_per_g(range_g)
    t = t0_s + np.arange(n) / odr_hz
    ring = np.sin(2 * np.pi * min(17.0, odr_hz / 5) * t)[:, None] * np.array([1.0, 0.7, 1.3])
    out = (rng.normal(0.0, rms_g, (n, 3)) + ring + np.array([0.0, 0.0, 1.0])) * k
    return np.clip(np.rint(out), -32768, 32767).astype(np.int16)


def features_of(samples, odr_hz, range_g):
    """The features message fields of a window of samples, as the node computes them."""
    g = np.asarray(samples, np.float64) / counts_per_g(range_g)
    mean = g.mean(axis=0)
    ac = g - mean
    fields = {"window_s": len(g) / odr_hz, "n_samples": min(len(g), 0xFFFF)}
    freqs = np.fft.rfftfreq(len(g), 1.0 / odr_hz)
    spectrum = np.abs(np.fft.rfft(ac, axis=0))
    for i, axis in enumerate("xyz"):
        fields["rms_%s_g" % axis] = float(np.sqrt(np.mean(ac[:, i] ** 2)))
        fields["peak_%s_g" % axis] = float(np.max(np.abs(ac[:, i])))
        peak = int(np.argmax(spectrum[1:, i])) + 1 if len(freqs) > 1 else 0
        fields["dominant_freq_%s_hz" % axis] = float(freqs[peak]) if len(freqs) > 1 else 0.0
    x, y, z = mean
    fields["pitch_deg"] = float(np.degrees(np.arctan2(-x, np.hypot(y, z))))
    fields["roll_deg"] = float(np.degrees(np.arctan2(y, z)))
    return fields


# -- whole captures --------------------------------------------------------------


class Capture:
    """A capture built by `capture()`: the bytes, and every frame built (lost ones included)."""

    def __init__(self, wire, sent, lost):
        self.wire = wire
        self.sent = sent  # Sent records of frames in `wire`, in wire order, with start/end offsets
        self.lost = lost  # Sent records of frames dropped on the way (sequence gaps)

    def by_name(self, name):
        return [s for s in self.sent if s.name == name]


def node_frames(
    node_id,
    duration_s,
    seed=0,
    odr_hz=200.0,
    block_samples=50,
    loud=False,
    range_g=None,
    encoding=None,
    climate_period_s=10.0,
    features_period_s=10.0,
    status_period_s=30.0,
    start_ms=1000,
    utc=None,
    boot_log=True,
    network=False,
):
    """One node's frames over duration_s seconds, in send order.

    utc: UTC at node time start_ms (ms, datetime or ISO text): the node sends a
    TIME message right after booting and with every status message, as the
    firmware does. None: the node never learns the time.
    network: the frames of a node with a network uplink, which sends TIME only
    when it learns the time (SPEC.md §6 time), not with every status.
    Returns the TrafficBuilder (its `sent` holds the frames).
    """
    rng = np.random.default_rng([seed, node_id])
    if range_g is None:
        range_g = 16 if loud else 2
    node = TrafficBuilder(node_id)
    utc0 = None if utc is None else utc_ms(utc)
    events = []  # (send time in ms, priority, kind); a node's frame times never go backwards
    block_ms = 1000.0 * block_samples / odr_hz
    t = 0.0
    while t < duration_s * 1000.0:
        # a block is sent once its last sample is in: its first sample is block_ms old
        events.append((start_ms + int(round(t + block_ms)), 0, "accel"))
        t += block_ms
    # a features window closes after the block that ends it was sent
    for period, prio, kind in ((climate_period_s, 2, "climate"), (features_period_s, 1, "features"), (status_period_s, 2, "status")):
        if period and period > 0:
            k = 1
            while k * period <= duration_s:
                events.append((start_ms + int(round(k * period * 1000)), prio, kind))
                k += 1
    events.sort()
    if boot_log:
        node.log(start_ms, "boot: citynode node %d, protocol 1.%d" % (node_id, PROTOCOL_MINOR))
    if utc0 is not None:
        node.time_anchor(start_ms, utc0)
    window = []
    temp = 8.0 + 10.0 * rng.random()
    rh = 55.0 + 20.0 * rng.random()
    sample_t = 0.0
    for when, _prio, kind in events:
        if kind == "accel":
            make = loud_accel if loud else quiet_accel
            block = make(block_samples, rng, odr_hz=odr_hz, range_g=range_g, t0_s=sample_t)
            sample_t += block_samples / odr_hz
            node.accel_block(
                when,
                block,
                odr_hz=odr_hz,
                range_g=range_g,
                encoding=encoding,
                flags=messages.ACCEL_CALIBRATED,
                age_ms=int(round(block_ms)),
            )
            window.append(block)
        elif kind == "climate":
            temp += rng.normal(0.0, 0.05)
            rh = min(100.0, max(0.0, rh + rng.normal(0.0, 0.2)))
            node.climate(when, round(temp, 2), round(rh, 2), status=messages.CLIMATE_CALIBRATED)
        elif kind == "features":
            if window:
                samples = np.concatenate(window)
                fields = features_of(samples, odr_hz, range_g)
                fields["flags"] = messages.ACCEL_CALIBRATED
                fields["age_ms"] = int(round(1000 * len(samples) / odr_hz))
                node.features(when, **fields)
                window = []
        elif kind == "status":
            flags = messages.STATUS_STREAMING | (messages.STATUS_TIME_ANCHORED if utc0 is not None else 0)
            node.status(
                when,
                uptime_s=(when - start_ms) // 1000,
                free_heap=int(60000 + rng.integers(0, 20000)),
                mpy_major=1,
                mpy_minor=24,
                mpy_patch=1,
                app_major=0,
                app_minor=1,
                protocol_minor=PROTOCOL_MINOR,
                sensors_fitted=messages.SENSOR_CLIMATE | messages.SENSOR_ACCEL,
                sensors_ok=messages.SENSOR_CLIMATE | messages.SENSOR_ACCEL,
                flags=flags,
                supply_v=round(4.9 + 0.2 * rng.random(), 3),
            )
            if utc0 is not None and not network:
                node.time_anchor(when, utc0 + (when - start_ms))
    return node


def capture(nodes=(1,), duration_s=10.0, seed=0, loss=0.0, utc="2026-11-26T06:00:00Z", **node_options):
    """Frames of several nodes interleaved by the time they were sent, as one link would carry them.

    loss: probability that a frame is lost on the way (a sequence gap at the receiver).
    Other keyword arguments go to `node_frames` (loud, encoding, odr_hz, block_samples, ...).
    """
    rng = np.random.default_rng([seed, 0xC0FFEE])
    everything = []
    for i, node_id in enumerate(nodes):
        node = node_frames(node_id, duration_s, seed=seed, utc=utc, **node_options)
        everything.extend((s.at, i, k, s) for k, s in enumerate(node.sent))
    everything.sort(key=lambda r: (r[0], r[1], r[2]))
    out = bytearray()
    sent = []
    lost = []
    for _t, _i, _k, s in everything:
        if loss and rng.random() < loss:
            lost.append(s)
            continue
        s.start = len(out)
        out += s.wire
        s.end = len(out)
        sent.append(s)
    return Capture(bytes(out), sent, lost)


# -- damage ----------------------------------------------------------------------

REPL_JUNK = b"MicroPython v1.24.1 on 2024-11-29; Generic ESP32 module with ESP32\r\nType \"help()\" for more information.\r\n>>> "


def corrupt(wire, rng, flips=0, junk=0, truncate=False, junk_bytes=None):
    """Damage a capture: flip `flips` random bits, insert `junk` runs of junk bytes
    (REPL text or random bytes, at random places), and optionally cut the end
    mid-frame. rng: a numpy Generator. Returns bytes."""
    data = bytearray(wire)
    for _ in range(flips):
        if not data:
            break
        bit = int(rng.integers(0, len(data) * 8))
        data[bit // 8] ^= 1 << (bit % 8)
    for _ in range(junk):
        at = int(rng.integers(0, len(data) + 1))
        if junk_bytes is not None:
            piece = junk_bytes
        elif rng.random() < 0.5:
            piece = REPL_JUNK[: int(rng.integers(1, len(REPL_JUNK) + 1))]
        else:
            piece = rng.integers(0, 256, int(rng.integers(1, 40))).astype(np.uint8).tobytes()
        data[at:at] = piece
    if truncate and len(data) > 1:
        data = data[: int(rng.integers(1, len(data)))]
    return bytes(data)
