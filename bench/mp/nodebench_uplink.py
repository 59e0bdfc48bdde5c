"""Heap of the node's network uplink (bench/bench_uplink_heap.py).

The sampler on the simulated ADXL345 (as nodebench_alloc: 200 Hz, blocks of
100 samples, calibrated, delta-bitpack), its link with the uplink attached as
uplink="wifi" attaches it: every frame is signed (HMAC-SHA256), COBS-encoded
into the flash ring's page, published over an MQTT session and acknowledged.
The broker is a socket stand-in that takes every write and answers each
publish with its PUBACK, preallocated, so the figures are the node's alone.

Results:
- uplink_live: live heap (after gc.collect) the uplink adds: its modules
  imported and the node's signer made (uplink.signer: hmac_viper's where the
  port runs viper code, which imports it), then the Uplink made (ring page,
  session buffers, topics);
- uplink_alloc: bytes allocated from block FROM to block TO with gc off;
- uplink_parts: the same over `frames` frames for signing alone (the signer's
  mac_into, as auth.sign_writer calls it) and for publishing alone
  (Session.publish of a ring-sized message);
- uplink_sign_time: ns per MAC of a 300-byte frame (over 300 ms or more), the
  node's signer and auth.Signer (hashlib) in the same run, and which signer
  the node has.
"""

import gc
import time

import nodebench_rig as rig
from citynode_fw import calibration, config
from citynode_fw.features import Features
from citynode_fw.link import Link
from citynode_fw.node import probe
from citynode_fw.sampler import Sampler
from citynode_fw.status import Counters


class Radio:
    def connect(self, ssid, password):
        pass

    def connected(self):
        return True

    def failure(self):
        return None

    def rssi(self):
        return -60


class Broker:
    """The session's socket: takes whole writes, answers a publish with its PUBACK."""

    def __init__(self):
        self.session = None
        self.ack = bytearray(4)
        self.ack_at = 4
        self.written = 0

    def write(self, buf, off=0, n=-1):
        s = self.session
        if buf is s._pub and s._pub_qos:
            pid = s._pub_pid
            self.ack[0] = 0x40
            self.ack[1] = 2
            self.ack[2] = pid >> 8
            self.ack[3] = pid & 0xFF
            self.ack_at = 0
        self.written += n
        return n

    def readinto(self, buf, n=-1):
        if self.ack_at >= 4:
            return None
        buf[0] = self.ack[self.ack_at]
        self.ack_at += 1
        return 1


def gc_off_delta(fn, arg):
    gc.collect()
    gc.disable()
    try:
        before = gc.mem_alloc()
        fn(arg)
        return gc.mem_alloc() - before
    finally:
        gc.enable()


class Rig:
    def __init__(self, cal):
        self.clock, self.bus, self.board = rig.sim()
        self.counters = Counters()
        self.link = Link(1, self.counters, rig.NullOut(), rig.Stdin())
        self.sampler = Sampler(self.link, self.counters, Features(), self._log)
        climate, _a = probe(self.bus, "climate", "auto")
        accel, _a = probe(self.bus, "accel", "auto")
        self.sampler.set_parts(climate, accel)
        values = config.defaults()
        values["accel_block_samples"] = 100
        values["feature_window_s"] = 60
        values["climate_period_s"] = 3600
        values["accel_odr_hz"] = 200
        assert not self.sampler.configure(values, cal, self.board.ms())
        self.sampler.start_stream(self.board.ms())
        self.up = None

    def _log(self, level, text):
        pass

    def attach(self, up, broker):
        from citynode_fw import mqtt

        s = up.session
        broker.session = s
        s.addr = ("127.0.0.1", 1883)
        s._sock = broker
        s.state = mqtt.UP
        s._last_in = s._last_out = self.board.ms()
        self.up = up
        self.link.uplink = up

    def blocks(self, n):
        s = self.sampler
        board = self.board
        up = self.up
        while s.blocks < n:
            now = board.ms()
            wait = s.poll(now)
            up.poll(now)
            board.sleep_ms(wait if wait < 20 else 20)


def main():
    p = rig.params()
    first = p.get("from", 10)
    last = p.get("to", 60)
    frames = p.get("frames", 50)
    cal = calibration.Calibration(rig.CALIBRATION)
    r = Rig(cal)
    gc.collect()
    before = gc.mem_alloc()
    from citynode_fw import uplink
    from citynode_fw.ring import Ring
    from citynode_protocol import auth

    signer = uplink.signer(bytes(range(32)))
    gc.collect()
    modules = gc.mem_alloc() - before
    up = uplink.Uplink(1, Radio(), signer, 1, ("127.0.0.1", 1883), ring=Ring("ring"))
    broker = Broker()
    gc.collect()
    objects = gc.mem_alloc() - before - modules
    rig.result("uplink_live", modules=modules, objects=objects)
    r.attach(up, broker)
    r.blocks(first)
    used = gc_off_delta(r.blocks, last)
    st = up.status()
    rig.result("uplink_alloc", blocks=last - first, bytes=used, signed=up.signed, published=st["published"],
               acked=st["acked"], pending=up.ring.pending(), written=broker.written)
    data = bytearray(300 + auth.MAC_SIZE)
    sign = gc_off_delta(_sign, (signer, data, frames))
    s = up.session
    topic = up.frames_topic
    payload = bytearray(1024)
    publish = gc_off_delta(_publish, (s, topic, payload, frames))
    rig.result("uplink_parts", frames=frames, sign=sign, publish=publish)
    hashlib_signer = auth.Signer(bytes(range(32)))
    times = {}
    for name, s in (("node", signer), ("hashlib", hashlib_signer)):
        n = 0
        t0 = time.ticks_ms()  # in ms over 300 ms or more: the WebAssembly port's clock ticks in ms
        while time.ticks_diff(time.ticks_ms(), t0) < 300:
            _sign((s, data, frames))
            n += frames
        times[name] = time.ticks_diff(time.ticks_ms(), t0) * 1000000 // n
    rig.result("uplink_sign_time", node_ns=times["node"], hashlib_ns=times["hashlib"],
               signer="hashlib" if type(signer) is auth.Signer else "viper")


def _sign(arg):
    signer, data, n = arg
    length = len(data) - 8  # auth.MAC_SIZE
    for _ in range(n):
        signer.mac_into(data, length, length)


def _publish(arg):
    s, topic, payload, n = arg
    for _ in range(n):
        s._pub_n = 0  # as if the last one was acknowledged
        s.publish(topic, payload, 1000, off=24)


main()
