"""Store and forward: the frames waiting for the broker, in order, through outages,
reboots and power cuts.

The queue is the segment files on flash, oldest first, then the page in RAM.
Frames are written into the page as they are made (`room`, then encode into
`page` at that offset, then `commit`): COBS frames, each ending in 0x00, so a
run of them is a ready MQTT payload. A full page is written to flash whole,
as one segment file (`flush`); nothing is written byte by byte.

A segment file is a 12-byte header (magic, data length, CRC-32 of the data)
and the data, written and recovered by store.py's rules, as every file the
node keeps: a power cut leaves the old set of segments or the new one. A
segment no copy of which checks is skipped and counted (`corrupt`), never sent.

Sending (`front`, `acked`, `resend`): the uplink publishes the front of
the queue, at most one message in flight; the frames leave the queue only when
`acked()` (after the broker's PUBACK). A segment whose frames are all acked is
removed. A power cut after a PUBACK and before that removal sends the segment
again; receivers drop the repeat by (node, boot, seq).

When the flash share runs out, raw acceleration goes first: accel frames are
refused once the segments fill `accel_share` of the ring, the other kinds
keep the rest; every refused frame is counted by kind.
"""

import binascii
import os
import struct

from citynode_fw import store_binary as store

MAGIC = b"CNR1"
_HEADER = "<4sHHI"  # magic, data bytes, reserved, CRC-32 of the data
HEADER_SIZE = 12
_ACCEL_SHARE_8THS = 7  # accel frames may fill 7/8 of the segments


