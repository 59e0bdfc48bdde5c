# LIS3DH driver against the simulated part (citynode_sim), under MicroPython.

import gc
import struct
import time

from citynode_fw.drivers.errors import SensorError, SensorIdentityError
from citynode_fw.drivers.lis3dh import LIS3DH
from citynode_sim.board import make_i2c
from citynode_sim.clock import ManualClock
from citynode_sim.scenario import Scenario

PART = "lis3dh"
QUIET = {"vibration": [], "noise_g": 0.0}
MG_PER_DIGIT = {2: 1, 4: 2, 8: 4, 16: 12}  # HR mode, ST


def rig(data=None, odr_mhz=200000, range_g=2, clock=True):
    d = {"sensors": {"accel": PART}}
    d.update(data or {})
    clk = ManualClock() if clock else None
    i2c = make_i2c(Scenario(data=d), clk.ticks_us if clk else None)
    drv = LIS3DH(i2c)
    drv.configure(odr_mhz, range_g)
    return drv, clk, i2c


def raises(exc_type, fn, *args):
    try:
        fn(*args)
    except exc_type as e:
        return e
    raise AssertionError("%s not raised" % exc_type.__name__)


def unpack(buf, n):
    return [struct.unpack_from("<hhh", buf, 6 * k) for k in range(n)]


def near(a, b, tol):
    return abs(a - b) <= tol


def digit(rng):
    """One 12-bit digit in output units (+-32768 = +-range g), rounded up, plus 1."""
    return MG_PER_DIGIT[rng] * 32768 // (1000 * rng) + 2


def test_identity_register_is_checked():
    drv, _, _ = rig()
    assert drv.PART == PART and drv.address == 0x18
    e = raises(SensorIdentityError, LIS3DH, make_i2c(Scenario(data={"sensors": {"accel": PART}, "faults": {"accel": "bad_id"}})))
    assert "lis3dh at 0x18" in str(e) and "WHO_AM_I reads 0x00, expected 0x33" in str(e), str(e)
    e = raises(SensorError, LIS3DH, make_i2c(Scenario(data={"sensors": {"accel": PART}})), 0x19)
    assert e.errno == 19 and "lis3dh at 0x19" in str(e), str(e)


def test_tables():
    assert LIS3DH.FIFO_DEPTH == 32
    assert LIS3DH.RANGES_G == (2, 4, 8, 16)
    for hz in (1, 10, 25, 50, 100, 200, 400, 1344):
        assert hz * 1000 in LIS3DH.ODRS_MHZ


def test_configure_rejects_unsupported_rate_and_range():
    drv, _, _ = rig()
    e = raises(ValueError, drv.configure, 800000, 2)
    assert "800000" in str(e), str(e)
    e = raises(ValueError, drv.configure, 5376000, 2)  # low-power only
    assert "5376000" in str(e), str(e)
    e = raises(ValueError, drv.configure, 100000, 6)
    assert "range 6 g" in str(e), str(e)


def test_configure_reaches_the_registers():
    drv, _, i2c = rig()
    sim = i2c.device(0x18)
    for odr in LIS3DH.ODRS_MHZ:
        drv.configure(odr, 2)
        drv.start()
        assert sim._odr_mhz == odr and sim._bits == 12, odr
        drv.stop()
    for rng in LIS3DH.RANGES_G:
        drv.configure(100000, rng)
        assert sim._mg == MG_PER_DIGIT[rng]


def test_fifo_fills_at_the_output_data_rate():
    drv, clk, _ = rig(odr_mhz=400000)
    buf = bytearray(6 * 32)
    drv.start()
    clk.advance_ms(50)
    assert near(drv.fifo_level(), 20, 1)
    assert near(drv.read_fifo_into(buf, 32), 20, 1)
    assert drv.fifo_level() == 0
    clk.advance_ms(25)
    assert near(drv.read_fifo_into(buf, 32), 10, 1)
    assert drv.overruns == 0


def test_fifo_fills_at_1344_hz():
    drv, clk, _ = rig(odr_mhz=1344000)
    buf = bytearray(6 * 32)
    drv.start()
    total = 0
    for _ in range(50):
        clk.advance_ms(20)
        total += drv.read_fifo_into(buf, 32)
    assert near(total, 1344, 1), total  # exact over a whole second
    assert drv.overruns == 0


