# What the MicroPython test programs in this folder share: their options (a JSON
# file, removed once read: this Unix port dies on an argument of 256+
# characters) and the node clock since the program started.
import json
import os
import sys
import time

from citynode_fw.nodetime import MASK

_T0 = time.ticks_ms()


def options():
    with open(sys.argv[1]) as f:
        opt = json.load(f)
    os.remove(sys.argv[1])
    return opt


def now():
    return time.ticks_diff(time.ticks_ms(), _T0) & MASK
