"""Signed traffic of many simulated nodes, for load and for tests of the collectors.

    sim = FleetSim(keystore, climate_nodes=1000, bridge_nodes=100, duration_s=600, seed=1)
    with MqttPublisher(url, n_clients=22) as pub:       # citynode.fleet.sim_publish
        stats = sim.run(pub, rate=1.0, record=record)

No MicroPython process per node: each node is a `SimNode`, whose frames are
built by the protocol package (`payload.pack`, `frame.build`, `auth.sign`,
`frame.to_wire`, through `traffic.TrafficBuilder`) exactly as the node's
FrameWriter and `auth.sign_writer` build them (tests/host/test_fleet_sim.py
holds the bytes equal to the firmware's under the Unix port).

The schedule is the firmware's with its config defaults (config.py): at boot a
LOG line, a CLIMATE reading and a STATUS; a TIME once SNTP answers (SNTP_AFTER_MS
after boot, again every 6 h: a networked node sends TIME only when it learns the
time, SPEC §6); CLIMATE every
climate_period_s (60), STATUS every status_period_s (30). A bridge node also
streams acceleration from boot: a block of accel_block_samples (200) at ODR_HZ
(200 Hz, the issue's load; the config default is the ADXL355's 250 Hz) as soon
as its last sample is in, and FEATURES of every feature_window_s (10 s).

On MQTT (SPEC.md §10): a node's first message is `online` on its retained status
topic; its frames go to its frames topic, whole frames and at most MAX_MESSAGE
bytes (the firmware's uplink.MAX_MESSAGE) in one message, QoS 1. Frames made in
one tick (TICK_S of wall time) go out together, as a node bundles what waits in
its ring while a message is in flight. A climate node (no accelerometer) lingers
as the firmware's uplink does: its frames wait until the oldest has waited
LINGER_MS of node time (the firmware's uplink_linger_s) and go as records of
bundle frames (SPEC §4, type 8) made by the protocol's bundle.Writer, the
firmware's own code, a new bundle when the last is full; what still waits when
the run ends goes out then.

Node time: a node boots at its phase (spread over the first status period) with
its clock at BOOT_MS; its frame times are its clock (u32 ms). `rate` is node
time per wall time (60: a node-minute every second; 0: as fast as it goes).
"""

import json
import secrets
import time

import numpy as np

from citynode.errors import UsageError
from citynode.traffic import Sent, TrafficBuilder, features_of, quiet_accel
from citynode_protocol import PROTOCOL_MINOR, auth, bundle, cobs, frame, messages, topics

# the node's: firmware/citynode_fw/uplink.py, config.py and version.py (a test keeps them in step)
MAX_MESSAGE = 2048
CLIMATE_PERIOD_S = 60
STATUS_PERIOD_S = 30
FEATURE_WINDOW_S = 10
BLOCK_SAMPLES = 200
APP_VERSION = (0, 1, 0)
SNTP_AGAIN_MS = 6 * 3600 * 1000
LINGER_MS = 300000  # the firmware's config uplink_linger_s, in ms
BUNDLE_BYTES = 1024  # the firmware's uplink.BUNDLE_BYTES

ODR_HZ = 200
RANGE_G = 2
BOOT_MS = 1200  # the node's clock when the app starts
SNTP_AFTER_MS = 4000  # joined, connected and SNTP answered
MPY_VERSION = (1, 24, 1)
TICK_S = 0.1
FAST_STEP_MS = 1000  # node time per tick at rate 0
CLIENT_NODES = 50  # nodes per MQTT connection
FROZEN_MS = 4 * 3600 * 1000
SPIKE_K = 8.0
OUT_OF_RANGE_C = -60.0

VALUE_INJECTIONS = ("spike", "frozen", "out_of_range")
BAD_TRAFFIC = ("bad_mac", "replay", "unknown_node", "malformed")  # each the verifier's reason
INJECTIONS = VALUE_INJECTIONS + BAD_TRAFFIC

