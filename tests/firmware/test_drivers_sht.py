# SHT3x / SHT4x drivers against the simulated parts (citynode_sim), under MicroPython.

import gc

from driver_cases import bus, raises

from citynode_fw.drivers import sensirion, sht3x, sht4x
from citynode_fw.drivers.errors import SensorCRCError, SensorError, SensorIdentityError, SensorTimeout
from citynode_sim import sensirion as sim_sensirion
from citynode_sim.board import make_i2c
from citynode_sim.clock import ManualClock
from citynode_sim.scenario import Scenario

RETRY_MS, SLACK_MS = 2, 10  # sensirion.py's _READ_RETRY_MS, _READ_SLACK_MS (consts, gone from the module)


# -- CRC and conversions --------------------------------------------------------


def test_crc8_datasheet_vectors():
    assert sensirion.crc8(b"\xbe\xef") == 0x92  # SHT3x-DIS table 20
    assert sensirion.crc8(b"\x00\x00") == 0x81
    assert sensirion.crc8(b"\xff\xff") == 0xAC
    assert sensirion.crc8(b"\x00\xbe\xef", 1, 2) == 0x92  # offset, no slicing


def test_crc8_agrees_with_the_simulators_own():
    for w in (0, 1, 0x1234, 0x6666, 0xBEEF, 0xFFFF):
        data = bytes((w >> 8, w & 0xFF))
        assert sensirion.crc8(data) == sim_sensirion.crc8(data), w


def test_check_words_in_place():
    reply = sim_sensirion.words(0x6666, 0x8000)
    sensirion.check_words(reply, 2, "sht3x", 0x44)
    reply[5] ^= 1
    e = raises(SensorCRCError, sensirion.check_words, reply, 2, "sht3x", 0x44)
    assert "0x44" in str(e) and "word 1" in str(e), str(e)


def test_temperature_end_points():
    assert sensirion.temp_centi_c(0) == -4500
    assert sensirion.temp_centi_c(0xFFFF) == 13000
    assert sensirion.temp_centi_c(0x6666) == 2500  # 175 * 0.4 - 45 = 25.00


def test_rh_end_points_sht3x():
    assert sht3x.rh_centi_pct(0) == 0
    assert sht3x.rh_centi_pct(0xFFFF) == 10000
    assert sht3x.rh_centi_pct(0x8000) == 5000


def test_rh_end_points_sht4x_are_cropped():
    assert sht4x.rh_centi_pct(0) == 0  # -6.00 %RH cropped
    assert sht4x.rh_centi_pct(0xFFFF) == 10000  # 119.00 %RH cropped
    assert sht4x.rh_centi_pct(3146) == 0  # -6 + 125 * 3146 / 65535 = 0.0006
    assert sht4x.rh_centi_pct(0x8000) == 5650


def test_conversions_agree_with_sensirion_integer_formulas():
    # sht3x.c / sht4x_i2c.c: T_mC = ((21875*S) >> 13) - 45000, RH_m = (12500*S) >> 13
    # and ((15625*S) >> 13) - 6000. Ours are the exact ratios in 0.01 units,
    # rounded (<= 5 milli); theirs truncate (< 1 milli) and 21875/2**13 is
    # 1.5e-5 below 175000/65535 (< 1.4 milli at the top of the range).
    for s in range(0, 65536, 97):
        t_milli = ((21875 * s) >> 13) - 45000
        assert abs(sensirion.temp_centi_c(s) * 10 - t_milli) <= 8, s
        rh3 = (12500 * s) >> 13
        assert abs(sht3x.rh_centi_pct(s) * 10 - rh3) <= 8, s
        rh4 = ((15625 * s) >> 13) - 6000
        rh4 = 0 if rh4 < 0 else 100000 if rh4 > 100000 else rh4
        assert abs(sht4x.rh_centi_pct(s) * 10 - rh4) <= 8, s


# -- SHT3x ----------------------------------------------------------------------


def test_sht3x_measures_the_scenario():
    d = sht3x.SHT3x(bus({"temperature_c": 21.5, "relative_humidity_pct": 48.0}))
    assert d.PART == "sht3x" and d.address == 0x44
    assert d.status & 0x0010  # reset detected, as after power-up
    t, rh = d.measure()
    assert abs(t - 2150) <= 10, t
    assert abs(rh - 4800) <= 20, rh


def test_sht3x_applies_sensor_error():
    data = {
        "temperature_c": 10.0,
        "relative_humidity_pct": 50.0,
        "sensor_error": {"temperature_offset_c": 0.5, "humidity_gain": 1.1, "humidity_offset_pct": -2.0},
    }
    t, rh = sht3x.SHT3x(bus(data)).measure()
    assert abs(t - 1050) <= 10, t
    assert abs(rh - 5300) <= 20, rh


