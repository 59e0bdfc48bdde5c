# What the accelerometer drivers share: register access through one pair of
# helpers, identity checks, table-driven configure() validation, bounded waits
# and the overrun bookkeeping.
#
# The contract (docs/architecture.md): configure(odr_mhz, range_g), start(),
# stop(), fifo_level(), read_fifo_into(buf, max_samples) writing interleaved
# little-endian int16 x, y, z scaled so that +-32768 is +-range_g, `overruns`,
# PART, FIFO_DEPTH, ODRS_MHZ, RANGES_G.

from time import sleep_ms

from citynode_fw.drivers.errors import ENODEV, ETIMEDOUT, SensorIdentityError, SensorTimeout, bus_error, where


def put_i16(buf, offset, value):
    """Store value as little-endian int16 at buf[offset], saturating to -32768..32767."""
    if value > 32767:
        value = 32767
    elif value < -32768:
        value = -32768
    buf[offset] = value & 0xFF
    buf[offset + 1] = (value >> 8) & 0xFF


class Accelerometer:
    PART = "accel"
    ODRS_MHZ = ()  # supported output data rates, mHz, in register-code order
    RANGES_G = ()  # supported ranges, +-g, in register-code order
    FIFO_DEPTH = 32  # samples (x, y, z sets) the hardware FIFO holds
    DEFAULT_ODR_MHZ = 100000
    DEFAULT_RANGE_G = 2

    def __init__(self, i2c, address):
        self._i2c = i2c
        self.address = address
        self._b1 = bytearray(1)
        self._sample = bytearray(6)  # one sample's data registers (_read_samples)
        self.odr_mhz = 0
        self.range_g = 0
        self.running = False
        self.overruns = 0  # read_fifo_into() calls that found the FIFO overrun flag set
        self._ovr = False  # overrun flag seen by a status read, not yet counted

    # -- register access -------------------------------------------------------

    def _read_into(self, reg, buf):
        try:
            self._i2c.readfrom_mem_into(self.address, reg, buf)
        except OSError as e:
            raise bus_error(self.PART, self.address, e, "reading register 0x%02x" % reg)

    def _read_u8(self, reg):
        self._read_into(reg, self._b1)
        return self._b1[0]

    def _write_u8(self, reg, value):
        b = self._b1
        b[0] = value
        try:
            self._i2c.writeto_mem(self.address, reg, b)
        except OSError as e:
            raise bus_error(self.PART, self.address, e, "writing register 0x%02x" % reg)

    def _expect_id(self, name, got, want):
        if got != want:
            raise SensorIdentityError(
                ENODEV, "%s: %s reads 0x%02x, expected 0x%02x" % (where(self.PART, self.address), name, got, want)
            )

    def _wait_clear(self, reg, mask, tries, step_ms, what):
        """Poll reg until (value & mask) == 0: at most `tries` reads, step_ms apart."""
        for _ in range(tries):
            if not self._read_u8(reg) & mask:
                return
            sleep_ms(step_ms)
        raise SensorTimeout(
            ETIMEDOUT, "%s: %s still pending after %d ms" % (where(self.PART, self.address), what, tries * step_ms)
        )

    # -- configuration -----------------------------------------------------------

    def _codes(self, odr_mhz, range_g):
        """Table indices of odr_mhz and range_g; ValueError naming an unsupported value."""
        if odr_mhz not in self.ODRS_MHZ:
            raise ValueError(
                "%s: output data rate %r mHz not supported (supported: %s)"
                % (self.PART, odr_mhz, ", ".join([str(v) for v in self.ODRS_MHZ]))
            )
        if range_g not in self.RANGES_G:
            raise ValueError(
                "%s: range %r g not supported (supported: %s)"
                % (self.PART, range_g, ", ".join([str(v) for v in self.RANGES_G]))
            )
        return self.ODRS_MHZ.index(odr_mhz), self.RANGES_G.index(range_g)

    def _count_overrun(self):
        if self._ovr:
            self.overruns += 1
            self._ovr = False

    # -- the contract ------------------------------------------------------------

    def configure(self, odr_mhz, range_g):
        raise NotImplementedError

    def start(self):
        raise NotImplementedError

    def stop(self):
        raise NotImplementedError

    def fifo_level(self):
        raise NotImplementedError

    def read_fifo_into(self, buf, max_samples):
        raise NotImplementedError

    def _read_samples(self, reg, buf, n, num, den):
        """n samples into buf, each one 6-byte burst from reg (x, y, z as
        little-endian int16 registers), every axis as raw * num / den rounded.
        For parts whose FIFO pops a whole sample per burst. No allocation."""
        s = self._sample
        half = den >> 1
        for k in range(n):
            self._read_into(reg, s)
            o = 6 * k
            for a in (0, 2, 4):
                v = s[a] | (s[a + 1] << 8)
                if v & 0x8000:
                    v -= 0x10000
                put_i16(buf, o + a, (v * num + half) // den)

    def _limit(self, buf, max_samples, available):
        n = len(buf) // 6
        if max_samples < n:
            n = max_samples
        if available < n:
            n = available
        return n if n > 0 else 0