_RECORD_FIELDS = {
    "climate": ("temperature_c", "relative_humidity_pct", "status"),
    "accel": ("n_samples", "first_index", "encoding", "odr_hz", "range_g", "flags", "age_ms"),
    "time": ("utc_ms",),
    "log": ("text",),
}


def parse_injections(text):
    """{name: count} from "spike,frozen=2,bad_mac=5"; UsageError naming a bad item."""
    out = {}
    for item in (text or "").split(","):
        item = item.strip()
        if not item:
            continue
        name, _, count = item.partition("=")
        if name not in INJECTIONS:
            raise UsageError("--inject %s: one of %s" % (name, ", ".join(INJECTIONS)))
        if count and not (count.isdigit() and int(count) > 0):
            raise UsageError("--inject %s: the count must be a whole number above 0" % item)
        out[name] = out.get(name, 0) + (int(count) if count else 1)
    return out


class SignedBuilder(TrafficBuilder):
    """A TrafficBuilder whose frames are signed (SPEC.md §9) with the node's key, boot and
    32-bit sequence: the u16 in the header, the high half in the trailer, which grows
    (modulo 2^16) when the u16 wraps, as the firmware's Uplink.put counts it."""

    def __init__(self, node_id, signer, boot, first_seq=0):
        super().__init__(node_id, seq=first_seq & 0xFFFF)
        self.signer = signer
        self.boot = boot & 0xFFFFFFFF
        self.seq_hi = (first_seq >> 16) & 0xFFFF

    def _emit(self, name, msg_type, body, time_ms, fields, seq):
        seq = self.seq
        raw = frame.build(msg_type, self.node_id, seq, time_ms & 0xFFFFFFFF, body)
        wire = frame.to_wire(auth.sign(raw, self.signer, self.boot, self.seq_hi))
        sent = Sent(name, self.node_id, (self.seq_hi << 16) | seq, time_ms & 0xFFFFFFFF, fields, wire)
        self.seq = (seq + 1) & 0xFFFF
        if self.seq == 0:
            self.seq_hi = (self.seq_hi + 1) & 0xFFFF
        self.sent.append(sent)
        return wire


