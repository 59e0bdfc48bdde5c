# Simulated SHT30 / SHT31 / SHT35 (SHT3x-DIS datasheet v5).
#
# Modelled: single-shot measurements at three repeatabilities, with (data ready
# at once: the bus is held instead) and without clock stretching (reads NACK
# until the conversion is done: 15 / 6 / 4 ms, the datasheet maxima); status
# register (0x8010 after power-up: alert pending, reset detected), clear status,
# heater on/off (status bit 13), soft reset, serial number (0x3780). A read
# with no result waiting NACKs; a result is read once. An unknown or periodic-
# mode command sets status bit 1 (command not processed) and is ignored.

from citynode_sim.sensirion import SimSensirion, words

_SINGLE_SHOT = {
    0x2400: 15000,
    0x240B: 6000,
    0x2416: 4000,
    0x2C06: 0,
    0x2C0D: 0,
    0x2C10: 0,
}


class SHT3x(SimSensirion):
    PART = "sht3x"
    ADDRESS = 0x44
    SEED = 30
    SERIAL_BASE = 0x1A2B0000

    def __init__(self, scenario, clock=None, variant="sht35"):
        SimSensirion.__init__(self, scenario, clock, variant)
        self.status = 0x8010

    def command(self, cmd):
        if len(cmd) < 2:
            return  # half a command: nothing happens, the next read NACKs
        c = (cmd[0] << 8) | cmd[1]
        if c != 0xF32D:
            self.status &= ~0x0002  # bit 1: the last command (before this status read) was refused
        if c in _SINGLE_SHOT:
            self._measure(_SINGLE_SHOT[c])
        elif c == 0xF32D:
            self._reply_later(words(self.status), 0, self.bad_id)
        elif c == 0x3780:
            self._reply_serial()
        elif c == 0x3041:
            self.status &= ~0x8C10
        elif c == 0x306D:
            self.status |= 0x2000
        elif c == 0x3066:
            self.status &= ~0x2000
        elif c == 0x30A2:
            self.status = 0x0010
            self._len = 0
        else:
            self.status |= 0x0002
