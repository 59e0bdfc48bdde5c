"""Fuzzing the two decoders with seeded bad input that knows which frames it still holds.

`make_input(seed)` builds one input from its seed alone: real traffic
(`citynode.traffic`), frames with valid CRCs and absurd field values, and the
worst pieces for junk recovery (dense COBS chains), then damages it (bit flips,
byte inserts and deletes, truncation, splices, junk runs, repeated
delimiters). It keeps the raw frames that are still in the bytes untouched
with their delimiter: those a receiver must accept (SPEC §5.2), and nothing
else.

`check(inp)` decodes it with the reference `Decoder` and with `BulkDecoder`
(each fed whole and in random pieces) and returns a `Result`: exceptions,
frames accepted that were not planted untouched, untouched frames lost,
disagreements between the decoders (messages and counters), and the seconds
each decoder took. `check_tables` is a separate stage: the bulk decoder's
batches through `tables.batch_tables` with one `Timebase`, as `citynode
decode` does.

The engine lives in the package, beside `traffic`, so that the suite
(tests/host/test_fuzz_decoders.py, a few hundred inputs) and the long run
(bench/fuzz_decoders.py, 10^6 inputs) import the same code.
"""

import json
import struct
import time

import numpy as np

from citynode import traffic
from citynode.decode import BulkDecoder
from citynode_protocol import frame, messages
from citynode_protocol.cobs import max_encoded_length
from citynode_protocol.decoder import Decoder

MAX_ENCODED = max_encoded_length(frame.MAX_FRAME)
KINDS = ("traffic", "absurd", "dense", "noise")


class Input:
    """One fuzz input: `data`, and `untouched`, the raw frames a receiver must accept, in order."""

    def __init__(self, seed, kind, data, untouched):
        self.seed = seed
        self.kind = kind
        self.data = data
        self.untouched = untouched

    def __repr__(self):
        return "Input(seed=%d, %s, %d bytes, %d untouched frames)" % (self.seed, self.kind, len(self.data), len(self.untouched))


# -- what goes in -------------------------------------------------------------------
#
# An input is built as a list of items [wire bytes, raw frame or None]: raw is
# set while the item is a whole frame with its delimiter, untouched. Damage
# that touches an item's bytes clears it.


def _frame_item(raw):
    return [frame.to_wire(raw), raw if _acceptable(raw) else None]


def _acceptable(raw):
    """What a receiver must accept: our major version, 13 .. MAX_FRAME bytes (the CRC is good)."""
    return frame.OVERHEAD <= len(raw) <= frame.MAX_FRAME and raw[0] >> 5 == 1


def _traffic_items(rng):
    cap = traffic.capture(
        nodes=tuple(int(n) for n in rng.choice(np.arange(1, 40), int(rng.integers(1, 4)), replace=False)),
        duration_s=float(rng.uniform(0.5, 4.0)),
        seed=int(rng.integers(0, 1 << 30)),
        loss=float(rng.choice([0.0, 0.05])),
        block_samples=int(rng.choice([10, 50, 200, 400])),
        loud=bool(rng.random() < 0.3),
        encoding=[None, 0, 1][int(rng.integers(0, 3))],
    )
    return [[s.wire, _raw_of(s.wire)] for s in cap.sent]


def _raw_of(wire):
    from citynode_protocol.cobs import decode

    raw = decode(wire[:-1])
    return raw if _acceptable(raw) else None


_EXTREMES = {
    "b": (-128, 127, 0, -1),
    "B": (0, 255, 1),
    "h": (-32768, 32767, 0, -1),
    "H": (0, 65535, 1),
    "i": (-(1 << 31), (1 << 31) - 1, 0, -1),
    "I": (0, (1 << 32) - 1, 1),
    "q": (-(1 << 63), (1 << 63) - 1, 0),
    "Q": (0, (1 << 64) - 1, 1, 1 << 63),
}


