"""Node time wraps at 2^30 ms (a small int on every port) and the frame header's
u32 time at 2^32: a node started just before either runs across it with
continuous frame times, sample indices, ages, feature windows, uptime and UTC,
and its accelerometer block path allocates no more after the wrap than before."""

import gc
import sys
import time

import fw_helpers as h
from mp_skip import SkipTest
from citynode_fw import config, nodetime
from citynode_fw.features import Features
from citynode_fw.link import Link
from citynode_fw.node import Node, probe
from citynode_fw.sampler import Sampler
from citynode_fw.status import Counters

WRAP = nodetime.MASK + 1  # 2^30 (a long int on a 32-bit port: tests only)
U32 = 1 << 32
ADXL345 = {"sensors": {"accel": "adxl345", "climate": "sht45"}}
UTC = 1795000000000


def test_diff_and_add_wrap_at_2_30():
    m = nodetime.MASK
    assert nodetime.diff(5, 3) == 2 and nodetime.diff(3, 5) == -2
    assert nodetime.diff(2, m - 1) == 4 and nodetime.diff(m - 1, 2) == -4
    assert nodetime.diff(0, m) == 1 and nodetime.diff(m, 0) == -1
    assert nodetime.diff(1 << 29, 0) == -(1 << 29) and nodetime.diff((1 << 29) - 1, 0) == (1 << 29) - 1
    assert nodetime.add(m - 2, 5) == 2 and nodetime.add(7, 0) == 7 and nodetime.add(0, m) == m
    assert nodetime.add(m, m) == m - 1


def test_boards_wrap_at_2_30_and_count_wraps():
    clock = h.ManualClock()
    board = h.FakeBoard(clock, start_ms=WRAP - 3)
    assert board.ms() == WRAP - 3 and board.wraps == 0
    clock.advance_us(2500)
    assert board.ms() == WRAP - 1 and board.wraps == 0
    clock.advance_us(600)  # 3.1 ms in all: the fraction is kept
    assert board.ms() == 0 and board.wraps == 1
    assert board.wraps_at(WRAP - 1) == 0 and board.wraps_at(0) == 1
    board.sleep_ms(5000)
    assert board.ms() == 5000 and board.wraps == 1
    # without start_ms it reads the clock's ms, as before
    assert h.FakeBoard(h.ManualClock(12345678)).ms() == 12345


def test_real_board_wraps_at_2_30():
    try:
        from citynode_fw.board import Board
    except ImportError as exc:  # no `machine` module (the WebAssembly port)
        raise SkipTest("citynode_fw.board needs a port with `machine`: %s" % exc)

    real = Board()
    real.ms()
    real._ms = nodetime.MASK - 1
    time.sleep_ms(5)
    t = real.ms()
    assert 0 <= t < 1000 and real.wraps == 1, (t, real.wraps)


def _run_across(wraps):
    """A node from 7 s before its clock's 2^30 wrap (and a 4th wrap of the header
    time when wraps is 3), its sample counter 5 s before its own, run for 14 s."""
    start = WRAP - 7000
    clock = h.ManualClock()
    bus, _scenario = h.sim_bus(clock, ADXL345)
    board = h.FakeBoard(clock, bus, start_ms=start, wraps=wraps)
    values = config.defaults()
    values["node_id"] = 9
    values["accel_odr_hz"] = 200
    values["accel_block_samples"] = 100  # a block every 500 ms
    values["feature_window_s"] = 1
    values["climate_period_s"] = 2
    values["status_period_s"] = 5
    cap = h.Capture()
    node = Node(board, config.Config(values), None, None, cap.out, h.ScriptedInput())
    node.start(bus)
    node.sampler.index = WRAP - 1000
    node.sampler.index_wraps = wraps
    node.set_time(UTC)
    node.run_for(14000)
    msgs = cap.new()
    t0 = (wraps << 30) + start  # the first frame's u32 time

    def since(m):
        return (m.time_ms - t0) % U32

    stats = cap.decoder.stats
    assert stats.bad_frames == 0 and stats.bytes_skipped == 0
    assert [m.seq for m in msgs] == list(range(len(msgs))), "a frame was dropped"
    assert node.counters.tx_dropped == 0 and node.counters.fifo_overruns == 0
    ages = [since(m) for m in msgs]
    assert ages == sorted(ages) and ages[0] == 0 and 13500 <= ages[-1] < 14100, ages[-1]
    assert any(since(m) < 7000 for m in msgs) and any(since(m) > 7000 for m in msgs)
    assert board.wraps == wraps + 1

    blocks = [m for m in msgs if m.name == "accel"]
    assert len(blocks) == 27, len(blocks)  # the 28th is due at 14 s
    first0 = ((wraps << 30) + WRAP - 1000) % U32
    for k, m in enumerate(blocks):
        assert m["first_index"] == (first0 + 100 * k) % U32, (k, m["first_index"])
        assert m["n_samples"] == 100 and 0 <= m["age_ms"] < 1000
        assert (m.time_ms - m["age_ms"] - t0) % U32 == 500 * k, (k, m.time_ms, m["age_ms"])

    windows = [m for m in msgs if m.name == "features"]
    assert len(windows) == 13, len(windows)
    for k, m in enumerate(windows):
        assert m["n_samples"] == 200 and m["window_s"] == 1.0
        assert (m.time_ms - m["age_ms"] - t0) % U32 == 1000 * k, (k, m.time_ms, m["age_ms"])

    status = [m for m in msgs if m.name == "status"]
    assert [m["uptime_s"] for m in status] == [0, 5, 10]
    assert [since(m) for m in status] == [0, 5000, 10000]
    assert node.uptime_s() == 14

    times = [m for m in msgs if m.name == "time"]
    assert len(times) == 4  # set_time, then with every STATUS
    for m in times:
        assert m["utc_ms"] - UTC == since(m), (m["utc_ms"] - UTC, since(m))

    climate = [since(m) for m in msgs if m.name == "climate"]
    assert len(climate) == 7 and climate[0] < 100
    for a, b in zip(climate, climate[1:]):
        assert abs(b - a - 2000) <= 50, (a, b)
    return msgs


