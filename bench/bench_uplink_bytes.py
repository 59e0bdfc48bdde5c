"""Bytes a node sends per hour over MQTT, against one JSON message per reading.

    python bench/bench_uplink_bytes.py [--minutes M] [--quick]

Both sides publish the same readings to the real Mosquitto (citynode.broker),
each through its own counting TCP relay, in the same run; the bytes counted
are everything on the TCP stream both ways (CONNECT, PUBLISH, PUBACK, pings,
DISCONNECT), not the IP and TCP headers under them.

- citynode: the firmware's own uplink (citynode_fw/uplink.py, mqtt.py,
  ring.py) under the MicroPython Unix port, fed the frames a node makes
  (citynode.traffic: the node's message table, encodings and schedule), each
  signed (SPEC §9) and batched into QoS 1 messages as the node does (SPEC
  §10: a climate node lingers `uplink_linger_s`, its frames records of one
  bundle frame, SPEC §4 type 8; a bridge node
  publishes as soon as the last message is acknowledged; TIME only when the
  node learns the time, SPEC §6 time). Node time moves from frame to frame;
  the uplink is polled every second of it in between, as the node loop does.
- peer: paho-mqtt publishing each reading as its own JSON message, QoS 0, the
  way ESPHome and Tasmota nodes publish sensor states (`<node>/sensor/<name>/state`):
  temperature and humidity as two messages, each acceleration sample as one
  `{"x":..,"y":..,"z":..}`, each features window and status as one object.

Configurations: climate (a reading a minute, status every 30 s) and bridge
(250 Hz acceleration in blocks of 200, features every 10 s, climate every
minute, status every 30 s), the firmware's defaults. Target: citynode at most
0.2 x the JSON bytes (exit status).
"""

import argparse
import json
import os
import socket
import struct
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
sys.path[:0] = [str(REPO / "host"), str(REPO / "protocol")]

from citynode import traffic  # noqa: E402
from citynode.broker import LocalBroker, mosquitto_path  # noqa: E402
from citynode.paths import firmware_root, protocol_root  # noqa: E402
from citynode_protocol import cobs  # noqa: E402

sys.path.insert(0, str(REPO / "firmware"))
from citynode_fw.config import default  # noqa: E402

LINGER_MS = default("uplink_linger_s") * 1000  # the firmware's: a climate-only node lingers

TARGET = 0.2
NODE_PROGRAM = r"""
import json, struct, sys, time
from citynode_protocol import auth
from citynode_protocol.frame import FrameWriter, HEADER_SIZE
from citynode_fw.ring import Ring
from citynode_fw.uplink import Uplink

with open(sys.argv[1]) as f:
    opt = json.load(f)

class Radio:
    def connect(self, ssid, password): pass
    def connected(self): return True
    def failure(self): return None
    def rssi(self): return -60

data = open(opt["frames"], "rb").read()
up = Uplink(opt["node"], Radio(), auth.Signer(bytes(32)), 1, ("127.0.0.1", opt["port"]),
            ring=Ring(opt["ring"], capacity=1 << 22), keepalive_s=60, linger_ms=opt["linger_ms"])

def settle(now):
    # what is due at node time `now` goes out and is acknowledged (a bundle whose linger ended
    # closes); a keepalive ping sent is answered before node time moves on
    up.poll(now)
    while (up.ring.in_flight or not up.session.ready() or (up.ring.pending() and up.due(now))
           or up.bundle_due(now) or up.session._ping_out):
        up.poll(now)

w = FrameWriter(opt["node"], 4096, trailer=auth.TRAILER_SIZE)
at = 0
now = 0
frames = 0
while at < len(data):
    n = struct.unpack_from("<H", data, at)[0]
    raw = data[at + 2 : at + 2 + n]
    at += 2 + n
    length = n - HEADER_SIZE - 4
    w.raw[: n - 4] = raw[: n - 4]
    w.seq = (struct.unpack_from("<H", raw, 3)[0] + 1) & 0xFFFF
    t = struct.unpack_from("<I", raw, 5)[0] & 0x3FFFFFFF
    # node time jumps from frame to frame here: the loop's polls in between, a second apart
    while now + 1000 < t:
        now += 1000
        settle(now)
    now = t
    up.put(w, raw[0] & 0x1F, length, now)
    frames += 1
    settle(now)
last = now + opt["linger_ms"]  # the last message's linger ends
while now < last:
    now += 1000
    settle(now)
end = time.ticks_ms()
while (up.ring.pending() or up.ring.in_flight or not up.connected()) and time.ticks_diff(time.ticks_ms(), end) < 30000:
    up.poll(now)
    time.sleep_ms(1)
st = up.status()
up.close()
print(json.dumps({"frames": frames, "bundles": st["bundles"], "published": st["published"], "acked": st["acked"], "resent": st["resent"],
                  "dropped": st["dropped_accel"] + st["dropped_other"]}))
"""


