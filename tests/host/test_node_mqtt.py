"""The node's MQTT session (firmware/citynode_fw/mqtt.py) under the MicroPython Unix port,
against the real Mosquitto (citynode.broker) and, for what a good broker never does, a
scripted one. paho-mqtt is the peer that sees what the node published."""

import json
import signal
import socket
import struct
import threading
import time

import mp_program
from broker_fixtures import needs_mosquitto
from citynode.broker import LocalBroker, make_ca_and_server_cert


def start_node(**opt):
    return mp_program.start("mqtt_session.py", **opt)


def events(proc, timeout=30):
    out, err = proc.communicate(timeout=timeout)
    assert proc.returncode == 0, err
    return [json.loads(line) for line in out.splitlines() if line.startswith("{")]


def run_node(**opt):
    return events(start_node(**opt))


class Peer:
    """A paho-mqtt client subscribed to topics, keeping what arrives."""

    def __init__(self, port, topics, client_id="peer"):
        import paho.mqtt.client as paho

        self.got = []
        self.ready = threading.Event()
        self.client = paho.Client(paho.CallbackAPIVersion.VERSION2, client_id=client_id, clean_session=False)
        self.client.on_message = lambda c, u, m: self.got.append((m.topic, m.payload.decode(), m.retain))
        self.client.on_subscribe = lambda *a: self.ready.set()
        if not topics:
            self.client.on_connect = lambda *a: self.ready.set()
        self.client.reconnect_delay_set(0.1, 0.5)
        self.client.connect("127.0.0.1", port)
        for t in topics:
            self.client.subscribe(t, 1)
        self.client.loop_start()
        assert self.ready.wait(5)

    def payloads(self, topic):
        return [p for t, p, _r in self.got if t == topic]

    def wait_for(self, topic, n, timeout=10):
        """What arrived on topic, once n different payloads have (or the timeout ran out)."""
        end = time.monotonic() + timeout
        while time.monotonic() < end and len(set(self.payloads(topic))) < n:
            time.sleep(0.02)
        return self.payloads(topic)

    def close(self):
        self.client.loop_stop()
        self.client.disconnect()


@needs_mosquitto
def test_qos1_messages_arrive_in_order_each_acked(tmp_path):
    with LocalBroker(tmp_path / "broker") as broker:
        peer = Peer(broker.port, ["t/data"])
        ev = run_node(port=broker.port, count=30, until_acked=True)
        got = peer.wait_for("t/data", 30)
        peer.close()
    assert got == ["m%d" % i for i in range(30)]
    end = ev[-1]
    assert (end["published"], end["acked"], end["failures"]) == (30, 30, 0)
    assert [e["pid"] for e in ev if e["event"] == "published"] == list(range(1, 31))


@needs_mosquitto
def test_a_command_published_to_the_node_reaches_it(tmp_path):
    with LocalBroker(tmp_path / "broker") as broker:
        node = start_node(port=broker.port, subscribe=["citynode/7/cmd"], seconds=3)
        peer = Peer(broker.port, [])
        time.sleep(0.8)
        peer.client.publish("citynode/7/cmd", b"hello", qos=1).wait_for_publish(5)
        ev = events(node)
        peer.close()
    assert {"topic": "citynode/7/cmd", "payload": "hello"}.items() <= [e for e in ev if e["event"] == "message"][0].items()


@needs_mosquitto
def test_packet_ids_wrap_from_65535_to_1_never_0(tmp_path):
    with LocalBroker(tmp_path / "broker") as broker:
        peer = Peer(broker.port, ["t/data"])
        ev = run_node(port=broker.port, count=5, first_pid=65533, until_acked=True)
        got = peer.wait_for("t/data", 5)
        peer.close()
    assert [e["pid"] for e in ev if e["event"] == "published"] == [65534, 65535, 1, 2, 3]
    assert got == ["m0", "m1", "m2", "m3", "m4"]
    assert ev[-1]["failures"] == 0 and ev[-1]["acked"] == 5  # mosquitto drops a client that sends id 0


@needs_mosquitto
def test_the_will_says_offline_when_the_node_dies_and_not_when_it_stops(tmp_path):
    with LocalBroker(tmp_path / "broker") as broker:
        peer = Peer(broker.port, ["citynode/7/status"])
        node = start_node(port=broker.port, will_topic="citynode/7/status", seconds=30)
        time.sleep(1.0)
        node.send_signal(signal.SIGKILL)  # a power cut: the broker sees the TCP connection die
        node.communicate()
        assert peer.wait_for("citynode/7/status", 1) == ["offline"]
        ev = run_node(port=broker.port, will_topic="citynode/7/status", client_id="node8", seconds=1)
        time.sleep(0.5)
        peer.close()
    assert ev[-1]["connects"] == 1
    assert peer.payloads("citynode/7/status") == ["offline"]  # the clean stop sent no will


@needs_mosquitto
def test_a_broker_restart_loses_nothing_and_keeps_order(tmp_path):
    with LocalBroker(tmp_path / "broker") as broker:
        peer = Peer(broker.port, ["t/data"])
        node = start_node(port=broker.port, count=40, seconds=25, until_acked=True, puback_ms=1000)
        got = peer.wait_for("t/data", 10)
        broker.restart(down_s=1.5)
        got = peer.wait_for("t/data", 40, timeout=20)
        ev = events(node)
        peer.close()
    seen = []
    for p in got:  # QoS 1 is at least once: a resend after the restart may repeat the last one
        if p not in seen:
            seen.append(p)
    assert seen == ["m%d" % i for i in range(40)]
    end = ev[-1]
    assert end["acked"] == 40 and end["connects"] >= 2 and end["failures"] >= 1


