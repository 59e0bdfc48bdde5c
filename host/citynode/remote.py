"""Commands to a node over MQTT (SPEC.md §9.4, §10): signed lines out, signed replies in.

    with RemoteClient(broker, node_id, keystore) as client:
        info = client.command("info")

A command is an armoured line (SPEC §7) signed with the node's key and a
counter (cmdauth.py), published at QoS 1 on `<prefix>/<node>/cmd`; the node
answers with a signed REPLY frame on `<prefix>/<node>/reply`. A reply counts
only when its MAC is right, it comes from that node, and it carries the
request id just sent. The counter is the host's UTC in ms, kept above the last
one this process used: the node refuses any counter not above the last it
accepted, so a line copied off the broker cannot be played again.

A command is sent once: MQTT QoS 1 carries it, and a repeat would be refused as
a replay. No reply within the timeout is one line saying whether the node is
online (its retained status topic).
"""

import os
import queue
import random
import time

from citynode.errors import CitynodeError, DeviceError
from citynode_protocol import armour, auth, cmdauth, cobs, frame, messages, topics
from citynode_protocol.decoder import Decoder

DEFAULT_TIMEOUT_S = 10.0


class RemoteClient:
    def __init__(self, broker, node_id, keystore, prefix=topics.PREFIX, ca=None, timeout=DEFAULT_TIMEOUT_S,
                 clock=time.time):
        from citynode import broker_url

        if not 0 <= node_id <= 0xFFFF:
            raise CitynodeError("node id %d outside 0..65535" % node_id)
        self.node_id = node_id
        self.signer = keystore.signer(node_id)
        if self.signer is None:
            raise CitynodeError("node %d is not in the keystore %s: its key signs the commands (provision it with "
                                "`citynode flash` or `citynode config set uplink wifi`)" % (node_id, keystore.path))
        self.broker = broker_url.parse(broker) if isinstance(broker, str) else broker
        self.timeout = timeout
        self.clock = clock
        self.cmd_topic = topics.topic(node_id, "cmd", prefix)
        self.reply_topic = topics.topic(node_id, "reply", prefix)
        self.status_topic = topics.topic(node_id, "status", prefix)
        self.node_status = None  # "online" / "offline" as the broker keeps it
        self._counter = 0
        self._inbox = queue.Queue()
        self._client = broker_url.connect(
            self.broker, "citynode-remote-%d-%d" % (os.getpid(), random.getrandbits(16)), ca=ca,
            on_message=lambda _c, _u, m: self._inbox.put((m.topic, bytes(m.payload))),
            subscriptions=(self.reply_topic, self.status_topic))

    def close(self):
        if self._client is not None:
            self._client.loop_stop()
            self._client.disconnect()
            self._client = None

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        self.close()

    def next_counter(self):
        self._counter = max(int(self.clock() * 1000), self._counter + 1)
        return self._counter

    def signed_line(self, name, args, request_id):
        line = armour.encode_command(request_id, name, args)
        return cmdauth.sign(line, self.signer, self.node_id, self.next_counter())

    def command(self, name, timeout=None, **args):
        """The reply body of one command; DeviceError when the node answers with an error code."""
        return reply_body(name, self.exchange(name, args, timeout))

    def exchange(self, name, args, timeout=None):
        """The node's reply message (any code) to one command, sent once."""
        timeout = self.timeout if timeout is None else timeout
        rid = random.randrange(1, 0x10000)
        info = self._client.publish(self.cmd_topic, self.signed_line(name, args, rid), qos=1)
        deadline = time.monotonic() + timeout
        try:
            info.wait_for_publish(timeout)
        except (RuntimeError, ValueError) as exc:
            raise CitynodeError("broker %s did not take the command: %s" % (self.broker.safe(), exc)) from None
        while True:
            left = deadline - time.monotonic()
            if left <= 0:
                break
            try:
                topic, payload = self._inbox.get(timeout=left)
            except queue.Empty:
                break
            if topic == self.status_topic:
                self.node_status = payload.decode("utf-8", "replace")
                continue
            for m in self.replies(payload):
                if m["request_id"] == rid:
                    return m
        state = {"online": "it is online", "offline": "it is offline"}.get(
            self.node_status, "it has never connected to this broker" if self.node_status is None else
            "its status is %r" % self.node_status)
        raise CitynodeError("node %d did not answer %s within %g s over %s (%s)" % (
            self.node_id, name, round(timeout, 1), self.broker.safe(), state))

    def replies(self, payload):
        """The REPLY messages of one reply-topic payload whose signature is right for this node."""
        out = []
        for piece in payload.split(b"\x00"):
            if not piece:
                continue
            try:
                raw = cobs.decode(piece)
                _v, _t, node_id, _seq, _time, _p = frame.parse(raw)
                if node_id != self.node_id or not auth.is_signed(raw) or not auth.verify(raw, self.signer):
                    continue
            except ValueError:
                continue
            for m in Decoder().feed(frame.to_wire(auth.unsign(raw))):
                if m.name == "reply":
                    out.append(m)
        return out


def reply_body(name, m):
    """The body of an OK reply; DeviceError with the node's words for any other code."""
    code = m["code"]
    body = m.fields.get("body")
    if code != messages.OK:
        detail = body.get("error") if isinstance(body, dict) else None
        raise DeviceError("node refused %s: %s%s" % (name, messages.reply_word(code),
                                                      (": " + detail) if detail else ""), code)
    return body if body is not None else {}
