# Frames made by the firmware's own code for tests/host/test_fleet_sim.py: the node's
# Link (one sequence counter), Sampler (climate, accel blocks), Features.pack_into,
# Node.send_status / send_time and Uplink.put (signed in place), for frames the
# test describes. argv[1]: a JSON file of options. Prints one JSON line: the
# signed wire frames in hex, in the order made.
import json

from citynode_protocol import auth
from citynode_fw.features import Features
from citynode_fw.link import Link
from citynode_fw.node import Node
from citynode_fw.sampler import Sampler
from citynode_fw.status import Counters
from citynode_fw.uplink import Uplink
from program_io import options

opt = options()


class Serial:
    def write(self, buf, n):
        return n


class NoInput:
    def readinto(self, buf):
        return 0


class CaptureRing:
    """The uplink's ring, keeping each signed frame as it is committed."""

    def __init__(self):
        self.page = bytearray(4400)
        self.frames = []

    def room(self, n, is_accel):
        return 0

    def commit(self, n):
        self.frames.append(bytes(self.page[:n]))


class Board:
    def wraps_at(self, t):
        return 0


class Calib:
    def __init__(self, calib_id):
        self.id = calib_id


class NodeState:
    """What Node.send_status and Node.send_time read of a node."""

    def __init__(self, link, board):
        self.link = link
        self.board = board
        self.counters = Counters()
        self.t = 0
        self.time_offset = None
        self.spec = None
        self.calib = None
        self.uplink = None  # set below: a networked node sends TIME only when it learns the time

    def now(self):
        return self.t

    def sensors(self):
        return self.spec["fitted"], self.spec["ok"]

    def uptime_s(self):
        return self.spec["uptime_s"]

    def flags(self):
        return self.spec["flags"]

    def send_time(self, now):
        return Node.send_time(self, now)


class StatusBoard(Board):
    def __init__(self, state):
        self.state = state

    def free_heap(self):
        return self.state.spec["free_heap"]

    def supply_mv(self):
        return self.state.spec["supply_mv"]


class NoFeatures:
    def add_block(self, buf, n, first):
        pass

    def set_flags(self, flags, tilt):
        pass

    def gap(self):
        pass


node_id = opt["node"]
counters = Counters()
ring = CaptureRing()
link = Link(node_id, counters, out=Serial(), reader=NoInput(), board=Board())
link.seq = opt["first_seq"] & 0xFFFF
up = Uplink(node_id, None, auth.Signer(bytes.fromhex(opt["key"])), opt["boot"], ("127.0.0.1", 1883), ring=ring)
up.seq_hi = opt["first_seq"] >> 16
up.linger_ms = opt.get("linger_ms", 0)  # a climate node's: its frames become records of bundles
link.uplink = up
sampler = Sampler(link, counters, NoFeatures(), None)
cfg = {"climate_period_s": 60, "mode": "raw", "accel_encoding": "auto", "feature_window_s": 10,
       "accel_odr_hz": opt["odr_hz"], "accel_range_g": opt["range_g"], "accel_block_samples": opt["block"]}
sampler.configure(cfg, None, 0)
features = Features()
state = NodeState(link, None)
state.uplink = up
state.board = StatusBoard(state)

for f in opt["frames"]:
    kind = f["kind"]
    t = f["t"]
    if kind == "log":
        link.log(f["level"], f["text"], t)
    elif kind == "climate":
        sampler._send_climate(f["temp"], f["rh"], f["status"], t)
    elif kind == "accel":
        samples = bytes.fromhex(f["samples"])
        n = len(samples) // 6
        sampler._cal_flags = f["flags"]
        sampler.index = f["first"]
        sampler._t_ms = f["t_first"]
        sampler._blk[: len(samples)] = samples
        sampler._block_done(t, n)
    elif kind == "features":
        for i in range(11):
            features.values[i] = f["values"][i]
        features.result_ms = f["ms"]
        features.result_samples = f["n"]
        features.result_flags = f["flags"]
        w = link.writer
        link.send(w, 3, features.pack_into(w.payload, f["age"]), t)
    elif kind == "status":
        state.t = t
        state.spec = f
        state.calib = Calib(f["calib_id"])
        state.time_offset = None if f["utc"] is None else f["utc"] - t
        Node.send_status(state)
    elif kind == "time":
        state.time_offset = f["utc"] - t
        Node.send_time(state, t)

up._close_bundle(t)  # the open bundle, as its linger's end or a planned reboot closes it
print(json.dumps({"frames": [b.hex() for b in ring.frames]}))
