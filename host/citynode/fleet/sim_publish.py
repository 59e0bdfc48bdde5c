"""Where the fleet simulator's messages go: a broker over several paho connections, or a list.

Both have `publish(slot, topic, payload, retain=False)` (slot: which connection,
so one node's messages keep their order on one) and `drain(timeout_s)`.
"""

import os
import threading
import time

from citynode.errors import CitynodeError


class ListPublisher:
    """Messages kept in a list: (slot, topic, payload, retain). For tests and dry runs."""

    def __init__(self):
        self.messages = []

    def publish(self, slot, topic, payload, retain=False):
        self.messages.append((slot, topic, bytes(payload), retain))

    def drain(self, timeout_s=0):
        return True


class MqttPublisher:
    """QoS 1 publishes over n_clients paho connections (their network threads do the I/O)."""

    MAX_UNACKED = 20000

    def __init__(self, url, n_clients, client_prefix="citynode-sim", ca=None):
        from citynode import broker_url

        self.broker = broker_url.parse(url)
        self._lock = threading.Lock()
        self.sent = 0
        self.acked = 0
        self.clients = []
        try:
            for i in range(max(1, n_clients)):
                c = broker_url.connect(self.broker, "%s-%d-%d" % (client_prefix, os.getpid(), i), ca=ca,
                                       setup=self._setup)
                self.clients.append(c)
        except CitynodeError:
            self.close()
            raise

    def _setup(self, client):
        client.max_inflight_messages_set(1000)
        client.max_queued_messages_set(0)
        client.on_publish = self._on_publish

    def _on_publish(self, _client, _userdata, _mid, _reason, _props):
        with self._lock:
            self.acked += 1

    def publish(self, slot, topic, payload, retain=False):
        while self.sent - self.acked > self.MAX_UNACKED:
            time.sleep(0.005)
        info = self.clients[slot % len(self.clients)].publish(topic, payload, qos=1, retain=retain)
        if info.rc not in (0, 4):  # MQTT_ERR_SUCCESS, MQTT_ERR_NO_CONN (queued: paho resends on reconnect)
            raise CitynodeError("broker %s: publish failed (paho rc %d)" % (self.broker.safe(), info.rc))
        self.sent += 1

    def drain(self, timeout_s=30.0):
        """True when the broker acknowledged every message within timeout_s."""
        deadline = time.monotonic() + timeout_s
        while self.acked < self.sent and time.monotonic() < deadline:
            time.sleep(0.01)
        return self.acked >= self.sent

    def close(self):
        for c in self.clients:
            c.disconnect()
            c.loop_stop()
        self.clients = []

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        self.close()
