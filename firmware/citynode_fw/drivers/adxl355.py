# Analog Devices ADXL355 low-noise 3-axis accelerometer (I2C).
#
# Data: 20-bit two's complement, left-justified in 3 big-endian bytes, 256000
# LSB/g at +-2 g (3.9 ug/LSB), 128000 at +-4 g, 64000 at +-8 g. The wire wants
# 32768/range_g per g, which is raw20 * 8/125 in every range.
#
# FIFO: 96 entries of 3 bytes, one axis each (32 x, y, z samples). In an entry
# the low byte's bit 0 marks an x-axis value and bit 1 an empty FIFO. The whole
# FIFO is read by one burst from FIFO_DATA (the address does not increment);
# read_fifo_into() takes whole samples, starts each on an x marker, and skips
# entries until the next x marker if it ever finds itself misaligned (after an
# overrun, or a read of a partial sample): those skips count in `resyncs`.
# A misaligned burst also ends mid-sample; the driver then reads the one or two
# entries that complete it, so the next burst starts on an x entry again.
# STATUS bit 2 (FIFO_OVR) reports lost data.
#
# Start-up: check DEVID_AD, DEVID_MST, PARTID; soft reset (0x52), wait, poll
# NVM_BUSY with a bound.
#
# Sources: ADXL355 datasheet (register map); analogdevicesinc/no-OS
# drivers/accel/adxl355/adxl355.c (FIFO burst from 0x11, x marker bit 0, empty
# bit 1, 3.9 ug/LSB); torvalds/linux drivers/iio/accel/adxl355_core.c.

from micropython import const
from time import sleep_ms

from citynode_fw.drivers.accel import Accelerometer, put_i16

ADDRESSES = (0x1D, 0x53)

_DEVID_AD = const(0x00)
_STATUS = const(0x04)
_FIFO_ENTRIES = const(0x05)
_FIFO_DATA = const(0x11)
_FILTER = const(0x28)
_FIFO_SAMPLES = const(0x29)
_RANGE = const(0x2C)
_POWER_CTL = const(0x2D)
_RESET = const(0x2F)

_RESET_CODE = const(0x52)
_STANDBY = const(0x01)  # POWER_CTL
_FIFO_OVR = const(0x04)  # STATUS
_NVM_BUSY = const(0x10)  # STATUS
_X_MARKER = const(0x01)  # FIFO entry, low byte
_EMPTY = const(0x02)  # FIFO entry, low byte
_FIFO_ENTRIES_MAX = const(96)


