"""`citynode encode INPUT.jsonl -o CAPTURE`: frames from JSON messages, for test traffic.

The input is described in INPUT_HELP (shown by `citynode encode --help`); it
is the form of citynode.message_lines, so the `messages.jsonl` that
`citynode decode --format jsonl` writes encodes back to the same frames.
"""

import json
import os
import sys
import tempfile

from citynode.errors import CitynodeError, UsageError
from citynode_protocol import cobs
from citynode_protocol.frame import MAX_FRAME, MAX_TYPE
from citynode_protocol.messages import BY_NAME, BY_TYPE

_ENCODINGS = {None: None, 0: 0, 1: 1, "raw": 0, "raw-int16": 0, "delta": 1, "delta-bitpack8": 1}
_KEYS = {"type", "node_id", "seq", "time_ms", "fields", "payload_hex", "raw_hex"}

INPUT_HELP = """\
INPUT: one JSON object per line (blank lines are skipped), one frame each:

  {"type": "climate", "node_id": 1, "seq": 0, "time_ms": 1000,
   "fields": {"temperature_c": 21.5, "relative_humidity_pct": 48.25}}
  {"type": "accel", "node_id": 1, "time_ms": 1250,
   "fields": {"odr_hz": 200, "range_g": 2, "samples": [[12, -4, 16384], [13, -2, 16380]]}}
  {"type": "time", "node_id": 1, "time_ms": 1300, "fields": {"utc": "2026-11-26T06:12:24Z"}}
  {"type": 29, "node_id": 1, "time_ms": 1400, "payload_hex": "0102"}
  {"raw_hex": "4d6963726f507974686f6e0d0a"}

  type      a message name (climate, accel, features, status, log, time, reply)
            or a type number 0-31; a number not in the table needs
            payload_hex (a frame from a newer node)
  node_id   0-65535
  seq       optional; per node it continues from the previous frame (from 0)
  time_ms   the node's clock (u32 ms)
  fields    in the units of the message table; missing fields are 0. accel
            takes samples (a flat x, y, z list or [x, y, z] triples of int16
            counts) and encoding (null: the smaller, as the node does; 0 or
            "raw"; 1 or "delta"); first_index continues per node when omitted.
            time takes utc_ms or utc (ISO 8601 text). log takes text and level
            (0-3 or a name); reply takes request_id, code and body (any JSON)
  raw_hex   bytes copied to the capture as they are (junk, REPL text, a
            damaged frame)

`citynode decode CAPTURE --format jsonl` writes messages.jsonl in this form:
encoding it gives back the frames it was decoded from.
"""


def add_arguments(parser):
    import argparse

    parser.formatter_class = argparse.RawDescriptionHelpFormatter
    parser.epilog = INPUT_HELP
    parser.add_argument("input", metavar="INPUT", help="JSON Lines file of messages ('-' for standard input)")
    parser.add_argument(
        "-o", "--output", metavar="CAPTURE", required=True, help="capture file to write ('-' for standard output)"
    )


class LineError(Exception):
    pass


def _int(obj, key, lo, hi, required=True, default=None):
    if key not in obj:
        if required:
            raise LineError("missing %r" % key)
        return default
    value = obj[key]
    if isinstance(value, bool) or not isinstance(value, int):
        raise LineError("%r must be an integer, not %s" % (key, json.dumps(value)))
    if not lo <= value <= hi:
        raise LineError("%r %d outside %d..%d" % (key, value, lo, hi))
    return value


def _hex(obj, key):
    text = obj[key]
    if not isinstance(text, str):
        raise LineError("%r must be hex text" % key)
    try:
        return bytes.fromhex(text)
    except ValueError:
        raise LineError("%r is not hex: %r" % (key, text[:40])) from None


