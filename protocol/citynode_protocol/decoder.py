"""Incremental decoder: feed any chunks of a byte stream, get messages and counters.

It never raises on bad bytes. Frames are cut at 0x00; a piece that does not
decode to a good frame is counted once (not once per byte), and if a good frame
was glued behind junk, it is found and kept.
"""

from binascii import crc32 as _crc32

from citynode_protocol import PROTOCOL_VERSION
from citynode_protocol.cobs import CobsError, decode_into, max_encoded_length
from citynode_protocol.crc_algebra import byte_powers, multiply
from citynode_protocol.frame import MAX_FRAME, OVERHEAD, FrameError, parse
from citynode_protocol.messages import BY_TYPE
from citynode_protocol.payload import PayloadError, unpack

_MIN_ENCODED = OVERHEAD + 1
_ZERO = b"\x00"
# crc32 over a frame followed by its own CRC (LE) always gives this value.
CRC_RESIDUE = 0x2144DF1C


class Message:
    """One decoded frame. `fields` holds values in the units of messages.py."""

    def __init__(self, msg_type, node_id, seq, time_ms, fields, extra_bytes=0):
        self.type = msg_type
        entry = BY_TYPE.get(msg_type)
        self.name = entry[1] if entry else "unknown"
        self.node_id = node_id
        self.seq = seq
        self.time_ms = time_ms
        self.fields = fields
        self.extra_bytes = extra_bytes

    def __getitem__(self, key):
        return self.fields[key]

    def __repr__(self):
        return "Message(%s node=%d seq=%d t=%d %r)" % (
            self.name,
            self.node_id,
            self.seq,
            self.time_ms,
            self.fields,
        )


class NodeStats:
    """Per-node link accounting from sequence numbers and node time."""

    def __init__(self):
        self.frames = 0
        self.lost = 0
        self.duplicates = 0
        self.out_of_order = 0
        self.restarts = 0
        self.unknown_type = 0
        self.newer_minor = 0
        self.bad_length = 0
        self.last_seq = -1
        self.last_time = 0

    def account(self, seq, time_ms):
        """Update for a frame with a good CRC; returns False for a duplicate."""
        if self.last_seq < 0:
            self.frames += 1
        else:
            back = (self.last_time - time_ms) & 0xFFFFFFFF
            gap = (seq - self.last_seq - 1) & 0xFFFF
            if 0 < back < 0x80000000:
                # the node's clock went backwards: it restarted, its sequence too
                self.restarts += 1
            elif gap == 0xFFFF:
                self.duplicates += 1
                return False
            elif gap < 0x8000:
                self.lost += gap
            else:
                self.out_of_order += 1
            self.frames += 1
        self.last_seq = seq
        self.last_time = time_ms
        return True

    def as_dict(self):
        return {
            "frames": self.frames,
            "lost": self.lost,
            "duplicates": self.duplicates,
            "out_of_order": self.out_of_order,
            "restarts": self.restarts,
            "unknown_type": self.unknown_type,
            "newer_minor": self.newer_minor,
            "bad_length": self.bad_length,
        }


# Link-level counters, in the order reports show them.
LINK_COUNTERS = (
    "frames",
    "bytes_in",
    "bytes_skipped",
    "bad_frames",
    "crc_errors",
    "cobs_errors",
    "too_short",
    "too_long",
    "unsupported_version",
    "unknown_type",
    "unknown_encoding",
    "bad_length",
    "newer_minor",
    "duplicates",
)


class DecoderStats:
    def __init__(self):
        self.frames = 0
        self.bytes_in = 0
        self.bytes_skipped = 0
        self.bad_frames = 0
        self.crc_errors = 0
        self.cobs_errors = 0
        self.too_short = 0
        self.too_long = 0
        self.unsupported_version = 0
        self.unknown_type = 0
        self.unknown_encoding = 0
        self.bad_length = 0
        self.newer_minor = 0
        self.duplicates = 0
        self.nodes = {}

    def node(self, node_id):
        stats = self.nodes.get(node_id)
        if stats is None:
            stats = NodeStats()
            self.nodes[node_id] = stats
        return stats

    def as_dict(self):
        out = {}
        for name in LINK_COUNTERS:
            out[name] = getattr(self, name)
        nodes = {}
        for node_id in sorted(self.nodes):
            nodes[str(node_id)] = self.nodes[node_id].as_dict()
        out["nodes"] = nodes
        return out


