"""Bulk decoding of whole captures with numpy.

`BulkDecoder` gives exactly the messages and the counters of the reference
`citynode_protocol.decoder.Decoder` (same `DecoderStats`, same `NodeStats`), but
decodes thousands of frames per numpy step instead of one byte at a time, so
hours of 1 kHz acceleration decode in seconds. The incremental reference decoder
stays the API for live streams; this one is for files.

How, for a run of bytes that ends on a delimiter:

1. cut at every 0x00 (numpy);
2. COBS: follow the code chains of all pieces in lockstep, one numpy step per
   link; codes become zeros in a working copy, a code after a 0xFF code is
   deleted (one `np.delete` for the whole run when any exists);
3. CRC-32 of each frame with `zlib.crc32` (the residue of a good frame is fixed);
4. header fields by gathering at the frame offsets; sequence accounting per node
   vectorised, through `NodeStats.account` itself when a node has duplicates;
5. payloads grouped by type: fixed layouts through a numpy structured dtype,
   accel blocks raw through `np.frombuffer`, delta-bitpack blocks grouped by
   sample count (widths, zigzag and a cumulative sum modulo 2^16, per axis).

Anything unusual takes the reference path on just that piece or payload: a
piece whose chain or CRC fails (junk recovery, counting the reason; the search
for a frame behind junk is done for all such pieces at once,
`first_frame_starts`), log and reply payloads, and any accel block the
vectorised checks do not pass. Pieces too short for a frame are counted in
numpy. So the semantics are the reference's by construction, and the tests hold
the two to the same output on every golden vector and on random damaged
traffic.

A `Batch` holds the messages of one `feed()`, column-wise by kind, each row
carrying `order`, its position in the message stream.
"""

import struct
import zlib

import numpy as np

from citynode_protocol import PROTOCOL_VERSION
from citynode_protocol.cobs import max_encoded_length
from citynode_protocol.crc_algebra import BYTE_TABLE, byte_powers, multiply
from citynode_protocol.decoder import CRC_RESIDUE, DecoderStats, Message, frame_in_piece
from citynode_protocol.frame import CRC_SIZE, HEADER_SIZE, MAX_FRAME, OVERHEAD
from citynode_protocol.messages import ACCEL, BY_TYPE, MESSAGES
from citynode_protocol.payload import PayloadError, unpack

_MIN_ENCODED = OVERHEAD + 1
# Fewer COBS chains than this left to follow: follow them in Python, not a numpy step per link.
_LOCKSTEP_MIN = 32
# How much a decode step takes at once; bounds the memory of the numpy temporaries.
DEFAULT_CHUNK = 8 << 20

_STRUCT_TO_NUMPY = {"b": "i1", "B": "u1", "h": "<i2", "H": "<u2", "i": "<i4", "I": "<u4", "q": "<i8", "Q": "<u8"}
COMMON_COLUMNS = ("order", "node_id", "seq", "time_ms", "extra_bytes")


def _decimal_digits(scale):
    """n when scale is 10**-n (the table's scales are); None otherwise."""
    for n in range(0, 10):
        if abs(scale * 10**n - 1.0) < 1e-9:
            return n
    return None


class _Layout:
    """A message's fixed part as a numpy dtype, with how to scale each field."""

    def __init__(self, entry):
        msg_type, name, fmt, fields, tail = entry
        codes = fmt.lstrip("<")
        self.type = msg_type
        self.name = name
        self.tail = tail
        self.size = struct.calcsize(fmt)
        self.fields = fields
        self.dtype = np.dtype([(f[0], _STRUCT_TO_NUMPY[c]) for f, c in zip(fields, codes)])
        assert self.dtype.itemsize == self.size
        self.digits = {f[0]: (None if f[1] is None else _decimal_digits(f[1])) for f in fields}

    def columns(self, rows):
        """Field columns from a (m, size) uint8 array of fixed parts, scaled as payload.unpack does."""
        rec = np.ascontiguousarray(rows).view(self.dtype).reshape(len(rows))
        out = {}
        for name, scale, _unit in self.fields:
            raw = rec[name]
            if scale is None:
                out[name] = raw.astype(np.int64) if raw.dtype != np.uint64 else raw
            elif self.digits[name] is not None:
                # round(v * 10**-n, n) in Python is the double nearest v / 10**n;
                # so is this correctly rounded division (tests check all int16/u16)
                out[name] = raw.astype(np.float64) / float(10 ** self.digits[name])
            else:  # not a power of ten: use the reference's own rounding per value
                from citynode_protocol.payload import _scaled

                out[name] = np.array([_scaled(int(v), scale) for v in raw.tolist()], dtype=np.float64)
        return out


LAYOUTS = {entry[0]: _Layout(entry) for entry in MESSAGES}


class Batch:
    """Messages of one feed, column-wise by kind.

    `kinds[name]` is a dict of columns: `COMMON_COLUMNS`, then the message's
    fields (scaled floats or ints), then for accel `samples` (an (N, 3) int16
    array of every block's samples, in order) and `sample_start` (each block's
    first row in it), for log `text`, for reply `body` (object arrays).
    """

    def __init__(self):
        self.kinds = {}

    def __len__(self):
        return sum(len(cols["order"]) for cols in self.kinds.values())

    def messages(self):
        """The reference's `Message` objects, in stream order (for tests and small captures)."""
        rows = []
        for name, cols in self.kinds.items():
            layout = LAYOUTS[_TYPE_OF[name]]
            names = [f[0] for f in layout.fields]
            lists = {k: (v.tolist() if isinstance(v, np.ndarray) else list(v)) for k, v in cols.items() if k != "samples"}
            samples = cols.get("samples")
            for i in range(len(lists["order"])):
                fields = {k: lists[k][i] for k in names}
                if layout.tail == "accel":
                    a = lists["sample_start"][i]
                    fields["samples"] = samples[a : a + fields["n_samples"]].reshape(-1).tolist()
                elif layout.tail == "text":
                    fields["text"] = lists["text"][i]
                elif layout.tail == "json":
                    fields["body"] = lists["body"][i]
                msg = Message(layout.type, lists["node_id"][i], lists["seq"][i], lists["time_ms"][i], fields, lists["extra_bytes"][i])
                rows.append((lists["order"][i], msg))
        rows.sort(key=lambda r: r[0])
        return [m for _, m in rows]


