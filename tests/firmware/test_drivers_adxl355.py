# ADXL355 driver against the simulated part (citynode_sim), under MicroPython.
# The accelerometer contract's cases are in driver_cases.py; this file gives
# them the ADXL355's numbers and adds what only this part has.

import driver_cases as cases
from driver_cases import QUIET, bus, near, raises, rig, unpack

from citynode_fw.drivers.adxl355 import ADXL355
from citynode_fw.drivers.errors import SensorError, SensorIdentityError

# 20-bit samples scaled by 8/125 and rounded: within a count of the truth.
PART = cases.Accel(ADXL355, 0x1D, 250000, lambda rng: (1, 1, 1))


def test_identity_registers_are_checked():
    cases.identity_is_checked(PART, ["PARTID", "0xe9"], {"faults": {"accel": "absent"}})
    e = raises(SensorIdentityError, ADXL355, bus({"sensors": {"accel": "adxl345"}}), 0x53)
    assert "DEVID_AD reads 0xe5" in str(e), str(e)


def test_tables():
    cases.tables(PART, (2, 4, 8), (125, 250, 500, 1000, 4000))
    assert ADXL355.ODRS_MHZ[-1] == 3906


def test_configure_rejects_unsupported_rate_and_range():
    cases.configure_rejects(PART, (100000,), 16)  # 100 Hz: not a 4000/2^k rate


def test_configure_reaches_the_registers():
    drv, _, i2c = rig(PART)
    sim = i2c.device(0x1D)
    for odr in ADXL355.ODRS_MHZ:
        drv.configure(odr, 2)
        assert near(sim._odr_mhz, odr, 1), odr
    for rng, per_g in ((2, 256000), (4, 128000), (8, 64000)):
        drv.configure(125000, rng)
        assert sim._per_g == per_g


def test_fifo_fills_at_the_output_data_rate():
    cases.fifo_fills_at_the_output_data_rate(PART, 250000, 100, 36)


def test_fifo_fills_in_real_time():
    cases.fifo_fills_in_real_time(PART, 500000)


def test_gravity_is_scaled_to_the_range():
    cases.gravity_is_scaled_to_the_range(PART)


def test_tilted_gravity():
    cases.tilted_gravity(PART, [0.6, 0.0, -0.8], 4, (4915, 0, -6554), (1, 1, 1))


def test_default_scenario_has_noise_and_vibration_around_1g():
    # 2 mg at 3.2 Hz (23 counts rms) and 0.5 mg noise (8 counts rms)
    cases.default_scenario_is_around_1g(PART, 125000, 200, 30, (15, 40))


def test_sensor_error_bias_and_scale():
    data = {"vibration": [], "noise_g": 0.0, "sensor_error": {"accel_bias_g": [0.01, -0.02, 0.0], "accel_scale": [1.0, 1.0, 1.02]}}
    drv, clk, _ = rig(PART, data)
    buf = bytearray(6 * 32)
    drv.start()
    clk.advance_ms(20)
    for x, y, z in unpack(buf, drv.read_fifo_into(buf, 32)):
        assert near(x, 164, 1) and near(y, -328, 1) and near(z, 16712, 1), (x, y, z)


def test_overrun_is_counted_when_the_fifo_is_left_unread():
    cases.overrun_is_counted_when_the_fifo_is_left_unread(PART)


def test_resyncs_on_the_x_marker_after_a_partial_read():
    drv, clk, i2c = rig(PART, QUIET)
    buf = bytearray(6 * 32)
    drv.start()
    clk.advance_ms(40)  # 10 samples = 30 entries
    i2c.readfrom_mem_into(0x1D, 0x11, bytearray(3))  # someone takes one x entry
    n = drv.read_fifo_into(buf, 32)
    # 29 entries: y, z (skipped), then 9 whole samples; the burst of 27 ends on
    # the 9th x, and the driver reads its y and z to realign.
    assert n == 9, n
    assert drv.resyncs == 2
    for x, y, z in unpack(buf, n):
        assert near(x, 0, 1) and near(y, 0, 1) and near(z, 16384, 1), (x, y, z)
    assert drv.fifo_level() == 0
    clk.advance_ms(8)
    assert drv.read_fifo_into(buf, 32) == 2  # aligned again: nothing lost
    assert drv.resyncs == 2


def test_max_samples_and_buffer_size_limit_the_read():
    cases.max_samples_and_buffer_size_limit_the_read(PART)


def test_stop_and_start():
    cases.stop_and_start(PART)


def test_reading_allocates_nothing():
    cases.reading_allocates_nothing(PART, 500000, 50)


def test_refuses_the_other_accelerometers():
    # ADXL345 and ADXL355 share 0x1D and 0x53; the board layer relies on the IDs.
    cases.refuses_part(PART, "adxl345", 0x53, "adxl355 at 0x53: DEVID_AD reads 0xe5")
    raises(SensorError, ADXL355, bus({"sensors": {"accel": "lis3dh"}}), 0x1D)