def _absurd_payload(rng, msg_type):
    """A payload of this type with extreme or random field values and an odd tail."""
    entry = messages.BY_TYPE.get(msg_type)
    if entry is None or rng.random() < 0.1:
        return rng.integers(0, 256, int(rng.choice([0, 1, 7, 300, 4083, 4084, 4200]))).astype(np.uint8).tobytes()
    fmt = entry[2]
    values = []
    for code in fmt.lstrip("<"):
        lo_hi = _EXTREMES[code]
        if rng.random() < 0.6:
            values.append(lo_hi[int(rng.integers(0, len(lo_hi)))])
        else:
            size = struct.calcsize(code)
            u = int.from_bytes(rng.bytes(size), "little")
            values.append(u - (1 << (8 * size)) if code.islower() and u >> (8 * size - 1) else u)
    fixed = struct.pack(fmt, *values)
    cut = rng.random()
    if cut < 0.1:
        fixed = fixed[: int(rng.integers(0, len(fixed) + 1))]  # short: bad_length
    tail_kind = entry[4]
    tail = b""
    r = rng.random()
    if tail_kind == "accel" and len(fixed) == struct.calcsize(fmt):
        if r < 0.7:  # n_samples near the data's size, or not; data random or all zeros
            codes = fmt.lstrip("<")
            at = struct.calcsize("<" + codes[: [f[0] for f in entry[3]].index("n_samples")])
            n = int(rng.integers(0, 400))
            fixed = fixed[:at] + struct.pack("<H", n) + fixed[at + 2 :]
            size = int(rng.choice([6 * n, 6 * n + 1, 6 * n - 6, n, 3 + n, 6 * 400 + 6]))
            if rng.random() < 0.5:
                tail = rng.integers(0, 256, max(size, 0)).astype(np.uint8).tobytes()
            else:
                tail = bytes(max(size, 0))  # a frame full of zeros: a COBS link a byte
    elif tail_kind == "text":
        tail = [b"", b"\xff\xfe", "ünïcødé".encode(), b"x" * int(rng.integers(0, 4000)), b"\xc3"][int(rng.integers(0, 5))]
    elif tail_kind == "json":
        tail = [b"", b"{", b"null", b"[" * 2000, b'{"a": 1e999}', b"\xff", json.dumps({"k": "v" * 100}).encode()][
            int(rng.integers(0, 7))
        ]
    elif r < 0.2:
        tail = rng.integers(0, 256, int(rng.integers(1, 40))).astype(np.uint8).tobytes()  # a newer minor's fields
    return fixed + tail


def _absurd_items(rng):
    items = []
    for _ in range(int(rng.integers(3, 30))):
        msg_type = int(rng.choice([1, 2, 3, 4, 5, 6, 7, 0, 8, 31]))
        body = _absurd_payload(rng, msg_type)
        node = int(rng.choice([0, 1, 65535, int(rng.integers(0, 65536))]))
        seq = int(rng.choice([0, 65535, int(rng.integers(0, 65536))]))
        t = int(rng.choice([0, (1 << 32) - 1, (1 << 31), int(rng.integers(0, 1 << 32))]))
        raw = bytearray(frame.build(msg_type, node, seq, t, body)) if len(body) + frame.OVERHEAD <= 70000 else None
        if raw is None:
            continue
        if rng.random() < 0.05:  # another major version, with a good CRC: must be refused
            raw[0] = (int(rng.choice([0, 2, 7])) << 5) | msg_type
            raw[-4:] = struct.pack("<I", frame.crc32(bytes(raw[:-4])))
        items.append(_frame_item(bytes(raw)))
    if rng.random() < 0.5:
        items = _interleave(rng, items, _traffic_items(rng))
    return items


def _interleave(rng, a, b):
    out = []
    while a or b:
        src = a if (a and (not b or rng.random() < 0.5)) else b
        out.append(src.pop(0))
    return out


def dense_chain(n, rng, lo=0x21, hi=0x3F):
    """n non-zero bytes from which nearly every start's COBS chain lands on the end.

    With codes 0x21..0x3F every such start also carries version 1 in the next
    byte: the most candidates a piece of junk can hold (the old search was
    quadratic in them).
    """
    out = np.ones(n, np.uint8)
    pick = rng.integers(lo, hi + 1, n)
    for i in range(n - lo - 1, -1, -1):  # the last lo bytes stay 1s: codes that land exactly
        c = int(pick[i])
        out[i] = c if i + c <= n else lo
    return out.tobytes()


def _dense_items(rng):
    items = []
    size = 0
    target = int(rng.integers(8_000, 40_000))
    node = traffic.TrafficBuilder(int(rng.integers(0, 65536)))
    lo, hi = [(0x21, 0x3F), (0x21, 0x3F), (0xC0, 0xFF), (1, 3)][int(rng.integers(0, 4))]
    while size < target:
        n = int(rng.choice([int(rng.integers(14, 600)), MAX_ENCODED - 1, MAX_ENCODED, MAX_ENCODED + 1, int(rng.integers(14, MAX_ENCODED))]))
        junk = dense_chain(n, rng, lo, hi)
        r = rng.random()
        if r < 0.4:  # a good frame glued behind the junk
            items.append([junk, None])
            wire = node.log(int(rng.integers(0, 1 << 32)), "t" * int(rng.integers(0, 200)))
            items.append([wire, _raw_of(wire)])
        else:
            items.append([junk + b"\x00", None])
        size += n
    return items