_TYPE_OF = {entry[1]: entry[0] for entry in MESSAGES}


def _unpack_reference(msg_type, payload):
    """payload.unpack, or the PayloadError's counter name.

    """
    try:
        return unpack(msg_type, payload)
    except PayloadError as exc:
        return exc.reason


class _Rows:
    """Messages of one kind collected as column chunks, merged at the end."""

    def __init__(self, layout):
        self.layout = layout
        self.chunks = []  # dicts of columns, each with "order"
        self.dict_rows = []  # (order, node, seq, time, extra, fields) from the reference path

    def finish(self):
        layout = self.layout
        names = [f[0] for f in layout.fields]
        if self.dict_rows:
            r = self.dict_rows
            cols = {
                "order": np.array([x[0] for x in r], np.int64),
                "node_id": np.array([x[1] for x in r], np.int64),
                "seq": np.array([x[2] for x in r], np.int64),
                "time_ms": np.array([x[3] for x in r], np.int64),
                "extra_bytes": np.array([x[4] for x in r], np.int64),
            }
            for name, scale, _unit in layout.fields:
                vals = [x[5][name] for x in r]
                if scale is not None:
                    cols[name] = np.array(vals, np.float64)
                elif layout.dtype[name] == np.uint64:
                    cols[name] = np.array(vals, np.uint64)
                else:
                    cols[name] = np.array(vals, np.int64)
            if layout.tail == "accel":
                blocks = [np.array(x[5]["samples"], np.int16).reshape(-1, 3) for x in r]
                cols["samples_list"] = blocks
            elif layout.tail == "text":
                cols["text"] = _objects([x[5]["text"] for x in r])
            elif layout.tail == "json":
                cols["body"] = _objects([x[5]["body"] for x in r])
            self.chunks.append(cols)
        chunks = self.chunks
        out = {}
        order = np.concatenate([c["order"] for c in chunks])
        sort = np.argsort(order, kind="stable")
        for key in COMMON_COLUMNS + tuple(names) + (("text",) if layout.tail == "text" else ()) + (
            ("body",) if layout.tail == "json" else ()
        ):
            out[key] = np.concatenate([c[key] for c in chunks])[sort]
        if layout.tail == "accel":
            counts = out["n_samples"]
            start = np.zeros(len(counts), np.int64)
            if len(counts) > 1:
                np.cumsum(counts[:-1], out=start[1:])
            out["sample_start"] = start
            in_order = len(sort) < 2 or bool(np.all(sort[1:] > sort[:-1]))
            if in_order and all("samples" in c for c in chunks):
                parts = [c["samples"] for c in chunks]
            else:
                blocks = []
                for c in chunks:
                    if "samples_list" in c:
                        blocks.extend(c["samples_list"])
                    else:
                        s = c["samples"]
                        blocks.extend(s[a : a + k] for a, k in zip(c["sample_start"].tolist(), c["n_samples"].tolist()))
                parts = [blocks[i] for i in sort.tolist()]
            if len(parts) == 1:
                out["samples"] = parts[0]
            else:
                out["samples"] = np.concatenate(parts) if parts else np.zeros((0, 3), np.int16)
        return out


def _objects(items):
    arr = np.empty(len(items), dtype=object)
    arr[:] = items
    return arr