class Ring:
    def __init__(self, folder="ring", capacity=65536, page_size=2048):
        if page_size < 64 or page_size > 0xFFFF:
            raise ValueError("ring page of %d bytes: must be 64..65535" % page_size)
        self.folder = folder
        self.page = bytearray(page_size)
        self._read = bytearray(page_size)
        self._head = bytearray(HEADER_SIZE)
        self.used = 0  # bytes of frames in the page
        self.acked_page = 0  # of those, the first ones acknowledged
        self.segments = []  # segment numbers on flash, oldest first
        self.acked_seg = 0  # bytes of the oldest segment acknowledged
        self._loaded = -1  # the segment number in _read, -1: none
        self._loaded_n = 0
        self.next_seg = 0
        self.in_flight = 0  # bytes of the front taken by front() and not yet acked
        self.front_buf = self.page
        self.front_off = 0
        self.dropped_accel = 0
        self.dropped_other = 0
        self.corrupt = 0
        self.flushes = 0
        self.clamped = False  # capacity cut to what the flash holds
        store.make_folder(folder)
        self._scan()
        self.max_segments = max(2, self._fit(capacity) // (page_size + HEADER_SIZE))
        self.accel_segments = max(1, self.max_segments * _ACCEL_SHARE_8THS // 8)

    # -- start-up ----------------------------------------------------------------------

    def _scan(self):
        found = []
        for name in os.listdir(self.folder):
            base = name[: -len(store.TMP)] if name.endswith(store.TMP) else name
            try:
                seg = int(base, 16)
            except ValueError:
                continue
            if seg in found:
                continue
            path = self._path(seg)
            was_written = store.exists(path)
            if store.recover_binary(path, self._intact):
                found.append(seg)
            elif was_written:  # a segment no copy of which checks: never sent
                self.corrupt += 1
                store.remove_quiet(path)
            # else only an unfinished first write: those frames were never stored
        found.sort()
        self.segments = found
        self.next_seg = found[-1] + 1 if found else 0

    def _fit(self, capacity):
        """The capacity, cut to what the flash can hold beside what the ring has."""
        try:
            st = os.statvfs(self.folder)
        except (OSError, AttributeError):
            return capacity
        room = st[0] * st[4] + len(self.segments) * (len(self.page) + HEADER_SIZE)
        if capacity > room:
            self.clamped = True
            return room
        return capacity

    # -- filling ---------------------------------------------------------------------

    def pending(self):
        """Frames bytes waiting, on flash and in the page (acked ones not counted)."""
        return (len(self.segments) * len(self.page) - self.acked_seg) + (self.used - self.acked_page)

    def fill_percent(self):
        return len(self.segments) * 100 // self.max_segments

    def room(self, n, accel=False):
        """Where to put a frame of at most n bytes in `page`, or -1 (the frame is dropped and counted)."""
        if accel and len(self.segments) >= self.accel_segments:
            self.dropped_accel += 1
            return -1
        if self.used + n > len(self.page) and (not self.flush() or n > len(self.page)):
            self._drop(accel)
            return -1
        return self.used

    def _drop(self, accel):
        if accel:
            self.dropped_accel += 1
        else:
            self.dropped_other += 1

    def commit(self, n):
        """The frame put at room()'s offset is n bytes long (its 0x00 included)."""
        self.used += n

    def flush(self):
        """Write the page's unacknowledged frames as a segment; False when the ring is full."""
        start = self.acked_page
        n = self.used - start
        if n <= 0:
            self.used = self.acked_page = 0
            return True
        if len(self.segments) >= self.max_segments:
            return False
        seg = self.next_seg
        self._write_segment(seg, memoryview(self.page)[start : self.used], n)
        if not self.segments:
            self.acked_seg = 0  # frames in flight from the page are now this segment's first ones
        self.segments.append(seg)
        self.next_seg = seg + 1
        self.used = self.acked_page = 0
        self.flushes += 1
        return True

    def close(self):
        """Before a planned reboot or sleep: the page goes to flash, and the oldest
        segment loses the frames already acked, so that nothing is sent twice."""
        self.in_flight = 0
        if self.acked_seg and self.segments and self._loaded == self.segments[0]:
            seg = self.segments[0]
            n = self._loaded_n - self.acked_seg
            view = memoryview(self._read)[self.acked_seg : self._loaded_n]
            self._write_segment(seg, view, n)
            self._read[:n] = view
            self._loaded_n = n
            self.acked_seg = 0
        return self.flush()

    def _write_segment(self, seg, data, n):
        struct.pack_into(_HEADER, self._head, 0, MAGIC, n, 0, binascii.crc32(data))
        store.write_binary(self._path(seg), self._head, data, n, self._intact)

    # -- sending ---------------------------------------------------------------------

    def front(self, max_bytes):
        """How many bytes of whole frames, at most max_bytes, the front of the queue
        offers as one message: they are at front_buf[front_off:]. 0 when nothing
        waits or a message is already in flight."""
        if self.in_flight:
            return 0
        while self.segments:
            if self._loaded != self.segments[0] and not self._load(self.segments[0]):
                continue
            return self._take(self._read, self.acked_seg, self._loaded_n, max_bytes)
        return self._take(self.page, self.acked_page, self.used, max_bytes)

    def _take(self, buf, start, end, max_bytes):
        n = end - start
        if n > max_bytes:
            n = max_bytes
            while n and buf[start + n - 1] != 0:  # cut after the last whole frame
                n -= 1
        self.front_buf = buf
        self.front_off = start
        self.in_flight = n
        return n

    def _intact(self, path):
        try:
            with open(path, "rb") as f:
                if f.readinto(self._head) != HEADER_SIZE:
                    return False
                magic, n, _r, crc = struct.unpack(_HEADER, self._head)
                view = memoryview(self._read)[:n]
                return magic == MAGIC and n <= len(self._read) and f.readinto(view) == n and binascii.crc32(view) == crc
        except OSError:
            return False

    def _load(self, seg):
        """Read a segment into _read; a damaged one is counted, removed and skipped."""
        path = self._path(seg)
        ok = False
        try:
            with open(path, "rb") as f:
                got = f.readinto(self._head)
                if got == HEADER_SIZE:
                    magic, n, _r, crc = struct.unpack(_HEADER, self._head)
                    if magic == MAGIC and n <= len(self._read) and f.readinto(memoryview(self._read)[:n]) == n:
                        ok = binascii.crc32(memoryview(self._read)[:n]) == crc
        except OSError:
            pass
        if not ok:
            self.corrupt += 1
            self.segments.pop(0)
            self.acked_seg = 0
            store.remove_quiet(path)
            return False
        self._loaded = seg
        self._loaded_n = n
        return True

    def acked(self):
        """The message taken by front() reached the broker: its frames leave the queue."""
        n = self.in_flight
        self.in_flight = 0
        if not n:
            return
        if self.segments:
            if self._loaded != self.segments[0] and not self._load(self.segments[0]):
                return  # the segment these frames went into was damaged: nothing left to ack
            self.acked_seg += n
            if self.acked_seg >= self._loaded_n:
                store.remove_quiet(self._path(self.segments.pop(0)))
                self.acked_seg = 0
                self._loaded = -1
            return
        self.acked_page += n
        if self.acked_page >= self.used:
            self.used = self.acked_page = 0

    def resend(self):
        """The message in flight was not acknowledged: front() offers it again."""
        self.in_flight = 0

    def _path(self, seg):
        return "%s/%08x" % (self.folder, seg)

    def status(self):
        return {
            "fill_pct": self.fill_percent(), "pending_bytes": self.pending(), "segments": len(self.segments),
            "max_segments": self.max_segments, "dropped_accel": self.dropped_accel,
            "dropped_other": self.dropped_other, "corrupt": self.corrupt, "clamped": self.clamped,
        }
