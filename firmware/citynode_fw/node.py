"""The node: build it from config (board, probed parts, sampler, link) and run the loop.

One pass of the loop (`step`): sampler work that is due, at most one command
line, a STATUS when due, the watchdog, a pending reboot. Every wait is bounded:
the loop sleeps at most MAX_SLEEP_MS so commands are answered promptly, and
sensor waits are counted loops inside the drivers.

Node time is the board's ms modulo 2^30 (nodetime.py); uptime and UTC also
count the board's wraps.
"""

import math
import struct

from citynode_protocol import wire
from citynode_fw import calibration, commands, config, status
from citynode_fw.features import Features
from citynode_fw.link import Link
from citynode_fw.nodetime import add, diff
from citynode_fw.sampler import Sampler

MAX_SLEEP_MS = 20
LAST_ERRORS = 5
DEBUG = 0
INFO = 1
WARNING = 2
ERROR = 3


def _sht4x(i2c, address):
    from citynode_fw.drivers.sht4x import SHT4x

    return SHT4x(i2c, address=address)


def _sht3x(i2c, address):
    from citynode_fw.drivers.sht3x import SHT3x

    return SHT3x(i2c, address=address)


def _adxl355(i2c, address):
    from citynode_fw.drivers.adxl355 import ADXL355

    return ADXL355(i2c, address=address)


def _adxl345(i2c, address):
    from citynode_fw.drivers.adxl345 import ADXL345

    return ADXL345(i2c, address=address)


def _lis3dh(i2c, address):
    from citynode_fw.drivers.lis3dh import LIS3DH

    return LIS3DH(i2c, address=address)


# (kind, part, addresses in probe order, factory); within a kind, first match wins.
# The drivers' identity checks decide between parts sharing an address.
PARTS = (
    ("climate", "sht4x", (0x44, 0x45), _sht4x),
    ("climate", "sht3x", (0x44, 0x45), _sht3x),
    ("accel", "adxl355", (0x1D, 0x53), _adxl355),
    ("accel", "adxl345", (0x53, 0x1D), _adxl345),
    ("accel", "lis3dh", (0x18, 0x19), _lis3dh),
)


def probe(i2c, kind, wanted, log=None):
    """(driver, address) of the first part of kind that answers, or (None, 0).

    wanted: "auto", "none" or a part name (config climate_part / accel_part).
    A part that does not answer is no error: under "auto" the next is tried in
    silence; a named part's failures go to log at DEBUG, to say why it is missing.
    """
    if wanted == "none" or i2c is None:
        return None, 0
    try:
        present = i2c.scan()
    except OSError:
        present = []
    for row in PARTS:
        if row[0] != kind or (wanted != "auto" and row[1] != wanted):
            continue
        for address in row[2]:
            if address not in present:
                continue
            try:
                return row[3](i2c, address), address
            except OSError as exc:
                _unload(row[1])
                if log is not None and wanted != "auto":
                    log(DEBUG, "no %s at 0x%02x: %s" % (row[1], address, exc))
    return None, 0


def _unload(part):
    """Forget the driver of a part that did not answer: its code leaves the heap."""
    from citynode_fw import forget

    forget("citynode_fw.drivers." + part)