class BulkDecoder:
    """Feed large pieces of a capture; each `feed()` returns a `Batch`.

    Counters accumulate in `stats` (the reference's `DecoderStats`), and per-node
    sequence state carries across feeds, so feeding a file in pieces gives the
    same result as feeding it whole. Call `flush()` at the end of the stream.
    """

    def __init__(self, max_frame=MAX_FRAME, chunk=DEFAULT_CHUNK):
        if 2 * max_encoded_length(max_frame) >> (4 * _DIGITS):
            raise ValueError("max_frame %d: the junk search's CRC shifts go up to 2^%d bytes" % (max_frame, 4 * _DIGITS))
        self.stats = DecoderStats()
        self._max_frame = max_frame
        self._max_encoded = max_encoded_length(max_frame)
        self._pending = b""  # the unfinished piece: at most its last max_encoded bytes
        self._dropped = 0  # bytes of it dropped before those (skipped, too_long when it ends)
        self._order = 0
        self._chunk = chunk
        self._scratch = bytearray(self._max_encoded)

    # -- cutting the stream -------------------------------------------------

    def feed(self, data):
        stats = self.stats
        if not isinstance(data, (bytes, bytearray)):
            data = bytes(data)
        stats.bytes_in += len(data)
        batch_rows = {}
        start = 0
        n = len(data)
        mv = memoryview(data)
        while start < n:
            end = min(n, start + self._chunk)
            last = data.rfind(b"\x00", start, end)
            if last < 0:
                last = data.find(b"\x00", end)
            if last < 0:
                break
            dropped = self._dropped
            if self._pending or dropped:
                piece = self._pending + bytes(mv[start : last + 1])
                self._pending = b""
                self._dropped = 0
            else:
                piece = mv[start : last + 1]
            self._decode_run(piece, batch_rows, dropped)
            start = last + 1
        if start < n:
            self._keep(mv[start:n])
        return self._finish(batch_rows)

    def feed_frames(self, frames):
        """The Batch of raw frames already cut and unstuffed (each header to CRC, as `frame.to_wire`
        takes it), without stuffing them to cut them again: what `feed` gives for their wire form,
        counters included, except that `stats.bytes_in` grows by the frames' own bytes.

        Any frame the vectorised checks refuse (length, CRC, version), or a partial frame held from
        an earlier `feed`, sends the whole call through `feed` of the wire form."""
        from citynode_protocol.frame import to_wire

        n = len(frames)
        lens = np.fromiter(map(len, frames), np.int64, n)
        joined = b"".join(frames)
        ok = not (self._pending or self._dropped) and bool(
            n == 0 or (lens.min() >= OVERHEAD and lens.max() <= self._max_frame))
        off = np.zeros(n, np.int64)
        if n > 1:
            np.cumsum(lens[:-1], out=off[1:])
        if ok and n:
            crc32 = zlib.crc32
            mv = memoryview(joined)
            ok = all(crc32(mv[o : o + k]) == CRC_RESIDUE for o, k in zip(off.tolist(), lens.tolist()))
            ok = ok and bool(((np.frombuffer(joined, np.uint8)[off] >> 5) == PROTOCOL_VERSION).all())
        if not ok:
            return self.feed(b"".join(map(to_wire, frames)))
        self.stats.bytes_in += len(joined)
        batch_rows = {}
        if n:
            dec = np.zeros(len(joined) + 8, np.uint8)  # 8 spare bytes for the u64 reads of _delta_blocks
            dec[: len(joined)] = np.frombuffer(joined, np.uint8)
            order = self._order + np.arange(n, dtype=np.int64)
            self._order += n
            self._decode_frames(dec, off, lens, np.arange(n), [], order, batch_rows)
        return self._finish(batch_rows)

    def flush(self):
        """End of stream: a partial frame left over is counted as skipped."""
        if self._pending or self._dropped:
            self.stats.bytes_skipped += len(self._pending) + self._dropped
            self.stats.bad_frames += 1
            if self._dropped:
                self.stats.too_long += 1
            self._pending = b""
            self._dropped = 0

    def _keep(self, tail):
        """Hold the bytes of an unfinished piece, only its last max_encoded: a frame ends at the delimiter."""
        limit = self._max_encoded
        if len(tail) >= limit:
            self._dropped += len(self._pending) + len(tail) - limit
            self._pending = bytes(tail[len(tail) - limit :])
            return
        pending = self._pending + bytes(tail)
        over = len(pending) - limit
        if over > 0:
            self._dropped += over
            pending = pending[over:]
        self._pending = pending

    def _finish(self, batch_rows):
        batch = Batch()
        for name, rows in batch_rows.items():
            if rows.chunks or rows.dict_rows:
                batch.kinds[name] = rows.finish()
        return batch

    # -- one run of whole pieces --------------------------------------------

    def _decode_run(self, piece, batch_rows, dropped=0):
        """Decode `piece`, which ends with a delimiter; add its messages to batch_rows.

        dropped: bytes of the first piece that came before `piece` and were not kept.
        """
        stats = self.stats
        a = np.frombuffer(piece, np.uint8)
        ends = np.flatnonzero(a == 0)
        starts = np.empty_like(ends)
        starts[0] = 0
        starts[1:] = ends[:-1] + 1
        lens = ends - starts
        keep = lens > 0
        starts, ends, lens = starts[keep], ends[keep], lens[keep]
        nseg = len(starts)
        if nseg == 0:
            return
        order = self._order + np.arange(nseg, dtype=np.int64)
        self._order += nseg

        overlong = lens > self._max_encoded
        if dropped:
            overlong[0] = True  # the piece held back from the last feed: it starts at 0
        if overlong.any():
            k = int(overlong.sum())
            stats.too_long += k
            stats.bad_frames += k
            cut = np.maximum(lens[overlong] - self._max_encoded, 0)
            stats.bytes_skipped += int(cut.sum()) + dropped
            starts[overlong] += cut  # only the last max_encoded bytes can hold a frame: the reference searches them
            lens = ends - starts
        # a piece over MAX_FRAME may still decode to at most MAX_FRAME: the reference decides
        fast = (lens >= _MIN_ENCODED) & (lens <= self._max_frame) & ~overlong
        slow = ~fast

        # COBS chains of all candidate pieces in lockstep
        work = np.zeros(len(a) + 8, np.uint8)  # 8 spare bytes for the u64 reads of _delta_blocks
        work[: len(a)] = a
        cand = np.flatnonzero(fast)
        index = np.int32 if len(a) < (1 << 31) - 256 else np.int64
        p = starts[cand].astype(index)
        e = ends[cand].astype(index)
        ids = cand
        codes = []  # code positions after the first, to become zeros
        deleted = []  # code positions after a 0xFF code: no zero there
        overshoot = []
        while len(ids):
            if len(ids) < _LOCKSTEP_MIN:
                # a few long chains left (a frame full of zeros): a numpy step per link would
                # cost more than following them in Python
                self._follow(piece, p.tolist(), e.tolist(), ids.tolist(), codes, deleted, overshoot)
                break
            c = a[p]
            nxt = p + c
            more = nxt < e
            if not more.all():
                bad = nxt > e
                if bad.any():
                    overshoot.append(ids[bad])
                nxt, c, e, ids = nxt[more], c[more], e[more], ids[more]
            codes.append(nxt)
            if len(c) and c.max() == 0xFF:
                deleted.append(nxt[c == 0xFF].astype(np.int64))
            p = nxt
        if codes:
            work[np.concatenate(codes).astype(np.int64)] = 0
        if overshoot:
            bad_ids = np.concatenate(overshoot)
            fast[bad_ids] = False
            slow[bad_ids] = True

        if deleted:
            delpos = np.sort(np.concatenate(deleted))
            dec = np.delete(work, delpos)
            before = np.searchsorted(delpos, starts)
            inside = np.searchsorted(delpos, ends) - before
        else:
            dec = work
            before = 0
            inside = 0
        off = starts + 1 - before  # decoded frame offset in dec
        dlen = lens - 1 - inside  # decoded frame length

        fast &= dlen >= OVERHEAD
        fi = np.flatnonzero(fast)
        if len(fi):
            mvd = memoryview(dec)
            crc32 = zlib.crc32
            okl = [crc32(mvd[o : o + n]) == CRC_RESIDUE for o, n in zip(off[fi].tolist(), dlen[fi].tolist())]
            ok = np.array(okl, dtype=bool)
            ver_ok = (dec[off[fi]] >> 5) == PROTOCOL_VERSION
            good = ok & ver_ok
            slow[fi[~good]] = True
            fi = fi[good]

        self._short_pieces(a, starts, ends, slow)

        # the reference path for everything else, piece by piece, the junk search done for all at once
        slow_idx = np.flatnonzero(slow)
        searched = slow_idx[lens[slow_idx] > _MIN_ENCODED]
        junk_at = dict(zip(searched.tolist(), first_frame_starts(a, starts[searched], ends[searched], self._max_frame).tolist()))
        slow_frames = []  # (segment index, raw frame bytes)
        for si in slow_idx.tolist():
            seg = bytes(piece[starts[si] : ends[si]])
            got = self._reference_segment(seg, junk_at.get(si), bool(overlong[si]))
            if got is not None:
                slow_frames.append((si, got))

        self._decode_frames(dec, off, dlen, fi, slow_frames, order, batch_rows)

    def _decode_frames(self, dec, off, dlen, fi, slow_frames, order, batch_rows):
        """Messages of the frames cut and unstuffed: dec[off[i]:off[i] + dlen[i]] for i in fi, CRC and
        version checked; slow_frames (segment index, raw frame bytes) found by the reference path;
        order[i] the stream position of segment i."""
        stats = self.stats
        # frame headers in stream order: fast ones gathered, slow ones parsed
        if slow_frames:
            s_idx = np.array([x[0] for x in slow_frames], np.int64)
            s_hdr = np.array([struct.unpack_from("<BHHI", f) for _, f in slow_frames], np.int64).reshape(-1, 4)
            allidx = np.concatenate([fi, s_idx])
            sort = np.argsort(allidx, kind="stable")
        else:
            s_idx = np.zeros(0, np.int64)
            s_hdr = np.zeros((0, 4), np.int64)
            allidx = fi
            sort = None
        o = off[fi]
        f_hdr = np.empty((len(fi), 4), np.int64)
        f_hdr[:, 0] = dec[o]
        f_hdr[:, 1] = dec[o + 1].astype(np.int64) | (dec[o + 2].astype(np.int64) << 8)
        f_hdr[:, 2] = dec[o + 3].astype(np.int64) | (dec[o + 4].astype(np.int64) << 8)
        f_hdr[:, 3] = (
            dec[o + 5].astype(np.int64)
            | (dec[o + 6].astype(np.int64) << 8)
            | (dec[o + 7].astype(np.int64) << 16)
            | (dec[o + 8].astype(np.int64) << 24)
        )
        hdr = np.concatenate([f_hdr, s_hdr]) if len(s_idx) else f_hdr
        is_fast = np.concatenate([np.ones(len(fi), bool), np.zeros(len(s_idx), bool)])
        # position of each frame in its own list (fast: index into fi; slow: into slow_frames)
        local = np.concatenate([np.arange(len(fi)), np.arange(len(s_idx))])
        if sort is not None:
            hdr, is_fast, local, allidx = hdr[sort], is_fast[sort], local[sort], allidx[sort]
        if not len(hdr):
            return

        accepted = self._account(hdr[:, 1], hdr[:, 2], hdr[:, 3])
        stats.duplicates += int(len(accepted) - accepted.sum())

        msg_type = hdr[:, 0] & 0x1F
        frame_order = order[allidx]
        # payload offsets (fast frames) for each frame, and lengths
        plen_fast = dlen[fi] - OVERHEAD
        poff_fast = off[fi] + HEADER_SIZE

        for t in np.unique(msg_type[accepted]).tolist():
            sel = np.flatnonzero(accepted & (msg_type == t))
            nodes = hdr[sel, 1]
            if t not in BY_TYPE:
                self._count("unknown_type", nodes, per_node=True)
                continue
            layout = LAYOUTS[t]
            rows = batch_rows.get(layout.name)
            if rows is None:
                rows = batch_rows[layout.name] = _Rows(layout)
            fsel = sel[is_fast[sel]]
            ssel = sel[~is_fast[sel]]
            ref = []  # (frame position, payload bytes) for the reference path
            for j in ssel.tolist():
                raw = slow_frames[local[j]][1]
                ref.append((j, raw[HEADER_SIZE : len(raw) - CRC_SIZE]))
            if len(fsel):
                lf = local[fsel]
                if layout.tail is None:
                    ref.extend(self._fixed(layout, dec, poff_fast[lf], plen_fast[lf], fsel, hdr, frame_order, rows))
                elif layout.type == ACCEL:
                    ref.extend(self._accel(layout, dec, poff_fast[lf], plen_fast[lf], fsel, hdr, frame_order, rows))
                else:
                    mvd = memoryview(dec)
                    for j, o_, n_ in zip(fsel.tolist(), poff_fast[lf].tolist(), plen_fast[lf].tolist()):
                        ref.append((j, bytes(mvd[o_ : o_ + n_])))
            ref.sort(key=lambda r: r[0])
            for j, pl in ref:
                node = int(hdr[j, 1])
                got = _unpack_reference(t, pl)
                if isinstance(got, str):
                    setattr(stats, got, getattr(stats, got) + 1)
                    if got == "bad_length":
                        stats.node(node).bad_length += 1
                    continue
                fields, extra = got
                if extra:
                    stats.newer_minor += 1
                    stats.node(node).newer_minor += 1
                stats.frames += 1
                rows.dict_rows.append(
                    (int(frame_order[j]), node, int(hdr[j, 2]), int(hdr[j, 3]), extra, fields)
                )

    def _short_pieces(self, a, starts, ends, slow):
        """Pieces too short to hold a frame (and to search), counted as the reference
        counts them: cobs_errors when their code chain runs past the end, else
        too_short. Taken off `slow`."""
        si = np.flatnonzero(slow & (ends - starts < _MIN_ENCODED))
        if not len(si):
            return
        p = starts[si].copy()
        e = ends[si]
        for _ in range(_MIN_ENCODED):  # every code moves on at least one byte
            going = np.flatnonzero(p < e)
            if not len(going):
                break
            p[going] += a[p[going]]
        lands = int((p == e).sum())
        stats = self.stats
        stats.too_short += lands
        stats.cobs_errors += len(si) - lands
        stats.bad_frames += len(si)
        stats.bytes_skipped += int((e - starts[si]).sum())
        slow[si] = False

    @staticmethod
    def _follow(piece, p, e, ids, codes, deleted, overshoot):
        """The lockstep loop's work for a few chains, in Python: each chain from its
        position p to its piece's end e; the same lists filled."""
        links = []
        after_ff = []
        bad = []
        for q, end, i in zip(p, e, ids):
            while True:
                c = piece[q]
                nxt = q + c
                if nxt >= end:
                    if nxt > end:
                        bad.append(i)
                    break
                links.append(nxt)
                if c == 0xFF:
                    after_ff.append(nxt)
                q = nxt
        if links:
            codes.append(np.array(links, np.int64))
        if after_ff:
            deleted.append(np.array(after_ff, np.int64))
        if bad:
            overshoot.append(np.array(bad, np.int64))

    def _reference_segment(self, seg, start=None, overlong=False):
        """The reference's search for the frame in one piece, with its accounting.

        start: the piece's first_frame_start if known. overlong: seg is the tail
        of a piece already counted too_long (Decoder._tail). Returns the raw frame
        (junk before it counted as skipped) or None after counting the piece as bad.
        """
        size, junk, reason = frame_in_piece(seg, self._scratch, self._max_frame, start)
        stats = self.stats
        if not size:
            if not overlong:
                setattr(stats, reason, getattr(stats, reason) + 1)
                stats.bad_frames += 1
            stats.bytes_skipped += len(seg)
            return None
        if junk:
            stats.bytes_skipped += junk
            if not overlong:
                stats.bad_frames += 1
        return bytes(self._scratch[:size])

    # -- sequence accounting --------------------------------------------------

    def _account(self, node, seq, time_ms):
        """NodeStats.account for every frame, in order; returns the mask of frames accepted (not duplicates).

        All nodes at once: frames grouped by node (a stable sort keeps each node's order), each
        compared with the one before it in its group, the first with the node's state. A node
        with a duplicate takes the reference's loop: a duplicate leaves the state as it was."""
        stats = self.stats
        n = len(node)
        accepted = np.ones(n, bool)
        if not n:
            return accepted
        by_node = np.argsort(node, kind="stable")
        nd, s, t = node[by_node], seq[by_node], time_ms[by_node]
        starts = np.flatnonzero(np.concatenate(([True], nd[1:] != nd[:-1])))
        group = np.repeat(np.arange(len(starts)), np.diff(np.append(starts, n)))
        states = [stats.node(nid) for nid in nd[starts].tolist()]
        prev_s = np.empty_like(s)
        prev_t = np.empty_like(t)
        prev_s[1:] = s[:-1]
        prev_t[1:] = t[:-1]
        prev_s[starts] = [ns.last_seq for ns in states]
        prev_t[starts] = [ns.last_time for ns in states]
        fresh = np.zeros(n, bool)  # a node's very first frame: nothing to compare with
        fresh[starts] = prev_s[starts] < 0
        back = (prev_t - t) & 0xFFFFFFFF
        gap = (s - prev_s - 1) & 0xFFFF
        restart = (back > 0) & (back < 0x80000000) & ~fresh
        dup = ~restart & (gap == 0xFFFF) & ~fresh
        counted = ~restart & ~fresh
        lost = counted & (gap < 0x8000)
        k = len(starts)
        has_dup = np.bincount(group[dup], minlength=k) > 0
        sums = [np.bincount(group, weights=w, minlength=k).astype(np.int64).tolist() for w in (
            np.where(lost, gap, 0), counted & ~lost, restart)]
        sizes = np.bincount(group, minlength=k).tolist()
        ends = (np.append(starts[1:], n) - 1).tolist()
        last_s, last_t = s.tolist(), t.tolist()
        for g, ns in enumerate(states):
            if has_dup[g]:
                a, b = starts[g], ends[g] + 1
                account = ns.account
                accepted[by_node[a:b]] = [account(sv, tv) for sv, tv in zip(last_s[a:b], last_t[a:b])]
                continue
            ns.lost += sums[0][g]
            ns.out_of_order += sums[1][g]
            ns.restarts += sums[2][g]
            ns.frames += sizes[g]
            ns.last_seq = last_s[ends[g]]
            ns.last_time = last_t[ends[g]]
        return accepted

    def _count(self, reason, nodes, per_node):
        stats = self.stats
        setattr(stats, reason, getattr(stats, reason) + len(nodes))
        if per_node:
            ids, counts = np.unique(nodes, return_counts=True)
            for nid, c in zip(ids.tolist(), counts.tolist()):
                ns = stats.node(nid)
                setattr(ns, reason, getattr(ns, reason) + c)

    def _common(self, sel, hdr, frame_order, extra):
        return {
            "order": frame_order[sel],
            "node_id": hdr[sel, 1],
            "seq": hdr[sel, 2],
            "time_ms": hdr[sel, 3],
            "extra_bytes": extra,
        }

    # -- payloads -------------------------------------------------------------

    def _fixed(self, layout, dec, poff, plen, sel, hdr, frame_order, rows):
        """Fixed layouts (no tail): vectorised; returns nothing for the reference path."""
        short = plen < layout.size
        if short.any():
            self._count("bad_length", hdr[sel[short], 1], per_node=True)
            sel, poff, plen = sel[~short], poff[~short], plen[~short]
        if not len(sel):
            return []
        extra = plen - layout.size
        newer = extra > 0
        if newer.any():
            self._count("newer_minor", hdr[sel[newer], 1], per_node=True)
        self.stats.frames += len(sel)
        body = dec[poff[:, None] + np.arange(layout.size)]
        cols = self._common(sel, hdr, frame_order, extra)
        cols.update(layout.columns(body))
        rows.chunks.append(cols)
        return []

    def _accel(self, layout, dec, poff, plen, sel, hdr, frame_order, rows):
        """Accel blocks: raw and delta-bitpack vectorised; the rest to the reference path."""
        refer = []
        mvd = memoryview(dec)

        def to_reference(mask):
            for j, o_, n_ in zip(sel[mask].tolist(), poff[mask].tolist(), plen[mask].tolist()):
                refer.append((j, bytes(mvd[o_ : o_ + n_])))

        short = plen < layout.size
        if short.any():
            self._count("bad_length", hdr[sel[short], 1], per_node=True)
            keep = ~short
            sel, poff, plen = sel[keep], poff[keep], plen[keep]
        if not len(sel):
            return refer
        body = dec[poff[:, None] + np.arange(layout.size)]
        fields = layout.columns(body)
        enc = fields["encoding"]
        n = fields["n_samples"]
        doff = poff + layout.size
        dlen = plen - layout.size
        raw = (enc == 0) & (n >= 1) & (dlen == 6 * n)
        delta = (enc == 1) & (n >= 1)
        done = raw.copy()
        found = []  # (indices into sel, (k, 3) samples of those blocks in order)
        if raw.any():
            ri = np.flatnonzero(raw)
            joined = b"".join([mvd[o_ : o_ + 6 * k] for o_, k in zip(doff[ri].tolist(), n[ri].tolist())])
            found.append((ri, np.frombuffer(joined, "<i2").reshape(-1, 3)))
        if delta.any():
            di = np.flatnonzero(delta)
            for k in np.unique(n[di]).tolist():
                gi = di[n[di] == k]
                got, ok = _delta_blocks(dec, doff[gi], dlen[gi], k)
                done[gi[ok]] = True
                found.append((gi[ok], got.reshape(-1, 3)))
        to_reference(~done)
        if not done.any():
            return refer
        di = np.flatnonzero(done)
        self.stats.frames += len(di)
        cols = self._common(sel[di], hdr, frame_order, np.zeros(len(di), np.int64))
        for key, col in fields.items():
            cols[key] = col[di]
        counts = cols["n_samples"]
        start = np.zeros(len(counts), np.int64)
        if len(counts) > 1:
            np.cumsum(counts[:-1], out=start[1:])
        cols["sample_start"] = start
        found = [f for f in found if len(f[0])]
        if len(found) == 1:  # one kind of block: already in stream order
            cols["samples"] = found[0][1]
        else:
            samples = np.empty((int(counts.sum()), 3), np.int16)
            row_of = np.zeros(len(sel), np.int64)
            row_of[di] = start
            for which, block_samples in found:
                k = n[which]
                firsts = np.zeros(len(which), np.int64)
                if len(which) > 1:
                    np.cumsum(k[:-1], out=firsts[1:])
                dest = np.repeat(row_of[which] - firsts, k) + np.arange(int(k.sum()))
                samples[dest] = block_samples
            cols["samples"] = samples
        rows.chunks.append(cols)
        return refer