def test_sht3x_read_nacks_until_conversion_done():
    clock = ManualClock()
    d = sht3x.SHT3x(bus(clock=clock.ticks_us))
    e = raises(SensorError, d.read)  # nothing started
    assert e.errno == 19 and "0x44" in str(e), str(e)
    d.start()
    clock.advance_ms(14)
    e = raises(SensorError, d.read)  # still converting: NACK
    assert e.errno == 19
    clock.advance_ms(d.CONVERSION_MS - 14)
    t, rh = d.read()
    assert abs(t - 2150) <= 10
    raises(SensorError, d.read)  # a result is read once


def test_sim_sht3x_nacks_while_measuring_at_each_repeatability_then_answers_once():
    # SHT3x-DIS: single shot without clock stretching, a read header during the measurement
    # is NACKed; done after its most (15 / 6 / 4 ms), the result is read once
    for cmd, most_ms in ((b"\x24\x00", 15), (b"\x24\x0b", 6), (b"\x24\x16", 4)):
        clock = ManualClock()
        i2c = bus(clock=clock.ticks_us)
        buf = bytearray(6)
        i2c.writeto(0x44, cmd)
        clock.advance_us(most_ms * 1000 - 1)
        assert raises(OSError, i2c.readfrom_into, 0x44, buf).errno == 19
        clock.advance_us(1)
        i2c.readfrom_into(0x44, buf)
        assert sensirion.bad_word(buf, 2) < 0
        assert raises(OSError, i2c.readfrom_into, 0x44, buf).errno == 19  # read once


def test_sht3x_read_during_the_measurement_is_retried_and_succeeds():
    clock = ManualClock()
    d = sht3x.SHT3x(bus(clock=clock.ticks_us))
    d.start()
    since = 13  # too early, as a late-stamped start or a held bus makes it
    clock.advance_ms(since)
    tries = 0
    r = d.read(since)
    while r is None:
        tries += 1
        assert since < d.CONVERSION_MS + SLACK_MS
        clock.advance_ms(RETRY_MS)
        since += RETRY_MS
        r = d.read(since)
    assert tries == 1 and since == 15  # the datasheet's 15 ms
    assert abs(r[0] - 2150) <= 10 and abs(r[1] - 4800) <= 20, r


def test_a_part_that_never_answers_ends_in_sensor_timeout_within_the_bound():
    for part, cls in (("sht35", sht3x.SHT3x), ("sht45", sht4x.SHT4x)):
        clock = ManualClock()
        i2c = bus({"sensors": {"climate": part}}, clock.ticks_us)
        d = cls(i2c)
        d.start()
        i2c.detach(0x44)  # gone mid-measurement: every read header NACKed from now on
        since = d.CONVERSION_MS
        clock.advance_ms(since)
        bound = d.CONVERSION_MS + SLACK_MS
        while since < bound:
            assert d.read(since) is None
            clock.advance_ms(RETRY_MS)
            since += RETRY_MS
        e = raises(SensorTimeout, d.read, since)
        assert since < bound + RETRY_MS
        assert e.errno == 110 and str(e).endswith("%s at 0x44: no measurement %d ms after start" % (cls.PART, since)), str(e)
        e = raises(SensorError, d.read)  # asked without the time since start: a NACK is a NACK
        assert e.errno == 19 and not isinstance(e, SensorTimeout)


def test_measure_ends_in_sensor_timeout_when_no_result_comes():
    i2c = bus()
    d = sht3x.SHT3x(i2c)
    transfers = []

    def gone_after_the_start():
        transfers.append(1)
        if len(transfers) > 1:
            i2c.detach(0x44)

    i2c.hook = gone_after_the_start
    e = raises(SensorTimeout, d.measure)
    assert e.errno == 110 and "no measurement" in str(e), str(e)
    assert len(transfers) == 1 + 1 + SLACK_MS // RETRY_MS  # the start, then bounded reads


def test_sht3x_bad_crc_raises_crc_error():
    clock = ManualClock()
    d = sht3x.SHT3x(bus({"faults": {"climate": "bad_crc"}}, clock.ticks_us))
    d.start()
    clock.advance_ms(d.CONVERSION_MS)
    e = raises(SensorCRCError, d.read)
    assert "sht3x at 0x44" in str(e) and e.errno == 5, str(e)


def test_sht3x_identity_failure_names_the_address():
    e = raises(SensorIdentityError, sht3x.SHT3x, bus({"faults": {"climate": "bad_id"}}))
    assert "0x44" in str(e), str(e)


