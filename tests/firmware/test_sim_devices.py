# The simulated bus and parts at register level (citynode_sim), under MicroPython:
# what the datasheets say the parts do, checked without the drivers.

import time

from citynode_sim import sensirion as sim_sensirion
from citynode_sim.board import make_i2c
from citynode_sim.bus import SimI2C
from citynode_sim.clock import ManualClock
from citynode_sim.scenario import Scenario

QUIET = {"vibration": [], "noise_g": 0.0}


def rig(data=None):
    clk = ManualClock()
    sc = Scenario(data=data or {})
    return make_i2c(sc, clk.ticks_us), clk, sc


def enodev(fn, *args):
    try:
        fn(*args)
    except OSError as e:
        assert e.errno == 19, e
        return
    raise AssertionError("no ENODEV")


def test_absent_address_raises_enodev():
    i2c = SimI2C()
    assert i2c.scan() == []
    enodev(i2c.readfrom_mem_into, 0x53, 0, bytearray(1))
    enodev(i2c.writeto_mem, 0x53, 0x2D, b"\x08")
    enodev(i2c.writeto, 0x44, b"\x24\x00")
    enodev(i2c.readfrom_into, 0x44, bytearray(6))
    enodev(i2c.readfrom, 0x44, 6)


def test_board_fits_the_scenario_parts():
    i2c, _, sc = rig()
    assert i2c.scan() == [0x1D, 0x44]
    for climate, accel, addresses in (
        ("sht45", "adxl345", [0x44, 0x53]),
        ("none", "lis3dh", [0x18]),
        ("sht30", "none", [0x44]),
    ):
        sc.update({"sensors": {"climate": climate, "accel": accel}})
        assert i2c.scan() == addresses, (climate, accel, i2c.scan())
    assert i2c.board.parts["climate"].variant == "sht30"


def test_absent_fault_unplugs_and_replugs_a_fresh_part():
    i2c, clk, sc = rig({"sensors": {"accel": "adxl345"}})
    i2c.writeto_mem(0x53, 0x2D, b"\x08")  # measure
    sc.update({"sensors": {"accel": "adxl345"}, "faults": {"accel": "absent"}})
    enodev(i2c.readfrom_mem, 0x53, 0x2D, 1)
    sc.update({"sensors": {"accel": "adxl345"}})
    assert i2c.readfrom_mem(0x53, 0x2D, 1) == b"\x00"  # power-on state


def test_scenario_file_changes_reach_the_bus():
    path = "%s/citynode_sim_dev_%d.json" % ("/tmp", time.ticks_us() & 0xFFFFFF)
    with open(path, "w") as f:
        f.write('{"sensors": {"accel": "lis3dh"}}')
    try:
        sc = Scenario(path)
        i2c = make_i2c(sc)
        assert 0x18 in i2c.scan()
        with open(path, "w") as f:
            f.write('{"sensors": {"accel": "adxl355"}}')
        time.sleep_ms(220)
        assert 0x1D in i2c.scan() and 0x18 not in i2c.scan()
    finally:
        import os

        os.remove(path)


def test_sht3x_timing_and_reply_format():
    i2c, clk, _ = rig({"temperature_c": 25.0, "relative_humidity_pct": 50.0})
    i2c.writeto(0x44, b"\xf3\x2d")
    st = i2c.readfrom(0x44, 3)
    assert st[:2] == b"\x80\x10" and sim_sensirion.crc8(st[:2]) == st[2]  # status after power-up
    i2c.writeto(0x44, b"\x24\x00")
    clk.advance_us(14900)
    enodev(i2c.readfrom, 0x44, 6)  # NACK while measuring (15 ms max)
    clk.advance_us(200)
    r = i2c.readfrom(0x44, 6)
    t = (r[0] << 8) | r[1]
    rh = (r[3] << 8) | r[4]
    # 25 degC: 0x6666 ticks, 50 %RH: 0x8000, within 4 sigma of the noise (0.013 degC, 0.033 %RH)
    assert abs(t - 26214) <= 20 and abs(rh - 32768) <= 90, (t, rh)
    assert sim_sensirion.crc8(r[0:2]) == r[2] and sim_sensirion.crc8(r[3:5]) == r[5]
    enodev(i2c.readfrom, 0x44, 6)  # read once
    i2c.writeto(0x44, b"\x2c\x06")  # clock stretching: the data is there at the read
    i2c.readfrom(0x44, 6)
    i2c.writeto(0x44, b"\x20\x32")  # periodic mode is not modelled: status bit 1
    i2c.writeto(0x44, b"\xf3\x2d")
    assert i2c.readfrom(0x44, 3)[1] & 0x02


def test_sht4x_commands():
    i2c, clk, _ = rig({"sensors": {"climate": "sht41"}})
    enodev(i2c.writeto, 0x44, b"\xf3\x2d")  # not an SHT4x command
    i2c.writeto(0x44, b"\xe0")  # low precision: 1.6 ms
    clk.advance_us(1600)
    assert len(i2c.readfrom(0x44, 6)) == 6
    i2c.writeto(0x44, b"\x39")  # heater 1 s, then measure
    clk.advance_ms(1000)
    enodev(i2c.readfrom, 0x44, 6)
    clk.advance_ms(100)
    i2c.readfrom(0x44, 6)