def first_frame_starts(a, starts, ends, max_frame=MAX_FRAME):
    """`decoder.first_frame_start` of many pieces at once: piece k is a[starts[k]:ends[k]],
    a[ends[k]] its delimiter. Returns each piece's first start, 0 for none.

    The same rule, vectorised. Every byte's code is an edge to the position it
    reaches; pointer doubling (about 13 rounds for pieces of 4 kB) sums the
    decoded length along each chain and XORs the CRC terms. The CRC is linear:
    that of the bytes decoded from i is the XOR, over the blocks of i's chain,
    of each block's CRC carried past the bytes decoded after it; a block's CRC
    is the XOR of its bytes' table entries each carried past the rest of the
    block, read from one prefix XOR of the piece's bytes weighted by position.
    Everything is scaled by x^(8 qmax) so that every carry is forwards.
    """
    if not len(starts):
        return np.zeros(0, np.int64)
    lens = (ends - starts).astype(np.int64)
    spans = lens + 1  # each piece with its delimiter
    base = np.zeros(len(lens), np.int64)
    np.cumsum(spans[:-1], out=base[1:])
    total = int(spans.sum())
    owner = np.repeat(np.arange(len(lens)), spans)
    k = np.arange(total, dtype=np.int64)
    local = k - base[owner]  # offset in its piece
    code = a[local + starts[owner]].astype(np.int64)
    end = (base + lens)[owner]  # where each byte's piece ends, in these coordinates
    dead = total
    nxt = k + code
    edge = (code > 0) & (nxt <= end)
    step = np.full(total + 1, dead, np.int64)
    step[:total][edge] = nxt[edge]
    roots = base + lens
    step[roots] = roots
    block = np.zeros(total + 1, np.int64)  # bytes each code decodes to: its data, and a zero unless 0xFF or last
    block[:total][edge] = code[edge] - 1 + ((code[edge] != 0xFF) & (nxt[edge] != end[edge]))
    rounds = int(spans.max()).bit_length() + 1
    length = block.copy()
    hop = step
    for _ in range(rounds):
        length += length[hop]
        further = hop[hop]
        if np.array_equal(further, hop):
            break
        hop = further
    need = np.flatnonzero(edge & (hop[:total] == end) & (length[:total] <= max_frame))
    qmax = max_encoded_length(max_frame)  # no piece given is longer
    # the linear part of the CRC (no initial value, no final XOR), scaled by x^(8 qmax)
    weighted = _shift(_BYTE_TABLE[code], qmax - local)
    prefix = np.zeros(total + 1, np.uint32)
    np.bitwise_xor.accumulate(weighted, out=prefix[1:])
    term = np.zeros(total + 1, np.uint32)
    term[need] = _shift(prefix[nxt[need]] ^ prefix[need + 1], local[need] + length[need])
    value = term
    hop = step
    for _ in range(rounds):
        value = value ^ value[hop]
        further = hop[hop]
        if np.array_equal(further, hop):
            break
        hop = further
    first_byte = np.zeros(total, np.int64)
    first_byte[:-1] = code[1:]
    cand = need[
        (length[need] >= OVERHEAD)
        & (code[need] > 1)
        & ((first_byte[need] >> 5) == PROTOCOL_VERSION)
        & (local[need] > 0)
    ]
    cand = cand[value[cand] == _residues(max_frame)[length[cand]]]
    out = np.zeros(len(lens), np.int64)
    if len(cand):
        pieces, first = np.unique(owner[cand], return_index=True)
        out[pieces] = local[cand[first]]
    return out


