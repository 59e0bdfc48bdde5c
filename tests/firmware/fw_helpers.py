"""Shared by the citynode_fw tests: a temp folder to play the node's flash, a
board on a manual clock, the simulated sensors on a simulated bus (both from
citynode_sim.harness, which the benchmarks use too), a scripted serial input
and a decoder for what the node wrote."""

import io
import os

from citynode_protocol import armour
from citynode_protocol.decoder import Decoder
from citynode_sim.clock import ManualClock  # noqa: F401 (the tests' clock, h.ManualClock)
from citynode_sim.harness import FakeBoard, sim_bus  # noqa: F401 (shared with bench/mp)

_home = None


def _random_hex():
    """12 random hex digits (os.urandom where the port has it, as the Unix port does)."""
    if hasattr(os, "urandom"):
        return "".join("%02x" % b for b in os.urandom(6))
    import random

    return "%06x%06x" % (random.getrandbits(24), random.getrandbits(24))


def enter_tmpdir(tag):
    """chdir into a fresh folder under /tmp (the node's flash for one test)."""
    global _home
    if _home is None:
        _home = os.getcwd()
    for _ in range(20):
        # random names: parallel runs and folders left by an aborted run never collide
        path = "/tmp/citynode_fw_%s_%s" % (tag, _random_hex())
        try:
            os.mkdir(path)
        except OSError:
            continue
        os.chdir(path)
        return path
    raise OSError("could not make a fresh folder under /tmp")


def leave_tmpdir():
    path = os.getcwd()
    for entry in os.ilistdir(path):
        os.remove(path + "/" + entry[0])
    if _home is not None:
        os.chdir(_home)
    os.rmdir(path)


class ScriptedInput:
    """A reader for citynode_fw.link.Link: bytes come out one at a time, then none."""

    def __init__(self):
        self.data = bytearray()
        self.pos = 0

    def feed(self, data):
        self.data += data

    def readinto(self, buf):
        if self.pos >= len(self.data):
            return 0
        buf[0] = self.data[self.pos]
        self.pos += 1
        return 1


class Capture:
    """The node's serial output, decoded incrementally."""

    def __init__(self):
        self.out = io.BytesIO()
        self.decoder = Decoder()
        self._seen = 0
        self.messages = []

    def new(self):
        data = self.out.getvalue()
        fresh = self.decoder.feed(data[self._seen :])
        self._seen = len(data)
        self.messages.extend(fresh)
        return fresh

    def named(self, name):
        self.new()
        return [m for m in self.messages if m.name == name]


def command(request_id, name, args=None):
    return armour.encode_command(request_id, name, args)
