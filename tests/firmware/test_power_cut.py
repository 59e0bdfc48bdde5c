"""Power cuts at every step of every document write: the node loads the old or the new
document, never loses a good one, and reports every fallback.

The store's file calls (open for write, write, flush, close, rename, remove) run
on a simulated flash where each call is a step. A cut at step k: steps before k
happened, step k and everything after never do (unflushed data is lost); a cut
at a write step may also leave a prefix of that write on flash (a torn write).
A fresh load then sees only what survived. Every operation runs with both
rename behaviours: one that replaces the target (LittleFS), one that refuses an
existing target like FAT. Each state a cut leaves is then the start of a second
operation (the next save or rollback, and the boot, whose load moves a
recovered tmp into place), cut at every step too: a recovery must survive what
comes next.

After every cut: the stored document is the old or the new one (for the
calibration, the current and the previous as a pair), the node runs what is
stored, and a load from anything but the file as saved is a fallback in words.
"""

from citynode_fw import bootcount, bootfloor, calibration, config, store

ENOENT = 2
EEXIST = 17

_real_open = open
_real_os = store.os

CAL_A = {"id": 101, "date": "2026-11-20", "climate": {"t_offset_c": -0.3}}
CAL_B = {"id": 102, "date": "2026-11-25", "accel": {"scale": [1.01, 0.99, 1.0]}}
CAL_C = {"id": 103, "date": "2026-11-30", "accel": {"bias_g": [0.01, 0.0, -0.02]}}
CAL_D = {"id": 104, "date": "2026-12-02", "climate": {"rh_offset_pct": 1.5}}


class PowerCut(BaseException):
    """Not an Exception: no handler in the firmware may catch it."""


class Flash:
    """Durable file texts by name; every mutating call is a numbered step."""

    def __init__(self, files, fat, cut_at=0, torn=False):
        self.files = dict(files)
        self.fat = fat
        self.cut_at = cut_at  # 0: never
        self.torn = torn
        self.steps = 0
        self.kinds = []  # what each step was
        self.dead = False

    def step(self, kind):
        """True when this step is the one the cut falls on (the caller then tears or drops it)."""
        if self.dead:
            raise PowerCut()
        self.steps += 1
        self.kinds.append(kind)
        return self.steps == self.cut_at

    def cut(self):
        self.dead = True
        raise PowerCut()

    # the calls store.py makes through `os`
    def stat(self, path):
        if path not in self.files:
            raise OSError(ENOENT)
        return (0o100000, 0, 0, 0, 0, 0, len(self.files[path]), 0, 0, 0)

    def rename(self, src, dst):
        if self.step("rename"):
            self.cut()
        if src not in self.files:
            raise OSError(ENOENT)
        if self.fat and dst in self.files:
            raise OSError(EEXIST)
        self.files[dst] = self.files.pop(src)

    def remove(self, path):
        if self.step("remove"):
            self.cut()
        if path not in self.files:
            raise OSError(ENOENT)
        del self.files[path]

    # and through `open`
    def open(self, path, mode="r"):
        if "w" in mode:
            if self.step("open"):
                self.cut()
            self.files[path] = ""
            return _Writer(self, path)
        if self.dead:
            raise PowerCut()
        if path not in self.files:
            raise OSError(ENOENT)
        return _Reader(self.files[path])


