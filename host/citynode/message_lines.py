"""Messages as JSON lines: the form `citynode encode` reads and `citynode decode --format jsonl` writes.

One object per message:

    {"type": "climate", "node_id": 1, "seq": 0, "time_ms": 1000,
     "fields": {"temperature_c": 21.5, "relative_humidity_pct": 48.25, "status": 0}}

`fields` are in the units of the message table (protocol messages.py); accel
carries its `samples` as [x, y, z] count triples and its `encoding` (0 raw,
1 delta) instead of `n_samples`. Encoding such a line gives back the frame it
was decoded from, byte for byte, for every message a node of this protocol
version sends; what a receiver drops (frames of unknown types, the extra bytes
of a newer minor version) is not there to give back, and a reply body comes
back as this host's JSON text of it.
"""

import json

_NOT_INPUT = {"accel": ("n_samples",)}  # derived from the samples when encoding


def message_record(msg):
    """The JSON object of a decoded `Message` (citynode_protocol.decoder)."""
    fields = dict(msg.fields)
    for key in _NOT_INPUT.get(msg.name, ()):
        fields.pop(key, None)
    if msg.name == "accel":
        flat = fields["samples"]
        fields["samples"] = [flat[i : i + 3] for i in range(0, len(flat), 3)]
    return {"type": msg.name, "node_id": msg.node_id, "seq": msg.seq, "time_ms": msg.time_ms, "fields": fields}


def message_line(msg):
    return json.dumps(message_record(msg), ensure_ascii=False)
