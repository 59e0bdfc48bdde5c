"""MQTT topics of the uplink (SPEC.md §10): one per node and kind of traffic.

    <prefix>/<node id>/frames   node -> broker: signed frames, COBS, several per message (QoS 1)
    <prefix>/<node id>/status   node -> broker: "online" / "offline" (retained; "offline" is the will)
    <prefix>/<node id>/cmd      host -> node: a signed command line, SPEC §9.4 (QoS 1)
    <prefix>/<node id>/reply    node -> host: signed REPLY frames (QoS 1)

The node id is decimal, without leading zeros, so `+` matches one node.
"""

PREFIX = "citynode"
KINDS = ("frames", "status", "cmd", "reply")


def topic(node_id, kind, prefix=PREFIX):
    if kind not in KINDS:
        raise ValueError("topic kind %r: one of %s" % (kind, ", ".join(KINDS)))
    if not 0 <= node_id <= 0xFFFF:
        raise ValueError("node id %d outside 0..65535" % node_id)
    return "%s/%d/%s" % (prefix, node_id, kind)


def every(kind, prefix=PREFIX):
    """The filter for one kind of traffic of every node."""
    return "%s/+/%s" % (prefix, kind)


def parse(name, prefix=PREFIX):
    """(node id, kind) of a topic of ours, or None."""
    parts = name.split("/")
    if len(parts) != 3 or parts[0] != prefix or parts[2] not in KINDS:
        return None
    text = parts[1]
    if not text or not text.isdigit() or (len(text) > 1 and text[0] == "0"):
        return None
    node_id = int(text)
    return (node_id, parts[2]) if node_id <= 0xFFFF else None
