"""Shared by the driver tests (test_drivers_*.py), under MicroPython: a bus with
the scenario's simulated parts, `raises`, and the accelerometer contract
(docs/architecture.md) as cases that take the part.

Each accelerometer test file keeps its own `def test_x():` wrappers, which call
these cases with the part and its numbers, plus the tests only that part has.
The cases read samples at the part's default rate (`Accel.odr_mhz`) and ask
for times that hold a whole number of samples, so the counts below are exact
for every part."""

import gc
import struct
import time

from citynode_fw.drivers.errors import SensorError, SensorIdentityError
from citynode_sim.board import make_i2c
from citynode_sim.clock import ManualClock
from citynode_sim.scenario import Scenario

QUIET = {"vibration": [], "noise_g": 0.0}


def bus(data=None, clock=None):
    """A simulated I2C bus with the parts the scenario fits (clock: ticks_us, or real time)."""
    return make_i2c(Scenario(data=data or {}), clock)


def raises(exc_type, fn, *args):
    """The exception fn(*args) raised, checked to be exc_type."""
    try:
        fn(*args)
    except exc_type as e:
        return e
    raise AssertionError("%s not raised" % exc_type.__name__)


def unpack(buf, n):
    """The first n samples of buf as (x, y, z) int16 tuples."""
    return [struct.unpack_from("<hhh", buf, 6 * k) for k in range(n)]


def near(a, b, tol):
    return abs(a - b) <= tol


def near3(sample, want, tol):
    """Each axis of sample within tol[axis] of want[axis]."""
    return near(sample[0], want[0], tol[0]) and near(sample[1], want[1], tol[1]) and near(sample[2], want[2], tol[2])


# -- accelerometers ---------------------------------------------------------------


class Accel:
    """One accelerometer under the shared cases.

    driver: the driver class (its PART is also the scenario's part name);
    address: its default I2C address; odr_mhz: the rate rig() configures unless
    told otherwise; tolerance(range_g): how far, in output units, each axis of
    a quiet sample may sit from the truth, as (x, y, z)."""

    def __init__(self, driver, address, odr_mhz, tolerance):
        self.driver = driver
        self.part = driver.PART
        self.address = address
        self.odr_mhz = odr_mhz
        self.tolerance = tolerance

    def ms_for(self, samples, odr_mhz=None):
        """Milliseconds in which `samples` samples fall due at odr_mhz (default: the rig's rate)."""
        return samples * 1000000 // (odr_mhz or self.odr_mhz)


def rig(part, data=None, odr_mhz=None, range_g=2, clock=True):
    """(driver, clock or None, bus): the part alone in the scenario, configured."""
    d = {"sensors": {"accel": part.part}}
    d.update(data or {})
    clk = ManualClock() if clock else None
    i2c = bus(d, clk.ticks_us if clk else None)
    drv = part.driver(i2c)
    drv.configure(odr_mhz or part.odr_mhz, range_g)
    return drv, clk, i2c


def identity_is_checked(part, bad_id_says, absent, absent_address=None):
    """The ID register(s) are read in __init__: a wrong ID is an identity error
    naming the part, address and each of bad_id_says; nothing at the address
    (scenario `absent`) is errno 19 naming the address."""
    drv, _, _ = rig(part)
    assert drv.PART == part.part and drv.address == part.address
    here = "%s at 0x%02x" % (part.part, part.address)
    e = raises(SensorIdentityError, part.driver, bus({"sensors": {"accel": part.part}, "faults": {"accel": "bad_id"}}))
    assert here in str(e), str(e)
    for words in bad_id_says:
        assert words in str(e), (words, str(e))
    address = absent_address or part.address
    e = raises(SensorError, part.driver, bus(absent), address)
    assert e.errno == 19 and "%s at 0x%02x" % (part.part, address) in str(e), str(e)


def refuses_part(part, other, address, says):
    """The driver refuses another accelerometer at a shared address, saying so."""
    e = raises(SensorIdentityError, part.driver, bus({"sensors": {"accel": other}}), address)
    assert says in str(e), str(e)


def tables(part, ranges_g, rates_hz):
    cls = part.driver
    assert cls.FIFO_DEPTH == 32
    assert cls.RANGES_G == ranges_g
    for hz in rates_hz:
        assert hz * 1000 in cls.ODRS_MHZ, hz


def configure_rejects(part, bad_rates_mhz, bad_range_g):
    """configure() refuses what the tables lack, naming the value, and keeps its configuration."""
    drv, _, _ = rig(part)
    for odr in bad_rates_mhz:
        e = raises(ValueError, drv.configure, odr, 2)
        assert str(odr) in str(e), str(e)
    e = raises(ValueError, drv.configure, part.odr_mhz, bad_range_g)
    assert "range %d g" % bad_range_g in str(e), str(e)
    assert drv.odr_mhz == part.odr_mhz and drv.range_g == 2  # unchanged