def test_sht3x_absent():
    e = raises(SensorError, sht3x.SHT3x, bus({"faults": {"climate": "absent"}}))
    assert e.errno == 19 and "sht3x at 0x44" in str(e), str(e)
    e = raises(SensorError, sht3x.SHT3x, bus(), 0x45)
    assert "0x45" in str(e)


def test_sht3x_is_not_an_sht4x():
    raises(SensorError, sht3x.SHT3x, bus({"sensors": {"climate": "sht41"}}))


def test_sht3x_status_serial_heater():
    d = sht3x.SHT3x(bus())
    assert d.serial() == 0x1A2B0001  # the simulator's, seed 1
    d.clear_status()
    assert d.read_status() & 0x8010 == 0
    d.heater(True)
    assert d.read_status() & 0x2000
    d.heater(False)
    assert not d.read_status() & 0x2000


# -- SHT4x ----------------------------------------------------------------------


def test_sht4x_identity_is_the_serial_number():
    d = sht4x.SHT4x(bus({"sensors": {"climate": "sht45"}}))
    assert d.PART == "sht4x" and d.serial == 0x0F1E0001


def test_sht4x_measures_the_scenario():
    d = sht4x.SHT4x(bus({"sensors": {"climate": "sht40"}, "temperature_c": -12.3, "relative_humidity_pct": 91.0}))
    t, rh = d.measure()
    assert abs(t + 1230) <= 10, t
    assert abs(rh - 9100) <= 20, rh


def test_sht4x_crops_humidity_above_100():
    data = {"sensors": {"climate": "sht41"}, "relative_humidity_pct": 100.0, "sensor_error": {"humidity_offset_pct": 5.0}}
    assert sht4x.SHT4x(bus(data)).measure()[1] == 10000


def test_sht4x_read_nacks_until_conversion_done():
    clock = ManualClock()
    d = sht4x.SHT4x(bus({"sensors": {"climate": "sht45"}}, clock.ticks_us))
    d.start()
    clock.advance_ms(8)
    e = raises(SensorError, d.read)
    assert e.errno == 19 and "sht4x at 0x44" in str(e), str(e)
    clock.advance_ms(d.CONVERSION_MS - 8)
    d.read()


def test_sht4x_bad_crc_and_identity_and_absence():
    clock = ManualClock()
    d = sht4x.SHT4x(bus({"sensors": {"climate": "sht45"}, "faults": {"climate": "bad_crc"}}, clock.ticks_us))
    d.start()
    clock.advance_ms(d.CONVERSION_MS)
    raises(SensorCRCError, d.read)
    e = raises(SensorIdentityError, sht4x.SHT4x, bus({"sensors": {"climate": "sht45"}, "faults": {"climate": "bad_id"}}))
    assert "sht4x at 0x44" in str(e), str(e)
    e = raises(SensorError, sht4x.SHT4x, bus({"sensors": {"climate": "none"}}))
    assert e.errno == 19 and "0x44" in str(e)


def test_sht4x_is_not_an_sht3x():
    raises(SensorError, sht4x.SHT4x, bus({"sensors": {"climate": "sht31"}}))


# -- both -----------------------------------------------------------------------


def _read_allocation(d, clock):
    total = 0
    for _ in range(20):
        d.start()
        clock.advance_ms(d.CONVERSION_MS)
        before = gc.mem_alloc()
        d.read()
        total += gc.mem_alloc() - before
    return total


def test_read_allocates_nothing():
    for part, cls in (("sht35", sht3x.SHT3x), ("sht45", sht4x.SHT4x)):
        clock = ManualClock()
        d = cls(bus({"sensors": {"climate": part}}, clock.ticks_us))
        d.start()
        clock.advance_ms(d.CONVERSION_MS)
        r = d.read()  # warm-up
        gc.collect()
        assert _read_allocation(d, clock) == 0, part
        d.start()
        clock.advance_ms(d.CONVERSION_MS)
        assert d.read() is r  # the same list every time


def test_scenario_changes_reach_the_sensor():
    sc = Scenario(data={"temperature_c": 5.0})
    d = sht3x.SHT3x(make_i2c(sc))
    assert abs(d.measure()[0] - 500) <= 10
    sc.update({"temperature_c": 30.0})
    assert abs(d.measure()[0] - 3000) <= 10


def test_each_driver_accepts_only_its_own_part():
    # The board layer probes SHT4x then SHT3x at 0x44: each must refuse the other.
    for part in ("sht30", "sht31", "sht35"):
        sht3x.SHT3x(bus({"sensors": {"climate": part}}))
        raises(SensorError, sht4x.SHT4x, bus({"sensors": {"climate": part}}))
    for part in ("sht40", "sht41", "sht45"):
        sht4x.SHT4x(bus({"sensors": {"climate": part}}))
        raises(SensorError, sht3x.SHT3x, bus({"sensors": {"climate": part}}))
