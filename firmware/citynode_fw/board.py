"""The board layer: the only module that imports `machine` (and, on the Unix
port, `citynode_sim`). Bus, watchdog, clock, heap, identity, reset.

Clock: `ms()` is the node's own millisecond clock since boot, accumulated from
time.ticks_diff (not ticks_ms itself, whose period differs between ports) and
kept modulo 2^30 on every port, so it is a small int for ever (nodetime.py:
compare with nodetime.diff). `wraps` counts its wraps; the frame header
carries ((wraps & 3) << 30) | ms, the clock modulo 2^32 (`wraps_at`). ms() must
be called at least every 2^29 ms (6 days); the node loop calls it every pass.

Watchdog (hardware only; `watchdog_s` = 0 turns it off): fed by the node loop.
It cannot be stopped on the ESP32, so after Ctrl-C (`relax_watchdog`) the node
stretches the timeout to MAINTENANCE_S where the port allows it: someone at
the REPL has an hour, and a node left there comes back by itself.
"""

import gc
import sys
import time

import machine

from citynode_fw.nodetime import add

MAINTENANCE_S = 3600
SIM = sys.platform == "linux"

_CAUSES = (
    ("PWRON_RESET", "power-on"),
    ("HARD_RESET", "hard"),
    ("WDT_RESET", "watchdog"),
    ("DEEPSLEEP_RESET", "deep-sleep"),
    ("SOFT_RESET", "soft"),
)


class Board:
    def __init__(self):
        self._ms = 0
        self.wraps = 0
        self._last = time.ticks_ms()
        self._wdt = None
        self.i2c = None

    # -- bus -----------------------------------------------------------------------

    def make_i2c(self, cfg):
        """The I2C bus from config (i2c_id, i2c_scl, i2c_sda, i2c_freq); simulated on Unix."""
        if SIM:
            from citynode_sim.board import make_i2c  # type: ignore[import-not-found]

            self.i2c = make_i2c()
        else:
            self.i2c = machine.I2C(
                cfg["i2c_id"], scl=machine.Pin(cfg["i2c_scl"]), sda=machine.Pin(cfg["i2c_sda"]), freq=cfg["i2c_freq"]
            )
        return self.i2c

    # -- network -----------------------------------------------------------------------

    def radio(self):
        """The network interface for the uplink: Wi-Fi station on a board, simulated
        on Unix (the scenario's `wifi` key; the sockets are real). A cellular modem
        (network.PPP) would be another class with the same four methods."""
        if SIM:
            from citynode_sim.radio import SimRadio  # type: ignore[import-not-found]

            return SimRadio(self.i2c.board if self.i2c is not None else None)
        from citynode_fw.wlan import WlanRadio

        return WlanRadio()

    # -- watchdog --------------------------------------------------------------------

    def start_watchdog(self, seconds):
        if SIM or seconds <= 0:
            return False
        self._wdt = machine.WDT(timeout=seconds * 1000)
        return True

    def feed(self):
        if self._wdt is not None:
            self._wdt.feed()

    def relax_watchdog(self):
        if self._wdt is not None:
            try:
                self._wdt = machine.WDT(timeout=MAINTENANCE_S * 1000)
                self._wdt.feed()
            except (ValueError, OSError):
                pass

    # -- time --------------------------------------------------------------------------

    def ms(self):
        now = time.ticks_ms()
        ms = add(self._ms, time.ticks_diff(now, self._last))
        self._last = now
        if ms < self._ms:
            self.wraps += 1
        self._ms = ms
        return ms

    def wraps_at(self, t):
        """`wraps` when the clock read t (a time from the last 2^29 ms)."""
        return self.wraps - 1 if t > self._ms else self.wraps

    def sleep_ms(self, ms):
        if ms > 0:
            time.sleep_ms(ms)

    # -- facts --------------------------------------------------------------------------

    def free_heap(self):
        return gc.mem_free()

    def supply_mv(self):
        """Supply voltage in mV; 0 where the board does not measure it."""
        return 0

    def reset_cause(self):
        if SIM:
            from citynode_sim.board import reset_cause  # type: ignore[import-not-found]

            return reset_cause()
        cause = machine.reset_cause()
        for name, word in _CAUSES:
            if getattr(machine, name, None) == cause:
                return word
        return "unknown (%d)" % cause

    def unique_id(self):
        if SIM:
            return "sim"
        uid = machine.unique_id()
        return "".join(["%02x" % b for b in uid])

    def reset(self):
        """Reboot: machine.reset() on a board; a soft reset (SystemExit) on Unix,
        which the virtual node's supervisor treats as a reboot."""
        if SIM:
            machine.soft_reset()
        else:
            machine.reset()