def _noise_items(rng):
    node = traffic.TrafficBuilder(int(rng.integers(0, 65536)))
    items = []
    for _ in range(int(rng.integers(2, 40))):
        if rng.random() < 0.5:
            wire = node.climate(int(rng.integers(0, 1 << 31)), 20.0, 50.0)
            items.append([wire, _raw_of(wire)])
        else:
            n = int(rng.integers(1, 3000))
            noise = rng.integers(0, 256, n).astype(np.uint8)
            noise[rng.random(n) < float(rng.choice([0.0, 0.001, 0.01, 0.3]))] = 0
            items.append([noise.tobytes(), None])
    return items


_BUILDERS = {"traffic": _traffic_items, "absurd": _absurd_items, "dense": _dense_items, "noise": _noise_items}


# -- damage ---------------------------------------------------------------------------


def _junk(rng):
    r = rng.random()
    if r < 0.3:
        return traffic.REPL_JUNK[: int(rng.integers(1, len(traffic.REPL_JUNK) + 1))]
    if r < 0.5:
        return dense_chain(int(rng.integers(1, 600)), rng)
    if r < 0.6:
        return dense_chain(int(rng.integers(MAX_ENCODED - 50, MAX_ENCODED + 50)), rng)
    n = int(rng.integers(1, 200))
    return rng.integers(1, 256, n).astype(np.uint8).tobytes()  # no delimiter in it


def _touch(item, data):
    item[0] = bytes(data)
    item[1] = None


