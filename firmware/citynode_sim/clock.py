# A clock for the simulated devices. Devices take `clock`, a function returning
# microsecond ticks (time.ticks_us by default); tests pass ManualClock().ticks_us
# to move time by hand and get exact sample counts.

import time


class ManualClock:
    def __init__(self, start=0):
        self.t = start

    def ticks_us(self):
        return self.t

    def advance_us(self, us):
        self.t = time.ticks_add(self.t, us)

    def advance_ms(self, ms):
        self.t = time.ticks_add(self.t, ms * 1000)
