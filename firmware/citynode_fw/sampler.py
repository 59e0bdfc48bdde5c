"""Sampling: climate on a schedule, the accelerometer in FIFO bursts, blocks framed.

Climate: start() every climate_period_s (the first right after boot), read()
CONVERSION_MS after the command left (not after the pass began: the bus may
have been held) on a later pass of the loop, so the accelerometer is never
held up by the conversion. A read the part NACKs (still measuring) is tried
again 2 ms later, until the driver's bound ends it in SensorTimeout. Calibration (unless in raw mode), then a CLIMATE
frame stamped with the node time of start(). A failed reading sends a CLIMATE
frame with CLIMATE_SENSOR_ERROR (and CLIMATE_CRC_ERROR for a bad CRC) and
counts it; the node goes on.

Accelerometer: bursts of up to FIFO_DEPTH samples with driver.read_fifo_into,
about every half FIFO, into a burst buffer made once; each burst is copied
(slice assignment from one of FIFO_DEPTH+1 views made once) to the block's
block buffer (`_blk`). A full block is calibrated there in place (integers,
see calibration.py), added to the feature window, then copied (raw-int16) or
packed by codec.DeltaEncoder into the frame's payload. The frame writer is
the link's when big enough: replies and logs use its payload between blocks,
so samples never wait in it.

Timing: `index` counts samples since the stream started, modulo 2^30 like node
time (nodetime.py), with its wraps in `index_wraps`; the wire's u32
`first_index` is packed as two u16 halves from the two. A block's time is the
node ms of its first sample, estimated as stream start + index / ODR, kept as
an integer ms plus a remainder (in 1/den ms: 1000 / ODR = num / den in lowest
terms) so nothing drifts or allocates.

FIFO overflow: samples the part dropped must not shift the times of those after
them. When a read finds the overrun flag, the samples lost are estimated from
the node clock (read afresh: a blocked send or bus may have held the poll up):
ODR x (ms since the FIFO was last emptied) - what was read since - the FIFO's
depth (what it holds now). The samples read before the overflow
go out at once as a short block; `index` and the block time then jump by the
estimate, and the next block carries ACCEL_OVERRUN | ACCEL_GAP_ESTIMATED. The
feature window in progress starts again after it. A stall of more than
MAX_GAP_MS restarts the stream instead (first_index from 0, time from now).

Steady state allocates nothing (tests/firmware/test_sampler.py and
test_clock_wrap.py measure it), past the 2^30 wraps too.
"""

import struct

from citynode_protocol import codec, wire
from citynode_protocol.frame import FrameWriter
from citynode_fw.config import odr_mhz, part_rate
from citynode_fw.drivers.errors import SensorCRCError, SensorTimeout
from citynode_fw.nodetime import MASK, add, diff

ACCEL_HEAD = 16
_ACCEL_FORMAT = "<BBBBIHHHH"  # wire.FORMATS[wire.ACCEL], first_index as two u16
_CLIMATE_FORMAT = "<hHB"
RETRY_MS = 1000  # back-off after a failed accelerometer read
MIN_READ_MS = 5
MAX_GAP_MS = 60000  # the longest FIFO overflow bridged by an estimate (keeps ODR x ms a small int)


def _age(now, t):
    """ms from a first sample to the frame's time, as the wire's u16."""
    age = diff(now, t)
    if age < 0:
        return 0
    return age if age < 0xFFFF else 0xFFFF


def nearest(value, choices):
    best = choices[0]
    for c in choices:
        if abs(c - value) < abs(best - value):
            best = c
    return best