_BYTE_TABLE = np.array(BYTE_TABLE, np.uint32)


def _residues(max_frame, _cache={}):
    """For each frame size n: the linear part of the CRC (no initial value, no final
    XOR) that n bytes must have for crc32 to give CRC_RESIDUE, scaled as in
    first_frame_starts. crc32 is that linear part ^ ~0 ^ (~0 carried past the n bytes)."""
    got = _cache.get(max_frame)
    if got is None:
        sizes = np.arange(max_frame + 1)
        ones = np.full(len(sizes), 0xFFFFFFFF, np.uint32)
        linear = np.uint32(CRC_RESIDUE ^ 0xFFFFFFFF) ^ _shift(ones, sizes)
        got = _cache[max_frame] = _shift(linear, np.full(len(sizes), max_encoded_length(max_frame)))
    return got


def _multiply(a, b):
    """crc_algebra.multiply, elementwise over uint32 arrays, a bit at a time."""
    p = np.zeros(np.broadcast(a, b).shape, np.uint32)
    b = np.array(b, np.uint32)
    poly = np.uint32(0xEDB88320)
    for bit in range(31, -1, -1):
        p ^= np.where(a & np.uint32(1 << bit), b, np.uint32(0))
        b = (b >> np.uint32(1)) ^ np.where(b & np.uint32(1), poly, np.uint32(0))
    return p


