"""citynode_fw.sampler against the simulated parts on a manual clock: framing,
timing, failures, calibration flags, and no allocation in steady state."""

import gc

import fw_helpers as h
from citynode_protocol import messages
from citynode_fw import calibration, config
from citynode_fw.features import Features
from citynode_fw.link import Link
from citynode_fw.node import probe
from citynode_fw.sampler import Sampler
from citynode_fw.status import Counters


class NullOut:
    """A serial port that takes everything and keeps nothing (for heap measurements)."""

    def __init__(self):
        self.bytes = 0

    def write(self, buf, n):
        self.bytes += n
        return n


class Rig:
    def __init__(self, data=None, out=None, calib=None, **cfg):
        self.clock = h.ManualClock()
        self.bus, self.scenario = h.sim_bus(self.clock, data)
        self.board = h.FakeBoard(self.clock, self.bus)
        self.cap = h.Capture()
        self.counters = Counters()
        self.link = Link(5, self.counters, out if out is not None else self.cap.out, h.ScriptedInput(), self.board)
        self.logs = []
        self.sampler = Sampler(self.link, self.counters, Features(), self._log)
        self.climate, _a = probe(self.bus, "climate", "auto")
        self.accel, self.accel_address = probe(self.bus, "accel", "auto")
        self.sampler.set_parts(self.climate, self.accel)
        values = config.defaults()
        values["accel_block_samples"] = 100  # these tests count in 100-sample blocks
        for key in cfg:
            values[key] = cfg[key]
        self.notes = self.sampler.configure(values, calib, self.board.ms())
        self.sampler.start_stream(self.board.ms())

    def _log(self, level, text):
        self.logs.append((level, text))

    def run_until(self, done, limit_ms=120000):
        """Run the sampler's loop until done() (bounded by limit_ms of node time)."""
        board = self.board
        end = board.ms() + limit_ms
        while not done():
            assert board.ms() < end, "not done after %d ms of node time" % limit_ms
            wait = self.sampler.poll(board.ms())
            board.sleep_ms(wait if wait < 20 else 20)

    def blocks(self, n, limit_ms=120000):
        """Run until n blocks are done: no closure, so a heap measurement sees the node only."""
        s = self.sampler
        board = self.board
        end = board.ms() + limit_ms
        while s.blocks < n:
            assert board.ms() < end, "not done after %d ms of node time" % limit_ms
            wait = s.poll(board.ms())
            board.sleep_ms(wait if wait < 20 else 20)

    def run_ms(self, ms):
        end = self.board.ms() + ms
        self.run_until(lambda: self.board.ms() >= end, ms + 1000)


ADXL345 = {"sensors": {"accel": "adxl345", "climate": "sht45"}}


def test_steady_state_does_not_allocate():
    out = NullOut()
    rig = Rig(ADXL345, out=out, accel_odr_hz=200, accel_block_samples=100, mode="raw")
    assert rig.sampler.odr_mhz == 200000 and not rig.notes
    rig.blocks(10)
    gc.collect()
    at10 = gc.mem_alloc()
    rig.blocks(50)  # two feature windows close on the way
    gc.collect()
    at50 = gc.mem_alloc()
    print("sampler heap after gc: block 10 %d bytes, block 50 %d bytes, growth %d" % (at10, at50, at50 - at10))
    assert at50 <= at10, "heap grew by %d bytes between block 10 and 50" % (at50 - at10)
    assert out.bytes > 0 and rig.counters.tx_dropped == 0


