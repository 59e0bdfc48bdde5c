# The simulated board: an I2C bus with the parts the scenario fits, at their
# usual addresses, kept in step with the scenario while the node runs.
#
#     from citynode_sim.board import make_i2c
#     i2c = make_i2c()            # scenario from env CITYNODE_SCENARIO
#     i2c.board.scenario.error    # None, or why the scenario file was refused
#
# Before every bus transfer the board asks the scenario to look for a changed
# file (at most every 200 ms). A change of values reaches the fitted parts at
# once; a change of part, or a fault of "absent" and back, unplugs the old part
# and plugs in a fresh one (power-on state), as swapping a sensor would. A file
# that cannot be used is refused on the console (citynode_sim.console).
#
# The scenario's `stall` holds the bus (and so the node) for stall.ms every
# stall.every_s seconds of real time, as a hung bus or a long flash write would.

import time

from citynode_sim import console
from citynode_sim.bus import SimI2C
from citynode_sim.scenario import load

# part name in the scenario -> (model module, class, I2C address)
PARTS = {
    "sht30": ("sht3x", "SHT3x", 0x44),
    "sht31": ("sht3x", "SHT3x", 0x44),
    "sht35": ("sht3x", "SHT3x", 0x44),
    "sht40": ("sht4x", "SHT4x", 0x44),
    "sht41": ("sht4x", "SHT4x", 0x44),
    "sht45": ("sht4x", "SHT4x", 0x44),
    "adxl345": ("adxl345", "ADXL345", 0x53),
    "adxl355": ("adxl355", "ADXL355", 0x1D),
    "lis3dh": ("lis3dh", "LIS3DH", 0x18),
}
KINDS = ("climate", "accel")


def make_part(part, scenario, clock=None):
    """A fresh simulated part by scenario name (for example "sht35")."""
    module, cls, _ = PARTS[part]
    mod = __import__("citynode_sim." + module, None, None, (cls,))
    if part.startswith("sht"):
        return getattr(mod, cls)(scenario, clock, part)
    return getattr(mod, cls)(scenario, clock)


class Board:
    def __init__(self, scenario, clock=None):
        self.scenario = scenario
        self.clock = clock
        self.i2c = SimI2C()
        self.i2c.board = self
        self.parts = {"climate": None, "accel": None}  # fitted part per kind, or None
        self._version = -1
        self._stall_ms = 0
        self._stall_every = 0
        self._stall_due = 0
        self.sync()
        self.i2c.hook = self.sync

    def sync(self):
        """Follow the scenario file: cheap unless it changed."""
        sc = self.scenario
        sc.poll()
        if sc.version != self._version:
            self._version = sc.version
            self._fit()
        if self._stall_ms and time.ticks_diff(time.ticks_ms(), self._stall_due) >= 0:
            time.sleep_ms(self._stall_ms)
            self._stall_due = time.ticks_add(time.ticks_ms(), self._stall_every)

    def _fit(self):
        data = self.scenario.data
        stall = data["stall"]
        every = int(stall["every_s"] * 1000)
        self._stall_ms = int(stall["ms"]) if every else 0
        if every != self._stall_every:
            self._stall_every = every
            self._stall_due = time.ticks_add(time.ticks_ms(), every)
        for kind in KINDS:
            part = data["sensors"][kind]
            fault = data["faults"][kind]
            want = None if part == "none" or fault == "absent" else part
            dev = self.parts[kind]
            if dev is not None and dev.variant != want:
                self.i2c.detach(PARTS[dev.variant][2])
                dev = None
            if want is not None:
                if dev is None:
                    dev = make_part(want, self.scenario, self.clock)
                    self.i2c.attach(PARTS[want][2], dev)
                else:
                    dev.apply(data)
                dev.bad_id = fault == "bad_id"
                if kind == "climate":
                    dev.bad_crc = fault == "bad_crc"
            self.parts[kind] = dev


def make_i2c(scenario=None, clock=None):
    """A SimI2C fitted per the scenario (default: load() from env CITYNODE_SCENARIO).

    clock: microsecond ticks function for the parts (default time.ticks_us)."""
    if scenario is None:
        scenario = load(report=console.say)
    return Board(scenario, clock).i2c


def reset_cause():
    """The virtual node's reset cause, as the supervisor saw the interpreter start."""
    import os

    return os.getenv("CITYNODE_RESET_CAUSE") or "power-on"