_DIGITS = 5  # hex digits of a shift in bytes: up to 2^20 - 1
_shift_tables = []


def _shift(v, k):
    """v * x^(8k) modulo the CRC polynomial, elementwise (crc_algebra.combine's carry).

    One hex digit of k a round: v times the digit's power is four lookups, one
    per byte of v, in tables made once (5 x 16 x 4 x 256 entries).
    """
    if int(k.max(initial=0)) >> (4 * _DIGITS):
        raise ValueError("shift of 2^20 bytes or more")
    if not _shift_tables:
        unit = byte_powers(1)[1]  # x^8, then x^(8 * 16), ...
        factors = []  # x^(8 d 16^place) for each (place, digit d)
        for _place in range(_DIGITS):
            f = byte_powers(0)[0]
            for _digit in range(16):
                factors.append(f)
                f = multiply(f, unit)
            unit = f
        factor = np.array(factors, np.uint32)
        lanes = (np.arange(256, dtype=np.uint32)[None, :] << (8 * np.arange(4, dtype=np.uint32)[:, None])).ravel()
        table = _multiply(factor[:, None], lanes[None, :])
        _shift_tables.append(table.ravel())  # [digit place, digit, byte of v, byte value]
    table = _shift_tables[0]
    v = np.asarray(v, np.uint32)
    k = np.asarray(k, np.int64)
    for place in range(_DIGITS):
        d = (k >> (4 * place)) & 15
        if not d.any():
            continue
        row = (d << 10) + place * (16 << 10)  # the digit's four tables, flat
        v = (
            table.take(row | (v & 0xFF))
            ^ table.take(row | 0x100 | ((v >> 8) & 0xFF))
            ^ table.take(row | 0x200 | ((v >> 16) & 0xFF))
            ^ table.take(row | 0x300 | (v >> 24))
        )
    return v


