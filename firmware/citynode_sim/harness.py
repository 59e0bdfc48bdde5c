"""A board on a manual clock and the simulated parts on a simulated bus: what
drives citynode_fw off a node. Shared by the firmware tests
(tests/firmware/fw_helpers.py) and the MicroPython benchmark programs
(bench/mp/nodebench_rig.py).

Light on purpose, because the benchmarks count the simulator's heap apart
from the node's: importing this brings in gc and time only, sim_bus() imports the
simulated parts the scenario names and no others, and nothing here allocates
per call in the paths the node uses (ms, sleep_ms, feed).
"""

import gc
import time

# Node ms wrap at 2^30 (citynode_fw.nodetime.MASK). FakeBoard repeats Board's
# few lines of wrap counting rather than import nodetime: imported here first,
# the node's module would be counted in the simulator's heap by the benchmarks.
_MS_MASK = 0x3FFFFFFF


class FakeBoard:
    """citynode_fw.board.Board's surface on a manual clock: sleeping moves time.

    Counts watchdog feeds in `fed` and reset() calls in `resets`; `uid` is
    what unique_id() says. ms() is the clock's time in ms modulo 2^30, counting
    its wraps like Board.ms(); start_ms sets where it starts (to start near a
    wrap), else it starts at the clock's ms. ms() must be called at least every
    ticks period / 2 of the clock (9 minutes on a 32-bit port).
    """

    def __init__(self, clock=None, i2c=None, uid="fake", start_ms=None, wraps=0):
        if clock is None:
            from citynode_sim.clock import ManualClock

            clock = ManualClock()
        self.clock = clock
        self.i2c = i2c
        self.uid = uid
        self.resets = 0
        self.fed = 0
        t = clock.t
        self._last = t
        self._us = t % 1000  # microseconds past the last whole ms
        self._ms = (t // 1000 if start_ms is None else start_ms) & _MS_MASK
        self.wraps = wraps

    def make_i2c(self, cfg):
        return self.i2c

    def ms(self):
        t = self.clock.t
        us = self._us + time.ticks_diff(t, self._last)
        self._last = t
        k = us // 1000
        self._us = us - k * 1000
        ms = (self._ms - _MS_MASK - 1 + k) & _MS_MASK
        if ms < self._ms:
            self.wraps += 1
        self._ms = ms
        return ms

    def wraps_at(self, t):
        return self.wraps - 1 if t > self._ms else self.wraps

    def sleep_ms(self, ms):
        self.clock.advance_ms(ms if ms > 0 else 1)

    def feed(self):
        self.fed += 1

    def start_watchdog(self, seconds):
        return False

    def relax_watchdog(self):
        pass

    def free_heap(self):
        return gc.mem_free()

    def supply_mv(self):
        return 0

    def reset_cause(self):
        return "power-on"

    def unique_id(self):
        return self.uid

    def reset(self):
        self.resets += 1


def _climate_model(part):
    """The simulated climate class for a part name ("sht31", "sht45"), or None."""
    if part.startswith("sht3"):
        from citynode_sim.sht3x import SHT3x

        return SHT3x
    if part.startswith("sht4"):
        from citynode_sim.sht4x import SHT4x

        return SHT4x
    return None


def _accel_model(part):
    """The simulated accelerometer class for a part name, or None."""
    if part == "adxl345":
        from citynode_sim.adxl345 import ADXL345

        return ADXL345
    if part == "adxl355":
        from citynode_sim.adxl355 import ADXL355

        return ADXL355
    if part == "lis3dh":
        from citynode_sim.lis3dh import LIS3DH

        return LIS3DH
    return None


def sim_bus(clock, data=None):
    """(SimI2C, Scenario) with the scenario's parts attached at their addresses,
    running on clock (a ManualClock)."""
    from citynode_sim.bus import SimI2C
    from citynode_sim.scenario import Scenario

    scenario = Scenario(data=data or {})
    bus = SimI2C()
    parts = scenario.data["sensors"]
    climate = parts["climate"]
    cls = _climate_model(climate)
    if cls is not None:
        bus.attach(0x44, cls(scenario, clock.ticks_us, climate))
    cls = _accel_model(parts["accel"])
    if cls is not None:
        bus.attach(cls.ADDRESS, cls(scenario, clock.ticks_us))
    return bus, scenario
