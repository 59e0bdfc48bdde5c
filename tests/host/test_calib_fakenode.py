"""A scripted fake of a node for the calibration flows, and tests of the fake itself.

`FakeClient` has the NodeClient surface the flows use (`command(name, **args)`,
`read_frames(seconds)`, `close()`), a call log, injected failures, and a fake
clock (`session_clock`, `session_wall`) that advances with the frames, so a
30-minute climate run takes milliseconds. The node side follows the firmware:
raw_mode turns off calibration of climate and accel; calib_write validates with
the firmware's own `calibration.validate`, stores (current -> previous) and
applies; calib_rollback swaps.

The world follows the simulator (firmware/citynode_sim): accel raw =
scale * gravity + bias + noise; climate T + offset, RH * gain + offset.
"""

import copy
import math
import sys
from pathlib import Path

import numpy as np
import pytest

from citynode.errors import DeviceError, TransportError
from citynode_protocol import messages
from citynode_protocol.decoder import Message

sys.path.insert(0, str(Path(__file__).resolve().parents[2] / "firmware"))
from citynode_fw import calibration as fw_calibration  # noqa: E402

FACES = {
    "+x": (1, 0, 0), "-x": (-1, 0, 0), "+y": (0, 1, 0), "-y": (0, -1, 0), "+z": (0, 0, 1), "-z": (0, 0, -1),
}
T0_WALL = 1_780_000_000.0


def tilted(vec, deg, about=(0.3, 0.8, 0.5)):
    """vec rotated by deg about an axis (a slightly imperfect face)."""
    k = np.asarray(about, float) / np.linalg.norm(about)
    v = np.asarray(vec, float)
    a = math.radians(deg)
    return v * math.cos(a) + np.cross(k, v) * math.sin(a) + k * (k @ v) * (1 - math.cos(a))


class Script:
    """Gravity over time: segments ("still", vec, s), ("turn", s), ("shake", vec, s, amp_g)."""

    def __init__(self, segments):
        self.segments = []
        t = 0.0
        last = np.array([0, 0, 1.0])
        for seg in segments:
            kind = seg[0]
            if kind == "still":
                vec = np.asarray(seg[1], float)
                vec = vec / np.linalg.norm(vec)
                self.segments.append((t, t + seg[2], kind, last, vec, 0.0))
                last = vec
                t += seg[2]
            elif kind == "turn":
                self.segments.append((t, t + seg[1], kind, last, None, 0.0))
                t += seg[1]
            elif kind == "shake":
                vec = np.asarray(seg[1], float)
                self.segments.append((t, t + seg[2], kind, last, vec / np.linalg.norm(vec), seg[3]))
                last = vec / np.linalg.norm(vec)
                t += seg[2]
        # fill in the targets of turns
        fixed = []
        for i, s in enumerate(self.segments):
            if s[2] == "turn":
                nxt = next((x[4] for x in self.segments[i + 1:] if x[4] is not None), s[3])
                s = (s[0], s[1], s[2], s[3], nxt, 0.0)
            fixed.append(s)
        self.segments = fixed
        self.end = t

    def at(self, t):
        """(gravity unit vector, shake amplitude g) at time t; the last still holds forever."""
        for t0, t1, kind, start, target, amp in self.segments:
            if t0 <= t < t1:
                if kind == "turn":
                    f = (t - t0) / (t1 - t0)
                    v = (1 - f) * start + f * target + np.array([0.3, -0.2, 0.25]) * math.sin(math.pi * f)
                    return v / np.linalg.norm(v), 0.0
                return target, amp
        last = self.segments[-1] if self.segments else None
        return (last[4] if last is not None else np.array([0, 0, 1.0])), 0.0


def six_faces(order=("+z", "-z", "+x", "-x", "+y", "-y"), still_s=5.0, turn_s=1.5, tilt_deg=3.0):
    segs = []
    for i, f in enumerate(order):
        if i:
            segs.append(("turn", turn_s))
        segs.append(("still", tilted(FACES[f], tilt_deg * ((i % 3) - 1)), still_s))
    return segs


