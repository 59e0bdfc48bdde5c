"""What bench/bench_node.py's MicroPython programs share: parameters from the
environment, a board on a manual clock and the simulated parts on a simulated
bus (citynode_sim.harness, as the firmware tests have them), a null serial port
that counts frames, and result lines for the CPython side.

Kept apart from tests/firmware/fw_helpers.py on purpose: that one brings the
protocol decoder and io.BytesIO in, which would be counted as the node's heap.
Nothing here allocates per call in the paths the node uses (ms, sleep_ms, feed,
write).
"""

import gc
import os
import sys

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
    """key=value;key=value from env NODEBENCH (sys.argv[1] on a port without
    os.getenv: bench/wasm32/run.mjs), values as int when they look like one."""
    out = {}
    if hasattr(os, "getenv"):
        text = os.getenv(ENV) or ""
    else:
        text = sys.argv[1] if len(sys.argv) > 1 else ""
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


COMMANDS_FILE = "nodebench_commands.txt"


class Stdin:
    """The link's reader: no command ever arrives, or, given a board and a
    script file (lines "MS LINE": an armoured command line for node time MS,
    written by bench_node.py with the host's encoder), each line a byte at a
    time once the node's clock reaches its time."""

    def __init__(self, board=None, script=None):
        self.board = board
        self.lines = []
        self.at = 0
        if script:
            with open(script, "rb") as f:
                for row in f.read().split(b"\n"):
                    if row:
                        t, line = row.split(b" ", 1)
                        self.lines.append((int(t), line + b"\n"))
        self.sent = 0

    def readinto(self, buf):
        lines = self.lines
        if self.sent >= len(lines):
            return 0
        t, line = lines[self.sent]
        if self.board.ms() < t:
            return 0
        buf[0] = line[self.at]
        self.at += 1
        if self.at == len(line):
            self.at = 0
            self.sent += 1
        return 1


def drive_sim(clock, bus, ms, climate=True, setup=True):
    """The bus traffic the node makes, without the node: ADXL345 at 200 Hz in
    FIFO stream mode (set up first, when setup) read every 80 ms, an SHT45
    reading once a minute (from the start, when climate). Returns (samples, readings)."""
    one = bytearray(1)
    sample = bytearray(6)
    cmd = bytearray(1)
    reading = bytearray(6)
    if setup:
        bus.writeto_mem(0x53, 0x31, b"\x08")  # DATA_FORMAT: full resolution, +-2 g
        bus.writeto_mem(0x53, 0x2C, b"\x0b")  # BW_RATE: 200 Hz
        bus.writeto_mem(0x53, 0x38, b"\x90")  # FIFO_CTL: stream, watermark 16
        bus.writeto_mem(0x53, 0x2D, b"\x08")  # POWER_CTL: measure
    samples = 0
    readings = 0
    t = 0
    while t < ms:
        bus.readfrom_mem_into(0x53, 0x39, one)  # FIFO_STATUS
        for _ in range(one[0] & 0x3F):
            bus.readfrom_mem_into(0x53, 0x32, sample)
            samples += 1
        if climate and t % 60000 == 0:
            cmd[0] = 0xFD  # measure, high precision
            bus.writeto(0x44, cmd)
            clock.advance_ms(10)
            bus.readfrom_into(0x44, reading)
            readings += 1
            t += 10
        clock.advance_ms(80)
        t += 80
    return samples, readings


class DownRadio:
    """The uplink's radio with no network in reach (bench_uplink_heap: the node keeps
    sampling into its flash ring; no sockets, which the WebAssembly port lacks)."""

    def connect(self, ssid, password):
        pass

    def connected(self):
        return False

    def failure(self):
        return "no AP found"

    def rssi(self):
        return None


def sim(data=None):
    """(clock, bus, board) with the scenario's parts on the bus (SCENARIO: an
    ADXL345 and an SHT45).

    The simulator is imported here, so a program that does not call this has
    none of it on its heap.
    """
    from citynode_sim.clock import ManualClock
    from citynode_sim.harness import FakeBoard, sim_bus

    class Board(FakeBoard):
        def free_heap(self):
            # the WebAssembly port's heap grows on demand: its gc.mem_free()
            # is a 128 MB allowance, a long int on a 32-bit port
            return 0 if sys.platform == "webassembly" else gc.mem_free()

        def radio(self):
            return DownRadio()

    clock = ManualClock()
    bus, _scenario = sim_bus(clock, data or SCENARIO)
    return clock, bus, Board(clock, bus, uid="bench")