class BadFrame:
    """What the decoder dropped, when asked to report it (`report_bad=True`)."""

    def __init__(self, reason, size):
        self.reason = reason
        self.size = size

    def __repr__(self):
        return "BadFrame(%s, %d bytes)" % (self.reason, self.size)


class Decoder:
    def __init__(self, report_bad=False, max_frame=MAX_FRAME):
        self.stats = DecoderStats()
        self.report_bad = report_bad
        self._max_frame = max_frame
        self._max_encoded = max_encoded_length(max_frame)
        self._pending = bytearray()  # the unfinished piece: at most its last max_encoded bytes
        self._overlong = False  # the unfinished piece is longer than that (counted too_long)
        self._scratch = bytearray(self._max_encoded)

    def feed(self, data):
        """Feed bytes (any chunking); returns the list of messages completed."""
        if not isinstance(data, (bytes, bytearray)):
            data = bytes(data)
        out = []
        self.stats.bytes_in += len(data)
        start = 0
        n = len(data)
        while True:
            z = data.find(b"\x00", start)
            if z < 0:
                self._keep(data, start, n, out)
                return out
            if self._pending:
                self._keep(data, start, z, out)
                segment = bytes(self._pending)
                self._pending = bytearray()
                overlong = self._overlong
                self._overlong = False
                if overlong:
                    self._tail(segment, out)
                else:
                    self._segment(segment, out)
            elif z > start:
                self._segment(data[start:z], out)
            start = z + 1

    def flush(self):
        """End of stream: a partial frame left over is counted as skipped."""
        if self._pending:
            self.stats.bytes_skipped += len(self._pending)
            if not self._overlong:
                self.stats.bad_frames += 1
            self._pending = bytearray()
        self._overlong = False

    def _keep(self, data, start, end, out):
        """Hold the bytes of an unfinished piece, only its last max_encoded: a frame ends at the delimiter."""
        limit = self._max_encoded
        if end - start >= limit:
            over = len(self._pending) + end - start - limit
            self._pending = bytearray(data[end - limit : end])
        else:
            self._pending += data[start:end]
            over = len(self._pending) - limit
            if over > 0:
                self._pending = self._pending[over:]
        if over > 0:
            self.stats.bytes_skipped += over
            if not self._overlong:
                self._overlong = True
                self.stats.too_long += 1
                self.stats.bad_frames += 1
                if self.report_bad:
                    out.append(BadFrame("too_long", 0))

    def _segment(self, seg, out):
        n = len(seg)
        if n > self._max_encoded:
            stats = self.stats
            stats.too_long += 1
            stats.bad_frames += 1
            stats.bytes_skipped += n - self._max_encoded
            if self.report_bad:
                out.append(BadFrame("too_long", n))
            self._tail(seg[n - self._max_encoded :], out)
            return
        size, junk, reason = frame_in_piece(seg, self._scratch, self._max_frame)
        if not size:
            self._bad(reason, n, out)
            return
        if junk:
            self.stats.bytes_skipped += junk
            self.stats.bad_frames += 1
            if self.report_bad:
                out.append(BadFrame("junk", junk))
        self._frame(memoryview(self._scratch)[:size], out)

    def _tail(self, tail, out):
        """The last max_encoded bytes of a piece counted too_long: a frame may end there."""
        size, junk, _reason = frame_in_piece(tail, self._scratch, self._max_frame)
        if not size:
            self.stats.bytes_skipped += len(tail)
            return
        self.stats.bytes_skipped += junk
        self._frame(memoryview(self._scratch)[:size], out)

    def _bad(self, reason, size, out):
        stats = self.stats
        setattr(stats, reason, getattr(stats, reason) + 1)
        stats.bytes_skipped += size
        stats.bad_frames += 1
        if self.report_bad:
            out.append(BadFrame(reason, size))

    def _frame(self, raw, out):
        """Account a raw frame that passed its CRC and version; append its message."""
        _version, msg_type, node_id, seq, time_ms, payload = parse(raw)
        stats = self.stats
        node = stats.node(node_id)
        if not node.account(seq, time_ms):
            stats.duplicates += 1
            return
        if msg_type not in BY_TYPE:
            stats.unknown_type += 1
            node.unknown_type += 1
            return
        try:
            fields, extra = unpack(msg_type, payload)
        except PayloadError as exc:
            setattr(stats, exc.reason, getattr(stats, exc.reason) + 1)
            if exc.reason == "bad_length":
                node.bad_length += 1
            return
        if extra:
            stats.newer_minor += 1
            node.newer_minor += 1
        stats.frames += 1
        out.append(Message(msg_type, node_id, seq, time_ms, fields, extra))