class SimNode:
    """One simulated node: its schedule, signals and signed frames.

    `run_until(t)` makes every frame due up to node time t and returns their
    Sent records (seq there is the 32-bit sequence), in send order.
    """

    def __init__(self, node_id, kind, signer, boot, phase_ms, utc0_ms, seed, first_seq=0,
                 odr_hz=ODR_HZ, block_samples=BLOCK_SAMPLES, calibration_id=0, mpy=MPY_VERSION):
        self.node_id = node_id
        self.kind = kind
        self.phase_ms = phase_ms  # sim time of its boot
        self.utc0_ms = utc0_ms  # UTC at sim time 0
        self.builder = SignedBuilder(node_id, signer, boot, first_seq)
        self.rng = np.random.default_rng([seed, node_id])
        self.odr_hz = odr_hz
        self.block_samples = block_samples
        self.calibration_id = calibration_id
        self.mpy = mpy
        self.booted = False
        self.time_known = False
        self.held = []  # frames a climate node lingers on (uplink.LINGER_MS)
        self.held_since = 0
        self.next_climate = self.next_status = BOOT_MS
        self.next_sntp = BOOT_MS + SNTP_AFTER_MS
        self.index = 0  # accel samples so far
        self.window = []
        self.window_first = 0
        self.readings = 0
        self.temp_base = 6.0 + 14.0 * self.rng.random()
        self.rh_base = 55.0 + 20.0 * self.rng.random()
        self.walk_t = 0.0
        self.walk_rh = 0.0
        self.injected = {}  # climate reading number -> "spike" / "out_of_range"
        self.frozen = None  # (first reading, first node ms after)
        self.frozen_value = None
        self.last_reading = (None, None)  # the last reading not injected
        self.thawed = False  # the flat run is over
        self.marks = {}  # id(Sent) -> injection name, for the record
        self.last_good = None  # a climate frame's Sent already made: a forger copies it
        self.replayable = None  # (Sent, wire) of a frame published, the last record's for a bundle

    def node_ms(self, sim_ms):
        return sim_ms - self.phase_ms + BOOT_MS

    def utc_ms(self, node_ms):
        return self.utc0_ms + self.phase_ms + node_ms - BOOT_MS

    def sample_ms(self, index):
        return BOOT_MS + index * 1000000 // int(self.odr_hz * 1000 + 0.5)

    def climate_times(self, sim_end_ms):
        """How many climate readings this node makes before sim time sim_end_ms."""
        span = self.node_ms(sim_end_ms) - BOOT_MS
        return 0 if span <= 0 else (span - 1) // (CLIMATE_PERIOD_S * 1000) + 1

    def run_until(self, sim_ms):
        t_end = self.node_ms(sim_ms)
        b = self.builder
        if t_end < BOOT_MS:
            return []
        if not self.booted:
            self.booted = True
            b.log(BOOT_MS, "boot: citynode %d.%d.%d, reset cause power-on" % APP_VERSION)
        bridge = self.kind == "bridge"
        while True:
            due = [(self.next_climate, 0), (self.next_status, 3), (self.next_sntp, 4)]
            if bridge:
                due.append((self.sample_ms(self.index + self.block_samples), 1))
            t, what = min(due)
            if t > t_end:
                break
            if what == 0:
                self._climate(t)
                self.next_climate = t + CLIMATE_PERIOD_S * 1000
            elif what == 1:
                self._block(t)
            elif what == 3:
                self._status(t)
                self.next_status = t + STATUS_PERIOD_S * 1000
            else:
                self.time_known = True
                b.time_anchor(t, self.utc_ms(t))
                self.next_sntp = t + SNTP_AGAIN_MS
        out = b.sent
        b.sent = []
        return out

    def _climate(self, t):
        k = self.readings
        self.readings += 1
        hours = (self.utc_ms(t) / 3600000.0) % 24
        self.walk_t += self.rng.normal(0.0, 0.03)
        self.walk_rh += self.rng.normal(0.0, 0.1)
        diurnal = 4.0 * np.sin(2 * np.pi * (hours - 9.0) / 24.0)
        temp = round(self.temp_base + diurnal + self.walk_t, 2)
        rh = round(min(100.0, max(0.0, self.rh_base - 2.5 * diurnal + self.walk_rh)), 2)
        mark = self.injected.get(k)
        if self.frozen is not None and k >= self.frozen[0] and t < self.frozen[1]:
            if self.frozen_value is None:
                self.frozen_value = self._stuck_at(temp, rh)
            temp, rh = self.frozen_value
            mark = "frozen"
        elif self.frozen_value is not None and not self.thawed:
            self.thawed = True  # the first reading after the flat run: it must end it
            temp, rh = self._moved_from(self.frozen_value, temp, rh)
        elif mark == "spike":
            temp = round(temp + SPIKE_K, 2)
        elif mark == "out_of_range":
            temp = OUT_OF_RANGE_C
        self.builder.climate(t, temp, rh, status=messages.CLIMATE_CALIBRATED)
        sent = self.builder.sent[-1]
        if mark:
            self.marks[id(sent)] = mark
        else:
            self.last_reading = (temp, rh)
        self.last_good = sent

    def _stuck_at(self, temp, rh):
        """The value a frozen sensor repeats: this reading, moved by 0.01 where it equals the
        reading before, so the flat run starts exactly where it was injected."""
        return self._moved_from(self.last_reading, temp, rh)

    @staticmethod
    def _moved_from(other, temp, rh):
        """(temp, rh), each moved by 0.01 where it equals other's."""
        if temp == other[0]:
            temp = round(temp + 0.01, 2)
        if rh == other[1]:
            rh = round(rh - 0.01 if rh >= 100.0 else rh + 0.01, 2)
        return temp, rh

    def _block(self, t):
        n = self.block_samples
        first = self.index
        block = quiet_accel(n, self.rng, odr_hz=self.odr_hz, range_g=RANGE_G, t0_s=first / self.odr_hz)
        self.builder.accel_block(t, block, odr_hz=self.odr_hz, range_g=RANGE_G, flags=messages.ACCEL_CALIBRATED,
                                 first_index=first & 0xFFFFFFFF, age_ms=min(0xFFFF, t - self.sample_ms(first)))
        if not self.window:
            self.window_first = first
        self.window.append(block)
        self.index = first + n
        if self.index - self.window_first >= FEATURE_WINDOW_S * self.odr_hz:
            samples = np.concatenate(self.window)
            fields = features_of(samples, self.odr_hz, RANGE_G)
            fields["flags"] = messages.ACCEL_CALIBRATED
            fields["age_ms"] = t - self.sample_ms(self.window_first)
            self.builder.features(t, **fields)
            self.window = []

    def _status(self, t):
        bridge = self.kind == "bridge"
        sensors = messages.SENSOR_CLIMATE | (messages.SENSOR_ACCEL if bridge else 0)
        flags = (messages.STATUS_STREAMING if bridge else 0) | (messages.STATUS_TIME_ANCHORED if self.time_known else 0)
        self.builder.status(
            t, uptime_s=(t - BOOT_MS) // 1000, free_heap=int(70000 + self.rng.integers(0, 30000)),
            mpy_major=self.mpy[0], mpy_minor=self.mpy[1], mpy_patch=self.mpy[2],
            app_major=APP_VERSION[0], app_minor=APP_VERSION[1], app_patch=APP_VERSION[2],
            protocol_minor=PROTOCOL_MINOR, sensors_fitted=sensors, sensors_ok=sensors, flags=flags,
            supply_v=round(4.95 + 0.1 * self.rng.random(), 3), calibration_id=self.calibration_id,
        )


