"""Signed frames from the network in, verified frames out (SPEC.md §9.2).

`Verifier(keystore).feed(node_id_of_topic, payload)` cuts an MQTT `frames`
payload into frames, checks each (CRC, signed, the node known, the MAC, the
node id agrees with the topic, not a replay) and returns the unsigned raw frames
that passed, in order, ready for `frame.to_wire` and any decoder. Every other
frame is counted by reason in `rejected`, and the last few are kept in
`recent` for a display. Nothing here raises on bad bytes.
"""

import collections

from citynode_protocol import auth, cobs, frame

REASONS = ("malformed", "unsigned", "unknown_node", "bad_mac", "wrong_topic", "replay")


class Verifier:
    def __init__(self, keystore, recent=20):
        self.keystore = keystore
        self.windows = {}  # node id -> auth.ReplayWindow
        self.signers = {}
        self.accepted = 0
        self.rejected = dict.fromkeys(REASONS, 0)
        self.by_node = collections.Counter()
        self.recent = collections.deque(maxlen=recent)  # (node id, reason)

    def _reject(self, node_id, reason):
        self.rejected[reason] += 1
        self.recent.append((node_id, reason))

    def _signer(self, node_id):
        if node_id not in self.signers:
            self.signers[node_id] = self.keystore.signer(node_id)
        return self.signers[node_id]

    def feed(self, topic_node, payload):
        """The verified unsigned raw frames of one message published by topic_node."""
        out = []
        for piece in bytes(payload).split(b"\x00"):
            if not piece:
                continue
            try:
                raw = cobs.decode(piece)
                _version, _type, node_id, seq, _time, _payload = frame.parse(raw)
            except ValueError:  # CobsError and FrameError are ValueErrors
                self._reject(topic_node, "malformed")
                continue
            if not auth.is_signed(raw) or len(raw) < auth.MIN_SIGNED:
                self._reject(node_id, "unsigned")
                continue
            if node_id != topic_node:
                self._reject(node_id, "wrong_topic")
                continue
            signer = self._signer(node_id)
            if signer is None:
                self._reject(node_id, "unknown_node")
                continue
            if not auth.verify(raw, signer):
                self._reject(node_id, "bad_mac")
                continue
            boot, seq_hi, _mac = auth.trailer(raw)
            window = self.windows.setdefault(node_id, auth.ReplayWindow())
            if window.check(*auth.sequence(boot, seq_hi, seq)) != "new":
                self._reject(node_id, "replay")
                continue
            self.accepted += 1
            self.by_node[node_id] += 1
            out.append(auth.unsign(raw))
        return out

    def total_rejected(self):
        return sum(self.rejected.values())
