# ADXL345 driver against the simulated part (citynode_sim), under MicroPython.

import gc
import struct
import time

from citynode_fw.drivers.adxl345 import ADXL345
from citynode_fw.drivers.errors import SensorError, SensorIdentityError
from citynode_sim.board import make_i2c
from citynode_sim.clock import ManualClock
from citynode_sim.scenario import Scenario

PART = "adxl345"
QUIET = {"vibration": [], "noise_g": 0.0}


def rig(data=None, odr_mhz=200000, range_g=2, clock=True):
    d = {"sensors": {"accel": PART}}
    d.update(data or {})
    clk = ManualClock() if clock else None
    i2c = make_i2c(Scenario(data=d), clk.ticks_us if clk else None)
    drv = ADXL345(i2c)
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


def test_identity_register_is_checked():
    drv, _, _ = rig()
    assert drv.PART == PART and drv.address == 0x53
    e = raises(SensorIdentityError, ADXL345, make_i2c(Scenario(data={"sensors": {"accel": PART}, "faults": {"accel": "bad_id"}})))
    assert "adxl345 at 0x53" in str(e) and "DEVID reads 0x00, expected 0xe5" in str(e), str(e)
    e = raises(SensorError, ADXL345, make_i2c(Scenario(data={"sensors": {"accel": "none"}})))
    assert e.errno == 19 and "adxl345 at 0x53" in str(e), str(e)


def test_tables():
    assert ADXL345.FIFO_DEPTH == 32
    assert ADXL345.RANGES_G == (2, 4, 8, 16)
    for hz in (100, 200, 400, 800):
        assert hz * 1000 in ADXL345.ODRS_MHZ
    assert 1600000 not in ADXL345.ODRS_MHZ  # SPI-only rates per the datasheet


def test_configure_rejects_unsupported_rate_and_range():
    drv, _, _ = rig()
    e = raises(ValueError, drv.configure, 1600000, 2)
    assert "1600000" in str(e), str(e)
    e = raises(ValueError, drv.configure, 125000, 2)
    assert "125000" in str(e), str(e)
    e = raises(ValueError, drv.configure, 100000, 3)
    assert "range 3 g" in str(e), str(e)


def test_configure_reaches_the_registers():
    drv, _, i2c = rig()
    sim = i2c.device(0x53)
    for odr in ADXL345.ODRS_MHZ:
        drv.configure(odr, 2)
        assert sim._odr_mhz == odr, odr
    for rng in ADXL345.RANGES_G:
        drv.configure(100000, rng)
        assert sim._per_g == 256  # full resolution in every range
        assert sim._hi == 256 * rng - 1


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
    for rng in ADXL345.RANGES_G:
        drv, clk, _ = rig(QUIET, range_g=rng)
        buf = bytearray(6 * 32)
        drv.start()
        clk.advance_ms(50)
        n = drv.read_fifo_into(buf, 32)
        assert n == 10
        for x, y, z in unpack(buf, n):
            assert x == 0 and y == 0 and z == 32768 // rng, (rng, x, y, z)


def test_tilted_gravity():
    drv, clk, _ = rig({"vibration": [], "noise_g": 0.0, "gravity": [0.0, -0.6, 0.8]}, range_g=16)
    buf = bytearray(6 * 32)
    drv.start()
    clk.advance_ms(20)
    lsb = 2048 // 256  # one 3.9 mg count at 16 g, in output units
    for x, y, z in unpack(buf, drv.read_fifo_into(buf, 32)):
        assert x == 0 and near(y, -1229, lsb) and near(z, 1638, lsb), (x, y, z)


def test_full_scale_saturates():
    drv, clk, _ = rig({"vibration": [], "noise_g": 0.0, "sensor_error": {"accel_bias_g": [0.0, 0.0, 1.0]}}, range_g=2)
    buf = bytearray(6 * 32)
    drv.start()
    clk.advance_ms(10)
    for x, y, z in unpack(buf, drv.read_fifo_into(buf, 32)):
        assert z == 32704, z  # 2 g is past the 10-bit full scale: 511 counts


def test_default_scenario_is_around_1g():
    drv, clk, _ = rig(odr_mhz=100000)
    buf = bytearray(6 * 32)
    drv.start()
    zs = []
    for _ in range(10):
        clk.advance_ms(300)
        n = drv.read_fifo_into(buf, 32)
        zs.extend([s[2] for s in unpack(buf, n)])
    mean = sum(zs) / len(zs)
    assert near(mean, 16384, 64), mean  # within one 3.9 mg count
    assert len(zs) == 300


def test_overrun_is_counted_when_the_fifo_is_left_unread():
    drv, clk, i2c = rig(QUIET)
    buf = bytearray(6 * 32)
    drv.start()
    clk.advance_ms(1000)  # 200 samples into a 32-sample FIFO
    assert drv.fifo_level() == 32
    assert drv.read_fifo_into(buf, 32) == 32
    assert drv.overruns == 1
    assert drv.read_fifo_into(buf, 32) == 0
    clk.advance_ms(50)
    assert drv.read_fifo_into(buf, 32) == 10
    assert drv.overruns == 1
    assert i2c.device(0x53).samples == 210


def test_max_samples_and_buffer_size_limit_the_read():
    drv, clk, _ = rig(QUIET)
    drv.start()
    clk.advance_ms(100)  # 20 samples
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
    drv, clk, _ = rig(odr_mhz=800000)  # default scenario: vibration and noise on
    buf = bytearray(6 * 32)
    drv.start()
    clk.advance_ms(30)
    drv.read_fifo_into(buf, 32)  # warm-up
    drv.fifo_level()
    gc.collect()
    total = 0
    got = 0
    for _ in range(30):
        clk.advance_ms(25)
        before = gc.mem_alloc()
        drv.fifo_level()
        got += drv.read_fifo_into(buf, 32)
        total += gc.mem_alloc() - before
    assert got == 600, got
    assert total == 0, total


def test_refuses_the_other_accelerometers():
    i2c = make_i2c(Scenario(data={"sensors": {"accel": "adxl355"}}))
    e = raises(SensorIdentityError, ADXL345, i2c, 0x1D)
    assert "adxl345 at 0x1d: DEVID reads 0xad" in str(e), str(e)