class World:
    def __init__(self, script=None, bias_g=(0.0, 0.0, 0.0), scale=(1.0, 1.0, 1.0), noise_g=0.0005,
                 temperature=21.5, humidity=48.0, t_offset=0.0, rh_gain=1.0, rh_offset=0.0, climate_noise=0.0):
        self.script = Script(script or [("still", (0, 0, 1), 1.0)])
        self.bias = np.asarray(bias_g, float)
        self.scale = np.asarray(scale, float)
        self.noise = noise_g
        self.temperature = temperature  # number or f(t)
        self.humidity = humidity
        self.t_offset = t_offset
        self.rh_gain = rh_gain
        self.rh_offset = rh_offset
        self.climate_noise = climate_noise
        self.rng = np.random.default_rng(1)

    def truth(self, t):
        tv = self.temperature(t) if callable(self.temperature) else self.temperature
        hv = self.humidity(t) if callable(self.humidity) else self.humidity
        return tv, hv

    def climate_raw(self, t):
        tv, hv = self.truth(t)
        n = self.climate_noise
        return (tv + self.t_offset + self.rng.normal(scale=n) if n else tv + self.t_offset,
                hv * self.rh_gain + self.rh_offset + (self.rng.normal(scale=3 * n) if n else 0.0))

    def accel_raw(self, times):
        out = np.empty((len(times), 3))
        for i, t in enumerate(times):
            g, amp = self.script.at(t)
            a = self.scale * g + self.bias
            if amp:
                a = a + amp * np.array([math.sin(40 * t), math.cos(33 * t), math.sin(27 * t)])
            out[i] = a
        return out + self.rng.normal(scale=self.noise, size=out.shape) if self.noise else out


class FakeClient:
    """The NodeClient surface, scripted. `fail` maps a command name to a failure:
    "drop" (link lost, nothing done), "drop-after" (done, then link lost),
    "dead" (this and every later command: link lost)."""

    def __init__(self, world=None, parts=("climate", "accel"), calib=None, prev=None, odr_hz=200, range_g=2,
                 climate_period_s=60, node_id=7, site="Bridge 3", fail=None, raw_mode_works=True):
        self.world = world or World()
        self.parts = parts
        self.calib = copy.deepcopy(calib)
        self.prev = copy.deepcopy(prev)
        self.odr = odr_hz
        self.range_g = range_g
        self.config = {"node_id": node_id, "site": site, "climate_period_s": climate_period_s,
                       "accel_odr_hz": odr_hz, "accel_range_g": range_g, "mode": "raw"}
        self.fail = dict(fail or {})
        self.raw_mode_works = raw_mode_works
        self.t = 0.0
        self.raw = False
        self.streaming = "accel" in parts
        self.calls = []
        self.dead = False
        self.closed = False
        self.seq = 0
        self.index = 0
        self.next_block = 0.0
        self.next_climate = 0.0
        self.block = 20

    # the session's clock hooks
    def session_clock(self):
        return self.t

    def session_wall(self):
        return T0_WALL + self.t

    # -- commands ------------------------------------------------------------
    def command(self, name, timeout=None, retries=2, **args):
        self.calls.append((name, copy.deepcopy(args)))
        if self.dead:
            raise TransportError("link to fake lost: [Errno 5] Input/output error")
        mode = self.fail.get(name)
        if mode in ("drop", "dead"):
            self.dead = mode == "dead"
            raise TransportError("link to fake lost: [Errno 5] Input/output error")
        body = getattr(self, "_cmd_" + name)(**args)
        if mode == "drop-after":
            raise TransportError("link to fake lost: [Errno 5] Input/output error")
        return body

    def _sensors(self):
        out = []
        if "climate" in self.parts:
            out.append({"kind": "climate", "part": "sht35", "address": "0x44"})
        if "accel" in self.parts:
            out.append({"kind": "accel", "part": "adxl355", "address": "0x1d"})
        return out

    def _cmd_info(self):
        return {"node_id": self.config["node_id"], "site": self.config["site"], "uid": "fake0001",
                "app_version": "0.1.0", "config": dict(self.config), "sensors": self._sensors(),
                "calibration": {"id": self.calib["id"], "date": self.calib.get("date")} if self.calib else None}

    def _cmd_status(self):
        fitted = (messages.SENSOR_CLIMATE if "climate" in self.parts else 0) | (
            messages.SENSOR_ACCEL if "accel" in self.parts else 0)
        return {"uptime_s": int(self.t), "sensors_fitted": fitted, "sensors_ok": fitted, "flags": 0,
                "calibration_id": self.calib["id"] if self.calib else 0}

    def _cmd_calib_get(self):
        return {"calib": copy.deepcopy(self.calib), "fallback": None}

    def _cmd_calib_write(self, calib):
        try:
            fw_calibration.validate(copy.deepcopy(calib))
        except ValueError as exc:
            raise DeviceError("node refused calib_write: bad argument: %s" % exc, 4)
        if self.calib is not None:
            self.prev = self.calib
        self.calib = copy.deepcopy(calib)
        return {"id": calib["id"]}

    def _cmd_calib_rollback(self):
        if self.prev is None:
            raise DeviceError("node refused calib_rollback: bad argument: no previous calibration (missing)", 4)
        self.calib, self.prev = self.prev, self.calib
        return {"id": self.calib["id"]}

    def _cmd_raw_mode(self, on):
        if self.raw_mode_works:
            self.raw = on
        return {"raw_mode": on}

    def _cmd_stream_start(self):
        if "accel" not in self.parts:
            raise DeviceError("node refused stream_start: sensor not fitted or not answering: no accelerometer", 6)
        self.streaming = True
        return {"streaming": True}

    def _cmd_stream_stop(self):
        self.streaming = False
        return {"streaming": False}

    def _cmd_config_set(self, values):
        self.config.update(values)
        if "climate_period_s" in values:  # as the node: a shorter period applies at once
            self.next_climate = min(self.next_climate, self.t + values["climate_period_s"])
        return {"changed": sorted(values)}

    def close(self):
        self.closed = True

    # -- frames --------------------------------------------------------------
    def _msg(self, name, fields):
        entry = messages.BY_NAME[name]
        self.seq = (self.seq + 1) & 0xFFFF
        return Message(entry[0], self.config["node_id"], self.seq, int(self.t * 1000) & 0xFFFFFFFF, fields)

    def _accel_block(self):
        n = self.block
        times = self.t + np.arange(n) / self.odr
        raw = self.world.accel_raw(times)
        flags = 0
        a = raw
        cal = (self.calib or {}).get("accel")
        if self.raw:
            flags = messages.ACCEL_UNCALIBRATED_MODE
        elif cal:
            flags = messages.ACCEL_CALIBRATED
            b = np.asarray(cal.get("bias_g", [0, 0, 0]))
            s = np.diag(cal.get("scale", [1, 1, 1])) if "matrix" not in cal else np.asarray(cal["matrix"])
            r = np.asarray(cal.get("rotation", np.eye(3)))
            a = (r @ s @ (raw - b).T).T
        counts = np.clip(np.round(a * 32768 / self.range_g), -32768, 32767).astype(int)
        m = self._msg("accel", {"encoding": 0, "flags": flags, "range_g": self.range_g, "reserved": 0,
                                "odr_hz": float(self.odr), "first_index": self.index, "n_samples": n,
                                "samples": counts.reshape(-1).tolist()})
        self.index += n
        return m

    def _climate(self):
        t, h = self.world.climate_raw(self.t)
        status = 0
        cal = (self.calib or {}).get("climate")
        if cal and not self.raw:
            t = cal.get("t_gain", 1.0) * t + cal.get("t_offset_c", 0.0)
            h = cal.get("rh_gain", 1.0) * h + cal.get("rh_offset_pct", 0.0)
            status |= messages.CLIMATE_CALIBRATED
        if h < 0 or h > 100:
            h = min(max(h, 0.0), 100.0)
            status |= messages.CLIMATE_CLAMPED
        return self._msg("climate", {"temperature_c": round(t, 2), "relative_humidity_pct": round(h, 2),
                                     "status": status})

    def read_frames(self, seconds=None, stop=None):
        if self.dead:
            raise TransportError("link to fake lost: [Errno 5] Input/output error")
        end = self.t + (seconds if seconds is not None else 1.0)
        while self.t < end:
            nxt = end
            if self.streaming:
                nxt = min(nxt, self.next_block)
            if "climate" in self.parts:
                nxt = min(nxt, self.next_climate)
            self.t = max(self.t, nxt)
            if self.streaming and self.t >= self.next_block:
                yield self._accel_block()
                self.next_block = self.t + self.block / self.odr
            if "climate" in self.parts and self.t >= self.next_climate:
                yield self._climate()
                self.next_climate = self.t + self.config["climate_period_s"]
            if self.t >= end:
                break

    def commands(self):
        return [c[0] for c in self.calls]


