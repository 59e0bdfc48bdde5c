"""citynode_fw.ring: order through flushes and reboots, acks, priorities, and power cuts
at every step of a flush and of an ack, with torn writes."""

import gc
import os

import fw_helpers as h
from citynode_fw import store as store_mod
from citynode_fw import store_binary as store_binary_mod
from citynode_fw.ring import Ring

FOLDER = "ring"


def _frame(i, size=20):
    """A stand-in frame: size-1 non-zero bytes naming i, then the 0x00 delimiter."""
    body = bytes([1 + (i + k) % 250 for k in range(size - 1)])
    return body + b"\x00"


def _put(r, data, accel=False):
    at = r.room(len(data), accel)
    if at < 0:
        return False
    r.page[at : at + len(data)] = data
    r.commit(len(data))
    return True


def _drain(r, max_bytes=100000):
    """Everything the ring sends, acknowledging each message."""
    out = b""
    while True:
        n = r.front(max_bytes)
        if not n:
            return out
        out += bytes(r.front_buf[r.front_off : r.front_off + n])
        r.acked()


def _clean():
    try:
        for name in os.listdir(FOLDER):
            os.remove(FOLDER + "/" + name)
        os.rmdir(FOLDER)
    except OSError:
        pass


def _setup():
    h.enter_tmpdir("ring")


def _teardown():
    _clean()
    h.leave_tmpdir()


def test_frames_come_out_in_order_across_flushes_and_a_reboot():
    _setup()
    try:
        r = Ring(FOLDER, capacity=16384, page_size=256)
        frames = [_frame(i) for i in range(40)]  # 800 bytes: three segments and a page
        for f in frames:
            assert _put(r, f)
        assert len(r.segments) == 3 and r.flushes == 3
        r.flush()  # what a node does before it sleeps or reboots
        again = Ring(FOLDER, capacity=16384, page_size=256)
        assert _drain(again) == b"".join(frames)
        assert again.segments == [] and os.listdir(FOLDER) == []
    finally:
        _teardown()


def test_frames_leave_only_when_acked_and_come_back_after_a_resend_or_reboot():
    _setup()
    try:
        r = Ring(FOLDER, capacity=16384, page_size=256)
        for i in range(20):
            _put(r, _frame(i))
        n = r.front(110)
        first = bytes(r.front_buf[r.front_off : r.front_off + n])
        assert n == 100 and first == b"".join(_frame(i) for i in range(5))  # whole frames only
        assert r.front(100) == 0  # one message in flight at a time
        r.resend()
        n = r.front(110)
        assert bytes(r.front_buf[r.front_off : r.front_off + n]) == first
        r.acked()
        r.close()  # a planned reboot keeps what was acked out of the ring
        again = Ring(FOLDER, capacity=16384, page_size=256)
        assert _drain(again) == b"".join(_frame(i) for i in range(5, 20))
    finally:
        _teardown()


def test_a_cut_frame_is_never_sent_when_max_bytes_ends_inside_it():
    _setup()
    try:
        r = Ring(FOLDER, capacity=16384, page_size=256)
        _put(r, _frame(1, 30))
        _put(r, _frame(2, 30))
        assert r.front(45) == 30
        r.resend()
        assert r.front(10) == 0  # nothing whole fits
    finally:
        _teardown()


def test_acceleration_is_dropped_first_and_every_drop_is_counted():
    _setup()
    try:
        r = Ring(FOLDER, capacity=8 * (256 + 12), page_size=256)
        assert r.max_segments == 8 and r.accel_segments == 7
        accel_stored = 0
        while _put(r, _frame(accel_stored), accel=True):
            accel_stored += 1
        assert len(r.segments) == 7 and r.dropped_accel == 1
        climate_stored = 0
        while _put(r, _frame(climate_stored)):
            climate_stored += 1
        assert climate_stored > 12  # the last segment and a page went to other kinds
        assert len(r.segments) == 8 and r.dropped_other == 1
        assert not _put(r, _frame(0), accel=True) and r.dropped_accel == 2
        assert r.fill_percent() == 100
    finally:
        _teardown()


def test_a_damaged_segment_is_skipped_counted_and_never_sent():
    _setup()
    try:
        r = Ring(FOLDER, capacity=16384, page_size=256)
        for i in range(30):
            _put(r, _frame(i))
        r.flush()
        names = sorted(os.listdir(FOLDER))
        with open(FOLDER + "/" + names[1], "r+b") as f:
            f.seek(40)
            f.write(b"\xff")
        again = Ring(FOLDER, capacity=16384, page_size=256)
        sent = _drain(again)
        assert again.corrupt == 1
        assert sent == b"".join(_frame(i) for i in range(12)) + b"".join(_frame(i) for i in range(24, 30))
    finally:
        _teardown()