class Sampler:
    def __init__(self, link, counters, features, log):
        self.link = link
        self.counters = counters
        self.features = features
        self.log = log  # log(level, text)
        self.climate = None
        self.accel = None
        self.calib = None
        self.raw_mode = False
        self.climate_ok = False
        self.accel_ok = False
        self.streaming = False
        self.climate_period_ms = 60000
        self._climate_due = None  # at once, on the first configure()
        self._climate_pending = False
        self._climate_t = 0
        self.last_climate = None  # (t_centi, rh_centi, status)
        self.mode = "raw"
        self.encoding = "auto"
        self.odr_mhz = 0
        self.range_g = 2
        self.block_n = 0
        self.index = 0
        self.index_wraps = 0
        self.blocks = 0
        self.window_s = 10
        self._writer = None
        self._blk = None
        self._fill = 0
        self._flags = 0
        self._ovr_seen = 0
        self._empty_ms = 0  # node ms when the FIFO was last found empty (or overflowed)
        self._since = 0  # samples read since then (minus what the FIFO held then)
        self._next_read = 0
        self._read_ms = 80
        self._t_ms = 0
        self._t_rem = 0
        self._num = 5  # 1000 / ODR = num / den ms
        self._den = 1
        self._encoder = None
        self._now = 0  # the time the last poll ended with

    # -- set-up ------------------------------------------------------------------

    def set_parts(self, climate, accel):
        self.climate = climate
        self.accel = accel
        self.climate_ok = climate is not None
        self.accel_ok = accel is not None

    def configure(self, cfg, calib, now):
        """Apply config values (a dict) and a Calibration (or None).

        Returns notes (text) about adjustments, e.g. an ODR the part lacks.
        Allocates the block buffers: call at start-up and on changes only.
        """
        notes = []
        self.climate_period_ms = cfg["climate_period_s"] * 1000
        due = add(now, self.climate_period_ms)
        if self._climate_due is None:
            self._climate_due = now
        elif diff(self._climate_due, due) > 0:
            self._climate_due = due  # a shorter period applies at once
        self.mode = cfg["mode"]
        self.encoding = cfg["accel_encoding"]
        self.window_s = cfg["feature_window_s"]
        self.calib = calib
        drv = self.accel
        was = self.streaming
        if was:
            self.stop_stream()
        odr = odr_mhz(cfg["accel_odr_hz"])
        rng = cfg["accel_range_g"]
        if drv is not None:
            got = part_rate(cfg["accel_odr_hz"], drv.ODRS_MHZ)
            if got != odr:
                notes.append("%s has no %d mHz ODR: using %d mHz" % (drv.PART, odr, got))
                odr = got
            if rng not in drv.RANGES_G:
                got = nearest(rng, drv.RANGES_G)
                notes.append("%s has no +-%d g range: using +-%d g" % (drv.PART, rng, got))
                rng = got
        self.odr_mhz = odr
        self.range_g = rng
        g = 1000000
        r = odr
        while r:
            g, r = r, g % r
        self._num = 1000000 // g
        self._den = odr // g
        n = cfg["accel_block_samples"]
        if n != self.block_n or self._writer is None:
            self.block_n = n
            size = ACCEL_HEAD + codec.raw_size(n)
            # a frame is built and written whole, so the link's writer serves
            # blocks too when it is big enough (the default block is)
            w = self.link.writer
            self._writer = w if w.max_payload >= size else FrameWriter(
                self.link.node_id, size, trailer=wire.SIGNED_TRAILER)
            self._blk = bytearray(codec.raw_size(n))
            self._encoder = codec.DeltaEncoder(n)
        depth = drv.FIFO_DEPTH if drv is not None else 32
        self._burst = bytearray(6 * depth)
        bv = memoryview(self._burst)
        self._burst_views = [bv[: 6 * k] for k in range(depth + 1)]
        self._depth = depth
        read_ms = (depth // 2) * 1000000 // odr if odr else 100
        self._read_ms = read_ms if read_ms > MIN_READ_MS else MIN_READ_MS
        self.apply_calibration(calib)
        if was:
            self.start_stream(now)
        return notes

    def apply_calibration(self, calib):
        """Use a new Calibration (or None) from the next block on."""
        self.calib = calib
        acal = calib.accel if calib is not None else None
        if acal is not None:
            acal.prepare(self.range_g)
        # ACCEL and FEATURES flags are separate bit sets: 0x02 means raw-data
        # mode in one and tilt-relative-to-mount in the other
        accel_flags = 0
        feature_flags = 0
        tilt = (0.0, 0.0)
        if self.raw_mode:
            accel_flags = wire.ACCEL_UNCALIBRATED_MODE
        elif acal is not None:
            accel_flags = wire.ACCEL_CALIBRATED
            feature_flags = wire.ACCEL_CALIBRATED
            if acal.relative:
                feature_flags |= wire.FEATURES_TILT_RELATIVE
                tilt = acal.tilt_zero
        self._cal_flags = accel_flags
        self._feature_flags = feature_flags
        self._tilt = tilt
        self.features.set_flags(feature_flags, tilt)

    def set_calibration(self, calib, now):
        """A new calibration from now on; a running stream restarts its window."""
        self.apply_calibration(calib)
        if self.streaming:
            self.stop_stream()
            self.start_stream(now)

    def set_raw_mode(self, on, now):
        self.raw_mode = on
        self.apply_calibration(self.calib)
        if self.streaming:
            # a window must not mix calibrated and raw samples
            self.stop_stream()
            self.start_stream(now)

    # -- stream --------------------------------------------------------------------

    def start_stream(self, now):
        drv = self.accel
        if drv is None:
            return False
        try:
            drv.configure(self.odr_mhz, self.range_g)
            drv.start()
        except OSError as exc:
            self._count(exc)
            self.accel_ok = False
            self.log(3, "accel start failed: %s" % exc)
            return False
        try:
            self.features.configure(self.odr_mhz, self.window_s, self.range_g, self._tilt, self._feature_flags)
        except ValueError as exc:
            self.log(2, "features off: %s" % exc)
        self.accel_ok = True
        self.streaming = True
        self.index = 0
        self.index_wraps = 0
        self._fill = 0
        self._flags = 0
        self._ovr_seen = drv.overruns
        self._empty_ms = now
        self._since = 0
        self._t_ms = now
        self._t_rem = 0
        self._next_read = add(now, self._read_ms)
        return True

    def stop_stream(self):
        self.streaming = False
        if self.accel is not None:
            try:
                self.accel.stop()
            except OSError as exc:
                self._count(exc)

    # -- the loop's work -------------------------------------------------------------

    def poll(self, now):
        """Do what is due at node time now (ms); returns ms until something is next due."""
        wait = 1000
        if self.climate is not None:
            wait = self._poll_climate(now)
        if self.streaming:
            w = self._poll_accel(now)
            now = self._now  # later, if an overflow read the clock again
            if w < wait:
                wait = w
        f = self.features
        if f.busy:
            if f.step():
                self._send_features(now)
            wait = 0
        return wait

    def _poll_climate(self, now):
        drv = self.climate
        if self._climate_pending:
            since = diff(now, self._climate_t)
            if since < drv.CONVERSION_MS:
                return drv.CONVERSION_MS - since
            if self._read_climate(now, since):
                return 2  # NACKed: the part still measures; again in the drivers' _READ_RETRY_MS
        due = self._climate_due
        if diff(now, due) >= 0:
            try:
                drv.start()
                self._climate_pending = True
                self._climate_t = self._clock(now)  # the part measures from the command on, not from the pass's start
            except OSError as exc:
                self._climate_failed(exc, now)
            self._climate_due = add(now, self.climate_period_ms)
            return drv.CONVERSION_MS
        return diff(due, now)

    def _read_climate(self, now, since):
        """Read the measurement started since ms ago; True while the part still measures."""
        t = now  # frames carry the time they are sent: never earlier than the last
        try:
            r = self.climate.read(since)
        except OSError as exc:
            self._climate_pending = False
            self._climate_failed(exc, t)
            return False
        if r is None:
            return True
        self._climate_pending = False
        temp, rh = r
        status = 0
        cal = self.calib.climate if self.calib is not None and not self.raw_mode else None
        if cal is not None:
            temp = cal.temperature(temp)
            rh = cal.humidity(rh)
            status |= wire.CLIMATE_CALIBRATED
        if rh < 0:
            rh = 0
            status |= wire.CLIMATE_CLAMPED
        elif rh > 10000:
            rh = 10000
            status |= wire.CLIMATE_CLAMPED
        if temp > 32767:
            temp = 32767
        elif temp < -32768:
            temp = -32768
        if not self.climate_ok:
            self.log(1, "%s answers again" % self.climate.PART)
        self.climate_ok = True
        self._send_climate(temp, rh, status, t)

    def _climate_failed(self, exc, t):
        status = wire.CLIMATE_SENSOR_ERROR
        if isinstance(exc, SensorCRCError):
            status |= wire.CLIMATE_CRC_ERROR
        self._count(exc)
        if self.climate_ok:
            self.log(3, "climate reading failed: %s" % exc)
        self.climate_ok = False
        self._send_climate(0, 0, status, t)

    def _send_climate(self, temp, rh, status, t):
        self.last_climate = (temp, rh, status)
        w = self.link.writer
        struct.pack_into(_CLIMATE_FORMAT, w.payload, 0, temp, rh, status)
        self.link.send(w, wire.CLIMATE, 5, t)

    def _count(self, exc):
        c = self.counters
        if isinstance(exc, SensorCRCError):
            c.crc_errors += 1
        elif isinstance(exc, SensorTimeout):
            c.timeouts += 1
        else:
            c.sensor_errors += 1

    def _clock(self, now):
        """The node clock now: the poll's time may be old after a long bus or link wait."""
        b = self.link.board
        return now if b is None else b.ms()

    def _poll_accel(self, now):
        self._now = now
        due = self._next_read
        if diff(now, due) < 0:
            return diff(due, now)
        drv = self.accel
        burst = self._burst
        views = self._burst_views
        stage = self._blk
        depth = self._depth
        n = self.block_n
        rounds = 0
        while rounds < 8:
            rounds += 1
            want = n - self._fill
            if want > depth:
                want = depth
            try:
                got = drv.read_fifo_into(burst, want)
            except OSError as exc:
                self._count(exc)
                if self.accel_ok:
                    self.log(3, "accel read failed: %s" % exc)
                self.accel_ok = False
                self._next_read = add(now, RETRY_MS)
                return RETRY_MS
            if not self.accel_ok:
                self.log(1, "%s answers again" % drv.PART)
                self.accel_ok = True
            if drv.overruns != self._ovr_seen:
                now = self._clock(now)
                self._now = now
                if not self._overflowed(now):
                    return 0  # the stream restarted
            if got <= 0:
                self._empty_ms = self._clock(now)
                self._since = 0
                break
            at = 6 * self._fill
            stage[at : at + 6 * got] = views[got]
            self._fill += got
            self._since += got
            if self._fill >= n:
                self._block_done(now, n)
            elif got < want:
                self._empty_ms = self._clock(now)
                self._since = 0
                break
        self._next_read = add(now, self._read_ms)
        return self._read_ms

    def _overflowed(self, now):
        """The part's FIFO overflowed before the samples just read (now: the clock
        after that read): bridge the gap. False if it lasted too long to estimate
        and the stream was restarted."""
        ovr = self.accel.overruns
        self.counters.fifo_overruns += ovr - self._ovr_seen
        self._ovr_seen = ovr
        ms = diff(now, self._empty_ms)
        if ms > MAX_GAP_MS:
            self.log(2, "accel FIFO overflowed for %d ms: stream restarted" % ms)
            if self._fill:
                self._block_done(now, self._fill)  # the samples before it
            self.stop_stream()
            self.start_stream(now)
            self._flags = wire.ACCEL_OVERRUN
            return False
        # samples due in ms: ODR in whole Hz and the rest, so no product reaches 2^30
        odr = self.odr_mhz
        due = (ms * (odr // 1000) + ms * (odr % 1000) // 1000) // 1000
        lost = due - self._since - self._depth
        self._empty_ms = now
        self._since = -self._depth  # the FIFO is full now: those samples come before `now`
        if lost <= 0:
            self._flags |= wire.ACCEL_OVERRUN  # a full FIFO, nothing dropped (the ADXL345 flags that too)
            return True
        if self._fill:
            self._block_done(now, self._fill)  # the samples before the gap, as a short block
        self._advance(lost)
        self._flags |= wire.ACCEL_OVERRUN | wire.ACCEL_GAP_ESTIMATED
        self.features.gap()
        return True

    def _block_done(self, now, n):
        """Send the n samples staged (a whole block, or fewer before a gap)."""
        stage = self._blk
        acal = self.calib.accel if self.calib is not None and not self.raw_mode else None
        if acal is not None:
            acal.apply_into(stage, n)
        first = self.index
        t = self._t_ms
        self.features.add_block(stage, n, first)
        if self.mode == "raw" or self.raw_mode:
            w = self._writer
            p = w.payload
            if self.encoding == "raw":
                enc = wire.ENCODING_RAW
                end = ACCEL_HEAD + 6 * n
                if n == self.block_n:
                    p[ACCEL_HEAD:end] = stage
                else:
                    for i in range(6 * n):
                        p[ACCEL_HEAD + i] = stage[i]
            else:
                end = self._encoder.encode_into(stage, n, p, ACCEL_HEAD)
                enc = self._encoder.encoding
            struct.pack_into(
                _ACCEL_FORMAT,
                p,
                0,
                enc,
                self._flags | self._cal_flags,
                self.range_g,
                0,
                self.odr_mhz,
                first & 0xFFFF,
                (self.index_wraps & 3) << 14 | first >> 16,
                n,
                _age(now, t),
            )
            self.link.send(w, wire.ACCEL, end, now)
        self._flags = 0
        self._fill = 0
        self.blocks += 1
        self._advance(n)

    def _advance(self, k):
        """`index` and the time of its sample move on by k samples (0 <= k < 2^30)."""
        first = self.index
        self.index = add(first, k)
        if self.index < first:
            self.index_wraps += 1
        # k / ODR in steps of a block at most, so that step * num stays a small int
        while k > 0:
            step = k if k < self.block_n else self.block_n
            rem = self._t_rem + step * self._num
            q = rem // self._den
            self._t_ms = add(self._t_ms, q)
            self._t_rem = rem - q * self._den
            k -= step

    def sample_ms(self, index):
        """Node ms of a sample counted since the stream started (for features)."""
        # t of the current block's first sample minus the samples between
        back = diff(self.index, index)
        return (self._t_ms - back * self._num // self._den) & MASK

    def _send_features(self, now):
        f = self.features
        w = self.link.writer
        n = f.pack_into(w.payload, diff(now, self.sample_ms(f.result_first)))
        self.link.send(w, wire.FEATURES, n, now)