def fifo_fills_at_the_output_data_rate(part, odr_mhz, first_ms, then_ms):
    drv, clk, _ = rig(part, odr_mhz=odr_mhz)
    buf = bytearray(6 * 32)
    drv.start()
    clk.advance_ms(first_ms)
    n = first_ms * odr_mhz // 1000000
    assert near(drv.fifo_level(), n, 1)
    assert near(drv.read_fifo_into(buf, 32), n, 1)
    assert drv.fifo_level() == 0
    clk.advance_ms(then_ms)
    assert near(drv.read_fifo_into(buf, 32), then_ms * odr_mhz // 1000000, 1)
    assert drv.overruns == 0


def fifo_fills_in_real_time(part, odr_mhz):
    drv, _, _ = rig(part, odr_mhz=odr_mhz, clock=False)
    hz = odr_mhz // 1000
    buf = bytearray(6 * 32)
    t0 = time.ticks_us()
    drv.start()
    t1 = time.ticks_us()
    time.sleep_ms(40)
    t2 = time.ticks_us()
    n = drv.read_fifo_into(buf, 32)
    t3 = time.ticks_us()
    # a slow host (a loaded CI machine) may sleep longer: the read is capped at 32 samples
    lo = min(32, time.ticks_diff(t2, t1) * hz // 1000000 - 1)
    hi = time.ticks_diff(t3, t0) * hz // 1000000 + 1
    assert lo <= n <= hi, (lo, n, hi)


def gravity_is_scaled_to_the_range(part):
    """1 g on z reads 32768 / range_g in every range (the wire's unit)."""
    for rng in part.driver.RANGES_G:
        drv, clk, _ = rig(part, QUIET, range_g=rng)
        buf = bytearray(6 * 32)
        drv.start()
        clk.advance_ms(part.ms_for(10))
        n = drv.read_fifo_into(buf, 32)
        assert n == 10
        for s in unpack(buf, n):
            assert near3(s, (0, 0, 32768 // rng), part.tolerance(rng)), (rng, s)


def tilted_gravity(part, gravity, range_g, want, tol):
    data = {"vibration": [], "noise_g": 0.0, "gravity": gravity}
    drv, clk, _ = rig(part, data, range_g=range_g)
    buf = bytearray(6 * 32)
    drv.start()
    clk.advance_ms(20)
    for s in unpack(buf, drv.read_fifo_into(buf, 32)):
        assert near3(s, want, tol), s


def default_scenario_is_around_1g(part, odr_mhz, step_ms, mean_tol, sd_range=None):
    """The default scenario: z averages 1 g (16384 at 2 g); sd_range bounds
    the spread its vibration and noise give, where the part resolves them."""
    drv, clk, _ = rig(part, odr_mhz=odr_mhz)
    buf = bytearray(6 * 32)
    drv.start()
    zs = []
    for _ in range(10):
        clk.advance_ms(step_ms)
        n = drv.read_fifo_into(buf, 32)
        zs.extend([s[2] for s in unpack(buf, n)])
    assert len(zs) == 10 * step_ms * odr_mhz // 1000000, len(zs)
    mean = sum(zs) / len(zs)
    assert near(mean, 16384, mean_tol), mean
    if sd_range is not None:
        sd = (sum([(z - mean) ** 2 for z in zs]) / len(zs)) ** 0.5
        assert sd_range[0] < sd < sd_range[1], sd


def overrun_is_counted_when_the_fifo_is_left_unread(part):
    drv, clk, i2c = rig(part, QUIET)
    buf = bytearray(6 * 32)
    drv.start()
    clk.advance_ms(1000)  # a second of samples into a 32-sample FIFO
    assert drv.fifo_level() == 32
    assert drv.read_fifo_into(buf, 32) == 32
    assert drv.overruns == 1
    for s in unpack(buf, 32):  # whole samples, still the truth
        assert near3(s, (0, 0, 16384), part.tolerance(2)), s
    assert drv.read_fifo_into(buf, 32) == 0
    clk.advance_ms(part.ms_for(10))
    assert drv.read_fifo_into(buf, 32) == 10
    assert drv.overruns == 1
    assert i2c.device(part.address).samples == part.odr_mhz // 1000 + 10


def max_samples_and_buffer_size_limit_the_read(part):
    drv, clk, _ = rig(part, QUIET)
    drv.start()
    clk.advance_ms(part.ms_for(20))
    assert drv.read_fifo_into(bytearray(6 * 32), 5) == 5
    assert drv.read_fifo_into(bytearray(6 * 3), 32) == 3
    assert drv.fifo_level() == 12


def stop_and_start(part):
    drv, clk, _ = rig(part, QUIET)
    drv.start()
    clk.advance_ms(part.ms_for(10))
    drv.stop()
    clk.advance_ms(part.ms_for(10))
    assert drv.fifo_level() == 10  # nothing new while stopped
    drv.start()  # starts from an empty FIFO
    assert drv.fifo_level() == 0
    clk.advance_ms(part.ms_for(5))
    assert drv.read_fifo_into(bytearray(6 * 32), 32) == 5


def reading_allocates_nothing(part, odr_mhz, step_ms):
    """fifo_level() and read_fifo_into() allocate nothing, with the default
    scenario's vibration and noise on, over 30 reads of step_ms each."""
    drv, clk, _ = rig(part, odr_mhz=odr_mhz)
    buf = bytearray(6 * 32)
    drv.start()
    clk.advance_ms(step_ms)
    drv.read_fifo_into(buf, 32)  # warm-up
    drv.fifo_level()
    gc.collect()
    total = 0
    got = 0
    for _ in range(30):
        clk.advance_ms(step_ms)
        before = gc.mem_alloc()
        drv.fifo_level()
        got += drv.read_fifo_into(buf, 32)
        total += gc.mem_alloc() - before
    assert got == 30 * step_ms * odr_mhz // 1000000, got
    assert total == 0, total
