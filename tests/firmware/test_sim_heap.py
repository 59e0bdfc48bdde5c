# The simulated accelerometers allocate nothing per sample, so that a heap
# measured under the simulator is the node's own (bench/mp/nodebench_heap.py).
# Driven over the bus at register level, as a node's driver would: the FIFO
# read often enough to take every sample, and left to overrun.
#
# The suite runs this on the 64-bit Unix port. The same tests on a 32-bit port,
# where ints from 2**30 up are heap objects, from the repository root:
#   cd tests/firmware && MICROPYPATH=../../firmware:. node ../../bench/wasm32/run.mjs \
#     -c "import test_sim_heap as t; t.test_adxl345(); t.test_adxl355(); t.test_lis3dh(); print('ok')"

import gc

from citynode_sim.clock import ManualClock
from citynode_sim.harness import sim_bus

LOUD = {
    "vibration": [
        {"freq_hz": 3.2, "amp_g": 2.0},
        {"freq_hz": 17.0, "amp_g": 5.0, "axis": [1.0, 0.5, 0.2]},
        {"freq_hz": 111.0, "amp_g": 8.0, "axis": [0.3, 1.0, 0.0]},
    ],
    "noise_g": 0.1,
    "sensor_error": {"accel_scale": [1.5, 0.8, 1.2], "accel_bias_g": [0.5, -0.5, 0.1]},
}


class Part:
    """How to set a part going and empty its FIFO over the bus."""

    def __init__(self, name, address, setup, level, data_reg, size):
        self.name = name
        self.address = address
        self.setup = setup  # (register, value) pairs; loud: the widest range
        self.level = level  # (register, mask, samples per count)
        self.data_reg = data_reg
        self.buf = bytearray(size)
        self.one = bytearray(1)

    def drain(self, bus):
        reg, mask, per = self.level
        bus.readfrom_mem_into(self.address, reg, self.one)
        for _ in range((self.one[0] & mask) // per):
            bus.readfrom_mem_into(self.address, self.data_reg, self.buf)


def adxl345(rate_code, loud):
    return Part(
        "adxl345",
        0x53,
        ((0x31, 0x0B if loud else 0x08), (0x2C, rate_code), (0x38, 0x90), (0x2D, 0x08)),
        (0x39, 0x3F, 1),
        0x32,
        6,
    )


def adxl355(filter_code, loud):
    return Part(
        "adxl355",
        0x1D,
        ((0x2C, 0x83 if loud else 0x81), (0x28, filter_code), (0x2D, 0x00)),
        (0x05, 0xFF, 3),
        0x11,
        9,
    )


def lis3dh(ctrl1, loud):
    return Part(
        "lis3dh",
        0x18,
        ((0x23, 0xB8 if loud else 0x88), (0x24, 0x40), (0x2E, 0x80), (0x20, ctrl1)),
        (0x2F, 0x1F, 1),
        0xA8,
        6,
    )


def bytes_per_run(part, loud, step_ms, ms=1000):
    """(bytes allocated, samples produced) driving part for ms, reading every step_ms."""
    clock = ManualClock()
    data = {"sensors": {"accel": part.name, "climate": "none"}}
    if loud:
        data.update(LOUD)
    bus, _ = sim_bus(clock, data)
    for reg, value in part.setup:
        bus.writeto_mem(part.address, reg, bytes((value,)))
    sim = bus.device(part.address)
    for _ in range(200 // step_ms):  # warm-up
        clock.advance_ms(step_ms)
        part.drain(bus)
    gc.collect()
    gc.disable()
    try:
        before = gc.mem_alloc()
        samples = sim.samples
        for _ in range(ms // step_ms):
            clock.advance_ms(step_ms)
            part.drain(bus)
        used = gc.mem_alloc() - before
    finally:
        gc.enable()
    return used, sim.samples - samples


def allocates_nothing(make, low, high):
    """At a low and a high rate, every sample read, and the FIFO left to overrun."""
    for loud in (False, True):
        for code, step_ms in ((low, 40), (high, 5), (high, 80)):
            part = make(code, loud)
            used, samples = bytes_per_run(part, loud, step_ms)
            assert samples > 100, (part.name, code, samples)
            what = "%s rate code 0x%02x loud=%s" % (part.name, code, loud)
            assert used == 0, "%s: %d bytes for %d samples" % (what, used, samples)


def test_adxl345():
    allocates_nothing(adxl345, 0x0B, 0x0F)  # 200 Hz, 3200 Hz


def test_adxl355():
    allocates_nothing(adxl355, 0x04, 0x00)  # 250 Hz, 4000 Hz


def test_lis3dh():
    allocates_nothing(lis3dh, 0x67, 0x9F)  # 200 Hz; 5376 Hz low power