def test_fifo_fills_in_real_time():
    drv, _, _ = rig(odr_mhz=400000, clock=False)
    buf = bytearray(6 * 32)
    t0 = time.ticks_us()
    drv.start()
    t1 = time.ticks_us()
    time.sleep_ms(40)
    t2 = time.ticks_us()
    n = drv.read_fifo_into(buf, 32)
    t3 = time.ticks_us()
    lo = time.ticks_diff(t2, t1) * 400 // 1000000 - 1
    hi = time.ticks_diff(t3, t0) * 400 // 1000000 + 1
    assert lo <= n <= hi, (lo, n, hi)


def test_gravity_is_scaled_to_the_range():
    for rng in LIS3DH.RANGES_G:
        drv, clk, _ = rig(QUIET, range_g=rng)
        buf = bytearray(6 * 32)
        drv.start()
        clk.advance_ms(50)
        n = drv.read_fifo_into(buf, 32)
        assert n == 10
        for x, y, z in unpack(buf, n):
            assert x == 0 and y == 0 and near(z, 32768 // rng, digit(rng)), (rng, x, y, z)


def test_tilted_gravity():
    drv, clk, _ = rig({"vibration": [], "noise_g": 0.0, "gravity": [0.8, 0.6, 0.0]}, range_g=4)
    buf = bytearray(6 * 32)
    drv.start()
    clk.advance_ms(20)
    for x, y, z in unpack(buf, drv.read_fifo_into(buf, 32)):
        assert near(x, 6554, digit(4)) and near(y, 4915, digit(4)) and z == 0, (x, y, z)


def test_default_scenario_has_noise_and_vibration_around_1g():
    drv, clk, _ = rig(odr_mhz=100000)
    buf = bytearray(6 * 32)
    drv.start()
    zs = []
    for _ in range(10):
        clk.advance_ms(300)
        n = drv.read_fifo_into(buf, 32)
        zs.extend([s[2] for s in unpack(buf, n)])
    mean = sum(zs) / len(zs)
    sd = (sum([(z - mean) ** 2 for z in zs]) / len(zs)) ** 0.5
    assert len(zs) == 300
    assert near(mean, 16384, 30), mean
    assert 15 < sd < 45, sd  # 2 mg vibration and 0.5 mg noise, in 1 mg digits


def test_overrun_is_counted_when_the_fifo_is_left_unread():
    drv, clk, i2c = rig(QUIET)
    buf = bytearray(6 * 32)
    drv.start()
    clk.advance_ms(1000)
    assert drv.fifo_level() == 32
    assert drv.read_fifo_into(buf, 32) == 32
    assert drv.overruns == 1
    assert drv.read_fifo_into(buf, 32) == 0
    clk.advance_ms(50)
    assert drv.read_fifo_into(buf, 32) == 10
    assert drv.overruns == 1
    assert i2c.device(0x18).samples == 210


def test_max_samples_and_buffer_size_limit_the_read():
    drv, clk, _ = rig(QUIET)
    drv.start()
    clk.advance_ms(100)
    assert drv.read_fifo_into(bytearray(6 * 32), 5) == 5
    assert drv.read_fifo_into(bytearray(6 * 3), 32) == 3
    assert drv.fifo_level() == 12


def test_stop_and_start():
    drv, clk, _ = rig(QUIET)
    drv.start()
    clk.advance_ms(50)
    drv.stop()
    clk.advance_ms(50)
    assert drv.fifo_level() == 10
    drv.start()
    assert drv.fifo_level() == 0
    clk.advance_ms(25)
    assert drv.read_fifo_into(bytearray(6 * 32), 32) == 5


def test_reading_allocates_nothing():
    drv, clk, _ = rig(odr_mhz=400000)
    buf = bytearray(6 * 32)
    drv.start()
    clk.advance_ms(30)
    drv.read_fifo_into(buf, 32)
    drv.fifo_level()
    gc.collect()
    total = 0
    got = 0
    for _ in range(30):
        clk.advance_ms(50)
        before = gc.mem_alloc()
        drv.fifo_level()
        got += drv.read_fifo_into(buf, 32)
        total += gc.mem_alloc() - before
    assert got == 600, got
    assert total == 0, total


def test_refuses_other_parts():
    i2c = make_i2c(Scenario(data={"sensors": {"accel": "adxl355"}}))
    e = raises(SensorIdentityError, LIS3DH, i2c, 0x1D)
    assert "lis3dh at 0x1d: WHO_AM_I reads 0x00" in str(e), str(e)
