"""Commands over a link that garbles bytes toward the node (issue 10, fault 5).

A relay (a pseudo-terminal the host opens, copying to and from a virtual
node's port) replaces bytes toward the node at a seeded rate; the node's
frames come back untouched. Every command must succeed, or fail with one
line once its deadline has run out, and no change may be applied twice:
each `set_time` the node applies sends one TIME frame carrying exactly the
UTC it was given, so the TIME frames count the applications.
"""

import os
import pty
import random
import select
import threading
import tty

import pytest
import serial

from citynode.errors import TransportError
from citynode.serial_link import NodeClient
from citynode_protocol import messages
from vnode_fixtures import virtual_node

CTRL_C = 0x03


class GarblingRelay:
    """Host ── `port` (a pty) ══ relay ══ the node's port. Each byte toward the node is
    replaced with probability `rate` by another byte, never Ctrl-C: that one stops the
    app by design, as on a board. `garbled` counts the replaced bytes, `lines` the
    line feeds that reached the node."""

    def __init__(self, node_port, rate, seed):
        self.master, self._slave = pty.openpty()
        tty.setraw(self._slave)
        self.port = os.ttyname(self._slave)
        self.node = serial.serial_for_url(node_port, baudrate=115200, timeout=0, exclusive=True)
        self.rate = rate
        self.rng = random.Random(seed)
        self.garbled = 0
        self.lines = 0
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, daemon=True)
        self._thread.start()

    def _garble(self, data):
        out = bytearray(data)
        for i, b in enumerate(out):
            if self.rng.random() < self.rate:
                other = self.rng.choice([c for c in range(256) if c not in (b, CTRL_C)])
                out[i] = other
                self.garbled += 1
        self.lines += out.count(b"\n")
        return bytes(out)

    def _run(self):
        node_fd = self.node.fileno()
        while not self._stop.is_set():
            ready, _w, _x = select.select([self.master, node_fd], [], [], 0.05)
            try:
                if self.master in ready:
                    self.node.write(self._garble(os.read(self.master, 4096)))
                if node_fd in ready:
                    data = self.node.read(max(1, self.node.in_waiting))
                    view = memoryview(data)
                    while view:
                        n = os.write(self.master, view)
                        view = view[n:]
            except OSError:
                return

    def close(self):
        self._stop.set()
        self._thread.join(2)
        self.node.close()
        os.close(self._slave)
        os.close(self.master)


def _outcome(call):
    """("ok", body) or ("failed", the error's one line)."""
    try:
        return "ok", call()
    except TransportError as exc:
        text = str(exc)
        assert "\n" not in text and "did not answer" in text, text
        return "failed", text


def test_commands_through_a_link_garbling_bytes_toward_the_node(tmp_path):
    utcs = [messages.UTC_MIN_MS + 200000000000 + 1000003 * k for k in range(8)]
    sites = ["deck %d" % k for k in range(4)]
    with virtual_node(tmp_path, with_app=True) as node:
        relay = GarblingRelay(node.port, rate=1e-2, seed=10)
        try:
            with NodeClient(relay.port, set_clock=False) as client:
                outcomes = []
                for k in range(8):
                    outcomes.append(_outcome(lambda: client.command("info")))
                    outcomes.append(("set_time", utcs[k], _outcome(lambda: client.command("set_time", utc_ms=utcs[k]))))
                for site in sites:
                    outcomes.append(("site", site, _outcome(
                        lambda: client.command("config_set", values={"site": site, "status_period_s": 3600}))))
                times = [m["utc_ms"] for m in client.read_frames(seconds=0.5) if m.name == "time"]
        finally:
            relay.close()
        with NodeClient(node.port, set_clock=False) as direct:  # the clean link, to look
            site_now = direct.command("config_get", key="site")["config"]["site"]
    info = [o for o in outcomes if o[0] in ("ok", "failed")]
    set_time = [o[1:] for o in outcomes if o[0] == "set_time"]
    config = [o[1:] for o in outcomes if o[0] == "site"]
    assert relay.garbled > 10 and relay.lines > len(outcomes)  # the link was noisy and lines were resent
    assert sum(o[0] == "ok" for o in info) >= 6, info  # (issue 10 saw one info in three fail)
    assert all(o[0] == "ok" for utc, o in set_time), set_time
    for utc, (result, _body) in set_time:
        # applied once: one TIME frame with exactly this UTC (none if it failed)
        assert times.count(utc) == 1 if result == "ok" else times.count(utc) <= 1, (utc, times)
    applied = [site for site, (result, _body) in config if result == "ok"]
    assert applied and site_now == applied[-1]
