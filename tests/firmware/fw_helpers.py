"""Shared by the citynode_fw tests: a temp folder to play the node's flash, a
board on a manual clock, the simulated sensors on a simulated bus, a scripted
serial input and a decoder for what the node wrote."""

import gc
import io
import os

from citynode_protocol import armour
from citynode_protocol.decoder import Decoder
from citynode_sim.adxl345 import ADXL345 as SimADXL345
from citynode_sim.adxl355 import ADXL355 as SimADXL355
from citynode_sim.bus import SimI2C
from citynode_sim.clock import ManualClock
from citynode_sim.lis3dh import LIS3DH as SimLIS3DH
from citynode_sim.scenario import Scenario
from citynode_sim.sht3x import SHT3x as SimSHT3x
from citynode_sim.sht4x import SHT4x as SimSHT4x

_ACCELS = {"adxl345": SimADXL345, "adxl355": SimADXL355, "lis3dh": SimLIS3DH}

_home = None


def enter_tmpdir(tag):
    """chdir into a fresh folder under /tmp (the node's flash for one test)."""
    global _home
    if _home is None:
        _home = os.getcwd()
    for _ in range(20):
        # random names: parallel runs and folders left by an aborted run never collide
        path = "/tmp/citynode_fw_%s_%s" % (tag, "".join("%02x" % b for b in os.urandom(6)))
        try:
            os.mkdir(path)
        except OSError:
            continue
        os.chdir(path)
        return path
    raise OSError("could not make a fresh folder under /tmp")


def leave_tmpdir():
    path = os.getcwd()
    for entry in os.ilistdir(path):
        os.remove(path + "/" + entry[0])
    if _home is not None:
        os.chdir(_home)
    os.rmdir(path)


class FakeBoard:
    """citynode_fw.board.Board's surface on a manual clock: sleeping moves time."""

    def __init__(self, clock=None, i2c=None):
        self.clock = clock or ManualClock()
        self.i2c = i2c
        self.resets = 0
        self.fed = 0

    def make_i2c(self, cfg):
        return self.i2c

    def ms(self):
        return self.clock.t // 1000

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
        return "fake"

    def reset(self):
        self.resets += 1


def sim_bus(clock, data=None):
    """(SimI2C, Scenario) with the scenario's parts attached at their addresses."""
    scenario = Scenario(data=data or {})
    bus = SimI2C()
    parts = scenario.data["sensors"]
    climate = parts["climate"]
    if climate.startswith("sht3"):
        bus.attach(0x44, SimSHT3x(scenario, clock.ticks_us, climate))
    elif climate.startswith("sht4"):
        bus.attach(0x44, SimSHT4x(scenario, clock.ticks_us, climate))
    accel = parts["accel"]
    if accel in _ACCELS:
        cls = _ACCELS[accel]
        bus.attach(cls.ADDRESS, cls(scenario, clock.ticks_us))
    return bus, scenario


class ScriptedInput:
    """A reader for citynode_fw.link.Link: bytes come out one at a time, then none."""

    def __init__(self):
        self.data = bytearray()
        self.pos = 0

    def feed(self, data):
        self.data += data

    def readinto(self, buf):
        if self.pos >= len(self.data):
            return 0
        buf[0] = self.data[self.pos]
        self.pos += 1
        return 1


class Capture:
    """The node's serial output, decoded incrementally."""

    def __init__(self):
        self.out = io.BytesIO()
        self.decoder = Decoder()
        self._seen = 0
        self.messages = []

    def new(self):
        data = self.out.getvalue()
        fresh = self.decoder.feed(data[self._seen :])
        self._seen = len(data)
        self.messages.extend(fresh)
        return fresh

    def named(self, name):
        self.new()
        return [m for m in self.messages if m.name == name]


def command(request_id, name, args=None):
    return armour.encode_command(request_id, name, args)
