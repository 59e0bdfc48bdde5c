"""A FIFO overflow, end to end: a virtual node held up so that its accelerometer
FIFO overflows (the scenario's `stall`), `citynode record`, `citynode decode`,
and the decoded samples against the scenario's clock on both sides of each gap.

The scenario shakes the part with one sine on z. Its phase at a sample is fixed
by when the part took it (the simulator keeps the phase running through the
samples it dropped), so fitting the sine to each contiguous run of decoded
samples, at their decoded times, must give the same phase in every run: a run
whose times were off by the lost samples (the fault this guards against)
would be out of phase by stall x frequency. The node estimates the gap from
its clock: a sample or two either way (4 ms each at 250 Hz).
"""

import math

import numpy as np

from citynode.commands.decode import decode_capture
from citynode.demo import NODE_HEAP, provision
from citynode.tables import TableSet
from citynode.traffic import TrafficBuilder
from citynode_protocol import messages
from test_end_to_end import record_and_decode
from vnode_fixtures import virtual_node

FREQ_HZ = 2.5
AMP_G = 0.5
SCENARIO = {
    "gravity": [0.0, 0.0, 1.0],
    "vibration": [{"freq_hz": FREQ_HZ, "amp_g": AMP_G, "axis": [0.0, 0.0, 1.0]}],
    "noise_g": 0.0,
    "sensors": {"accel": "adxl355", "climate": "sht35"},
}
ODR_HZ = 250  # an ADXL355 rate: its 32-sample FIFO holds 128 ms
STALL = {"every_s": 1.5, "ms": 400}  # each stall drops about 70 samples
PHASE_TOL_MS = 16.0  # the node's estimate: a few samples and the ms clock (a fault: ~300 ms)


def sine_fit(t, z):
    """(phase in rad at t = 0, amplitude, rms residual) of z ~ c + A sin(2 pi f t + phase)."""
    w = 2 * math.pi * FREQ_HZ
    x = np.column_stack([np.sin(w * t), np.cos(w * t), np.ones_like(t)])
    (a, b, _c), *_ = np.linalg.lstsq(x, z, rcond=None)
    resid = z - x @ np.array([a, b, _c])
    return math.atan2(b, a), math.hypot(a, b), float(np.sqrt(np.mean(resid**2)))


def test_decode_joins_blocks_only_where_the_index_runs_on(tmp_path):
    """gap_before and segment per block and sample, across batch boundaries."""
    one, two = TrafficBuilder(1), TrafficBuilder(2)
    block = np.zeros((4, 3), int)
    gap = messages.ACCEL_OVERRUN | messages.ACCEL_GAP_ESTIMATED
    wire = b"".join([
        one.accel_block(100, block),  # 0..3
        two.accel_block(100, block),
        one.accel_block(120, block),  # 4..7
        one.accel_block(200, block, flags=gap, first_index=20),  # 12 samples lost
        two.accel_block(200, block),  # node 2 runs on
        one.accel_block(220, block),  # 24..27
        one.accel_block(300, block, first_index=0),  # the stream started again
    ])
    one.restart()
    wire += one.accel_block(50, block)  # the node started again
    capture = tmp_path / "c.bin"
    capture.write_bytes(wire)
    out = tmp_path / "t"
    out.mkdir()
    tables = TableSet(str(out), "csv")
    with open(capture, "rb") as f:
        decode_capture(f, tables, chunk=37)  # many batches: the runs carry over
    tables.close()
    import csv

    with open(out / "accel_blocks.csv") as f:
        blocks = [(int(r["node_id"]), int(r["gap_before"]), int(r["segment"])) for r in csv.DictReader(f)]
    assert blocks == [(1, 0, 0), (2, 0, 0), (1, 0, 0), (1, 12, 1), (2, 0, 0), (1, 0, 1), (1, -1, 2), (1, -1, 3)]
    with open(out / "accel.csv") as f:
        samples = [(int(r["node_id"]), int(r["sample_index"]), int(r["segment"])) for r in csv.DictReader(f)]
    assert [s for n, i, s in samples if n == 1] == [0] * 8 + [1] * 8 + [2] * 4 + [3] * 4
    assert [i for n, i, s in samples if n == 1][:16] == list(range(8)) + list(range(20, 28))


def test_samples_after_a_fifo_overflow_keep_the_scenarios_clock(tmp_path, capsys):
    with virtual_node(tmp_path, scenario=SCENARIO, with_app=True, heap=NODE_HEAP) as node:
        provision(node, {"accel_odr_hz": ODR_HZ, "accel_block_samples": 100})
        node.set_scenario(stall=STALL)  # from now on the node is held up now and then
        tables, _summary = record_and_decode(node, tmp_path, 6.0, capsys)

    blocks = tables["accel_blocks"]
    gaps = [b for b in blocks if b["flags"] & messages.ACCEL_GAP_ESTIMATED]
    assert len(gaps) >= 2, [(b["first_index"], b["flags"]) for b in blocks]
    for b in gaps:  # (a busy machine may hold the node up more often: those gaps count too)
        assert b["flags"] & messages.ACCEL_OVERRUN and b["gap_before"] > 0, b
    assert all(b["gap_before"] == 0 for b in blocks if not b["flags"] & messages.ACCEL_GAP_ESTIMATED)

    rows = tables["accel"]
    segment = np.array([r["segment"] for r in rows])
    t = np.array([r["node_time_s"] for r in rows])
    z = np.array([r["az_g"] for r in rows])
    index = np.array([r["sample_index"] for r in rows])
    runs = sorted(set(segment.tolist()))
    assert len(runs) == len(gaps) + 1
    phases = []
    for s in runs:
        pick = segment == s
        assert np.all(np.diff(index[pick]) == 1), "a segment is contiguous"
        if pick.sum() < ODR_HZ // 2:
            continue  # too short to fit well (the last, cut by the recording's end)
        phase, amp, resid = sine_fit(t[pick], z[pick])
        assert abs(amp - AMP_G) < 0.01 and resid < 0.005, (s, amp, resid)  # times within a run
        phases.append(phase)
    assert len(phases) >= 3
    for phase in phases[1:]:
        off = (phase - phases[0] + math.pi) % (2 * math.pi) - math.pi
        off_ms = off / (2 * math.pi * FREQ_HZ) * 1000
        assert abs(off_ms) <= PHASE_TOL_MS, "a run after a gap is %.1f ms off the scenario's clock" % off_ms
