# A node's uplink under MicroPython for tests/host/test_node_uplink.py: climate frames
# every `period_ms`, signed into the ring and published; the radio follows a file.
# argv[1]: a JSON file of options. Prints JSON lines.
import json
import struct
import time

from citynode_protocol import auth, wire
from citynode_protocol.frame import FrameWriter
from citynode_fw.ring import Ring
from citynode_fw import uplink
from citynode_fw.uplink import Uplink
from program_io import now, options

opt = options()
uplink.FLUSH_AFTER_MS = opt.get("flush_after_ms", uplink.FLUSH_AFTER_MS)


class FileRadio:
    """Joined while the file opt["radio"] says "up"."""

    def __init__(self, path):
        self.path = path
        self.asked = 0

    def _up(self):
        try:
            with open(self.path) as f:
                return f.read().strip() == "up"
        except OSError:
            return False

    def connect(self, ssid, password):
        self.asked += 1

    def connected(self):
        return self._up()

    def failure(self):
        return None if self._up() else "no AP found"

    def rssi(self):
        return -61


key = bytes.fromhex(opt["key"])
ring = Ring(opt["ring"], capacity=opt.get("ring_bytes", 65536), page_size=opt.get("page_size", 512))
up = Uplink(opt["node"], FileRadio(opt["radio"]), auth.Signer(key), opt["boot"], ("127.0.0.1", opt["port"]),
            ssid="city", password="pw", ring=ring, keepalive_s=5, linger_ms=opt.get("linger_ms", 0))
writer = FrameWriter(opt["node"], 16, trailer=auth.TRAILER_SIZE)
writer.seq = opt.get("first_seq", 0)
made = 0
next_at = 0
end = now() + int(opt["seconds"] * 1000)
while now() < end:
    t = now()
    if made < opt["count"] and time.ticks_diff(t, next_at) >= 0:
        if made == opt.get("reply_at", -1):  # a command's answer instead of a reading
            struct.pack_into(wire.FORMATS[wire.REPLY], writer.payload, 0, made, 0)
            writer.finish(wire.REPLY, 3, t)
            up.put(writer, wire.REPLY, 3, t)
        else:
            struct.pack_into(wire.FORMATS[wire.CLIMATE], writer.payload, 0, 2000 + made, 5000, 0)
            writer.finish(wire.CLIMATE, 5, t)
            up.put(writer, wire.CLIMATE, 5, t)
        made += 1
        next_at = t + opt["period_ms"]
    up.poll(t)
    if made == opt["count"] and ring.pending() == 0 and not ring.in_flight and not up.open_records() and opt.get("until_sent"):
        break
    time.sleep_ms(2)
st = up.status()
st["made"] = made
st["pending"] = ring.pending()
print(json.dumps(st))
up.close()