class ADXL355(Accelerometer):
    PART = "adxl355"
    # FILTER ODR_LPF codes 0..10: 4000 Hz / 2^code (7.8125 and 3.90625 Hz rounded to the mHz).
    ODRS_MHZ = (4000000, 2000000, 1000000, 500000, 250000, 125000, 62500, 31250, 15625, 7813, 3906)
    RANGES_G = (2, 4, 8)  # RANGE codes 1..3
    FIFO_DEPTH = 32
    DEFAULT_ODR_MHZ = 125000

    def __init__(self, i2c, address=0x1D):
        Accelerometer.__init__(self, i2c, address)
        self.resyncs = 0  # FIFO entries skipped to find an x marker again
        self._b2 = bytearray(2)
        self._ids = bytearray(3)
        self._scratch = bytearray(9 * self.FIFO_DEPTH + 6)  # a FIFO-full, plus 2 entries to realign
        mv = memoryview(self._scratch)
        self._bursts = [mv[: 9 * k] for k in range(self.FIFO_DEPTH + 1)]  # one view per sample count
        end = 9 * self.FIFO_DEPTH
        self._tails = [mv[end:end], mv[end : end + 3], mv[end : end + 6]]  # 0, 1, 2 entries after a burst
        self._done = 0  # read_fifo_into() state, kept here to avoid allocating
        self._axis = 0
        self._read_into(_DEVID_AD, self._ids)
        self._expect_id("DEVID_AD", self._ids[0], 0xAD)
        self._expect_id("DEVID_MST", self._ids[1], 0x1D)
        self._expect_id("PARTID", self._ids[2], 0xED)
        self.reset()
        self.configure(self.DEFAULT_ODR_MHZ, self.DEFAULT_RANGE_G)

    def reset(self):
        """Soft reset: back to standby with reset values; wait for the NVM reload, bounded."""
        self._write_u8(_RESET, _RESET_CODE)
        sleep_ms(5)  # datasheet: >= 5 ms after reset
        self._wait_clear(_STATUS, _NVM_BUSY, 20, 1, "NVM reload after reset")
        self.running = False

    def configure(self, odr_mhz, range_g):
        """Set rate (high-pass off) and range, FIFO watermark 96. Leaves the part in standby."""
        odr, rng = self._codes(odr_mhz, range_g)
        self._write_u8(_POWER_CTL, _STANDBY)  # the filter may only change in standby
        self.running = False
        self._write_u8(_FILTER, odr)
        keep = self._read_u8(_RANGE) & 0xC0  # I2C_HS and INT_POL
        self._write_u8(_RANGE, keep | (rng + 1))
        self._write_u8(_FIFO_SAMPLES, _FIFO_ENTRIES_MAX)
        self.odr_mhz = odr_mhz
        self.range_g = range_g

    def start(self):
        self._drain()
        self._write_u8(_POWER_CTL, 0)  # measurement mode, temperature on
        self.running = True

    def stop(self):
        self._write_u8(_POWER_CTL, _STANDBY)
        self.running = False

    def _drain(self):
        """Throw away what the FIFO holds: one FIFO-full per burst, a second for what came meanwhile."""
        for _ in range(2):
            entries = self._read_u8(_FIFO_ENTRIES) & 0x7F
            if not entries:
                return
            n = (entries + 2) // 3
            if n > self.FIFO_DEPTH:
                n = self.FIFO_DEPTH
            self._read_into(_FIFO_DATA, self._bursts[n])

    def fifo_level(self):
        return (self._read_u8(_FIFO_ENTRIES) & 0x7F) // 3

    def read_fifo_into(self, buf, max_samples):
        """Move up to max_samples whole samples from the FIFO into buf; return the count. No allocation."""
        st = self._b2
        self._read_into(_STATUS, st)  # STATUS, FIFO_ENTRIES
        if st[0] & _FIFO_OVR:
            self._ovr = True
        n = self._limit(buf, max_samples, (st[1] & 0x7F) // 3)
        self._done = 0
        self._axis = 0
        if n:
            self._read_into(_FIFO_DATA, self._bursts[n])
            self._walk(buf, 0, 3 * n)
            if self._axis:
                # The burst began mid-sample (after an overrun or a partial read),
                # so it ends mid-sample: read the rest of that sample, which
                # also leaves the FIFO aligned on an x entry again.
                need = 3 - self._axis
                self._read_into(_FIFO_DATA, self._tails[need])
                self._walk(buf, 3 * self.FIFO_DEPTH, need)  # the tail views sit there
                if self._axis:
                    self.resyncs += self._axis  # the rest was not there: drop it
        self._count_overrun()
        return self._done

    def _walk(self, buf, first, count):
        """Decode FIFO entries first..first+count-1 of the scratch buffer into buf."""
        s = self._scratch
        done = self._done
        axis = self._axis
        for e in range(first, first + count):
            p = 3 * e
            low = s[p + 2]
            if low & _EMPTY:
                break
            if low & _X_MARKER:
                if axis:
                    self.resyncs += axis  # a partial sample: drop it
                axis = 0
            elif axis == 0:
                self.resyncs += 1  # a y or z with no x before it
                continue
            v = (s[p] << 12) | (s[p + 1] << 4) | (low >> 4)
            if v & 0x80000:
                v -= 0x100000
            put_i16(buf, 6 * done + 2 * axis, (v * 8 + 62) // 125)
            axis += 1
            if axis == 3:
                axis = 0
                done += 1
        self._done = done
        self._axis = axis