class Node:
    def __init__(self, board, cfg, calib=None, calib_fallback=None, out=None, reader=None,
                 calib_path=calibration.PATH, calib_prev_path=calibration.PREV_PATH, features=None):
        self.board = board
        self.config = cfg
        self.cfg = cfg.values
        self.calib = calib
        self.calib_fallback = calib_fallback
        self.calib_path = calib_path
        self.calib_prev_path = calib_prev_path
        self.features = Features() if features is None else features
        self.counters = status.Counters()
        self.link = Link(self.cfg["node_id"], self.counters, out, reader, board)
        self.sampler = Sampler(self.link, self.counters, self.features, self.log)
        self.last_errors = []
        self.found = []
        self.time_offset = None
        self.reboot_pending = False
        self.uplink = None  # uplink.Uplink when config uplink="wifi"
        self.uplink_error = None
        self.reset_cause = board.reset_cause()
        self._boot_ms = board.ms()
        self._boot_wraps = board.wraps
        self._status_due = self._boot_ms

    def now(self):
        return self.board.ms()

    # -- events ------------------------------------------------------------------

    def log(self, level, text):
        if level >= WARNING:
            self.last_errors.append(text)
            if len(self.last_errors) > LAST_ERRORS:
                self.last_errors.pop(0)
        self.link.log(level, text, self.now())

    # -- build -------------------------------------------------------------------

    def start(self, i2c, climate=None, accel=None):
        """Probe the bus (unless parts are given), configure, start streaming."""
        from citynode_fw import version

        self.log(INFO, "boot: citynode %s, reset cause %s" % (version.version_string(), self.reset_cause))
        if self.config.fallback:
            # no config.json at all is a board never provisioned: its defaults are no fault
            level = INFO if self.config.never_saved else WARNING
            self.log(level, "config fallback: %s" % self.config.fallback)
        if self.calib_fallback:
            self.log(WARNING, "calibration fallback: %s" % self.calib_fallback)
        climate = self._fit(i2c, "climate", climate)
        accel = self._fit(i2c, "accel", accel)
        self.sampler.set_parts(climate, accel)
        now = self.now()
        for note in self.sampler.configure(self.sampling_config(), self.calib, now):
            self.log(WARNING, note)
        if accel is not None and self.cfg["stream_at_boot"]:
            self.sampler.start_stream(now)
        self._status_due = now  # STATUS right after boot

    def _fit(self, i2c, kind, drv):
        """The driver of kind: given (tests), else probed as the config's part says."""
        wanted = self.cfg[kind + "_part"]
        if drv is None:
            drv, address = probe(i2c, kind, wanted, self.log)
        else:
            address = getattr(drv, "address", 0)
        if drv is not None:
            self.found.append((kind, drv.PART, address))
        elif wanted == "auto":
            self.log(INFO, "no %s sensor answered (%s_part=auto)" % (kind, kind))
        elif wanted != "none":
            self.log(WARNING, "no %s sensor found (%s_part=%s)" % (kind, kind, wanted))
        return drv

    def sampling_config(self):
        """The config the sampler runs. The default accel_odr_hz asks for about that
        rate: a part without it runs its nearest in silence (a rate set by hand that
        the part lacks is the sampler's warning)."""
        drv = self.sampler.accel
        hz = self.cfg["accel_odr_hz"]
        if drv is None or hz != config.default("accel_odr_hz"):
            return self.cfg
        mhz = config.part_rate(hz, drv.ODRS_MHZ)
        if mhz == config.odr_mhz(hz):
            return self.cfg
        out = dict(self.cfg)
        out["accel_odr_hz"] = mhz / 1000
        return out

    def sensors_found(self):
        return [{"kind": k, "part": p, "address": "0x%02x" % a} for k, p, a in self.found]

    # -- the loop ----------------------------------------------------------------

    def step(self):
        """One pass; returns how long the loop may sleep (ms)."""
        now = self.now()
        wait = self.sampler.poll(now)
        line = self.link.poll_line()
        if line is not None:
            self.handle_line(line)
            wait = 0
        if self.uplink is not None:
            self.uplink.poll(now)
            if self.uplink.command_waiting():  # from the network: checked, then run like a serial line
                self.uplink.run_command(self)
                wait = 0
        if diff(now, self._status_due) >= 0:
            self.send_status()
            self._status_due = add(now, self.cfg["status_period_s"] * 1000)
        self.board.feed()
        if self.reboot_pending and not (self.uplink is not None and self.uplink.reply_waiting(now)):
            self.board.sleep_ms(100)  # let the reply leave
            if self.uplink is not None:
                self.uplink.close()  # what waits goes to flash
            self.board.reset()
        return wait if wait < MAX_SLEEP_MS else MAX_SLEEP_MS

    def run_for(self, ms):
        """Run the loop until the node clock has moved by ms (tests, bounded runs)."""
        end = add(self.now(), ms)
        while diff(self.now(), end) < 0:
            self.board.sleep_ms(self.step())

    def run(self):
        try:
            while True:
                self.board.sleep_ms(self.step())
        except KeyboardInterrupt:
            # Ctrl-C: hand the REPL over with the sensor stopped and the watchdog slack
            self.board.relax_watchdog()
            self.sampler.stop_stream()
            raise

    # -- commands ----------------------------------------------------------------

    def handle_line(self, line):
        request_id, command, args = self.link.decode(line)
        if command is None:
            self.counters.bad_lines += 1
            self.counters.command_errors += 1
            code, body = wire.ERR_BAD_LINE, {"error": args}
        else:
            code, body = commands.answer(self, request_id, command, args, line)
            if code != wire.OK:
                self.counters.command_errors += 1
        self.link.reply(request_id, code, body, self.now())

    def set_config(self, values):
        drv = self.sampler.accel
        odr = values.get("accel_odr_hz")
        if drv is not None and isinstance(odr, (int, float)) and not isinstance(odr, bool):
            if config.part_rate(odr, drv.ODRS_MHZ) != config.odr_mhz(odr):
                rates = ", ".join(["%g" % (m / 1000) for m in drv.ODRS_MHZ])
                return wire.ERR_BAD_ARGUMENT, {"error": "%s supports %s Hz" % (drv.PART, rates)}
        rng = values.get("accel_range_g")
        if drv is not None and rng is not None and rng not in drv.RANGES_G:
            ranges = ", ".join([str(r) for r in drv.RANGES_G])
            return wire.ERR_BAD_ARGUMENT, {"error": "%s supports +-%s g" % (drv.PART, ranges)}
        window = values.get("feature_window_s", self.cfg["feature_window_s"])
        hz = values.get("accel_odr_hz", self.cfg["accel_odr_hz"])
        if isinstance(window, (int, float)) and isinstance(hz, (int, float)) and window * hz < 16:
            return wire.ERR_BAD_ARGUMENT, {"error": "feature window under 16 samples"}
        try:
            restart = self.config.update(values)
        except ValueError as exc:
            return wire.ERR_BAD_ARGUMENT, {"error": str(exc)}
        except OSError as exc:
            return wire.ERR_STORAGE, {"error": "config not saved: %s" % exc}
        notes = self.sampler.configure(self.sampling_config(), self.calib, self.now())
        return wire.OK, {"changed": sorted(values), "restart_required": restart, "notes": notes}

    def use_calibration(self, cal):
        self.calib = cal
        self.calib_fallback = None
        self.sampler.set_calibration(cal, self.now())

    def set_time(self, utc_ms):
        now = self.now()
        self.time_offset = utc_ms - now - (self.board.wraps << 30)  # UTC at the board's ms 0
        self.send_time(now)

    def send_time(self, now):
        utc = now + (self.board.wraps_at(now) << 30) + self.time_offset
        if not wire.UTC_MIN_MS <= utc < wire.UTC_MAX_MS:
            return False  # never a TIME a receiver must distrust (SPEC.md §6 time)
        w = self.link.writer
        struct.pack_into("<Q", w.payload, 0, utc)
        return self.link.send(w, wire.TIME, 8, now)

    # -- status ------------------------------------------------------------------

    def uptime_s(self):
        now = self.now()
        w = self.board.wraps - self._boot_wraps
        d = now - self._boot_ms
        # (w * 2^30 + d) // 1000 with small ints only: 2^30 ms = 1073741 s + 824 ms
        return w * 1073741 + d // 1000 + (w * 824 + d % 1000) // 1000

    def flags(self):
        f = 0
        if self.config.fallback:
            f |= wire.STATUS_CONFIG_FALLBACK
        if self.calib_fallback:
            f |= wire.STATUS_CALIB_FALLBACK
        if self.time_offset is not None:
            f |= wire.STATUS_TIME_ANCHORED
        if self.sampler.streaming:
            f |= wire.STATUS_STREAMING
        if self.uplink_error or (self.uplink is not None and not self.uplink.connected()):
            f |= wire.STATUS_UPLINK_DOWN
        return f

    def sensors(self):
        fitted = 0
        ok = 0
        s = self.sampler
        if s.climate is not None:
            fitted |= wire.SENSOR_CLIMATE
            if s.climate_ok:
                ok |= wire.SENSOR_CLIMATE
        if s.accel is not None:
            fitted |= wire.SENSOR_ACCEL
            if s.accel_ok:
                ok |= wire.SENSOR_ACCEL
        return fitted, ok

    def send_status(self):
        now = self.now()
        fitted, ok = self.sensors()
        w = self.link.writer
        n = status.pack_into(
            w.payload,
            self.uptime_s(),
            self.board.free_heap(),
            fitted,
            ok,
            self.flags(),
            self.board.supply_mv(),
            self.calib.id if self.calib is not None else 0,
            self.counters,
        )
        self.link.send(w, wire.STATUS, n, now)
        if self.time_offset is not None and self.uplink is None:  # networked: TIME when learnt (SPEC §6 time)
            self.send_time(now)

    def status_dict(self):
        fitted, ok = self.sensors()
        return {
            "uptime_s": self.uptime_s(),
            "free_heap": self.board.free_heap(),
            "sensors_fitted": fitted,
            "sensors_ok": ok,
            "flags": self.flags(),
            "calibration_id": self.calib.id if self.calib is not None else 0,
            "counters": self.counters.as_dict(),
        }

    # -- selftest ----------------------------------------------------------------

    def selftest(self):
        """Checks as the config says what is fitted: climate_fitted / accel_fitted
        (a part named in the config must answer; "auto" takes what answers; "none"
        is not fitted), a reading of each part found, and at least one sensor."""
        checks = []
        s = self.sampler
        checks.append(self._check_fitted("climate", s.climate))
        if s.climate is not None:
            checks.append(self._check_climate(s.climate))
        checks.append(self._check_fitted("accel", s.accel))
        if s.accel is not None:
            checks.append(self._check_gravity())
        if s.climate is None and s.accel is None:
            checks.append({"name": "any_sensor", "pass": False, "detail": "no sensor answers: nothing to measure"})
        return checks

    def _check_fitted(self, kind, drv):
        name = kind + "_fitted"
        key = kind + "_part"
        wanted = self.cfg[key]
        if drv is not None:
            return {"name": name, "pass": True, "part": drv.PART}
        if wanted == "none":
            return {"name": name, "pass": True, "detail": "not fitted (%s=none)" % key}
        if wanted == "auto":
            return {"name": name, "pass": True, "detail": "none answered (%s=auto)" % key}
        return {"name": name, "pass": False, "detail": "no %s sensor found: %s=%s requires one" % (kind, key, wanted)}

    def _check_climate(self, drv):
        try:
            drv.start()
            self.board.sleep_ms(drv.CONVERSION_MS)
            t, rh = drv.read()
        except OSError as exc:
            return {"name": "climate_plausible", "pass": False, "detail": str(exc)}
        ok = -4000 <= t <= 8500 and 0 <= rh <= 10000
        return {"name": "climate_plausible", "pass": ok, "temperature_c": t / 100, "humidity_pct": rh / 100,
                "limits": "-40..85 C, 0..100 %RH"}

    def _check_gravity(self):
        mean = self.features.current_mean()
        if mean is None or not self.sampler.streaming:
            return {"name": "accel_gravity", "pass": False, "detail": "no samples: start the stream"}
        k = self.sampler.range_g / 32768.0
        g = math.sqrt(mean[0] * mean[0] + mean[1] * mean[1] + mean[2] * mean[2]) * k
        return {"name": "accel_gravity", "pass": 0.8 <= g <= 1.2, "g": round(g, 4), "limits": "0.8..1.2 g when still"}