class Relay:
    """A TCP relay to the broker that counts the bytes both ways."""

    def __init__(self, target_port):
        self.target = target_port
        self.up = 0
        self.down = 0
        self.server = socket.socket()
        self.server.bind(("127.0.0.1", 0))
        self.server.listen(4)
        self.port = self.server.getsockname()[1]
        self.stop = False
        threading.Thread(target=self._accept, daemon=True).start()

    def _accept(self):
        while not self.stop:
            try:
                conn, _ = self.server.accept()
            except OSError:
                return
            peer = socket.create_connection(("127.0.0.1", self.target))
            threading.Thread(target=self._pipe, args=(conn, peer, "up"), daemon=True).start()
            threading.Thread(target=self._pipe, args=(peer, conn, "down"), daemon=True).start()

    def _pipe(self, src, dst, way):
        try:
            while True:
                data = src.recv(65536)
                if not data:
                    break
                if way == "up":
                    self.up += len(data)
                else:
                    self.down += len(data)
                dst.sendall(data)
        except OSError:
            pass
        finally:
            for s in (src, dst):
                try:
                    s.shutdown(socket.SHUT_RDWR)
                except OSError:
                    pass

    def total(self):
        return self.up + self.down

    def close(self):
        self.stop = True
        self.server.close()


def climate_node(node_id, seconds):
    """A climate node's frames: a reading a minute, status every 30 s, TIME once (its uplink
    sends TIME when it learns the time, not with every status: SPEC §6 time)."""
    import numpy as np

    from citynode_protocol import messages

    node = traffic.TrafficBuilder(node_id)
    rng = np.random.default_rng(node_id)
    utc0 = traffic.utc_ms("2026-12-06T00:00:00Z")
    node.time_anchor(1000, utc0)
    events = sorted([(1000 + 60000 * k, "climate") for k in range(1, int(seconds // 60) + 1)]
                    + [(1000 + 30000 * k, "status") for k in range(1, int(seconds // 30) + 1)])
    temp = 12.0
    for when, kind in events:
        if kind == "climate":
            temp += rng.normal(0, 0.05)
            node.climate(when, round(temp, 2), round(60 + rng.normal(0, 1), 2), status=messages.CLIMATE_CALIBRATED)
        else:
            node.status(when, uptime_s=when // 1000, free_heap=70000, mpy_major=1, mpy_minor=29, mpy_patch=0,
                        app_major=0, app_minor=1, protocol_minor=0, sensors_fitted=messages.SENSOR_CLIMATE,
                        sensors_ok=messages.SENSOR_CLIMATE, flags=messages.STATUS_TIME_ANCHORED, supply_v=5.0)
    return node


def bridge_node(node_id, seconds):
    return traffic.node_frames(node_id, seconds, seed=3, odr_hz=250.0, block_samples=200, climate_period_s=60.0,
                               features_period_s=10.0, status_period_s=30.0, utc="2026-12-06T00:00:00Z",
                               network=True)


def json_messages(node):
    """(topic, payload) of each reading, as an ESPHome/Tasmota node would publish them."""
    name = "citynode-%d" % node.sent[0].node_id
    for s in node.sent:
        f = s.fields
        if s.name == "climate":
            yield "%s/sensor/temperature/state" % name, "%.2f" % f["temperature_c"]
            yield "%s/sensor/humidity/state" % name, "%.2f" % f["relative_humidity_pct"]
        elif s.name == "accel":
            g = f["range_g"] / 32768.0
            c = list(f["samples"])  # x, y, z, x, y, z, ...
            for i in range(0, len(c), 3):
                yield "%s/sensor/accel/state" % name, '{"x":%.4f,"y":%.4f,"z":%.4f}' % (c[i] * g, c[i + 1] * g, c[i + 2] * g)
        elif s.name in ("features", "status"):
            yield "%s/sensor/%s/state" % (name, s.name), json.dumps(f, separators=(",", ":"))


def run_citynode(node, broker, tmp, linger_ms):
    relay = Relay(broker.port)
    frames = tmp / "frames.bin"
    with open(frames, "wb") as out:
        for s in node.sent:
            raw = cobs.decode(s.wire[:-1])
            out.write(struct.pack("<H", len(raw)) + raw)
    opt = tmp / "opt.json"
    ring = tmp / "ring"
    opt.write_text(json.dumps({"node": node.sent[0].node_id, "port": relay.port, "frames": str(frames), "ring": str(ring),
                               "linger_ms": linger_ms}))
    program = tmp / "node.py"
    program.write_text(NODE_PROGRAM)
    env = dict(os.environ, MICROPYPATH="%s:%s" % (firmware_root(), protocol_root()))
    micropython = Path(sys.executable).parent / "micropython"
    done = subprocess.run([str(micropython), "-X", "heapsize=8M", str(program), str(opt)], env=env,
                          capture_output=True, text=True, timeout=1800)
    if done.returncode != 0:
        raise SystemExit("node program failed: %s" % done.stderr.strip().splitlines()[-1:])
    time.sleep(0.3)
    relay.close()
    return relay.total(), json.loads(done.stdout.strip().splitlines()[-1])


def run_json(node, broker):
    import paho.mqtt.client as paho

    relay = Relay(broker.port)
    client = paho.Client(paho.CallbackAPIVersion.VERSION2, client_id="json-node")
    client.connect("127.0.0.1", relay.port, keepalive=60)
    client.loop_start()
    count = 0
    info = None
    for topic, payload in json_messages(node):
        info = client.publish(topic, payload, qos=0)
        count += 1
        if count % 5000 == 0:
            info.wait_for_publish(30)
    if info is not None:
        info.wait_for_publish(30)
    client.disconnect()
    client.loop_stop()
    time.sleep(0.3)
    relay.close()
    return relay.total(), count


def main():
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--minutes", type=float, default=60.0, help="node time to send, scaled to an hour (default %(default)g)")
    p.add_argument("--quick", action="store_true", help="2 minutes")
    p.add_argument("--linger-s", type=int, default=LINGER_MS // 1000,
                   help="the climate node's uplink_linger_s (default: the firmware's, %(default)d)")
    args = p.parse_args()
    minutes = 2.0 if args.quick else args.minutes
    if mosquitto_path() is None:
        print("bench_uplink_bytes: mosquitto is not installed (apt-get install mosquitto): not run")
        return 0
    scale = 60.0 / minutes
    print("bytes per hour over MQTT (%g min of node time, x%g), TCP payload both ways; climate node lingers %d s"
          % (minutes, scale, args.linger_s))
    print("%-9s %14s %14s %8s %10s %10s %10s" % ("config", "citynode B/h", "JSON B/h", "ratio", "frames/h", "MQTT msg/h",
                                                "JSON msg/h"))
    failed = 0
    with tempfile.TemporaryDirectory() as tmp:
        tmp = Path(tmp)
        with LocalBroker(tmp / "broker", persistence=False) as broker:
            for name, make, node_id, linger_ms in (("climate", climate_node, 7, args.linger_s * 1000),
                                                             ("bridge", bridge_node, 8, 0)):
                node = make(node_id, minutes * 60)
                sub = tmp / name
                sub.mkdir()
                ours, st = run_citynode(node, broker, sub, linger_ms)
                theirs, count = run_json(node, broker)
                ratio = ours / theirs
                failed += ratio > TARGET or st["dropped"] or st["acked"] != st["published"]
                print("%-9s %14d %14d %8.3f %10d %10d %10d" % (name, ours * scale, theirs * scale, ratio,
                                                              st["frames"] * scale, st["published"] * scale,
                                                              count * scale))
                if st["resent"]:
                    print("  (%d messages resent: the broker was slow to acknowledge)" % st["resent"])
    print("target: citynode <= %.1f x the JSON bytes in both configurations: %s" % (TARGET, "FAIL" if failed else "PASS"))
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
