"""The collector's MQTT 5 session: persistent, on shared subscriptions, each message acknowledged by hand.

    session = Session(broker_url.parse(url), "citynode-collect-citynode-host-0")
    session.connect()                          # CitynodeError: no answer, refused, TLS
    session.subscribe([("$share/citynode/citynode/+/frames", 1), ("citynode/+/status", 0)])
    message = session.inbox.get()              # a Message, in arrival order
    session.ack(message)                       # PUBACK, only once its rows are stored

Clean Start is off and the Session Expiry Interval is a day: while no
collector of that client id runs, the broker keeps its subscriptions and the
QoS 1 messages for it (up to Mosquitto's `max_queued_messages`), and sends
the unacknowledged ones again, with DUP, when it comes back. Receive Maximum
lets the broker have that many unacknowledged messages out to us at once.

paho's network thread reconnects by itself after the broker goes away, and
subscribes again: soon (RECONNECT_MIN_S, then at most RECONNECT_MAX_S apart),
because Mosquitto 2.0.11 restores a session from its persistence file but not
the session's shared subscriptions, and drops what nodes publish after a
restart until a collector of the group has subscribed again. Nodes wait
longer before they reconnect (the firmware and paho 1 s, then doubling), so
the collectors are back first unless the broker's restart ends just after a
node's attempt (docs/fleet-operations.md).

A message is acknowledged only on the connection that brought it: after a
reconnect the broker sends it again under the same packet id, and a PUBACK on
the new connection for the old copy could acknowledge another message that
took that id in between.
"""

import dataclasses
import queue
import socket
import threading
import time

from citynode import broker_url
from citynode.errors import CitynodeError, UsageError

SESSION_EXPIRY_S = 24 * 3600
RECONNECT_MIN_S = 0.1
RECONNECT_MAX_S = 0.5
CONNECT_TIMEOUT_S = broker_url.CONNECT_TIMEOUT_S


def default_client_id(group, instance=0):
    """Stable across restarts of the same collector, different for each host and instance."""
    return "citynode-collect-%s-%s-%d" % (group, socket.gethostname(), instance)


@dataclasses.dataclass
class Message:
    topic: str
    payload: bytes
    mid: int
    qos: int
    dup: bool
    received_us: int  # UTC µs when it arrived
    arrived: float  # time.monotonic() when it arrived
    connection: int  # which connection of the session brought it