def _damage(rng, items):
    """Seeded damage, in place. Returns nothing; items lose their raw frame when touched."""
    for _ in range(int(rng.integers(0, 8))):
        if not items:
            return
        what = int(rng.integers(0, 8))
        i = int(rng.integers(0, len(items)))
        item = items[i]
        data = bytearray(item[0])
        if what == 0 and data:  # bit flips (the delimiter too)
            for _ in range(int(rng.integers(1, 4))):
                bit = int(rng.integers(0, 8 * len(data)))
                data[bit // 8] ^= 1 << (bit % 8)
            _touch(item, data)
        elif what == 1:  # a byte inserted (a zero sometimes)
            at = int(rng.integers(0, len(data) + 1))
            data[at:at] = bytes([0 if rng.random() < 0.2 else int(rng.integers(1, 256))])
            _touch(item, data)
        elif what == 2 and data:  # bytes deleted (the delimiter too)
            at = int(rng.integers(0, len(data)))
            del data[at : at + int(rng.integers(1, 4))]
            _touch(item, data)
        elif what == 3:  # a junk run between items: glued to the next frame (no delimiter)
            items.insert(i, [_junk(rng), None])
        elif what == 4:  # repeated delimiters
            items.insert(i, [b"\x00" * int(rng.integers(1, 5)), None])
        elif what == 5 and len(items) > 1:  # splice: a slice of another item inside this one
            other = items[int(rng.integers(0, len(items)))][0]
            a = int(rng.integers(0, len(other) + 1))
            piece = other[a : a + int(rng.integers(1, 64))]
            at = int(rng.integers(0, len(data) + 1))
            data[at:at] = piece
            _touch(item, data)
        elif what == 6:  # a frame sent twice (a duplicate: accepted, then counted)
            items.insert(i, list(item))
        elif what == 7 and rng.random() < 0.3:  # the capture cut short
            at = int(rng.integers(0, len(data) + 1))
            del items[i + 1 :]
            if at < len(data):
                _touch(item, data[:at])


def make_input(seed):
    """The input of this seed (any int >= 0): always the same bytes and frames."""
    rng = np.random.default_rng([seed, 0xF022])
    kind = KINDS[int(rng.integers(0, len(KINDS)))]
    items = _BUILDERS[kind](rng)
    if rng.random() < 0.85:
        _damage(rng, items)
    data = b"".join(item[0] for item in items)
    return Input(seed, kind, data, [item[1] for item in items if item[1] is not None])


# -- what comes out ---------------------------------------------------------------------


class _Recording(Decoder):
    """The reference decoder, keeping every raw frame that passed COBS, CRC and version."""

    def __init__(self):
        super().__init__()
        self.accepted = []

    def _frame(self, raw, out):
        self.accepted.append(bytes(raw))
        super()._frame(raw, out)


class Result:
    """What one input did. Lists are empty when all is well."""

    def __init__(self, inp):
        self.input = inp
        self.exceptions = []  # "decoder: ExceptionType: text"
        self.corrupt = 0  # frames accepted that were not planted untouched
        self.lost = 0  # untouched frames not accepted
        self.disagreements = []  # how the two decoders differed
        self.seconds = {}  # decoder name: seconds for the whole input, fed whole

    @property
    def ok(self):
        return not (self.exceptions or self.corrupt or self.lost or self.disagreements)


def _pieces(rng, data):
    cuts = sorted(int(c) for c in rng.integers(0, len(data) + 1, int(rng.integers(1, 5))))
    return [data[a:b] for a, b in zip([0] + cuts, cuts + [len(data)])]


def _message_key(m):
    fields = {k: (list(v) if isinstance(v, list) else v) for k, v in m.fields.items()}
    return (m.type, m.node_id, m.seq, m.time_ms, m.extra_bytes, json.dumps(fields, sort_keys=True, default=repr))


def _reference(data, pieces=None):
    dec = _Recording()
    out = []
    for chunk in pieces or [data]:
        out.extend(dec.feed(chunk))
    dec.flush()
    return out, dec


def _bulk(data, pieces=None):
    dec = BulkDecoder()
    batches = []
    for chunk in pieces or [data]:
        batches.append(dec.feed(chunk))
    dec.flush()
    return batches, dec


def _multiset_missing(want, got):
    """How many of want are not in got, counting repeats."""
    left = {}
    for g in got:
        left[g] = left.get(g, 0) + 1
    missing = 0
    for w in want:
        if left.get(w, 0):
            left[w] -= 1
        else:
            missing += 1
    return missing


def _corrupt(accepted, inp):
    """Frames accepted beyond those planted untouched whose bytes are not in the input
    either (damage can copy a whole frame, delimiter and all: a splice, a repeat)."""
    left = {}
    for raw in inp.untouched:
        left[raw] = left.get(raw, 0) + 1
    seen = {}
    corrupt = 0
    for raw in accepted:
        if left.get(raw, 0):
            left[raw] -= 1
            continue
        wire = frame.to_wire(raw)
        seen[raw] = seen.get(raw, 0) + 1
        if _occurrences(inp.data, wire) < seen[raw] + inp.untouched.count(raw):
            corrupt += 1
    return corrupt


def _occurrences(data, wire):
    count = 0
    at = data.find(wire)
    while at >= 0:
        count += 1
        at = data.find(wire, at + 1)
    return count


def check(inp):
    """Both decoders on one input, whole and in seeded pieces: a Result."""
    res = Result(inp)
    data = inp.data
    t0 = time.perf_counter()
    try:
        ref_msgs, ref = _reference(data)
    except Exception as exc:  # noqa: BLE001 - any exception is the finding
        res.exceptions.append("reference: %s: %s" % (type(exc).__name__, exc))
        return res
    t1 = time.perf_counter()
    try:
        batches, bulk = _bulk(data)
        bulk_msgs = [m for b in batches for m in b.messages()]
    except Exception as exc:  # noqa: BLE001
        res.exceptions.append("bulk: %s: %s" % (type(exc).__name__, exc))
        return res
    t2 = time.perf_counter()
    res.seconds = {"reference": t1 - t0, "bulk": t2 - t1}
    res.corrupt = _corrupt(ref.accepted, inp)
    res.lost = _multiset_missing(inp.untouched, ref.accepted)
    want = ([_message_key(m) for m in ref_msgs], ref.stats.as_dict())
    if ([_message_key(m) for m in bulk_msgs], bulk.stats.as_dict()) != want:
        res.disagreements.append("bulk, fed whole")
    rng = np.random.default_rng([inp.seed, 0x9EC])
    pieces = _pieces(rng, data)
    try:
        msgs, dec = _reference(data, pieces)
        if ([_message_key(m) for m in msgs], dec.stats.as_dict()) != want:
            res.disagreements.append("reference, fed in %d pieces" % len(pieces))
        batches, dec = _bulk(data, pieces)
        if ([_message_key(m) for b in batches for m in b.messages()], dec.stats.as_dict()) != want:
            res.disagreements.append("bulk, fed in %d pieces" % len(pieces))
    except Exception as exc:  # noqa: BLE001
        res.exceptions.append("in pieces: %s: %s" % (type(exc).__name__, exc))
    return res


def check_tables(inp):
    """The tables stage of `citynode decode` on this input: None, or the exception's text."""
    from citynode.tables import batch_tables
    from citynode.timebase import Timebase

    try:
        dec = BulkDecoder()
        timebase = Timebase()
        rng = np.random.default_rng([inp.seed, 0x7AB])
        for chunk in _pieces(rng, inp.data):
            batch = dec.feed(chunk)
            if len(batch):
                batch_tables(batch, timebase)
        dec.flush()
    except Exception as exc:  # noqa: BLE001 - any exception is the finding
        return "%s: %s" % (type(exc).__name__, exc)
    return None