class _Writer:
    def __init__(self, flash, path):
        self.flash = flash
        self.path = path
        self.pending = ""

    def write(self, data):
        if self.flash.step("write"):
            if self.flash.torn:
                self.flash.files[self.path] += (self.pending + data)[: (len(self.pending) + len(data)) // 2]
            self.flash.cut()
        self.pending += data
        return len(data)

    def _sync(self):
        if self.flash.step("sync"):
            self.flash.cut()
        self.flash.files[self.path] += self.pending
        self.pending = ""

    def flush(self):
        self._sync()

    def close(self):
        self._sync()


class _Reader:
    def __init__(self, text):
        self.text = text

    def read(self):
        return self.text

    def close(self):
        pass


def _on(flash, fn):
    store.open = flash.open
    store.os = flash
    try:
        return fn()
    finally:
        store.open = _real_open
        store.os = _real_os


def _cuts(files, fat, op):
    """(files after the cut, step) for every cut of op, torn or not where it can tear; then the uncut end."""
    whole = Flash(files, fat)
    _on(whole, op)
    out = []
    for k in range(1, whole.steps + 1):
        for torn in (False, True) if whole.kinds[k - 1] == "write" else (False,):
            flash = Flash(files, fat, k, torn)
            try:
                _on(flash, op)
            except PowerCut:
                pass
            else:
                assert False, "step %d of %d was never reached" % (k, whole.steps)
            out.append((flash.files, "cut at step %d of %d%s" % (k, whole.steps, " (torn)" if torn else "")))
    return out, whole.files


def _good_texts(key, *states):
    """Every complete document text in these flash states: what a file holding the
    old or the new document (or one a settle moved into place) may contain."""
    out = []
    for files in states:
        for text in files.values():
            try:
                store.parse(text, key)
            except store.StoreError:
                continue
            out.append(text)
    return out


def _unique(states):
    seen = {}
    for files, where in states:
        key = repr(sorted(files.items()))
        if key not in seen:
            seen[key] = (files, where)
    return list(seen.values())


# -- config ------------------------------------------------------------------------------------


def _config_values(node_id):
    values = config.defaults()
    values["node_id"] = node_id
    values["site"] = "pier %d" % node_id
    return values


def _config_state(files, fat):
    """(values loaded, fallback)."""
    cfg = _on(Flash(files, fat), config.load)
    return cfg.values, cfg.fallback


def _check_config(files, fat, before, after, good_texts, where):
    values, fallback = _config_state(files, fat)
    assert values == before or values == after, "%s: a third config: %r" % (where, values)
    main = files.get(config.PATH)
    if main in good_texts:
        assert fallback is None, "%s: fallback %r with a good config.json" % (where, fallback)
        assert store.parse(main, config.KEY) == values, "%s: not the config.json on flash" % where
    else:
        assert fallback, "%s: loaded without config.json and reported nothing" % where
        if values != config.defaults():
            assert "interrupted save" in fallback, where


def _config_round(files, fat, node_id, depth, context=""):
    before, _ = _config_state(files, fat)
    after = _config_values(node_id)
    states, done = _cuts(files, fat, lambda: config.save(after))
    good = _good_texts(config.KEY, files, done)
    assert _config_state(done, fat) == (after, None)
    for survived, where in _unique(states):
        where = "%sconfig save %d, %s, %s" % (context, node_id, "FAT rename" if fat else "replacing rename", where)
        _check_config(survived, fat, before, after, good, where)
        if depth:
            _config_round(survived, fat, node_id + 1, depth - 1, where + "; then ")
            _config_boot(survived, fat, where)


def _config_boot(files, fat, where):
    """A boot after the cut (a load moves a recovered tmp into place), cut at every step."""
    before, _ = _config_state(files, fat)
    states, done = _cuts(files, fat, config.load)
    good = _good_texts(config.KEY, files, done)
    for survived, cut in _unique(states):
        _check_config(survived, fat, before, before, good, "%s; then boot, %s" % (where, cut))
    values, fallback = _config_state(done, fat)
    assert values == before, where
    assert fallback is None or values == config.defaults(), "%s; then boot: still %r" % (where, fallback)


def test_config_save_cut_at_every_step():
    for fat in (False, True):
        _config_round({}, fat, 7, 1)  # first save on a fresh node
        start = {config.PATH: store.dump(config.KEY, _config_values(5))}
        _config_round(start, fat, 7, 1)


# -- calibration -------------------------------------------------------------------------------


def _ids(cur, prev):
    return (cur["id"] if cur else None, prev["id"] if prev else None)


def _calib_state(files, fat):
    """((current id, previous id) as stored, id in use, fallback)."""
    def read():
        cal, fallback = calibration.load()  # first, as at boot: it moves a recovered tmp into place
        cur, prev, _problem = calibration.stored()
        return _ids(cur, prev), cal.id if cal is not None else None, fallback

    return _on(Flash(files, fat), read)


def _check_calib(files, fat, before, after, good_texts, where):
    slots, in_use, fallback = _calib_state(files, fat)
    assert slots == before or slots == after, "%s: slots %r, expected %r or %r" % (where, slots, before, after)
    assert in_use == slots[0], "%s: running %r with %r stored" % (where, in_use, slots)
    main = files.get(calibration.PATH)
    if main in good_texts:
        assert fallback is None, "%s: fallback %r with a good calib.json" % (where, fallback)
        assert store.parse(main, calibration.KEY)["id"] == in_use, "%s: not the calib.json on flash" % where
    elif in_use is not None:
        assert fallback and "interrupted save" in fallback, "%s: fallback %r" % (where, fallback)


def _calib_round(files, fat, op, name, depth, docs):
    before = _calib_state(files, fat)[0]
    states, done = _cuts(files, fat, op)
    after = _calib_state(done, fat)
    assert after[2] is None and after[1] == after[0][0], "%s: uncut %r" % (name, after)
    after = after[0]
    good = _good_texts(calibration.KEY, files, done)
    assert calibration.PREV_PATH not in done, "%s left the old previous file" % name
    for survived, where in _unique(states):
        where = "%s, %s, %s" % (name, "FAT rename" if fat else "replacing rename", where)
        _check_calib(survived, fat, before, after, good, where)
        if depth:
            doc = docs[0]
            _calib_round(survived, fat, lambda: calibration.save(doc), where + "; then save %d" % doc["id"],
                         depth - 1, docs[1:])
            if _calib_state(survived, fat)[0][1] is not None:
                _calib_round(survived, fat, calibration.rollback, where + "; then rollback", depth - 1, docs[1:])
            _calib_boot(survived, fat, where)


def _calib_boot(files, fat, where):
    """A boot after the cut (a load moves a recovered tmp into place), cut at every step."""
    before = _calib_state(files, fat)[0]
    states, done = _cuts(files, fat, calibration.load)
    good = _good_texts(calibration.KEY, files, done)
    for survived, cut in _unique(states):
        _check_calib(survived, fat, before, before, good, "%s; then boot, %s" % (where, cut))
    slots, _in_use, fallback = _calib_state(done, fat)
    assert slots == before and fallback is None, "%s; then boot: %r, %r" % (where, slots, fallback)


def _slots_file(cur, prev):
    return {calibration.PATH: store.dump(calibration.KEY, cur, ((calibration.PREV, prev),))}


def _old_two_files(cur, prev):
    files = {calibration.PATH: _old_format(cur)}
    if prev is not None:
        files[calibration.PREV_PATH] = _old_format(prev)
    return files


def _old_format(doc):
    body = store.canonical(doc)
    return '{"crc":%d,"calib":%s}\n' % (store.crc32_text(body), body)


def test_calibration_save_cut_at_every_step():
    for fat in (False, True):
        save_c = lambda: calibration.save(CAL_C)  # noqa: E731
        _calib_round({}, fat, save_c, "first save", 1, [CAL_D])
        _calib_round(_slots_file(CAL_A, None), fat, save_c, "second save", 1, [CAL_D])
        _calib_round(_slots_file(CAL_B, CAL_A), fat, save_c, "save", 1, [CAL_D])


def test_calibration_rollback_cut_at_every_step():
    for fat in (False, True):
        _calib_round(_slots_file(CAL_B, CAL_A), fat, calibration.rollback, "rollback", 1, [CAL_D])


def test_files_of_the_older_two_file_store_survive_cuts_too():
    for fat in (False, True):
        old = _old_two_files(CAL_B, CAL_A)
        _calib_round(old, fat, lambda: calibration.save(CAL_C), "save over old files", 0, [])
        _calib_round(old, fat, calibration.rollback, "rollback of old files", 0, [])
        _calib_round(_old_two_files(CAL_B, None), fat, lambda: calibration.save(CAL_C), "save over one old file",
                     0, [])


def test_the_harness_sees_the_unsafe_swap_it_was_built_for():
    # the swap this store replaced (previous over current, then the old current
    # into the previous file): the harness must catch its window
    def two_writes():
        cur = store.read(calibration.PATH, calibration.KEY)
        prev = store.read(calibration.PREV_PATH, calibration.KEY)
        store.write(calibration.PATH, calibration.KEY, prev)
        store.write(calibration.PREV_PATH, calibration.KEY, cur)

    start = {calibration.PATH: store.dump(calibration.KEY, CAL_B),
             calibration.PREV_PATH: store.dump(calibration.KEY, CAL_A)}
    states, _done = _cuts(start, False, two_writes)
    both_same = 0
    for files, _where in states:
        a = files.get(calibration.PATH)
        b = files.get(calibration.PREV_PATH)
        if a is not None and a == b:
            both_same += 1
    assert both_same, "no cut left the same calibration in both files"


# -- boot counter ------------------------------------------------------------------------------


def _boot_count(files, fat):
    """The count a boot after these files starts from (0: none), as next_boot reads it."""
    return _on(Flash(files, fat), lambda: bootcount.stored())[0]


def test_boot_count_and_floor_cut_at_every_step():
    # a cut leaves the old or the new count, so a number a finished boot used is never used again
    for fat in (False, True):
        for start in ({}, {bootcount.PATH: store.dump(bootcount.KEY, {"n": 41})}):
            old = _boot_count(start, fat)
            for name, op, new in (("boot", bootcount.next_boot, old + 1),
                                  ("floor", lambda: bootfloor.set_floor(5000), 5000)):
                states, done = _cuts(start, fat, op)
                assert _boot_count(done, fat) == new, name
                for survived, where in _unique(states):
                    n = _boot_count(survived, fat)
                    assert n in (old, new), "%s from %d, %s, %s: count %d" % (
                        name, old, "FAT rename" if fat else "replacing rename", where, n)
                    after, _ = _on(Flash(survived, fat), bootcount.next_boot)
                    assert after == n + 1