def test_adxl345_fifo_overrun_and_watermark_flags():
    i2c, clk, _ = rig(dict(QUIET, sensors={"accel": "adxl345"}))
    i2c.writeto_mem(0x53, 0x31, b"\x08")  # full resolution, 2 g
    i2c.writeto_mem(0x53, 0x2C, b"\x0a")  # 100 Hz
    i2c.writeto_mem(0x53, 0x38, b"\x90")  # stream, watermark 16
    i2c.writeto_mem(0x53, 0x2D, b"\x08")  # measure
    clk.advance_ms(150)  # 15 samples
    assert i2c.readfrom_mem(0x53, 0x39, 1)[0] == 15
    assert i2c.readfrom_mem(0x53, 0x30, 1)[0] & 0x03 == 0
    clk.advance_ms(10)
    assert i2c.readfrom_mem(0x53, 0x30, 1)[0] & 0x03 == 0x02  # watermark
    clk.advance_ms(500)
    assert i2c.readfrom_mem(0x53, 0x39, 1)[0] == 32
    assert i2c.readfrom_mem(0x53, 0x30, 1)[0] & 0x01  # overrun
    d = i2c.readfrom_mem(0x53, 0x32, 6)
    assert d == b"\x00\x00\x00\x00\x00\x01"  # 256 LSB/g on z, little-endian
    assert i2c.readfrom_mem(0x53, 0x39, 1)[0] == 31
    assert not i2c.readfrom_mem(0x53, 0x30, 1)[0] & 0x01  # cleared by the read
    i2c.writeto_mem(0x53, 0x38, b"\x00")  # bypass empties the FIFO
    assert i2c.readfrom_mem(0x53, 0x39, 1)[0] == 0


def test_adxl355_fifo_entries_markers_and_status():
    i2c, clk, _ = rig(QUIET)
    assert i2c.readfrom_mem(0x1D, 0x00, 4) == b"\xad\x1d\xed\x01"
    i2c.writeto_mem(0x1D, 0x28, b"\x05")  # 125 Hz
    i2c.writeto_mem(0x1D, 0x2D, b"\x00")  # measure
    assert i2c.readfrom_mem(0x1D, 0x05, 1)[0] == 0
    e = i2c.readfrom_mem(0x1D, 0x11, 3)
    assert e[2] & 0x02  # empty
    clk.advance_ms(80)  # 10 samples
    assert i2c.readfrom_mem(0x1D, 0x05, 1)[0] == 30
    d = i2c.readfrom_mem(0x1D, 0x11, 9)
    assert d[2] & 1 and not d[5] & 1 and not d[8] & 1  # x marker on the first entry only
    assert d[6:8] == b"\x3e\x80" and d[8] & 0xF0 == 0  # z: 256000 = 0x3E800 << 4
    clk.advance_ms(1000)
    st = i2c.readfrom_mem(0x1D, 0x04, 1)[0]
    assert st & 0x06 == 0x06  # FIFO_FULL (96 >= watermark 96) and FIFO_OVR
    assert not i2c.readfrom_mem(0x1D, 0x04, 1)[0] & 0x04  # FIFO_OVR cleared by the read
    temp = i2c.readfrom_mem(0x1D, 0x06, 2)
    raw = ((temp[0] & 0x0F) << 8) | temp[1]
    assert abs(raw - (1885 + 9.05 * 3.5)) <= 1  # 21.5 degC


def test_lis3dh_fifo_source_register():
    i2c, clk, _ = rig(dict(QUIET, sensors={"accel": "lis3dh"}))
    assert i2c.readfrom_mem(0x18, 0x0F, 1) == b"\x33"
    i2c.writeto_mem(0x18, 0x23, b"\x88")  # BDU, HR, 2 g
    i2c.writeto_mem(0x18, 0x24, b"\x40")  # FIFO on
    i2c.writeto_mem(0x18, 0x2E, b"\x80")  # stream
    i2c.writeto_mem(0x18, 0x20, b"\x57")  # 100 Hz, xyz
    assert i2c.readfrom_mem(0x18, 0x2F, 1)[0] == 0x20  # empty
    clk.advance_ms(100)
    assert i2c.readfrom_mem(0x18, 0x2F, 1)[0] == 0x80 | 10  # WTM (FTH 0), 10 samples
    d = i2c.readfrom_mem(0x18, 0xA8, 6)
    assert d == b"\x00\x00\x00\x00\x80\x3e"  # 1000 mg = 1000 digits << 4 = 0x3E80
    clk.advance_ms(1000)
    assert i2c.readfrom_mem(0x18, 0x2F, 1)[0] & 0x7F == 0x40 | 31  # overrun, FSS saturated
    i2c.readfrom_mem(0x18, 0xA8, 6)
    assert i2c.readfrom_mem(0x18, 0x2F, 1)[0] & 0x7F == 31  # overrun cleared by the read


def test_simulation_is_cheap():
    # One second of 800 Hz data must cost well under a second of interpreter time.
    i2c, clk, _ = rig({"sensors": {"accel": "adxl345"}, "vibration": [{"freq_hz": 3.2, "amp_g": 0.01}, {"freq_hz": 11.0, "amp_g": 0.003}]})
    i2c.writeto_mem(0x53, 0x2C, b"\x0d")  # 800 Hz
    i2c.writeto_mem(0x53, 0x38, b"\x80")
    i2c.writeto_mem(0x53, 0x2D, b"\x08")
    buf = bytearray(6)
    t0 = time.ticks_ms()
    for _ in range(100):
        clk.advance_ms(10)
        for _ in range(8):
            i2c.readfrom_mem_into(0x53, 0x32, buf)
    took = time.ticks_diff(time.ticks_ms(), t0)
    assert i2c.board.parts["accel"].samples == 800
    assert took < 500, took