def _u64_view(dec):
    """Every byte offset of dec as the start of a little-endian u64 (dec must have 7 spare bytes at the end)."""
    return np.ndarray((len(dec) - 7,), dtype="<u8", buffer=dec, strides=(1,))


_DELTA_BATCH = 512  # blocks per numpy step: bounds the (blocks, groups, 8) temporaries


def _delta_blocks(dec, doff, dlen, n):
    """Delta-bitpack blocks of n samples each, vectorised.

    Returns (an (ok blocks, n, 3) int16 array of the blocks that pass every
    check of codec.decode, mask of those blocks). The others go to the
    reference path.
    """
    ok = np.zeros(len(doff), bool)
    out = []
    for lo in range(0, len(doff), _DELTA_BATCH):
        got, good = _delta_some(dec, doff[lo : lo + _DELTA_BATCH], dlen[lo : lo + _DELTA_BATCH], n)
        ok[lo : lo + _DELTA_BATCH] = good
        out.append(got)
    return (out[0] if len(out) == 1 else np.concatenate(out)), ok


def _delta_some(dec, doff, dlen, n):
    g = (n - 1 + 7) // 8 if n > 1 else 0
    g3 = 3 * g
    table = 6 + (g3 + 1) // 2
    ok = dlen >= table
    idx = np.flatnonzero(ok)
    if not len(idx):
        return np.zeros((0, n, 3), np.int16), ok
    doff_ok = doff[idx]
    first = dec[doff_ok[:, None] + np.arange(6)].view("<i2").reshape(len(idx), 3)
    if g == 0:
        keep = dlen[idx] == 6
        ok[idx] = keep
        return first[keep].reshape(-1, 1, 3), ok
    nb = (g3 + 1) // 2
    tb = dec[doff_ok[:, None] + 6 + np.arange(nb)]
    codes = np.empty((len(idx), 2 * nb), np.uint8)
    codes[:, 0::2] = tb & 0x0F
    codes[:, 1::2] = tb >> 4
    bits = codes[:, :g3].astype(np.int32)
    bits += bits == 15  # code 15 means 16 bits
    total = table + bits.sum(axis=1)
    fits = total == dlen[idx]
    ok[idx[~fits]] = False
    idx = idx[fits]
    if not len(idx):
        return np.zeros((0, n, 3), np.int16), ok
    bits = bits[fits]
    first = first[fits]
    m = len(idx)
    # byte where each group's data starts
    gstart = np.empty((m, g3), np.int64)
    gstart[:, 0] = 0
    np.cumsum(bits[:, :-1], axis=1, out=gstart[:, 1:])
    gstart += (doff[idx] + table)[:, None]
    u = _unpack_groups(dec, bits.reshape(-1), gstart.reshape(-1)).reshape(m, 3, 8 * g)
    clean = ~u[:, :, n - 1 :].any(axis=(1, 2))  # padding values must be zero
    ok[idx[~clean]] = False
    if not clean.all():
        u = u[clean]
        first = first[clean]
    vals = np.empty((len(u), 3, n), np.int16)
    vals[:, :, 0] = first
    np.take(_UNZIGZAG, u[:, :, : n - 1], out=vals[:, :, 1:], mode="clip")  # every u16 is in the table: no checks
    # int16 sums wrap modulo 2**16: exactly the protocol's arithmetic
    np.add.accumulate(vals, axis=2, dtype=np.int16, out=vals)
    return np.ascontiguousarray(vals.transpose(0, 2, 1)), ok