def unstuff(seg, scratch, max_frame=MAX_FRAME):
    """One COBS piece into scratch: the raw frame's size, or why it is no frame.

    A size means COBS, length, CRC and major version all passed.
    """
    try:
        size = decode_into(seg, scratch)
        if size > max_frame:
            return "too_long"
        version = parse(memoryview(scratch)[:size])[0]
    except CobsError:
        return "cobs_errors"
    except FrameError as exc:
        return exc.reason
    if version != PROTOCOL_VERSION:
        return "unsupported_version"
    return size


def frame_in_piece(seg, scratch, max_frame=MAX_FRAME, start=None):
    """Find the frame in a piece cut at 0x00: (size, junk, reason).

    size > 0: the raw frame is in scratch[:size], behind `junk` bytes of junk.
    size == 0: no frame; `reason` names the counter for the whole piece. A good
    frame may sit behind junk: the first later start that holds a whole frame
    (first_frame_start, or `start` when the caller found it already) is taken.
    """
    got = unstuff(seg, scratch, max_frame)
    if not isinstance(got, str):
        return got, 0, None
    if len(seg) > _MIN_ENCODED:
        s = first_frame_start(seg, max_frame) if start is None else start
        if s:
            again = unstuff(seg[s:], scratch, max_frame)
            if not isinstance(again, str):
                return again, s, None
    return 0, 0, got


def first_frame_start(seg, max_frame=MAX_FRAME):
    """The first start s > 0 from which seg[s:] is a whole frame of ours, or 0.

    Whole: its COBS code chain lands exactly on the end, it decodes to 13 ..
    max_frame bytes, its CRC holds and its first byte carries our version.
    One pass from the end, each position visited once: from a position i whose
    code c reaches a chain position j = i + c, the bytes decoded from i are i's
    block (c - 1 bytes, then a zero unless c is 0xFF or j is the end) followed
    by those decoded from j, so i's length and CRC follow from j's with one
    crc_algebra.combine. The work is linear in the piece, however many
    positions qualify.
    """
    n = len(seg)
    mv = memoryview(seg)
    length = [-1] * (n + 1)  # bytes decoded from a chain position; -1: none, or more than max_frame
    crcs = [0] * (n + 1)  # their CRC-32
    length[n] = 0
    powers = byte_powers(max_frame)
    found = 0
    i = n - 1
    while i > 0:
        c = seg[i]
        j = i + c
        if c and j <= n:
            rest = length[j]
            if rest >= 0:
                size = rest + c - 1
                head = _crc32(mv[i + 1 : j])
                if c != 0xFF and j < n:
                    head = _crc32(_ZERO, head)
                    size += 1
                if size <= max_frame:
                    # the CRC of the bytes decoded from i: combine(head, crcs[j], rest)
                    value = (multiply(powers[rest], head) ^ crcs[j]) & 0xFFFFFFFF if rest else head & 0xFFFFFFFF
                    length[i] = size
                    crcs[i] = value
                    if value == CRC_RESIDUE and size >= OVERHEAD and c > 1 and seg[i + 1] >> 5 == PROTOCOL_VERSION:
                        found = i
        i -= 1
    return found


def decode_all(data):
    """Decode a whole capture: (messages, stats)."""
    decoder = Decoder()
    messages = decoder.feed(data)
    decoder.flush()
    return messages, decoder.stats