def test_blocks_allocate_nothing_with_gc_off():
    # a 60 s window does not close between block 10 and block 50 (12000 samples)
    out = NullOut()
    rig = Rig(ADXL345, out=out, accel_odr_hz=200, feature_window_s=60, climate_period_s=3600)
    rig.blocks(10)
    gc.collect()
    gc.disable()
    try:
        before = gc.mem_alloc()
        rig.blocks(50)
        used = gc.mem_alloc() - before
    finally:
        gc.enable()
    # the simulated part and bus are counted too: this bounds the node's share
    print("allocated with gc off over 40 blocks of 100 samples: %d bytes (%d per block)" % (used, used // 40))
    assert used == 0, "%d bytes allocated over 40 blocks" % used


def test_block_numbering_and_timing():
    rig = Rig(ADXL345, accel_odr_hz=200, accel_block_samples=50)
    start = rig.board.ms()
    rig.blocks(6)
    blocks = rig.cap.named("accel")
    assert len(blocks) == 6
    for k, m in enumerate(blocks):
        assert m["first_index"] == 50 * k and m["n_samples"] == 50
        assert m["odr_hz"] == 200.0 and m["range_g"] == 2
        # the frame carries its send time; age_ms leads back to the first sample
        assert m.time_ms - m["age_ms"] == start + 250 * k, (k, m.time_ms, m["age_ms"])
        assert m["flags"] == 0 and m["encoding"] in (messages.ENCODING_RAW, messages.ENCODING_DELTA_BITPACK)
        z = m["samples"][2::3]
        mean_g = sum(z) / len(z) / 16384
        assert 0.95 < mean_g < 1.05, mean_g
    seqs = [m.seq for m in rig.cap.messages]
    assert seqs == list(range(len(seqs))), "one sequence across all writers"
    times = [m.time_ms for m in rig.cap.messages]
    assert times == sorted(times), "frame times never go backwards"


def test_raw_encoding_frames_straight_from_the_payload():
    rig = Rig(ADXL345, accel_odr_hz=200, accel_encoding="raw")
    rig.blocks(3)
    blocks = rig.cap.named("accel")
    assert [m["encoding"] for m in blocks] == [messages.ENCODING_RAW] * 3
    assert len(blocks[2]["samples"]) == 300


def test_features_mode_sends_features_not_blocks():
    rig = Rig(ADXL345, accel_odr_hz=100, feature_window_s=1, mode="features")
    rig.run_ms(2600)
    assert rig.cap.named("accel") == []
    feats = rig.cap.named("features")
    assert len(feats) == 2
    f = feats[0]
    assert f["n_samples"] == 100 and f["window_s"] == 1.0
    assert abs(f["pitch_deg"]) < 1 and abs(f["roll_deg"]) < 1
    assert (feats[1].time_ms - feats[1]["age_ms"]) - (f.time_ms - f["age_ms"]) == 1000


def test_climate_first_reading_at_boot_then_every_period():
    rig = Rig(ADXL345, climate_period_s=2)
    rig.run_ms(4500)
    readings = rig.cap.named("climate")
    # sent when read, one conversion time after the start
    assert len(readings) == 3 and readings[0].time_ms < 100
    for a, b in zip(readings, readings[1:]):
        assert abs(b.time_ms - a.time_ms - 2000) <= 50, (a.time_ms, b.time_ms)
    for m in readings:
        assert m["status"] == 0
        assert abs(m["temperature_c"] - 21.5) < 0.5 and abs(m["relative_humidity_pct"] - 48) < 2


def test_climate_read_waits_from_the_command_and_retries_a_nack():
    # the node loop may pass at any time (a command line, the uplink's work): here every 2 ms.
    # The first start reached the part 6 ms after the pass began (the bus held, as the
    # virtual board's scenario reload holds it at boot): the read must still come after
    # the part's 15 ms, counted from the command
    rig = Rig({"sensors": {"accel": "adxl345", "climate": "sht35"}}, climate_period_s=60)
    held = [6]

    def hold_once():
        if held:
            rig.clock.advance_ms(held.pop())

    rig.bus.hook = hold_once
    board = rig.board
    while board.ms() < 100:
        rig.sampler.poll(board.ms())
        board.sleep_ms(2)
    readings = rig.cap.named("climate")
    assert len(readings) == 1 and readings[0]["status"] == 0, readings
    assert rig.counters.sensor_errors == rig.counters.timeouts == 0 and not rig.logs
    s = rig.sampler
    s._climate_due = board.ms()
    s.poll(board.ms())
    assert s._climate_pending
    s._climate_t -= 3  # a start stamped too early anyway: the first read is NACKed and tried again
    while board.ms() < 200:
        s.poll(board.ms())
        board.sleep_ms(1)
    readings = rig.cap.named("climate")
    assert len(readings) == 2 and readings[1]["status"] == 0, readings
    assert rig.counters.sensor_errors == rig.counters.timeouts == 0 and not rig.logs


def test_climate_part_that_never_answers_is_a_timeout_within_the_bound():
    rig = Rig({"sensors": {"accel": "adxl345", "climate": "sht35"}}, climate_period_s=60)
    sht = rig.climate
    transfers = []

    def gone_after_the_start():
        transfers.append(rig.board.ms())
        if len(transfers) == 2:
            rig.bus.detach(0x44)  # the start (the first transfer) was taken, then the part is gone

    rig.bus.hook = gone_after_the_start
    rig.run_ms(500)
    readings = rig.cap.named("climate")
    assert [m["status"] for m in readings] == [messages.CLIMATE_SENSOR_ERROR]
    assert rig.counters.timeouts == 1 and rig.counters.sensor_errors == 0
    assert readings[0].time_ms - transfers[0] <= sht.CONVERSION_MS + 10 + 20  # + _READ_SLACK_MS + a loop pass
    assert "no measurement" in rig.logs[-1][1], rig.logs


def test_climate_crc_error_is_reported_and_counted():
    rig = Rig(ADXL345, climate_period_s=2)
    rig.bus.device(0x44).bad_crc = True
    rig.run_ms(2500)
    readings = rig.cap.named("climate")
    bad = messages.CLIMATE_SENSOR_ERROR | messages.CLIMATE_CRC_ERROR
    assert readings and all(m["status"] == bad for m in readings)
    assert rig.counters.crc_errors == len(readings)
    assert not rig.sampler.climate_ok and rig.sampler.streaming
    assert len(rig.cap.named("accel")) >= 4  # the accelerometer went on
    rig.bus.device(0x44).bad_crc = False
    rig.run_ms(2000)
    assert rig.cap.named("climate")[-1]["status"] == 0 and rig.sampler.climate_ok


def test_accel_that_disappears_is_counted_and_retried():
    rig = Rig(ADXL345, climate_period_s=2)
    rig.blocks(2)
    dev = rig.bus.device(rig.accel_address)
    rig.bus.detach(rig.accel_address)
    rig.run_ms(3000)
    assert not rig.sampler.accel_ok
    assert rig.counters.sensor_errors >= 2
    assert len(rig.cap.named("climate")) >= 2  # climate went on
    assert any("accel read failed" in text for _level, text in rig.logs)
    rig.bus.attach(rig.accel_address, dev)
    rig.run_ms(1500)
    assert rig.sampler.accel_ok


def test_calibrated_and_raw_mode_flags():
    h.enter_tmpdir("smp")
    try:
        cal = calibration.Calibration({"id": 9, "accel": {"bias_g": [0.0, 0.0, 0.5]}})
        rig = Rig(ADXL345, calib=cal, accel_odr_hz=200)
        rig.blocks(1)
        m = rig.cap.named("accel")[-1]
        assert m["flags"] == messages.ACCEL_CALIBRATED
        z = m["samples"][2::3]
        assert abs(sum(z) / len(z) / 16384 - 0.5) < 0.05  # 1 g minus a 0.5 g bias
        rig.sampler.set_raw_mode(True, rig.board.ms())
        rig.blocks(rig.sampler.blocks + 1)
        m = rig.cap.named("accel")[-1]
        assert m["flags"] == messages.ACCEL_UNCALIBRATED_MODE
        z = m["samples"][2::3]
        assert abs(sum(z) / len(z) / 16384 - 1.0) < 0.05
        assert m["first_index"] == 0  # raw mode restarts the stream
    finally:
        h.leave_tmpdir()


def test_unsupported_odr_is_adjusted_with_a_note():
    rig = Rig({"sensors": {"accel": "adxl355"}}, accel_odr_hz=200)
    assert rig.sampler.odr_mhz == 250000
    assert rig.notes and "250000" in rig.notes[0]


def test_shorter_climate_period_applies_at_once():
    rig = Rig(ADXL345, climate_period_s=60)
    rig.run_ms(3000)
    assert len(rig.cap.named("climate")) == 1  # the reading at boot
    values = config.defaults()
    values["accel_block_samples"] = 100
    values["climate_period_s"] = 2
    rig.sampler.configure(values, None, rig.board.ms())
    rig.run_ms(2500)
    assert len(rig.cap.named("climate")) == 2, "the next reading waited for the old 60 s period"


def test_mounted_calibration_flags_blocks_calibrated_only():
    # 0x02 is raw-data mode on ACCEL and tilt-relative on FEATURES: never mixed
    h.enter_tmpdir("smp")
    try:
        doc = {"id": 3, "accel": {"bias_g": [0.0, 0.0, 0.0], "rotation": [[1, 0, 0], [0, 1, 0], [0, 0, 1]], "tilt_zero_deg": [1.0, -2.0]}}
        rig = Rig(ADXL345, calib=calibration.Calibration(doc), accel_odr_hz=100, feature_window_s=1)
        rig.run_ms(2600)
        blocks = rig.cap.named("accel")
        assert blocks and all(m["flags"] == messages.ACCEL_CALIBRATED for m in blocks)
        feats = rig.cap.named("features")
        assert feats and all(f["flags"] == messages.ACCEL_CALIBRATED | messages.FEATURES_TILT_RELATIVE for f in feats)
    finally:
        h.leave_tmpdir()


# -- FIFO overflow: the samples after it keep their times ---------------------------------


def _stalled(part, odr_hz, stall_ms):
    """A node held up for stall_ms part way into a block; returns (rig, stream start ms)."""
    rig = Rig({"sensors": {"accel": part, "climate": "sht45"}}, accel_odr_hz=odr_hz, climate_period_s=3600)
    start = rig.board.ms()
    rig.blocks(2)
    rig.run_ms(130)  # part way into the third block
    rig.board.sleep_ms(stall_ms)  # no poll: the FIFO overflows
    rig.blocks(rig.sampler.blocks + 3)
    return rig, start


def _check_gap_bridged(part, odr_hz, stall_ms):
    rig, start = _stalled(part, odr_hz, stall_ms)
    s = rig.sampler
    odr = s.odr_mhz / 1000
    blocks = rig.cap.named("accel")
    gap = messages.ACCEL_OVERRUN | messages.ACCEL_GAP_ESTIMATED
    marked = [k for k, m in enumerate(blocks) if m["flags"] & messages.ACCEL_GAP_ESTIMATED]
    assert len(marked) == 1, [m["flags"] for m in blocks]
    k = marked[0]
    before, after = blocks[k - 1], blocks[k]
    assert after["flags"] == gap and rig.counters.fifo_overruns >= 1
    assert 0 < before["n_samples"] < 100, "the samples before the gap go out as a short block"
    assert before["flags"] == 0, "they came before the overflow"
    lost = after["first_index"] - before["first_index"] - before["n_samples"]
    assert lost > 0.5 * stall_ms * odr / 1000 - 32
    for m in blocks[k + 1 :]:
        assert m["flags"] == 0 and m["n_samples"] == 100
    for a, b in zip(blocks, blocks[1:]):
        if b is not after:
            assert b["first_index"] == a["first_index"] + a["n_samples"]
    # every block's first sample at stream start + index / ODR, as the part took it
    tol = 2 * 1000 / odr + 1  # the estimate: a sample either side, and the ms clock
    for m in blocks:
        t = m.time_ms - m["age_ms"]
        want = start + 1000 * m["first_index"] / odr
        assert abs(t - want) <= tol, (m["first_index"], t, want, m["flags"])
    # and the index went on by as many samples as the part really took
    dev = rig.bus.device(rig.accel_address)
    counted = s.index + s._fill + rig.accel.fifo_level()
    assert abs(counted - dev.samples) <= 2, (counted, dev.samples)


class StallingOut:
    """The link's port, held up for `ms` on its `at`-th write (a host that stops reading)."""

    def __init__(self, out, board, at, ms):
        self.out, self.board, self.at, self.ms = out, board, at, ms

    def write(self, buf, n):
        self.at -= 1
        if self.at == 0:
            self.board.sleep_ms(self.ms)
        return self.out.write(buf, n)


def test_fifo_overflow_during_a_send_keeps_sample_times():
    # the node stalls inside its poll, sending a block: the poll's time is old by then
    rig = Rig({"sensors": {"accel": "adxl355", "climate": "sht45"}}, accel_odr_hz=250, climate_period_s=3600)
    start = rig.board.ms()
    rig.link.out = StallingOut(rig.link.out, rig.board, 3, 600)
    rig.blocks(8)
    odr = rig.sampler.odr_mhz / 1000
    blocks = rig.cap.named("accel")
    assert sum(1 for m in blocks if m["flags"] & messages.ACCEL_GAP_ESTIMATED) == 1
    times = [m.time_ms for m in rig.cap.messages]
    assert times == sorted(times), "frame times never go backwards"
    for m in blocks:
        t = m.time_ms - m["age_ms"]
        want = start + 1000 * m["first_index"] / odr
        assert abs(t - want) <= 2 * 1000 / odr + 1, (m["first_index"], t, want, m["flags"])


def test_fifo_overflow_adxl355_keeps_sample_times():
    _check_gap_bridged("adxl355", 250, 500)


def test_fifo_overflow_adxl345_keeps_sample_times():
    _check_gap_bridged("adxl345", 200, 700)


def test_fifo_overflow_lis3dh_keeps_sample_times():
    _check_gap_bridged("lis3dh", 400, 300)


def test_full_fifo_without_loss_is_no_gap():
    # the ADXL345 flags an overrun as soon as its FIFO is full, before it drops a sample
    rig = Rig(ADXL345, accel_odr_hz=200, climate_period_s=3600)
    rig.blocks(1)
    rig.board.sleep_ms(140)  # 4 samples waited already: the FIFO fills to 32, no more
    rig.blocks(4)
    blocks = rig.cap.named("accel")
    assert rig.counters.fifo_overruns == 1
    assert all(not m["flags"] & messages.ACCEL_GAP_ESTIMATED for m in blocks)
    assert all(b["first_index"] == a["first_index"] + a["n_samples"] for a, b in zip(blocks, blocks[1:]))


def test_overflow_longer_than_the_limit_restarts_the_stream():
    rig = Rig({"sensors": {"accel": "adxl355", "climate": "sht45"}}, accel_odr_hz=250, climate_period_s=3600)
    rig.blocks(2)
    rig.board.sleep_ms(61000)
    restart = rig.board.ms()
    rig.run_ms(900)  # two blocks more
    blocks = rig.cap.named("accel")
    # the samples read before the stall (a short block), then the stream from 0
    assert [(m["first_index"], m["flags"]) for m in blocks] == [
        (0, 0), (100, 0), (200, 0), (0, messages.ACCEL_OVERRUN), (100, 0)]
    assert abs(blocks[3].time_ms - blocks[3]["age_ms"] - restart) <= 2
    assert any("stream restarted" in text for _level, text in rig.logs)


def test_overflow_allocates_nothing_with_gc_off():
    out = NullOut()
    rig = Rig({"sensors": {"accel": "adxl355", "climate": "sht45"}}, out=out, accel_odr_hz=250,
              feature_window_s=60, climate_period_s=3600)
    rig.blocks(3)
    rig.run_ms(130)
    gc.collect()
    gc.disable()
    try:
        before = gc.mem_alloc()
        rig.board.sleep_ms(500)
        rig.blocks(8)
        used = gc.mem_alloc() - before
    finally:
        gc.enable()
    assert rig.counters.fifo_overruns >= 1
    assert used == 0, "%d bytes allocated over an overflow and 5 blocks" % used


def test_no_feature_window_spans_an_overflow():
    rig = Rig({"sensors": {"accel": "adxl355", "climate": "sht45"}}, accel_odr_hz=250, feature_window_s=1,
              mode="features", climate_period_s=3600)
    start = rig.board.ms()
    rig.run_ms(1500)
    stalled = rig.board.ms()
    rig.board.sleep_ms(500)
    rig.run_ms(2600)
    windows = [(f.time_ms - f["age_ms"], f["n_samples"]) for f in rig.cap.named("features")]
    assert windows[0][0] == start and all(n == 250 for _t, n in windows)
    assert len(windows) >= 3
    for t, _n in windows:
        assert t + 1000 <= stalled or t >= stalled + 500 - 32 * 4 - 5, (t, stalled, windows)


def test_short_block_before_an_overflow_in_raw_encoding():
    rig = Rig({"sensors": {"accel": "adxl355", "climate": "sht45"}}, accel_odr_hz=250, accel_encoding="raw",
              climate_period_s=3600)
    rig.blocks(1)
    rig.run_ms(130)
    rig.board.sleep_ms(500)
    rig.blocks(rig.sampler.blocks + 2)
    blocks = rig.cap.named("accel")
    short = [m for m in blocks if m["n_samples"] < 100]
    assert len(short) == 1 and short[0]["encoding"] == messages.ENCODING_RAW
    z = short[0]["samples"][2::3]
    assert len(z) == short[0]["n_samples"] and all(0.95 < v / 16384 < 1.05 for v in z)
    assert blocks[-1]["n_samples"] == 100 and len(blocks[-1]["samples"]) == 300


def test_fifo_overflow_at_4_khz_keeps_sample_times():
    # the rate of the field report: the FIFO holds 8 ms; the ms clock is 4 samples
    _check_gap_bridged("adxl355", 4000, 50)
