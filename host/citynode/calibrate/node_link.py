"""The calibration session with one node: identity, raw mode, still captures, the calibration store.

Everything goes through a NodeClient-like object (`command(name, **args)`,
`read_frames(seconds)`), so tests drive the flows with a scripted fake. All
waits are bounded by the session's clock; every failure is a CitynodeError of
one line, and the node's calibration is only ever changed by one `calib_write`
(or `calib_rollback`), read back afterwards.

The node's side (firmware/citynode_fw): `raw_mode {on}` turns off calibration of
both climate records and accel blocks (blocks then carry
ACCEL_UNCALIBRATED_MODE), `calib_write {calib}` validates, stores atomically
(the current one becomes the previous) and applies, `calib_rollback` swaps
current and previous, `calib_get` returns the document.
"""

import json
import time
from datetime import datetime, timezone

import numpy as np

from citynode.calibrate import accel
from citynode.errors import CitynodeError, DeviceError, TransportError
from citynode_protocol import messages

NO_DATA_S = 5.0  # no accel block / climate record for this long: the link or sensor is gone
READ_SLICE_S = 0.25


class NoSensor(CitynodeError):
    """The node has no such sensor fitted."""


class NodeSession:
    """A node through its client: identity, sensors, calibration, frames."""

    def __init__(self, client, ui, clock=time.monotonic, wall=time.time, reconnect=None, port="node"):
        self.client = client
        self.ui = ui
        self.clock = clock
        self.wall = wall
        self.reconnect = reconnect
        self.port = port
        self.info = {}
        self.config = {}
        self.result = None  # the flow's result so far (for a report on rejection)
        self.climate_silence_s = 70.0  # longest wait for a climate reading
        self._wall_at = (clock(), wall())  # the session clock against UTC, for timestamps

    @property
    def started_utc(self):
        return utc_iso(self._wall_at[1])

    def utc(self, t=None):
        """ISO 8601 UTC of session-clock time t (default now)."""
        t = self.clock() if t is None else t
        return utc_iso(self._wall_at[1] + (t - self._wall_at[0]))

    # identity ---------------------------------------------------------------
    def load_info(self):
        self.info = self.client.command("info") or {}
        self.config = self.info.get("config") or {}
        return self.info

    @property
    def node_id(self):
        return self.info.get("node_id", self.config.get("node_id"))

    @property
    def site(self):
        return self.info.get("site") or self.config.get("site") or ""

    def parts(self):
        return {s.get("kind"): s.get("part") for s in self.info.get("sensors") or []}

    def require(self, kind):
        words = {"climate": "temperature/humidity sensor", "accel": "accelerometer"}[kind]
        found = self.parts()
        if kind not in found:
            have = ", ".join("%s %s" % (k, p) for k, p in sorted(found.items())) or "no sensors"
            raise NoSensor("node %s on %s has no %s (it reports: %s); nothing was changed"
                           % (self.node_id, self.port, words, have))
        return found[kind]

    # calibration ------------------------------------------------------------
    def calib_get(self):
        body = self.client.command("calib_get") or {}
        return body.get("calib")

    def new_id(self, current):
        """Seconds since 1970 (u32): unique per node, sortable; above the current one."""
        cid = int(self.wall()) & 0xFFFFFFFF
        if current and isinstance(current.get("id"), int) and cid <= current["id"]:
            cid = (current["id"] + 1) & 0xFFFFFFFF
        return cid

    def write_calibration(self, doc, previous):
        """calib_write, then read back. Returns the doc the node now holds.

        On a lost link: read back (reconnecting if we can). The node's store is
        atomic, so it holds either `previous` or `doc`; say which, and fail
        unless it is `doc`.
        """
        old_id = previous.get("id") if previous else None
        try:
            self.client.command("calib_write", calib=doc)
        except TransportError as exc:
            held = self._read_back_after_loss()
            if held is _UNKNOWN:
                raise TransportError(
                    "link lost while writing the calibration (%s) and the node could not be read back: "
                    "run `citynode calibrate verify --port %s` to see which calibration it runs"
                    % (first_line(exc), self.port)) from None
            if _same(held, doc):
                self.ui.say("link was lost after the write; the node holds the new calibration (read back)")
                return held
            raise TransportError(
                "link lost while writing the calibration (%s); the node kept its calibration %s (read back)"
                % (first_line(exc), "id %s" % held.get("id") if held else "(none)")) from None
        held = self.calib_get()
        if not _same(held, doc):
            raise DeviceError(
                "the node acknowledged calibration id %s but reads back %s: not trusted; run "
                "`citynode calibrate verify --port %s`" % (doc["id"], (held or {}).get("id"), self.port))
        self.ui.say("calibration id %s written and read back (%s)" % (
            doc["id"], "previous: id %s" % old_id if old_id is not None else "no previous calibration"))
        return held

    def _read_back_after_loss(self):
        for attempt in range(3):
            try:
                if attempt and self.reconnect is not None:
                    self.client = self.reconnect()
                return self.calib_get()
            except TransportError:
                continue
            except CitynodeError:
                break
        return _UNKNOWN

    def raw_mode(self, on):
        self.client.command("raw_mode", on=bool(on))

    def ensure_stream(self):
        self.client.command("stream_start")

    # frames -----------------------------------------------------------------
    def frames(self, names, max_silence_s=NO_DATA_S, what="data"):
        """Messages of the given names, forever; CitynodeError after max_silence_s without one."""
        last = self.clock()
        while True:
            got = False
            for m in self.client.read_frames(READ_SLICE_S):
                if m.name in names:
                    got = True
                    last = self.clock()
                    yield m
            if not got and self.clock() - last > max_silence_s:
                raise TransportError("no %s from the node on %s for %.0f s (link lost or sensor stopped)"
                                     % (what, self.port, max_silence_s))


