# What the simulated SHT3x and SHT4x share: the CRC-8 (written here apart from
# the driver's, so each checks the other), the measurement cycle (a command,
# then NACK on reads until the conversion time has passed, then one 6-byte
# result, then NACK again), and the truth they measure.
#
# Measured value = scenario truth with the sensor errors applied (temperature +
# offset; humidity * gain + offset), plus noise of about the parts'
# repeatability (approximate: Sensirion gives repeatability as 3 sigma, about
# 0.04 degC and 0.1 %RH at high repeatability), quantised to the 16-bit ticks.

import time

from citynode_sim.motion import Motion

ENODEV = 19
_T_SD_MILLI = 13  # 0.013 degC: 0.04 degC / 3
_RH_SD_MILLI = 33  # 0.033 %RH: 0.1 %RH / 3


def crc8(data):
    crc = 0xFF
    for b in data:
        crc ^= b
        for _ in range(8):
            crc = ((crc << 1) ^ 0x31) & 0xFF if crc & 0x80 else (crc << 1) & 0xFF
    return crc


def words(*values):
    """Big-endian 16-bit words, each followed by its CRC, as Sensirion parts send them."""
    out = bytearray()
    for v in values:
        w = bytes(((v >> 8) & 0xFF, v & 0xFF))
        out.extend(w)
        out.append(crc8(w))
    return out


def ticks16(value, lo, span):
    """A physical value to 16-bit sensor ticks: round((value - lo) * 65535 / span), clipped."""
    t = int(round((value - lo) * 65535.0 / span))
    return 0 if t < 0 else 65535 if t > 65535 else t


class SimSensirion:
    PART = "sensirion"
    ADDRESS = 0x44
    SEED = 0
    SERIAL_BASE = 0  # the serial number is this | the scenario's seed
    RH_LO = 0.0  # %RH at tick 0
    RH_SPAN = 100.0  # %RH from tick 0 to tick 65535

    def __init__(self, scenario, clock=None, variant=None):
        self.variant = variant or self.PART
        self.serial = self.SERIAL_BASE | (scenario.data["seed"] & 0xFFFF)
        self._clock = clock or time.ticks_us
        self._data = scenario.data
        self._noise = Motion(scenario.data["seed"] * 7919 + self.SEED)
        self.bad_crc = False  # corrupt the CRC of measurement results
        self.bad_id = False  # corrupt the CRC of identity replies (status, serial)
        self.measurements = 0
        self._reply = bytearray(6)  # the waiting reply: _len bytes (no allocation on reads)
        self._len = 0
        self._ready_at = 0
        self._busy = False

    def apply(self, data):
        self._data = data

    def truth(self):
        """(temperature degC, RH %) the part would measure now, before quantisation."""
        d = self._data
        se = d["sensor_error"]
        t = d["temperature_c"] + se["temperature_offset_c"]
        rh = d["relative_humidity_pct"] * se["humidity_gain"] + se["humidity_offset_pct"]
        n = self._noise
        t += n.gauss() * _T_SD_MILLI / (1000.0 * 16384)
        rh += n.gauss() * _RH_SD_MILLI / (1000.0 * 16384)
        return t, rh

    def measurement(self):
        """(temperature, humidity) as 16-bit ticks, measured now."""
        t, rh = self.truth()
        return ticks16(t, -45.0, 175.0), ticks16(rh, self.RH_LO, self.RH_SPAN)

    def _measure(self, after_us):
        """A measurement command: the result can be read after_us from now."""
        self.measurements += 1
        st, srh = self.measurement()
        self._reply_later(words(st, srh), after_us, self.bad_crc)

    def _reply_serial(self):
        self._reply_later(words(self.serial >> 16, self.serial & 0xFFFF), 0, self.bad_id)

    def _reply_later(self, data, after_us, corrupt=False):
        r = self._reply
        n = len(data)
        for i in range(n):
            r[i] = data[i]
        if corrupt:
            for i in range(2, n, 3):
                r[i] ^= 0x5A
        self._len = n
        self._ready_at = time.ticks_add(self._clock(), after_us)
        self._busy = after_us > 0

    def _check_idle(self):
        """While measuring the part NACKs everything."""
        if self._busy:
            if time.ticks_diff(self._clock(), self._ready_at) < 0:
                raise OSError(ENODEV)
            self._busy = False

    def read(self, buf):
        self._check_idle()
        r = self._reply
        m = self._len
        if not m:
            raise OSError(ENODEV)  # no data: the read header is NACKed
        for i in range(len(buf)):
            buf[i] = r[i] if i < m else 0xFF
        self._len = 0

    def write(self, buf):
        self._check_idle()
        self.command(bytes(buf))

    def read_mem(self, reg, buf):
        self.write(bytes((reg,)))
        self.read(buf)

    def write_mem(self, reg, buf):
        self.write(bytes((reg,)) + bytes(buf))

    def command(self, cmd):
        raise NotImplementedError
