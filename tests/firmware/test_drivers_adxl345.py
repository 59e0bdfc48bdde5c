# ADXL345 driver against the simulated part (citynode_sim), under MicroPython.
# The accelerometer contract's cases are in driver_cases.py; this file gives
# them the ADXL345's numbers and adds what only this part has.

import driver_cases as cases
from driver_cases import rig, unpack

from citynode_fw.drivers.adxl345 import ADXL345

LSB_16G = 2048 // 256  # one 3.9 mg count at 16 g, in output units

# Full resolution: 256 counts per g in every range, which the output shifts
# left into +-32768 = +-range_g exactly: quiet samples are exact.
PART = cases.Accel(ADXL345, 0x53, 200000, lambda rng: (0, 0, 0))


def test_identity_register_is_checked():
    cases.identity_is_checked(PART, ["DEVID reads 0x00, expected 0xe5"], {"sensors": {"accel": "none"}})


def test_tables():
    cases.tables(PART, (2, 4, 8, 16), (100, 200, 400, 800))
    assert 1600000 not in ADXL345.ODRS_MHZ  # SPI-only rates per the datasheet


def test_configure_rejects_unsupported_rate_and_range():
    cases.configure_rejects(PART, (1600000, 125000), 3)


def test_configure_reaches_the_registers():
    drv, _, i2c = rig(PART)
    sim = i2c.device(0x53)
    for odr in ADXL345.ODRS_MHZ:
        drv.configure(odr, 2)
        assert sim._odr_mhz == odr, odr
    for rng in ADXL345.RANGES_G:
        drv.configure(100000, rng)
        assert sim._per_g == 256  # full resolution in every range
        assert sim._hi == 256 * rng - 1


def test_fifo_fills_at_the_output_data_rate():
    cases.fifo_fills_at_the_output_data_rate(PART, 400000, 50, 25)


def test_fifo_fills_in_real_time():
    cases.fifo_fills_in_real_time(PART, 400000)


def test_gravity_is_scaled_to_the_range():
    cases.gravity_is_scaled_to_the_range(PART)


def test_tilted_gravity():
    cases.tilted_gravity(PART, [0.0, -0.6, 0.8], 16, (0, -1229, 1638), (0, LSB_16G, LSB_16G))


def test_full_scale_saturates():
    drv, clk, _ = rig(PART, {"vibration": [], "noise_g": 0.0, "sensor_error": {"accel_bias_g": [0.0, 0.0, 1.0]}})
    buf = bytearray(6 * 32)
    drv.start()
    clk.advance_ms(10)
    for x, y, z in unpack(buf, drv.read_fifo_into(buf, 32)):
        assert z == 32704, z  # 2 g is past the 10-bit full scale: 511 counts


def test_default_scenario_is_around_1g():
    cases.default_scenario_is_around_1g(PART, 100000, 300, 64)  # within one 3.9 mg count


def test_overrun_is_counted_when_the_fifo_is_left_unread():
    cases.overrun_is_counted_when_the_fifo_is_left_unread(PART)


def test_max_samples_and_buffer_size_limit_the_read():
    cases.max_samples_and_buffer_size_limit_the_read(PART)


def test_stop_and_start():
    cases.stop_and_start(PART)


def test_reading_allocates_nothing():
    cases.reading_allocates_nothing(PART, 800000, 25)


def test_refuses_the_other_accelerometers():
    cases.refuses_part(PART, "adxl355", 0x1D, "adxl345 at 0x1d: DEVID reads 0xad")