def test_a_capacity_beyond_the_flash_is_cut_and_flagged():
    _setup()
    try:
        r = Ring(FOLDER, capacity=1 << 40, page_size=256)
        assert r.clamped and r.max_segments < (1 << 40) // 268
        small = Ring(FOLDER, capacity=4096, page_size=256)
        assert not small.clamped
    finally:
        _teardown()


def test_filling_and_sending_allocate_nothing_between_flushes():
    _setup()
    try:
        r = Ring(FOLDER, capacity=16384, page_size=2048)
        frame = _frame(3, 60)
        n = len(frame)

        def one():
            at = r.room(n)
            page = r.page
            for k in range(n):
                page[at + k] = frame[k]
            r.commit(n)
            r.front(1024)
            r.acked()

        for _ in range(5):
            one()
        gc.collect()
        before = gc.mem_alloc()
        for _ in range(200):
            one()
        assert gc.mem_alloc() - before == 0
        assert r.flushes == 0
    finally:
        _teardown()


# -- power cuts ----------------------------------------------------------------------


class PowerCut(Exception):
    pass


class CutFlash:
    """os and open for ring.py that stop at mutating step `cut` (a write is torn: half
    of it lands). `rename_replaces` False makes rename fail when the target exists."""

    def __init__(self, cut, rename_replaces=True):
        self.cut = cut
        self.step = 0
        self.rename_replaces = rename_replaces

    def _tick(self):
        self.step += 1
        if self.step == self.cut:
            raise PowerCut()

    # os
    def stat(self, path):
        return os.stat(path)

    def listdir(self, path):
        return os.listdir(path)

    def mkdir(self, path):
        os.mkdir(path)

    def statvfs(self, path):
        return os.statvfs(path)

    def rename(self, a, b):
        self._tick()
        if not self.rename_replaces and b.split("/")[-1] in os.listdir(FOLDER):
            raise OSError(17)  # EEXIST, as FAT
        os.rename(a, b)

    def remove(self, path):
        self._tick()
        os.remove(path)

    def open(self, path, mode="r"):
        f = open(path, mode)
        if "w" not in mode:
            return f
        return CutFile(self, f)


class CutFile:
    def __init__(self, flash, f):
        self.flash = flash
        self.f = f

    def write(self, buf, off=0, n=-1):
        if n < 0:
            n = len(buf) - off
        self.flash.step += 1
        if self.flash.step == self.flash.cut:
            self.f.write(buf, off, n // 2)  # torn: half of it reached the flash
            self.f.close()
            raise PowerCut()
        return self.f.write(buf, off, n)

    def flush(self):
        self.f.flush()

    def close(self):
        self.flash._tick()
        self.f.close()


def _with_flash(flash, fn):
    """Run fn with the store's modules (which make every write on flash) on the cutting flash."""
    real_os = store_mod.os
    store_mod.os = flash
    store_mod.open = flash.open
    store_binary_mod.open = flash.open
    try:
        fn()
        return False
    except PowerCut:
        return True
    finally:
        store_mod.os = real_os
        del store_mod.open
        del store_binary_mod.open


def _power_cuts(rename_replaces):
    stored = [_frame(i) for i in range(12)]  # two segments of 120 bytes on flash
    newer = [_frame(100 + i) for i in range(6)]  # in the page, being flushed
    first, second = b"".join(stored[:6]), b"".join(stored[6:])
    new = b"".join(newer)
    cuts = 0
    for cut in range(1, 60):
        _clean()
        r = Ring(FOLDER, capacity=16384, page_size=128)
        for f in stored:
            _put(r, f)
        r.flush()
        for f in newer:
            _put(r, f)

        def work():
            r.front(1000)  # the first segment goes out...
            r.flush()  # ...the page is written...
            r.acked()  # ...the PUBACK removes the first segment
            r.front(60)  # half of the second goes out and is acked...
            r.acked()
            r.close()  # ...and a planned reboot rewrites the second without it

        flash = CutFlash(cut, rename_replaces)
        if not _with_flash(flash, work):
            assert cut > flash.step
            break
        cuts += 1
        after = Ring(FOLDER, capacity=16384, page_size=128)
        sent = _drain(after)
        assert after.corrupt == 0, cut
        half = b"".join(stored[9:])
        # the page is lost only before its flush (it was never stored); acked frames may
        # come again only until the segment holding them is removed or rewritten
        assert sent in (first + second, second, first + second + new, second + new, half + new), (cut, sent)
        assert not [n for n in os.listdir(FOLDER) if n.endswith(".tmp")]
    return cuts


def test_a_power_cut_at_any_step_loses_nothing_stored_and_sends_nothing_torn():
    _setup()
    try:
        assert _power_cuts(rename_replaces=True) >= 8
    finally:
        _teardown()


def test_the_same_with_a_rename_that_cannot_replace_a_file_as_on_fat():
    _setup()
    try:
        assert _power_cuts(rename_replaces=False) >= 8
    finally:
        _teardown()