class Session:
    def __init__(self, broker, client_id, ca=None, receive_maximum=2000, session_expiry_s=SESSION_EXPIRY_S):
        self.broker = broker
        self.client_id = client_id
        self.ca = ca
        self.receive_maximum = max(1, min(int(receive_maximum), 65535))
        self.session_expiry_s = session_expiry_s
        self.inbox = queue.Queue()
        self.subscriptions = []
        self.connection = 0  # goes up at every connect and disconnect
        self.connected = threading.Event()
        self.connects = 0
        self.disconnects = 0
        self.session_present = False
        self._lock = threading.Lock()
        self._sub_lock = threading.Lock()
        self._outcome = {}
        self._answered = threading.Event()
        self._subacks = {}
        self._client = None

    def connect(self):
        """Connect and start the network thread; CitynodeError in one line when that fails."""
        try:
            import paho.mqtt.client as paho
            from paho.mqtt.packettypes import PacketTypes
            from paho.mqtt.properties import Properties
        except ImportError:
            raise CitynodeError("talking to a broker needs paho-mqtt: pip install 'citynode[mqtt]'") from None
        client = paho.Client(paho.CallbackAPIVersion.VERSION2, client_id=self.client_id, protocol=paho.MQTTv5,
                             manual_ack=True)
        if self.broker.user:
            client.username_pw_set(self.broker.user, self.broker.password or None)
        if self.broker.tls:
            if self.ca is not None:
                import os

                if not os.path.isfile(self.ca):
                    raise UsageError("CA certificate %s not found" % self.ca)
            client.tls_set(ca_certs=self.ca)
        client.reconnect_delay_set(min_delay=RECONNECT_MIN_S, max_delay=RECONNECT_MAX_S)
        client.on_connect = self._on_connect
        client.on_disconnect = self._on_disconnect
        client.on_message = self._on_message
        client.on_subscribe = self._on_subscribe
        props = Properties(PacketTypes.CONNECT)
        props.SessionExpiryInterval = self.session_expiry_s
        props.ReceiveMaximum = self.receive_maximum
        self._client = client
        try:
            client.connect(self.broker.host, self.broker.port, keepalive=30, clean_start=False, properties=props)
        except (OSError, ValueError) as exc:
            raise broker_url.connect_error(self.broker, exc) from None
        client.loop_start()
        if not self._answered.wait(CONNECT_TIMEOUT_S):
            self._stop_loop()
            raise CitynodeError("broker %s: no answer to CONNECT within %.0f s"
                                % (self.broker.safe(), CONNECT_TIMEOUT_S))
        reason = self._outcome["reason"]
        if reason.is_failure:
            self._stop_loop()
            raise CitynodeError("broker %s refused the connection: %s" % (self.broker.safe(), reason))
        return self

    def subscribe(self, subscriptions):
        """[(topic filter, qos)]: subscribe now and after every reconnect; CitynodeError if refused."""
        self.subscriptions = list(subscriptions)
        done = self._send_subscribe()
        if not done.wait(CONNECT_TIMEOUT_S):
            raise CitynodeError("broker %s: no answer to SUBSCRIBE within %.0f s"
                                % (self.broker.safe(), CONNECT_TIMEOUT_S))
        refused = [(topic, code) for (topic, _qos), code in zip(self.subscriptions, done.codes) if code.is_failure]
        if refused:
            raise CitynodeError("broker %s refused the subscription to %s: %s"
                                % (self.broker.safe(), refused[0][0], refused[0][1]))

    def _send_subscribe(self):
        from paho.mqtt.subscribeoptions import SubscribeOptions

        done = threading.Event()
        done.codes = []
        with self._sub_lock:  # the SUBACK may come before subscribe() returns
            _rc, mid = self._client.subscribe([(t, SubscribeOptions(qos=qos)) for t, qos in self.subscriptions])
            self._subacks[mid] = done
        return done

    def ack(self, message):
        """PUBACK the message if it needs one and came on this connection; True if sent."""
        if message.qos == 0:
            return False
        with self._lock:
            if message.connection != self.connection:
                return False  # the broker sends it again on this connection; that copy gets the ack
            return self._client.ack(message.mid, message.qos) == 0

    def close(self):
        """Disconnect; what was not acknowledged stays in the session on the broker."""
        if self._client is not None:
            try:
                self._client.disconnect()
            finally:
                self._stop_loop()

    def _stop_loop(self):
        self._client.loop_stop()

    # -- paho's network thread -----------------------------------------------

    def _on_connect(self, client, _userdata, flags, reason, _props):
        self._outcome["reason"] = reason
        if not reason.is_failure:
            with self._lock:
                self.connection += 1
            self.connects += 1
            self.session_present = bool(flags.session_present)
            self.connected.set()
            if self.subscriptions:
                self._send_subscribe()
        self._answered.set()

    def _on_disconnect(self, _client, _userdata, _flags, _reason, _props):
        with self._lock:
            self.connection += 1
        self.connected.clear()
        self.disconnects += 1

    def _on_subscribe(self, _client, _userdata, mid, codes, _props):
        with self._sub_lock:
            done = self._subacks.pop(mid, None)
        if done is not None:
            done.codes = list(codes)
            done.set()

    def _on_message(self, _client, _userdata, m):
        self.inbox.put(Message(m.topic, bytes(m.payload), m.mid, m.qos, bool(m.dup), time.time_ns() // 1000,
                               time.monotonic(), self.connection))
