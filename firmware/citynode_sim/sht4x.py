# Simulated SHT40 / SHT41 / SHT45 (SHT4x datasheet; Sensirion embedded-i2c-sht4x).
#
# Modelled: measurements at three precisions (8.3 / 4.5 / 1.6 ms) and the six
# heater commands (the measurement comes after the heating time: 1.1 s or
# 0.11 s; the heating itself does not warm the simulated reading), serial
# number (0x89), soft reset (0x94). Reads NACK while measuring and when no
# result waits; an unknown command byte is NACKed.

from citynode_sim.sensirion import ENODEV, SimSensirion

_MEASURE = {
    0xFD: 8300,
    0xF6: 4500,
    0xE0: 1600,
    0x39: 1100000,
    0x2F: 1100000,
    0x1E: 1100000,
    0x32: 110000,
    0x24: 110000,
    0x15: 110000,
}


class SHT4x(SimSensirion):
    PART = "sht4x"
    ADDRESS = 0x44
    SEED = 40
    SERIAL_BASE = 0x0F1E0000
    RH_LO = -6.0  # the SHT4x scale runs from -6 to 119 %RH (the driver crops it)
    RH_SPAN = 125.0

    def __init__(self, scenario, clock=None, variant="sht45"):
        SimSensirion.__init__(self, scenario, clock, variant)

    def command(self, cmd):
        if not cmd:
            return
        c = cmd[0]
        if c in _MEASURE:
            self._measure(_MEASURE[c])
        elif c == 0x89:
            self._reply_serial()
        elif c == 0x94:
            self._len = 0
        else:
            raise OSError(ENODEV)
