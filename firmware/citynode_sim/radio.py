# The simulated radio of a virtual node (Unix port): Wi-Fi as the scenario's
# `wifi` key says, while the node's sockets stay real, so the uplink reaches a
# real broker on 127.0.0.1 whenever the simulated network is up.
#
#     "wifi": {"up": true, "rssi": -67, "ssids": ["city-iot"], "password": "s3cret"}
#
# Joining takes JOIN_MS; then an SSID not in `ssids` (null: every SSID is in
# reach) is "no AP found", a password other than `password` (null: any) is
# "wrong password", and "up": false is no network at all. Going down while
# joined drops the link, as walking out of range does.

import time

JOIN_MS = 300


class SimRadio:
    def __init__(self, board=None):
        self.board = board  # citynode_sim.board.Board (its scenario), or None: always up
        self.ssid = None
        self.password = None
        self.joined_at = None
        self.asked = 0

    def _wifi(self):
        if self.board is None:
            return {"up": True, "rssi": -60, "ssids": None, "password": None}
        self.board.sync()
        return self.board.scenario.data["wifi"]

    def connect(self, ssid, password):
        self.ssid = ssid
        self.password = password
        self.joined_at = time.ticks_ms()
        self.asked += 1

    def _verdict(self):
        """None while joining or joined, else why not."""
        w = self._wifi()
        if self.joined_at is None:
            return "not asked to join"
        if time.ticks_diff(time.ticks_ms(), self.joined_at) < JOIN_MS:
            return None
        if not w["up"] or (w["ssids"] is not None and self.ssid not in w["ssids"]):
            return "no AP found"
        if w["password"] is not None and self.password != w["password"]:
            return "wrong password"
        return None

    def connected(self):
        return (self.joined_at is not None and time.ticks_diff(time.ticks_ms(), self.joined_at) >= JOIN_MS
                and self._verdict() is None)

    def failure(self):
        why = self._verdict()
        return None if why == "not asked to join" else why

    def rssi(self):
        return self._wifi()["rssi"]
