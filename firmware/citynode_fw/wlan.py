"""Wi-Fi in station mode for the uplink (board.radio() on an ESP32): the four methods
every network interface of the node has: connect, connected, failure, rssi."""


class WlanRadio:
    """Wi-Fi station mode: connect() starts joining and returns at once."""

    def __init__(self):
        import network

        self._network = network
        self.wlan = network.WLAN(network.STA_IF)
        self.wlan.active(True)

    def connect(self, ssid, password):
        try:
            self.wlan.disconnect()
        except OSError:
            pass
        self.wlan.connect(ssid, password)

    def connected(self):
        return self.wlan.isconnected()

    def failure(self):
        """Why joining failed, in words, or None while it may still succeed."""
        n = self._network
        st = self.wlan.status()
        if st in (n.STAT_NO_AP_FOUND, getattr(n, "STAT_NO_AP_FOUND_W_COMPATIBLE_SECURITY", -1)):
            return "no AP found"
        if st == n.STAT_WRONG_PASSWORD:
            return "wrong password"
        if st in (n.STAT_CONNECT_FAIL, getattr(n, "STAT_HANDSHAKE_TIMEOUT", -1), getattr(n, "STAT_BEACON_TIMEOUT", -1)):
            return "connect failed (status %d)" % st
        return None

    def rssi(self):
        try:
            return self.wlan.status("rssi")
        except (OSError, ValueError):
            return None