_UNKNOWN = object()


def utc_iso(seconds):
    """Seconds since 1970 as ISO 8601 UTC with milliseconds."""
    return datetime.fromtimestamp(seconds, timezone.utc).strftime("%Y-%m-%dT%H:%M:%S.%f")[:-3] + "Z"


class ClimatePeriod:
    """Shorten the node's climate period (config `climate_period_s`) for a while; put it back after.

    A shorter period applies at once on the node: the next reading comes within it.
    """

    def __init__(self, session, period_s, why="the calibration"):
        self.session = session
        self.period_s = period_s
        self.why = why
        self.old = None

    def __enter__(self):
        old = self.session.config.get("climate_period_s")
        period = old if isinstance(old, int) else 60
        self.session.climate_silence_s = min(period, self.period_s) + 10.0
        if period > self.period_s:
            self.session.client.command("config_set", values={"climate_period_s": self.period_s})
            self.old = old
            self.session.ui.say("climate period set to %d s for %s (was %d s)" % (self.period_s, self.why, old))
        return self

    def __exit__(self, *exc):
        if self.old is not None:
            try:
                self.session.client.command("config_set", values={"climate_period_s": self.old})
            except CitynodeError as e:
                self.session.ui.say("warning: could not set climate_period_s back to %d (%s): "
                                    "`citynode config set climate_period_s %d`" % (self.old, first_line(e), self.old))


def _same(a, b):
    if a is None or b is None:
        return a is b
    return json.dumps(a, sort_keys=True) == json.dumps(b, sort_keys=True)


def first_line(exc):
    return str(exc).splitlines()[0] if str(exc) else type(exc).__name__


def raw_off(session):
    try:
        session.raw_mode(False)
    except CitynodeError as exc:
        session.ui.say("warning: could not turn raw mode off (%s); a reboot turns it off" % first_line(exc))


def is_raw_block(flags):
    """A block sent in raw-data mode (uncalibrated)."""
    return bool(flags & messages.ACCEL_UNCALIBRATED_MODE)


def block_g(m):
    return accel.counts_to_g(m.fields["samples"], m.fields["range_g"])