def _fields(name, given):
    """Fields as payload.pack wants them, checked against the message table."""
    if not isinstance(given, dict):
        raise LineError("'fields' must be an object")
    entry = BY_NAME[name]
    known = {f[0] for f in entry[3]}
    extra = {"accel": {"samples", "encoding"}, "text": {"text"}, "json": {"body"}}.get(entry[4], set())
    if name == "accel":
        known -= {"n_samples", "encoding"}
    if name == "time":
        extra = {"utc"}
    allowed = known | extra
    unknown = sorted(set(given) - allowed)
    if unknown:
        raise LineError("%s has no field %s; its fields: %s" % (name, ", ".join(map(repr, unknown)), ", ".join(sorted(allowed))))
    from citynode.traffic import LOG_LEVEL, utc_ms  # numpy: not for --help

    fields = dict(given)
    if name == "log" and isinstance(fields.get("level"), str):
        if fields["level"] not in LOG_LEVEL:
            raise LineError("log level %r unknown; levels: %s" % (fields["level"], ", ".join(LOG_LEVEL)))
        fields["level"] = LOG_LEVEL[fields["level"]]
    for key, value in fields.items():
        if key in known and (isinstance(value, bool) or not isinstance(value, (int, float))):
            raise LineError("field %r must be a number, not %s" % (key, json.dumps(value)))
    if name == "time" and "utc" in fields:
        if "utc_ms" in fields:
            raise LineError("give 'utc' or 'utc_ms', not both")
        try:
            fields["utc_ms"] = utc_ms(fields.pop("utc"))
        except ValueError as exc:
            raise LineError(str(exc)) from None
    if name == "accel":
        enc = fields.get("encoding")
        if isinstance(enc, bool) or enc not in _ENCODINGS:
            raise LineError("accel encoding %s unknown; use null, 0/'raw' or 1/'delta'" % json.dumps(enc))
        fields["encoding"] = _ENCODINGS[enc]
        fields["samples"] = _samples(fields.get("samples", []))
    return fields


def _samples(samples):
    if not isinstance(samples, list):
        raise LineError("accel 'samples' must be a list")
    flat = []
    for s in samples:
        if isinstance(s, list):
            if len(s) != 3:
                raise LineError("an accel sample must be [x, y, z], got %s" % json.dumps(s))
            flat.extend(s)
        else:
            flat.append(s)
    for v in flat:
        if isinstance(v, bool) or not isinstance(v, int) or not -32768 <= v <= 32767:
            raise LineError("accel samples are int16 counts (-32768..32767), got %s" % json.dumps(v))
    if len(flat) % 3:
        raise LineError("accel samples must be x, y, z triples; got %d values" % len(flat))
    if not flat:
        raise LineError("an accel block holds at least one sample")
    return flat


def encode_line(obj, nodes):
    """Wire bytes for one parsed JSON line; nodes maps node id -> TrafficBuilder."""
    if not isinstance(obj, dict):
        raise LineError("expected a JSON object, got %s" % type(obj).__name__)
    unknown = sorted(set(obj) - _KEYS)
    if unknown:
        raise LineError("unknown key %s; keys: %s" % (", ".join(map(repr, unknown)), ", ".join(sorted(_KEYS))))
    if "raw_hex" in obj:
        if len(obj) != 1:
            raise LineError("a 'raw_hex' line holds nothing else")
        return _hex(obj, "raw_hex")
    if "type" not in obj:
        raise LineError("missing 'type'")
    node_id = _int(obj, "node_id", 0, 0xFFFF)
    seq = _int(obj, "seq", 0, 0xFFFF, required=False)
    time_ms = _int(obj, "time_ms", 0, 0xFFFFFFFF)
    node = nodes.get(node_id)
    if node is None:
        from citynode.traffic import TrafficBuilder

        node = nodes[node_id] = TrafficBuilder(node_id)
    msg_type = obj["type"]
    if isinstance(msg_type, int) and not isinstance(msg_type, bool):
        if not 0 <= msg_type <= MAX_TYPE:
            raise LineError("type %d outside 0..%d" % (msg_type, MAX_TYPE))
        if msg_type not in BY_TYPE or "payload_hex" in obj:
            if "payload_hex" not in obj:
                raise LineError("type %d is not in the message table: give its 'payload_hex'" % msg_type)
            if "fields" in obj:
                raise LineError("give 'fields' or 'payload_hex', not both")
            body = _hex(obj, "payload_hex")
            if len(body) > MAX_FRAME - 13:
                raise LineError("payload of %d bytes: a frame holds at most %d" % (len(body), MAX_FRAME - 13))
            return node.unknown(time_ms, msg_type, body, seq=seq)
        msg_type = BY_TYPE[msg_type][1]
    if not isinstance(msg_type, str) or msg_type not in BY_NAME:
        raise LineError("unknown message type %s; known: %s" % (json.dumps(msg_type), ", ".join(sorted(BY_NAME))))
    if "payload_hex" in obj:
        raise LineError("'payload_hex' is for type numbers; %s takes 'fields'" % msg_type)
    fields = _fields(msg_type, obj.get("fields", {}))
    if msg_type == "accel" and "first_index" not in fields:
        fields["first_index"] = node.first_index
    try:
        wire = node.frame(msg_type, time_ms, fields, seq=seq)
    except ValueError as exc:
        raise LineError(str(exc)) from None
    if msg_type == "accel":
        node.first_index = fields["first_index"] + len(fields["samples"]) // 3
    raw_size = len(cobs.decode(wire[:-1]))
    if raw_size > MAX_FRAME:
        raise LineError("frame of %d bytes is longer than a receiver accepts (%d)" % (raw_size, MAX_FRAME))
    return wire


