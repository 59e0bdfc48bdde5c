# LIS3DH driver against the simulated part (citynode_sim), under MicroPython.
# The accelerometer contract's cases are in driver_cases.py; this file gives
# them the LIS3DH's numbers and adds what only this part has.

import driver_cases as cases
from driver_cases import near, rig

from citynode_fw.drivers.lis3dh import LIS3DH

MG_PER_DIGIT = {2: 1, 4: 2, 8: 4, 16: 12}  # HR mode, ST


def digit(rng):
    """One 12-bit digit in output units (+-32768 = +-range g), rounded up, plus 1."""
    return MG_PER_DIGIT[rng] * 32768 // (1000 * rng) + 2


# x and y read 0 exactly (no gravity on them); z is within a digit of the truth.
PART = cases.Accel(LIS3DH, 0x18, 200000, lambda rng: (0, 0, digit(rng)))


def test_identity_register_is_checked():
    cases.identity_is_checked(PART, ["WHO_AM_I reads 0x00, expected 0x33"], {"sensors": {"accel": "lis3dh"}}, 0x19)


def test_tables():
    cases.tables(PART, (2, 4, 8, 16), (1, 10, 25, 50, 100, 200, 400, 1344))


def test_configure_rejects_unsupported_rate_and_range():
    cases.configure_rejects(PART, (800000, 5376000), 6)  # 5376 Hz: low-power only


def test_configure_reaches_the_registers():
    drv, _, i2c = rig(PART)
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
    cases.fifo_fills_at_the_output_data_rate(PART, 400000, 50, 25)


def test_fifo_fills_at_1344_hz():
    drv, clk, _ = rig(PART, odr_mhz=1344000)
    buf = bytearray(6 * 32)
    drv.start()
    total = 0
    for _ in range(50):
        clk.advance_ms(20)
        total += drv.read_fifo_into(buf, 32)
    assert near(total, 1344, 1), total  # exact over a whole second
    assert drv.overruns == 0


def test_fifo_fills_in_real_time():
    cases.fifo_fills_in_real_time(PART, 400000)


def test_gravity_is_scaled_to_the_range():
    cases.gravity_is_scaled_to_the_range(PART)


def test_tilted_gravity():
    cases.tilted_gravity(PART, [0.8, 0.6, 0.0], 4, (6554, 4915, 0), (digit(4), digit(4), 0))


def test_default_scenario_has_noise_and_vibration_around_1g():
    # 2 mg vibration and 0.5 mg noise, in 1 mg digits
    cases.default_scenario_is_around_1g(PART, 100000, 300, 30, (15, 45))


def test_overrun_is_counted_when_the_fifo_is_left_unread():
    cases.overrun_is_counted_when_the_fifo_is_left_unread(PART)


def test_max_samples_and_buffer_size_limit_the_read():
    cases.max_samples_and_buffer_size_limit_the_read(PART)


def test_stop_and_start():
    cases.stop_and_start(PART)


def test_reading_allocates_nothing():
    cases.reading_allocates_nothing(PART, 400000, 50)


def test_refuses_other_parts():
    cases.refuses_part(PART, "adxl355", 0x1D, "lis3dh at 0x1d: WHO_AM_I reads 0x00")