@needs_mosquitto
def test_refused_credentials_are_reported_and_retried_with_backoff(tmp_path):
    with LocalBroker(tmp_path / "broker", users={"node7": "right"}) as broker:
        ev = run_node(port=broker.port, user="node7", password="wrong", seconds=3.5, count=1)
        ok = run_node(port=broker.port, user="node7", password="right", count=1, until_acked=True)
    refusals = [e for e in ev if e["event"] == "state" and e["state"] == "down"]
    # MQTT 3.1.1 has two codes for it; Mosquitto 2.0 answers "not authorised"
    assert refusals and refusals[0]["error"] in ("refused: bad user name or password", "refused: not authorised")
    assert refusals[0]["refused"] in (4, 5)
    assert 1 <= ev[-1]["failures"] <= 3  # 1 s, then 2 s between tries: not a tight loop
    assert "wrong" not in json.dumps(ev)  # the secret is never in what the node reports
    assert ok[-1]["acked"] == 1


@needs_mosquitto
def test_tls_with_the_pinned_ca_and_a_refusal_with_another(tmp_path):
    with LocalBroker(tmp_path / "broker", tls=True) as broker:
        peer = Peer(broker.port, ["t/data"])
        ev = run_node(port=broker.tls_port, ca=str(broker.ca_der), count=3, until_acked=True)
        got = peer.wait_for("t/data", 3)
        make_ca_and_server_cert(tmp_path)
        bad = run_node(port=broker.tls_port, ca=str(tmp_path / "ca.der"), count=1, seconds=2)
        peer.close()
    assert got == ["m0", "m1", "m2"] and ev[-1]["acked"] == 3
    downs = [e for e in bad if e["event"] == "state" and e["state"] == "down"]
    assert downs and downs[0]["error"].startswith("TLS: ") and "CA" in downs[0]["error"]
    assert bad[-1]["acked"] == 0


# -- a scripted broker, for what Mosquitto never does --------------------------------------


class ScriptedBroker:
    """Accepts one client at a time; answers CONNECT; `withhold` PUBACKs it never sends,
    `silent` never answers a PINGREQ. Keeps every PUBLISH as (first byte, packet id)."""

    def __init__(self, withhold=0, silent=False):
        self.withhold = withhold
        self.silent = silent
        self.publishes = []
        self.connects = 0
        self.server = socket.socket()
        self.server.bind(("127.0.0.1", 0))
        self.server.listen(2)
        self.port = self.server.getsockname()[1]
        self.stop = False
        self.thread = threading.Thread(target=self._serve, daemon=True)
        self.thread.start()

    def _read(self, conn, n):
        data = b""
        while len(data) < n:
            chunk = conn.recv(n - len(data))
            if not chunk:
                raise ConnectionError
            data += chunk
        return data

    def _packet(self, conn):
        head = self._read(conn, 1)[0]
        length, shift = 0, 0
        while True:
            b = self._read(conn, 1)[0]
            length |= (b & 0x7F) << shift
            shift += 7
            if not b & 0x80:
                break
        return head, self._read(conn, length)

    def _serve(self):
        self.server.settimeout(0.2)
        while not self.stop:
            try:
                conn, _ = self.server.accept()
            except OSError:
                continue
            try:
                self._session(conn)
            except (ConnectionError, OSError):
                pass
            finally:
                conn.close()

    def _session(self, conn):
        conn.settimeout(None)
        while not self.stop:
            head, body = self._packet(conn)
            kind = head >> 4
            if kind == 1:
                self.connects += 1
                conn.sendall(b"\x20\x02\x00\x00")
            elif kind == 3:
                tlen = struct.unpack(">H", body[:2])[0]
                pid = struct.unpack(">H", body[2 + tlen : 4 + tlen])[0]
                self.publishes.append((head, pid))
                if self.withhold:
                    self.withhold -= 1
                else:
                    conn.sendall(b"\x40\x02" + struct.pack(">H", pid))
            elif kind == 12 and not self.silent:
                conn.sendall(b"\xd0\x00")

    def close(self):
        self.stop = True
        self.server.close()
        self.thread.join(2)


def test_a_missing_puback_makes_the_node_resend_with_dup_and_the_same_id():
    broker = ScriptedBroker(withhold=1)
    try:
        ev = run_node(port=broker.port, count=2, puback_ms=500, until_acked=True)
    finally:
        broker.close()
    first, again, second = broker.publishes[:3]
    assert first[1] == again[1] == 1 and second[1] == 2
    assert not first[0] & 0x08 and again[0] & 0x08 and not second[0] & 0x08  # DUP only on the resend
    assert ev[-1]["resends"] == 1 and ev[-1]["acked"] == 2


def test_a_silent_broker_is_dropped_after_one_and_a_half_keepalives():
    broker = ScriptedBroker(silent=True)
    try:
        ev = run_node(port=broker.port, keepalive=1, seconds=2.5)
    finally:
        broker.close()
    downs = [e for e in ev if e["event"] == "state" and e["state"] == "down"]
    assert downs and downs[0]["error"] == "broker silent for 1.5 keepalives"
    assert broker.connects >= 1