def test_node_runs_across_the_2_30_wrap():
    msgs = _run_across(0)
    # the header's bit 30 carries the wrap: frame times go on past 2^30
    assert any(m.time_ms >= WRAP for m in msgs) and all(m.time_ms < WRAP + 8000 for m in msgs)


def test_node_runs_across_the_2_32_header_wrap():
    msgs = _run_across(3)
    assert any(m.time_ms > U32 - 8000 for m in msgs) and any(m.time_ms < 8000 for m in msgs)
    firsts = [m["first_index"] for m in msgs if m.name == "accel"]
    assert firsts[0] == U32 - 1000 and firsts[10] == 0


class NullOut:
    def write(self, buf, n):
        return n


def _blocks(sampler, board, n):
    """Run the sampler's loop until n blocks are done (no closure: the heap sees the node only)."""
    while sampler.blocks < n:
        wait = sampler.poll(board.ms())
        board.sleep_ms(wait if wait < 20 else 20)


def _alloc(sampler, board, n):
    gc.collect()
    gc.disable()
    try:
        before = gc.mem_alloc()
        _blocks(sampler, board, n)
        return gc.mem_alloc() - before
    finally:
        gc.enable()


def test_block_path_allocates_no_more_after_the_wrap():
    clock = h.ManualClock()
    bus, _scenario = h.sim_bus(clock, ADXL345)
    board = h.FakeBoard(clock, bus, start_ms=WRAP - 6000)
    counters = Counters()
    link = Link(5, counters, NullOut(), h.ScriptedInput(), board)
    s = Sampler(link, counters, Features(), lambda level, text: None)
    climate, _a = probe(bus, "climate", "auto")
    accel, _a = probe(bus, "accel", "auto")
    s.set_parts(climate, accel)
    values = config.defaults()
    values["accel_odr_hz"] = 200
    values["accel_block_samples"] = 100
    values["feature_window_s"] = 60  # no window closes while measured
    values["climate_period_s"] = 3600
    s.configure(values, None, board.ms())
    s.start_stream(board.ms())
    s.index = WRAP - 1300  # wraps in block 13, the clock in block 12
    _blocks(s, board, 2)
    before = _alloc(s, board, 8)
    assert board.wraps == 0 and s.index_wraps == 0
    across = _alloc(s, board, 20)
    assert board.wraps == 1 and s.index_wraps == 1
    after = _alloc(s, board, 30)
    print("allocated with gc off: blocks 2-8 %d, 8-20 (the wraps) %d, 20-30 %d bytes" % (before, across, after))
    # per block (6, 12 and 10 blocks): no more after the wraps than before
    assert across * 6 <= before * 12 and after * 6 <= before * 10, (before, across, after)
    if sys.maxsize > U32:
        assert before == 0 and across == 0 and after == 0
    assert counters.tx_dropped == 0