def capture_still(session, seconds, timeout_s, want, std_g=None, jerk_g=None):
    """Mean of a still stretch of `seconds` of accel data.

    want: "raw" (blocks in raw-data mode), "calibrated" (blocks the node
    calibrated) or "normal" (anything not in raw-data mode).
    """
    std_g = accel.STILL_STD_G if std_g is None else std_g
    jerk_g = accel.STILL_JERK_G if jerk_g is None else jerk_g
    odr = float(session.config.get("accel_odr_hz") or 200)
    buf = []
    start = session.clock()
    reason = "no data"
    for m in session.frames(("accel",), what="accelerometer data"):
        f = m.fields
        if not wanted_block(f["flags"], want):
            buf = []
        else:
            odr = float(f["odr_hz"] or odr)
            need = max(int(seconds * odr), 16)
            buf.append(block_g(m))
            a = np.concatenate(buf)
            if len(a) >= need:
                a = a[-need:]
                chunks = max(2, min(32, int(seconds * 4)))
                st = accel.stillness(a, std_g, jerk_g, chunks=chunks)
                if st.still:
                    return st
                reason = st.reason
                buf = [a[len(a) // 2:]]
        if session.clock() - start > timeout_s:
            raise CitynodeError("the node was not still for %.0f s within %.0f s (%s)" % (seconds, timeout_s, reason))


def wanted_block(flags, want):
    """Is an accel block with these flags of the kind asked for ("raw", "calibrated" or "normal")?"""
    if flags & messages.ACCEL_OVERRUN:
        return False
    if want == "raw":
        return is_raw_block(flags)
    if want == "calibrated":
        return bool(flags & messages.ACCEL_CALIBRATED)
    return not is_raw_block(flags)


class MeanCollector:
    """Accel blocks into a long mean (accel.long_mean) that need not be still, only steady.

    feed(m) takes the blocks of the wanted kind; `mean()` is None until `seconds`
    of them have come, then the LongMean of everything so far. `confident(sigma_g)`
    says whether the mean is known to sigma_g (1 sigma).
    """

    def __init__(self, want, seconds, odr_hz=200.0):
        self.want = want
        self.seconds = seconds
        self.odr = float(odr_hz)
        self.blocks = []
        self.n = 0
        self._last = None
        self._last_n = 0

    def feed(self, m):
        f = m.fields
        if not wanted_block(f["flags"], self.want):
            return False
        self.odr = float(f["odr_hz"] or self.odr)
        g = block_g(m)
        self.blocks.append(g)
        self.n += len(g)
        return True

    @property
    def seconds_so_far(self):
        return self.n / self.odr

    def mean(self):
        """The LongMean so far (recomputed at most every quarter second of data), or None."""
        if self.seconds_so_far < self.seconds or self.n < 2 * accel.MEAN_BATCHES:
            return None
        if self._last is None or self.n - self._last_n >= self.odr / 4:
            self._last = accel.long_mean(np.concatenate(self.blocks))
            self._last_n = self.n
        return self._last

    def confident(self, sigma_g):
        st = self.mean()
        return st is not None and st.sigma_g <= sigma_g


def capture_mean(session, seconds, timeout_s, want, sigma_g, what="gravity"):
    """The long mean of at least `seconds` of accel data, once known to sigma_g (1 sigma).

    For a node on a structure that vibrates: no stillness asked, only a mean
    that holds. CitynodeError after timeout_s when it does not get there (the
    structure swayed or moved too much), saying how far it got.
    """
    collector = MeanCollector(want, seconds, session.config.get("accel_odr_hz") or 200)
    start = session.clock()
    shown = None
    for m in session.frames(("accel",), what="accelerometer data"):
        collector.feed(m)
        st = collector.mean()
        if int(collector.seconds_so_far) != shown:  # a line a second
            shown = int(collector.seconds_so_far)
            words = "at least %.0f s" % seconds if st is None else "|a| %.4f g +- %.2f mg (need +- %.2f), " \
                "vibration %.1f mg rms" % (st.norm_g, 1000 * st.sigma_g, 1000 * sigma_g,
                                           1000 * float(np.max(st.vibration_g)))
            session.ui.progress("%s: %.0f s averaged, %s" % (what, collector.seconds_so_far, words))
        if st is not None and st.sigma_g <= sigma_g:
            return st
        if session.clock() - start > timeout_s:
            if st is None:
                raise CitynodeError("no %s data of the kind needed (%s) within %.0f s" % (what, want, timeout_s))
            raise CitynodeError(
                "the %s mean did not hold within %.0f s: known to +-%.2f mg, need +-%.2f mg (vibration %.1f mg rms; "
                "the structure swayed or moved)" % (what, timeout_s, 1000 * st.sigma_g, 1000 * sigma_g,
                                                    1000 * float(np.max(st.vibration_g))))
