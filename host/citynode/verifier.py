"""Signed frames from the network in, verified frames out (SPEC.md §9.2).

`Verifier(keystore).feed(node_id_of_topic, payload)` cuts an MQTT `frames`
payload into frames, checks each (CRC, signed, the node known, the MAC, the
node id agrees with the topic, not a replay) and returns the unsigned raw frames
that passed, in order, ready for `frame.to_wire` and any decoder. Every other
frame is counted by reason in `rejected`, and the last few are kept in
`recent` for a display. Nothing here raises on bad bytes.

A bundle (SPEC §4, type 8) that passed is expanded here, the one place, into
the ordinary frames it carries, each with its own seq and time (its replay
place is its last record's, which the header carries); so everything after
sees the node's frames as if each came alone. A bundle that does not parse is
refused as `bad_bundle`.

A node's replay window belongs to its key: when the keystore holds another key
for the node (read again from its file when a frame does not verify, so a long
`listen` sees a node provisioned meanwhile), the window starts anew.
"""

import collections

from citynode_protocol import auth, bundle, cobs, frame, wire

# A frame that passed: unsigned raw frame, its node, boot and 32-bit sequence (SPEC §9.2);
# for a bundle's record, carrier is (the signed bundle as received, its 32-bit sequence).
Verified = collections.namedtuple("Verified", "raw node_id boot seq carrier", defaults=(None,))
# A frame that did not: boot and seq only where the MAC was good (a replay); raw as received.
Rejected = collections.namedtuple("Rejected", "node_id reason boot seq raw")

REASONS = ("malformed", "unsigned", "unknown_node", "bad_mac", "wrong_topic", "replay", "bad_bundle")


def expand(raw, node_id, boot, seq32):
    """[Verified] of a signed raw frame whose MAC passed: the frame itself, or a
    bundle's records as ordinary unsigned frames; BundleError for a bad bundle."""
    unsigned = auth.unsign(raw)
    if raw[0] & 0x1F != wire.BUNDLE | auth.SIGNED:
        return [Verified(unsigned, node_id, boot, seq32)]
    _v, _t, _n, _seq, time_ms, payload = frame.parse(unsigned)
    carrier = (bytes(raw), seq32)
    return [Verified(frame.build(msg_type, node_id, seq, t, data), node_id, boot, seq, carrier)
            for msg_type, seq, t, data in bundle.expand(payload, seq32, time_ms)]


class Verifier:
    def __init__(self, keystore, recent=20):
        self.keystore = keystore
        self.windows = {}  # node id -> auth.ReplayWindow
        self.signers = {}  # node id -> (key, auth.Signer): the window belongs to that key
        self.accepted = 0
        self.rejected = dict.fromkeys(REASONS, 0)
        self.by_node = collections.Counter()
        self.recent = collections.deque(maxlen=recent)  # (node id, reason)

    def _reject(self, node_id, reason):
        self.rejected[reason] += 1
        self.recent.append((node_id, reason))

    def _signer(self, node_id):
        """The node's signer by its key in the keystore now. A key this verifier has not
        seen for the node (the node provisioned again, a replacement board) is a new
        signer: the node's replay window starts anew."""
        key = self.keystore.key(node_id)
        known = self.signers.get(node_id)
        if known is None or known[0] != key:
            known = self.signers[node_id] = (key, None if key is None else auth.Signer(key))
            self.windows.pop(node_id, None)
        return known[1]

    def _keys_changed(self):
        """The keystore read again if its file changed (a key made or replaced meanwhile)."""
        from citynode.keystore import KeystoreError

        reload = getattr(self.keystore, "reload_if_changed", None)
        try:
            return reload is not None and reload()
        except KeystoreError:
            return False  # a keystore broken meanwhile: the keys as they were

    def feed(self, topic_node, payload):
        """The verified unsigned raw frames of one message published by topic_node."""
        return [v.raw for v in self.check(topic_node, payload)[0]]

    def check(self, topic_node, payload):
        """([Verified], [Rejected]) for one message published by topic_node, in order."""
        accepted, rejected = [], []

        def reject(node_id, reason, raw, boot=None, seq=None):
            self._reject(node_id, reason)
            rejected.append(Rejected(node_id, reason, boot, seq, raw))

        for piece in bytes(payload).split(b"\x00"):
            if not piece:
                continue
            try:
                raw = cobs.decode(piece)
                _version, _type, node_id, seq, _time, _payload = frame.parse(raw)
            except ValueError:  # CobsError and FrameError are ValueErrors
                reject(topic_node, "malformed", piece)
                continue
            if not auth.is_signed(raw) or len(raw) < auth.MIN_SIGNED:
                reject(node_id, "unsigned", raw)
                continue
            if node_id != topic_node:
                reject(node_id, "wrong_topic", raw)
                continue
            signer = self._signer(node_id)
            if (signer is None or not auth.verify(raw, signer)) and self._keys_changed():
                signer = self._signer(node_id)
            if signer is None:
                reject(node_id, "unknown_node", raw)
                continue
            boot, seq_hi, _mac = auth.trailer(raw)
            if not auth.verify(raw, signer):
                reject(node_id, "bad_mac", raw)
                continue
            place = auth.sequence(boot, seq_hi, seq)
            window = self.windows.setdefault(node_id, auth.ReplayWindow())
            if window.check(*place) != "new":
                reject(node_id, "replay", raw, boot, place[1])
                continue
            try:
                frames = expand(raw, node_id, boot, place[1])
            except bundle.BundleError:
                reject(node_id, "bad_bundle", raw, boot, place[1])
                continue
            for v in frames[:-1]:  # each record's place is taken, as if it had come alone
                window.check(boot, v.seq)
            self.accepted += len(frames)
            self.by_node[node_id] += len(frames)
            accepted.extend(frames)
        return accepted, rejected

    def total_rejected(self):
        return sum(self.rejected.values())