def build(board, out=None, reader=None):
    """A Node from the files on flash and the board's bus."""
    from citynode_fw import version

    # the largest buffers (the spectra's, 12 kB) first, while the heap is
    # whole: built later, they must find room among smaller objects
    features = Features()
    # `info` reports the fingerprint of the files on flash: read them now,
    # while the heap holds little but code, rather than beside a running node
    version.app_hash()
    cfg = config.load()
    cal, cal_fallback = calibration.load()
    node = Node(board, cfg, cal, cal_fallback, out, reader, features=features)
    i2c = why = None
    try:
        i2c = board.make_i2c(cfg.values)  # first: the simulated radio follows the bus's scenario
    except (OSError, ValueError) as exc:
        why = exc
    wifi = cfg.values["uplink"] == "wifi"
    if wifi:  # before the first frame: the network gets the boot whole
        from citynode_fw import uplink

        uplink.start(node, board, cfg.values)
    if why:
        node.log(ERROR, "I2C bus not available: %s" % why)
    node.start(i2c)
    if wifi:
        uplink.started(node)
    return node


def run():
    """main.py's entry point: build the node from flash and run it until Ctrl-C."""
    from citynode_fw.board import Board

    board = Board()
    node = build(board)
    board.start_watchdog(node.cfg["watchdog_s"])
    node.run()