# -- tests of the fake --------------------------------------------------------------


def test_fake_streams_raw_and_calibrated_blocks():
    c = FakeClient(World(bias_g=(0.1, 0, 0), noise_g=0), calib={"id": 1, "accel": {"bias_g": [0.1, 0, 0]}})
    m = next(f for f in c.read_frames(0.2) if f.name == "accel")
    assert m.fields["flags"] == messages.ACCEL_CALIBRATED
    assert m.fields["samples"][:3] == [0, 0, 16384]
    c.command("raw_mode", on=True)
    m = next(f for f in c.read_frames(0.2) if f.name == "accel")
    assert m.fields["flags"] == messages.ACCEL_UNCALIBRATED_MODE and m.fields["samples"][0] == 1638


def test_fake_validates_like_the_firmware_and_rolls_back():
    c = FakeClient(calib={"id": 1})
    with pytest.raises(DeviceError, match="t_gain"):
        c.command("calib_write", calib={"id": 2, "climate": {"t_gain": 3.0}})
    c.command("calib_write", calib={"id": 2})
    c.command("calib_rollback")
    assert c.calib["id"] == 1 and c.prev["id"] == 2


def test_script_turns_between_faces():
    s = Script(six_faces())
    assert np.allclose(s.at(1.0)[0], tilted(FACES["+z"], -3.0))
    assert s.at(5.7)[0][2] < 0.99  # turning
    assert np.allclose(s.at(1000)[0], tilted(FACES["-y"], 3.0))
