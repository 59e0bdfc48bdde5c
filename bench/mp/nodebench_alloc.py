"""Heap bytes allocated per accelerometer block in steady state (bench/bench_node.py, part 1).

The sampler on the simulated ADXL345 at 200 Hz, blocks of 100 samples, frames
into a null port: FIFO read, calibration (or raw mode), feature accumulation,
encoding (auto: delta-bitpack when smaller; or raw), framing. After block
FROM, gc is disabled until block TO; gc.mem_alloc() grows by every byte
allocated in between (nothing is freed with gc off).

The feature window is 60 s and climate readings come once an hour, so neither
happens between block 10 and 60 (25 s): they are per-window and per-reading
events, measured on their own below with gc off over a few of each.

The simulated parts are measured alone too (the same bus traffic without the
node, gc off): they allocate nothing per sample on 64-bit ports, and if they
did on a port, the block figures would include it, so the bench says so.

Parameters (env NODEBENCH): from, to (blocks), windows (feature windows for
the per-window figure).
"""

import gc

import nodebench_rig as rig
from citynode_fw import calibration, config
from citynode_fw.features import Features
from citynode_fw.link import Link
from citynode_fw.node import probe
from citynode_fw.sampler import Sampler
from citynode_fw.status import Counters
from citynode_protocol import wire as messages  # what the node itself imports


class Rig:
    def __init__(self, calib, raw_mode, **cfg):
        self.clock, self.bus, self.board = rig.sim()
        self.out = rig.NullOut()
        self.counters = Counters()
        self.link = Link(1, self.counters, self.out, rig.Stdin())
        self.sampler = Sampler(self.link, self.counters, Features(), self._log)
        climate, _a = probe(self.bus, "climate", "auto")
        accel, _a = probe(self.bus, "accel", "auto")
        self.sampler.set_parts(climate, accel)
        values = config.defaults()
        values["accel_block_samples"] = 100
        values["feature_window_s"] = 60
        values["climate_period_s"] = 3600
        values.update(cfg)
        notes = self.sampler.configure(values, calib, self.board.ms())
        assert not notes, notes
        self.sampler.start_stream(self.board.ms())
        if raw_mode:
            self.sampler.set_raw_mode(True, self.board.ms())

    def _log(self, level, text):
        pass

    def blocks(self, n):
        """Run the sampler's loop until n blocks are done (no closure: the loop allocates nothing)."""
        s = self.sampler
        board = self.board
        while s.blocks < n:
            wait = s.poll(board.ms())
            board.sleep_ms(wait if wait < 20 else 20)

    def until_features(self, n):
        """Run until n feature windows have been sent (spectra finished)."""
        s = self.sampler
        board = self.board
        frames = self.out.frames
        while frames[messages.FEATURES] < n:
            wait = s.poll(board.ms())
            board.sleep_ms(wait if wait < 20 else 20)


def gc_off_delta(fn, arg):
    gc.collect()
    gc.disable()
    try:
        before = gc.mem_alloc()
        fn(arg)
        return gc.mem_alloc() - before
    finally:
        gc.enable()


def _sim_alone(ms):
    """(bytes, samples): what the simulated parts allocate serving ms of the
    node's bus traffic (less the driving loop's own four small buffers)."""
    clock, bus, _board = rig.sim()
    rig.drive_sim(clock, bus, 2000, climate=False)
    used = []
    samples = 0
    for span in (0, ms):
        gc.collect()
        gc.disable()
        try:
            before = gc.mem_alloc()
            samples, _readings = rig.drive_sim(clock, bus, span, climate=False, setup=False)
            used.append(gc.mem_alloc() - before)
        finally:
            gc.enable()
    return used[1] - used[0], samples


def main():
    p = rig.params()
    first = p.get("from", 10)
    last = p.get("to", 60)
    windows = p.get("windows", 2)
    cal = calibration.Calibration(rig.CALIBRATION)
    for calibrated in (True, False):
        for encoding in ("auto", "raw"):
            r = Rig(cal, not calibrated, accel_encoding=encoding, accel_odr_hz=200)
            r.blocks(first)
            used = gc_off_delta(r.blocks, last)
            s = r.sampler
            enc = "delta-bitpack" if encoding == "auto" and s._encoder.encoding == messages.ENCODING_DELTA_BITPACK else "raw-int16"
            rig.result(
                "alloc",
                calibrated=int(calibrated),
                encoding=enc,
                blocks=last - first,
                samples=(last - first) * s.block_n,
                bytes=used,
                frames=s.blocks,
                dropped=r.counters.tx_dropped,
                windows=s.features.windows,
                flags=s._cal_flags,
            )
    # per feature window (close + spectra + FEATURES frame): the default 10 s
    # window; the blocks in between allocate nothing (above)
    r = Rig(cal, False, feature_window_s=10, accel_odr_hz=200)
    r.until_features(1)
    used = gc_off_delta(r.until_features, 1 + windows)
    rig.result("alloc_window", windows=windows, bytes=used, window_samples=r.sampler.features.window_n)
    # per climate reading (start, read, calibrate, CLIMATE frame): every 2 s
    r = Rig(cal, False, climate_period_s=2, accel_odr_hz=200)
    r.blocks(4)
    readings = r.out.frames[messages.CLIMATE]
    used = gc_off_delta(r.blocks, 4 + 4 * 10)  # 20 s: 10 readings
    got = r.out.frames[messages.CLIMATE] - readings
    # the simulated SHT45's share: the same readings through the driver alone
    # (the drivers allocate nothing in start/read: tests/firmware measure it)
    sim_used = gc_off_delta(_climate_readings, (r, got))
    rig.result("alloc_climate", readings=got, bytes=used, sim_bytes=sim_used)
    used, samples = _sim_alone(20000)
    rig.result("alloc_sim", bytes=used, samples=samples)


def _climate_readings(arg):
    r, n = arg
    drv = r.sampler.climate
    board = r.board
    for _ in range(n):
        drv.start()
        board.sleep_ms(drv.CONVERSION_MS)
        drv.read()


main()