def encode_lines(lines, name):
    """Wire bytes and frame count for an iterable of text lines; errors name `name:line`."""
    nodes = {}
    out = []
    frames = 0
    for lineno, line in enumerate(lines, 1):
        if not line.strip():
            continue
        try:
            obj = json.loads(line)
        except ValueError as exc:
            raise UsageError("%s:%d: not valid JSON (%s)" % (name, lineno, exc)) from None
        try:
            wire = encode_line(obj, nodes)
        except LineError as exc:
            raise UsageError("%s:%d: %s" % (name, lineno, exc)) from None
        frames += "raw_hex" not in obj
        out.append(wire)
    return b"".join(out), frames


def _read_lines(path):
    if path == "-":
        return sys.stdin.read().splitlines()
    if os.path.isdir(path):
        raise UsageError("%s: is a folder, not a JSON Lines file" % path)
    try:
        with open(path, encoding="utf-8") as f:
            return f.read().splitlines()
    except FileNotFoundError:
        raise UsageError("%s: no such file" % path) from None
    except PermissionError:
        raise UsageError("%s: permission denied" % path) from None
    except UnicodeDecodeError as exc:
        raise UsageError("%s: not UTF-8 text (byte %d)" % (path, exc.start)) from None
    except OSError as exc:
        raise UsageError("%s: cannot read (%s)" % (path, exc.strerror or exc)) from None


def write_atomically(path, data):
    """Write data to path through a temporary file beside it, renamed into place."""
    folder = os.path.dirname(os.path.abspath(path))
    fd, tmp = tempfile.mkstemp(prefix="." + os.path.basename(path) + ".", suffix=".tmp", dir=folder)
    try:
        with os.fdopen(fd, "wb") as f:
            f.write(data)
        os.replace(tmp, path)
    except BaseException:
        try:
            os.unlink(tmp)
        except OSError:
            pass
        raise


def run(args):
    lines = _read_lines(args.input)
    wire, frames = encode_lines(lines, "<stdin>" if args.input == "-" else args.input)
    if args.output == "-":
        sys.stdout.buffer.write(wire)
        sys.stdout.flush()
        return 0
    if os.path.isdir(args.output):
        raise UsageError("%s: is a folder; give a capture file name" % args.output)
    try:
        write_atomically(args.output, wire)
    except OSError as exc:
        raise CitynodeError("cannot write %s: %s" % (args.output, exc.strerror or exc)) from None
    print("wrote %d frame(s), %d bytes, to %s" % (frames, len(wire), args.output))
    return 0