def record_row(sent, boot, utc_ms, injected=None, rejected=None, topic_node=None):
    """One line of the record: a frame as published (or a piece of bad traffic)."""
    row = {"node_id": sent.node_id if topic_node is None else topic_node, "boot": boot, "seq": sent.seq,
           "type": sent.name, "time_ms": sent.time_ms, "utc_ms": utc_ms, "injected": injected,
           "rejected": rejected}
    names = _RECORD_FIELDS.get(sent.name)
    fields = sent.fields
    for name in names if names is not None else fields:
        if name != "samples":
            row[name] = fields.get(name)
    if sent.name == "accel":
        row["n_samples"] = len(fields["samples"]) // 3
    return row


def bundle_wires(builder, sents):
    """The wire forms of a lingering node's frames as the firmware's uplink sends them: records
    of bundles (bundle.Writer, signed as auth.sign_writer signs the node's), a new bundle when
    one is full; a frame that is never bundled closes the bundle and goes alone. Also
    (Sent of the last record, its bundle's wire) of the last bundle, or None."""
    w = bundle.Writer(builder.node_id, BUNDLE_BYTES)
    out = []
    last = [None, None]  # the last record's Sent, the last bundle's

    def close():
        if w.count:
            n = auth.sign_writer(w, w.finish(), builder.signer, builder.boot, last[0].seq >> 16)
            wire = bytearray(cobs.max_encoded_length(n) + 1)
            out.append(bytes(wire[: w.encode_raw_into(n, wire, 0)]))
            last[1] = (last[0], out[-1])
            w.clear()

    for sent in sents:
        raw = auth.unsign(cobs.decode(sent.wire[:-1]))
        length = len(raw) - frame.OVERHEAD
        if not bundle.bundled(raw[0] & 0x1F, length):
            close()
            out.append(sent.wire)
            continue
        if not w.add(raw, length):
            close()
            w.add(raw, length)
        last[0] = sent
    close()
    return out, last[1]


def batches(wires, limit=MAX_MESSAGE):
    """Whole frames into messages of at most `limit` bytes (a longer frame alone)."""
    out = []
    cur = bytearray()
    for w in wires:
        if cur and len(cur) + len(w) > limit:
            out.append(bytes(cur))
            cur = bytearray()
        cur += w
    if cur:
        out.append(bytes(cur))
    return out


