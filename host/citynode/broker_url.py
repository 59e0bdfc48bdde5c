"""Broker URLs and connecting the host to a broker (paho-mqtt), with one-line errors.

    mqtt://[user[:password]@]host[:port]     port 1883 by default
    mqtts://[user[:password]@]host[:port]    TLS, port 8883, the CA from --ca (else the system's)

A password in the URL is never shown: `safe(url)` prints it as `***`. It can
also come from $CITYNODE_MQTT_PASSWORD, which keeps it out of the process list.
"""

import os
import threading
import urllib.parse
from dataclasses import dataclass

from citynode.errors import CitynodeError, UsageError

PASSWORD_ENV = "CITYNODE_MQTT_PASSWORD"
CONNECT_TIMEOUT_S = 10.0


@dataclass
class BrokerUrl:
    scheme: str
    host: str
    port: int
    user: str = ""
    password: str = ""

    @property
    def tls(self):
        return self.scheme == "mqtts"

    def safe(self):
        auth = ""
        if self.user:
            auth = self.user + (":***" if self.password else "") + "@"
        return "%s://%s%s:%d" % (self.scheme, auth, self.host, self.port)


def parse(url):
    """A BrokerUrl, or UsageError in one line that never repeats a password."""
    text = str(url or "").strip()
    try:
        parts = urllib.parse.urlsplit(text)
        port = parts.port
    except ValueError as exc:
        raise UsageError("broker URL %s: %s" % (_mask(text), exc)) from None
    if parts.scheme not in ("mqtt", "mqtts"):
        raise UsageError("broker URL %s: give mqtt://HOST[:PORT] or mqtts://HOST[:PORT]" % _mask(text))
    if not parts.hostname:
        raise UsageError("broker URL %s: no host" % _mask(text))
    if parts.path not in ("", "/") or parts.query or parts.fragment:
        raise UsageError("broker URL %s: nothing may follow host:port" % _mask(text))
    return BrokerUrl(
        parts.scheme, parts.hostname, port or (8883 if parts.scheme == "mqtts" else 1883),
        urllib.parse.unquote(parts.username or ""),
        urllib.parse.unquote(parts.password or "") or os.environ.get(PASSWORD_ENV, ""),
    )


def _mask(text):
    """The URL with any password replaced, for error messages."""
    head, sep, rest = text.partition("://")
    if not sep or "@" not in rest:
        return text
    auth, _at, host = rest.rpartition("@")
    user = auth.split(":", 1)[0]
    return "%s://%s%s@%s" % (head, user, ":***" if ":" in auth else "", host)


def connect(url, client_id, ca=None, on_message=None, subscriptions=(), clean_session=True, setup=None):
    """A paho client connected to the broker with its network loop running, subscribed.
    setup(client), if given, runs before CONNECT (settings paho refuses on a live connection).
    CitynodeError (one line) when the broker cannot be reached, refuses, or fails TLS."""
    try:
        import paho.mqtt.client as paho
    except ImportError:
        raise CitynodeError("talking to a broker needs paho-mqtt: pip install 'citynode[mqtt]'") from None

    broker = url if isinstance(url, BrokerUrl) else parse(url)
    client = paho.Client(paho.CallbackAPIVersion.VERSION2, client_id=client_id, clean_session=clean_session)
    if broker.user:
        client.username_pw_set(broker.user, broker.password or None)
    if broker.tls:
        if ca is not None and not os.path.isfile(ca):
            raise UsageError("CA certificate %s not found" % ca)
        client.tls_set(ca_certs=ca)
    done = threading.Event()
    outcome = {}

    def on_connect(_client, _userdata, _flags, reason, _props):
        outcome["reason"] = reason
        if not reason.is_failure:
            for topic in subscriptions:
                client.subscribe(topic, 1)
        done.set()

    client.on_connect = on_connect
    if setup is not None:
        setup(client)
    if on_message is not None:
        client.on_message = on_message
    try:
        client.connect(broker.host, broker.port, keepalive=30)
    except (OSError, ValueError) as exc:
        raise connect_error(broker, exc) from None
    client.loop_start()
    if not done.wait(CONNECT_TIMEOUT_S):
        client.loop_stop()
        raise CitynodeError("broker %s: no answer to CONNECT within %.0f s" % (broker.safe(), CONNECT_TIMEOUT_S))
    reason = outcome["reason"]
    if reason.is_failure:
        client.loop_stop()
        raise CitynodeError("broker %s refused the connection: %s" % (broker.safe(), reason))
    return client


def connect_error(broker, exc):
    """The one-line CitynodeError for an OSError or ValueError of paho's connect()."""
    words = getattr(exc, "strerror", None) or str(exc) or type(exc).__name__
    if "certificate" in words.lower() or type(exc).__name__.startswith("SSL"):
        return CitynodeError("broker %s: TLS failed: %s" % (broker.safe(), words))
    return CitynodeError("broker %s does not answer: %s" % (broker.safe(), words))
