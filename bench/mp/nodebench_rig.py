"""What bench/bench_node.py's MicroPython programs share: parameters from the
environment, a board on a manual clock, the simulated parts on a simulated bus,
a null serial port that counts frames, and result lines for the CPython side.

Kept apart from tests/firmware/fw_helpers.py on purpose: that one brings the
protocol decoder and io.BytesIO in, which would be counted as the node's heap.
Nothing here allocates per call in the paths the node uses (ms, sleep_ms, feed,
write).
"""

import gc
import os

ENV = "NODEBENCH"
# ADXL345 + SHT45: an ADXL345 runs at the firmware's default 200 Hz exactly
SCENARIO = {"sensors": {"accel": "adxl345", "climate": "sht45"}}
CALIBRATION = {
    "id": 42,
    "date": "2026-01-01",
    "method": "six-position",
    "climate": {"t_gain": 1.01, "t_offset_c": -0.3, "rh_gain": 0.98, "rh_offset_pct": 1.5},
    "accel": {
        "bias_g": [0.012, -0.021, 0.034],
        "matrix": [[1.01, 0.002, -0.003], [0.001, 0.99, 0.004], [-0.002, 0.003, 1.003]],
    },
}


def params():
    """key=value;key=value from env NODEBENCH, values as int when they look like one."""
    out = {}
    text = os.getenv(ENV) or ""
    for item in text.split(";"):
        if "=" not in item:
            continue
        k, v = item.split("=", 1)
        try:
            out[k] = int(v)
        except ValueError:
            out[k] = v
    return out


def result(name, **values):
    """One line the CPython side parses: RESULT name k=v k=v."""
    parts = ["RESULT", name]
    for k in sorted(values):
        parts.append("%s=%s" % (k, values[k]))
    print(" ".join(parts))


class Board:
    """citynode_fw.board.Board's surface on a manual clock: sleeping moves time."""

    def __init__(self, clock, i2c):
        self.clock = clock
        self.i2c = i2c

    def make_i2c(self, cfg):
        return self.i2c

    def ms(self):
        return self.clock.t // 1000

    def sleep_ms(self, ms):
        self.clock.advance_ms(ms if ms > 0 else 1)

    def feed(self):
        pass

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
        return "bench"

    def reset(self):
        pass


class NullOut:
    """A serial port that keeps nothing: counts bytes and frames by message type.

    A frame's first byte is never 0 (version << 5), so COBS leaves it at wire[1].
    """

    def __init__(self):
        self.bytes = 0
        self.frames = bytearray(32)  # per message type, saturating at 255
        self.writes = 0

    def write(self, buf, n=-1):
        if n < 0:
            n = len(buf)
        self.bytes += n
        self.writes += 1
        if n > 1:
            t = buf[1] & 31
            if self.frames[t] < 255:
                self.frames[t] += 1
        return n


class NullText:
    """A text console that keeps nothing (the naive loop prints JSON lines)."""

    def __init__(self):
        self.bytes = 0
        self.writes = 0

    def write(self, text):
        self.bytes += len(text)
        self.writes += 1
        return len(text)


class Stdin:
    """The link's reader: no command ever arrives."""

    def readinto(self, buf):
        return 0


def sim(data=None):
    """(clock, bus, board) with the scenario's ADXL345 and SHT45 on the bus.

    The simulator is imported here, so a program that does not call this has
    none of it on its heap.
    """
    from citynode_sim.adxl345 import ADXL345 as SimADXL345
    from citynode_sim.bus import SimI2C
    from citynode_sim.clock import ManualClock
    from citynode_sim.scenario import Scenario
    from citynode_sim.sht4x import SHT4x as SimSHT4x

    clock = ManualClock()
    scenario = Scenario(data=data or SCENARIO)
    bus = SimI2C()
    bus.attach(0x44, SimSHT4x(scenario, clock.ticks_us, "sht45"))
    bus.attach(SimADXL345.ADDRESS, SimADXL345(scenario, clock.ticks_us))
    return clock, bus, Board(clock, bus)