class Record:
    """What was published: JSONL written as it goes, or Parquet (by the name) written at close."""

    def __init__(self, path):
        self.path = str(path)
        self.parquet = self.path.endswith(".parquet")
        self.rows = []
        try:
            self._f = None if self.parquet else open(self.path, "w")
            if self.parquet:
                open(self.path, "wb").close()
        except OSError as exc:
            raise UsageError("--record %s: %s" % (self.path, exc.strerror or exc)) from None

    def add(self, row):
        if self.parquet:
            self.rows.append(row)
        else:
            self._f.write(json.dumps(row) + "\n")

    def close(self):
        if self.parquet:
            import pyarrow as pa
            import pyarrow.parquet as pq

            names = {}
            for row in self.rows:  # every row's keys: a frame of each kind has its own values
                names.update(dict.fromkeys(row))
            pq.write_table(pa.table({k: [row.get(k) for row in self.rows] for k in names}), self.path)
        elif self._f is not None:
            self._f.close()
            self._f = None


class FleetSim:
    """The nodes of a simulated fleet and the traffic they publish."""

    def __init__(self, keystore, climate_nodes, bridge_nodes, duration_s=None, first_node=1, seed=0,
                 prefix=topics.PREFIX, injections=None, boot=None, utc0_ms=None, first_seq=0,
                 odr_hz=ODR_HZ, block_samples=BLOCK_SAMPLES, json_peer=False):
        count = climate_nodes + bridge_nodes
        if climate_nodes < 0 or bridge_nodes < 0 or count == 0:
            raise UsageError("give at least one node (--climate-nodes, --bridge-nodes)")
        if not 0 <= first_node or first_node + count - 1 > 0xFFFF:
            raise UsageError("node ids %d..%d outside 0..65535" % (first_node, first_node + count - 1))
        if duration_s is not None and not duration_s > 0:
            raise UsageError("--duration %g: must be more than 0 seconds" % duration_s)
        self.prefix = prefix
        self.duration_ms = None if duration_s is None else int(duration_s * 1000)
        self.seed = seed
        self.json_peer = json_peer
        self.rng = np.random.default_rng([seed, 0xF1EE7])
        if boot is None:  # grows from run to run, as a node's boot counter does
            boot = int(time.time()) - 1577836800
        if utc0_ms is None:
            utc0_ms = int(time.time() * 1000)
        self.utc0_ms = utc0_ms
        ids = list(range(first_node, first_node + count))
        missing = [n for n in ids if n not in keystore]
        if missing:
            keystore.new_keys(missing)
        spread = STATUS_PERIOD_S * 1000
        if self.duration_ms is not None:
            spread = max(1, min(spread, self.duration_ms // 4))
        phases = self.rng.integers(0, spread, count)
        self.nodes = []
        for i, node_id in enumerate(ids):
            kind = "climate" if i < climate_nodes else "bridge"
            self.nodes.append(SimNode(node_id, kind, keystore.signer(node_id), boot, int(phases[i]), utc0_ms,
                                      seed, first_seq=first_seq, odr_hz=odr_hz, block_samples=block_samples,
                                      calibration_id=0x10000 + node_id))
        self.keystore = keystore
        self.bad = self._plan(injections or {})
        self.stats = {"nodes": count, "messages": 0, "frames": 0, "bytes": 0, "samples": 0, "rejects_injected": 0}

    def _plan(self, injections):
        """Put the value injections on distinct nodes; the bad traffic at times through the run."""
        wanted = sum(injections.get(k, 0) for k in VALUE_INJECTIONS)
        if wanted > len(self.nodes):
            raise UsageError("--inject: %d value injections but only %d nodes" % (wanted, len(self.nodes)))
        bad = [k for k in BAD_TRAFFIC if injections.get(k)]
        if (wanted or bad) and self.duration_ms is None:
            raise UsageError("--inject needs --duration (injections are placed within the run)")
        order = sorted(self.nodes, key=lambda n: (n.kind != "climate", n.node_id))
        pick = iter(order)
        for name in VALUE_INJECTIONS:
            for _ in range(injections.get(name, 0)):
                node = next(pick)
                n = node.climate_times(self.duration_ms)
                if name == "frozen":
                    start = min(2, max(0, n - 2))
                    node.frozen = (start, BOOT_MS + start * CLIMATE_PERIOD_S * 1000 + FROZEN_MS)
                    continue
                if n < 3:
                    raise UsageError("--inject %s: --duration too short for a reading with neighbours" % name)
                node.injected[int(self.rng.integers(1, n - 1))] = name
        plan = []
        for name in bad:
            count = injections[name]
            for i in range(count):
                at = int(self.duration_ms * (0.4 + 0.5 * (i + 0.5) / count))
                plan.append((at, name, i))
        plan.sort()
        return plan

    def _slot(self, node):
        return (node.node_id - self.nodes[0].node_id) // CLIENT_NODES

    def run(self, publisher, rate=1.0, record=None, stop=None):
        """Publish until the duration (node time) is over, or stop() is true, or Ctrl-C.
        Returns the summary: nodes, messages, frames, bytes, seconds (wall), frames_per_s, ..."""
        started = time.monotonic()
        sim_ms = 0
        end = self.duration_ms
        online = set()
        pending_bad = list(self.bad)
        try:
            while end is None or sim_ms < end:
                if stop is not None and stop():
                    break
                if rate:
                    target = int((time.monotonic() - started) * rate * 1000)
                    if target <= sim_ms:
                        time.sleep(TICK_S)
                        continue
                else:
                    target = sim_ms + FAST_STEP_MS
                if end is not None:
                    target = min(target, end)
                for node in self.nodes:
                    sents = node.run_until(target)
                    if node.node_id not in online and node.booted:
                        online.add(node.node_id)
                        if not self.json_peer:
                            publisher.publish(self._slot(node), topics.topic(node.node_id, "status", self.prefix),
                                              b"online", retain=True)
                            self.stats["messages"] += 1
                    if sents:
                        self._hold_or_publish(publisher, node, sents, record, target)
                    elif node.held and target - node.held_since >= LINGER_MS:
                        self._hold_or_publish(publisher, node, [], record, target)
                while pending_bad and pending_bad[0][0] <= target:
                    _at, name, i = pending_bad.pop(0)
                    self._bad_traffic(publisher, name, i, record)
                sim_ms = target
        except KeyboardInterrupt:
            pass
        for node in self.nodes:
            if node.held:
                self._publish_node(publisher, node, node.held, record)
                node.held = []
        drained = publisher.drain()
        seconds = max(1e-9, time.monotonic() - started)
        s = self.stats
        s.update(node_seconds=round(sim_ms / 1000.0, 3), seconds=round(seconds, 3),
                 frames_per_s=round(s["frames"] / seconds, 1), samples_per_s=round(s["samples"] / seconds, 1),
                 speed=round(sim_ms / 1000.0 / seconds, 3), acknowledged=drained)
        return s

    def _hold_or_publish(self, publisher, node, sents, record, now_ms):
        if node.kind == "bridge":
            self._publish_node(publisher, node, sents, record)
            return
        if sents and not node.held:
            node.held_since = now_ms  # run time; a node's clock runs at the same pace
        node.held.extend(sents)
        if now_ms - node.held_since >= LINGER_MS:
            self._publish_node(publisher, node, node.held, record)
            node.held = []

    def _publish_node(self, publisher, node, sents, record):
        boot = node.builder.boot
        s = self.stats
        for sent in sents:
            if sent.name == "accel":
                s["samples"] += len(sent.fields["samples"]) // 3
            if record is not None:
                record.add(record_row(sent, boot, node.utc_ms(sent.time_ms), injected=node.marks.pop(id(sent), None)))
            else:
                node.marks.pop(id(sent), None)
        s["frames"] += len(sents)
        slot = self._slot(node)
        if self.json_peer:
            for topic, payload in json_messages(node, sents):
                publisher.publish(slot, topic, payload)
                s["messages"] += 1
                s["bytes"] += len(payload)
            return
        topic = topics.topic(node.node_id, "frames", self.prefix)
        if node.kind == "bridge":
            wires = [x.wire for x in sents]
            node.replayable = next(((x, x.wire) for x in reversed(sents) if x.name == "climate"), node.replayable)
        else:
            wires, last = bundle_wires(node.builder, sents)
            node.replayable = last or node.replayable
        for message in batches(wires):
            publisher.publish(slot, topic, message)
            s["messages"] += 1
            s["bytes"] += len(message)

    def _bad_traffic(self, publisher, name, i, record):
        """One piece of the traffic the collectors must reject, recorded with the verifier's reason."""
        rng = self.rng
        s = self.stats
        if self.json_peer:
            return
        candidates = [n for n in self.nodes if n.last_good is not None and n.replayable is not None]
        if not candidates and name != "unknown_node":
            return
        node = candidates[int(rng.integers(0, len(candidates)))] if candidates else None
        topic_node = node.node_id if node is not None else None
        if name == "replay":
            sent, wire = node.replayable
            row = record_row(sent, node.builder.boot, node.utc_ms(sent.time_ms), name, name)
        elif name == "bad_mac":
            b = node.builder
            forger = SignedBuilder(node.node_id, auth.Signer(secrets.token_bytes(auth.KEY_SIZE)), b.boot,
                                   (b.seq_hi << 16) | b.seq)
            fields = node.last_good.fields
            wire = forger.climate(node.last_good.time_ms, fields["temperature_c"] + 10.0,
                                  fields["relative_humidity_pct"], fields["status"])
            row = record_row(forger.sent[-1], b.boot, None, name, name)
        elif name == "unknown_node":
            topic_node = self._unknown_id(i)
            stranger = SignedBuilder(topic_node, auth.Signer(secrets.token_bytes(auth.KEY_SIZE)), 1, i)
            wire = stranger.climate(BOOT_MS, 20.0, 50.0, messages.CLIMATE_CALIBRATED)
            row = record_row(stranger.sent[-1], 1, None, name, name)
        else:  # malformed: bytes that are no frame (the CRC cannot match)
            junk = bytes(int(v) for v in rng.integers(1, 256, 24))
            wire = junk + b"\x00"
            row = {"node_id": topic_node, "boot": None, "seq": None, "type": None, "time_ms": None,
                   "utc_ms": None, "injected": name, "rejected": name}
        publisher.publish(0, topics.topic(topic_node, "frames", self.prefix), wire)
        s["messages"] += 1
        s["bytes"] += len(wire)
        s["rejects_injected"] += 1
        if record is not None:
            record.add(row)

    def _unknown_id(self, i):
        """A node id with no key and outside the fleet."""
        last = self.nodes[-1].node_id
        taken = 0
        for node_id in list(range(last + 1, 0x10000)) + list(range(0, self.nodes[0].node_id)):
            if node_id not in self.keystore:
                if taken == i:
                    return node_id
                taken += 1
        raise UsageError("no node id left without a key for --inject unknown_node")


# -- the JSON peer: the same readings as typical city IoT scripts publish them --------


def json_topic(node_id, sensor):
    return "node-%d/sensor/%s/state" % (node_id, sensor)


def json_messages(node, sents):
    """(topic, payload) pairs: one JSON message per reading, one per accel sample (in g)."""
    out = []
    per_g = 32768.0 / RANGE_G
    for sent in sents:
        f = sent.fields
        utc = node.utc_ms(sent.time_ms)
        if sent.name == "climate":
            out.append((json_topic(node.node_id, "temperature"),
                        json.dumps({"time": utc, "value": f["temperature_c"]}).encode()))
            out.append((json_topic(node.node_id, "humidity"),
                        json.dumps({"time": utc, "value": f["relative_humidity_pct"]}).encode()))
        elif sent.name == "accel":
            samples = f["samples"]
            t0 = node.utc_ms(node.sample_ms(f["first_index"]))
            for k in range(len(samples) // 3):
                x, y, z = samples[3 * k : 3 * k + 3]
                out.append((json_topic(node.node_id, "accel"), json.dumps({
                    "time": t0 + k * 1000.0 / node.odr_hz, "x": round(x / per_g, 6), "y": round(y / per_g, 6),
                    "z": round(z / per_g, 6)}).encode()))
    return out
