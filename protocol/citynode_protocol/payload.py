"""Payloads to and from field dictionaries, driven by the message table."""

import json
import struct

from citynode_protocol import codec
from citynode_protocol.messages import BY_NAME, BY_TYPE


class PayloadError(ValueError):
    """A payload that does not fit its message's layout; `reason` names the counter."""

    def __init__(self, reason, message):
        super().__init__(message)
        self.reason = reason


def _scaled(value, scale):
    if scale is None:
        return value
    # round to the table's resolution so 2345 * 0.01 prints as 23.45
    digits = 0
    s = scale
    while s < 1 and digits < 9:
        s *= 10
        digits += 1
    return round(value * scale, digits)


def unpack(msg_type, payload):
    """Fields of a payload as a dict, and the count of trailing bytes not understood.

    Raises KeyError for an unknown type and PayloadError for a payload that is
    too short or inconsistent.
    """
    entry = BY_TYPE[msg_type]
    fmt = entry[2]
    fields = entry[3]
    tail = entry[4]
    size = struct.calcsize(fmt)
    if len(payload) < size:
        raise PayloadError(
            "bad_length", "%s payload of %d bytes, needs %d" % (entry[1], len(payload), size)
        )
    values = struct.unpack_from(fmt, payload, 0)
    out = {}
    for i in range(len(fields)):
        name, scale, _unit = fields[i]
        out[name] = _scaled(values[i], scale)
    rest = payload[size:]
    extra = 0
    if tail is None:
        extra = len(rest)
    elif tail == "text":
        out["text"] = _text(rest)
    elif tail == "json":
        text = _text(rest)
        try:
            out["body"] = json.loads(text) if text else None
        except (ValueError, RuntimeError, MemoryError):
            # not JSON, or nested beyond the parser's depth (RecursionError)
            raise PayloadError("bad_length", "reply body is not usable JSON")
    elif tail == "accel":
        n = out["n_samples"]
        try:
            out["samples"] = codec.decode(out["encoding"], rest, n)
        except ValueError as exc:
            reason = "unknown_encoding" if out["encoding"] > 1 else "bad_length"
            raise PayloadError(reason, str(exc))
    return out, extra


def _text(data):
    try:
        return bytes(data).decode("utf-8")
    except UnicodeError:
        raise PayloadError("bad_length", "text is not UTF-8")


def _wire_int(value, scale):
    if scale is None:
        return int(value)
    v = value / scale
    return int(v + 0.5) if v >= 0 else -int(-v + 0.5)


def pack(name, fields):
    """Host convenience: (type id, payload bytes) from a dict of field values in units.

    Missing fields are 0. accel takes `samples` (flat list of counts) and
    `encoding` (None picks the smaller); log takes `text`; reply takes `body`.
    """
    if name not in BY_NAME:
        raise ValueError("unknown message %r; known: %s" % (name, ", ".join(sorted(BY_NAME))))
    entry = BY_NAME[name]
    msg_type, _name, fmt, table, tail = entry
    fields = dict(fields)
    tail_bytes = b""
    if tail == "accel":
        samples = fields.get("samples") or []
        if len(samples) % 3:
            raise ValueError("accel samples must be a flat x, y, z list")
        encoding, tail_bytes = codec.encode(samples, fields.get("encoding"))
        fields["encoding"] = encoding
        fields["n_samples"] = len(samples) // 3
    elif tail == "text":
        tail_bytes = str(fields.get("text", "")).encode("utf-8")
    elif tail == "json":
        body = fields.get("body")
        tail_bytes = b"" if body is None else json.dumps(body).encode("utf-8")
    values = []
    for fname, scale, _unit in table:
        values.append(_wire_int(fields.get(fname, 0), scale))
    try:
        fixed = struct.pack(fmt, *values)
    except (OverflowError, struct.error) as exc:
        raise ValueError("%s: a field is out of range (%s)" % (name, exc))
    return msg_type, fixed + tail_bytes