# zigzag decoding of every u16: (u >> 1) ^ -(u & 1), read as int16
_UNZIGZAG = ((np.arange(65536, dtype=np.int64) >> 1) ^ -(np.arange(65536, dtype=np.int64) & 1)).astype(np.int16)


def _unpack_groups(dec, bits, gstart):
    """Values of packed groups: group k holds 8 values of bits[k] bits from byte gstart[k], LSB first.

    One pass per width present: a group of width w <= 8 is one little-endian u64
    read at its first byte, w > 8 two of them; the 8 shifts are constants.
    Returns a (groups, 8) uint16 array.
    """
    counts = np.bincount(bits, minlength=17)
    present = np.flatnonzero(counts).tolist()
    out = np.zeros((len(bits), 8), np.uint16) if len(present) > 1 or present[0] > 8 else None
    v64 = _u64_view(dec)
    for w in present:
        if w == 0:
            continue
        sel = np.flatnonzero(bits == w) if counts[w] < len(bits) else None
        starts = gstart if sel is None else gstart[sel]
        lo = v64[starts]
        if w <= 8:
            cols = lo[:, None] >> np.arange(0, 8 * w, w, dtype=np.uint64)
        else:
            hi = v64[starts + 8]
            cols = np.empty((len(starts), 8), np.uint64)
            for j in range(8):
                bit = j * w
                if bit + w <= 64:
                    cols[:, j] = lo >> np.uint64(bit)
                elif bit >= 64:
                    cols[:, j] = hi >> np.uint64(bit - 64)
                else:
                    cols[:, j] = (lo >> np.uint64(bit)) | (hi << np.uint64(64 - bit))
        if out is None:
            out = cols.astype(np.uint16)
        elif sel is None:
            out[:] = cols
        else:
            out[sel] = cols
    if out is None:  # every group of width 0
        return np.zeros((len(bits), 8), np.uint16)
    # the u16 cast kept 16 bits; keep each group's own width
    out &= _WIDTH_MASK[bits][:, None]
    return out


_WIDTH_MASK = np.array([(1 << w) - 1 for w in range(17)], np.uint16)


def decode_bytes(data, chunk=DEFAULT_CHUNK):
    """Decode a whole capture: (Batch, DecoderStats), as `decoder.decode_all` does."""
    dec = BulkDecoder(chunk=chunk)
    batch = dec.feed(data)
    dec.flush()
    return batch, dec.stats


def decode_messages(data, chunk=DEFAULT_CHUNK):
    """Like `citynode_protocol.decoder.decode_all`: (list of Message, DecoderStats)."""
    batch, stats = decode_bytes(data, chunk)
    return batch.messages(), stats
