"""Seeded fuzzing of both decoders (citynode.fuzz), bounded to a few seconds.

Every input: real traffic, frames with valid CRCs and absurd field values, or
the worst pieces for junk recovery, then damaged. Neither decoder raises,
accepts a frame that was not in the input untouched, or loses one that was;
the two agree, fed whole or in pieces. The work of the junk search is counted
(never timed here): bench/fuzz_decoders.py runs 10^6 inputs and times them.
"""

import numpy as np
import pytest

from citynode import fuzz, traffic
from citynode_protocol import decoder
from citynode_protocol.cobs import max_encoded_length
from citynode_protocol.frame import MAX_FRAME

SEEDS = range(40)


def test_the_seeds_cover_every_kind_and_damage():
    inputs = [fuzz.make_input(seed) for seed in SEEDS]
    assert {inp.kind for inp in inputs} == set(fuzz.KINDS)
    assert sum(len(inp.untouched) for inp in inputs) > 300
    # the same seed gives the same input
    again = fuzz.make_input(7)
    assert (again.data, again.untouched) == (inputs[7].data, inputs[7].untouched)


@pytest.mark.parametrize("seed", SEEDS)
def test_decoders_on_fuzz_input(seed):
    inp = fuzz.make_input(seed)
    res = fuzz.check(inp)
    assert res.exceptions == [], inp
    assert (res.corrupt, res.lost) == (0, 0), inp
    assert res.disagreements == [], inp


def test_the_checks_can_fail():
    """A decoder that drops a frame, or takes one that was not sent, is caught."""
    node = traffic.TrafficBuilder(1)
    good = [node.climate(1000 * k, 20.0, 50.0) for k in range(4)]
    inp = fuzz.Input(0, "traffic", b"".join(good), [fuzz._raw_of(w) for w in good])
    assert fuzz.check(inp).ok
    extra = fuzz.Input(0, "traffic", inp.data, inp.untouched + inp.untouched[:1])  # one more planted than sent
    assert fuzz.check(extra).lost == 1
    # accepted, and neither planted nor in the input byte for byte: corrupt
    other = fuzz._raw_of(traffic.TrafficBuilder(2).climate(5, 20.0, 50.0))
    assert fuzz._corrupt(inp.untouched + [other], inp) == 1
    assert fuzz._corrupt(inp.untouched + inp.untouched[:1], inp) == 1  # taken twice, sent once
    assert fuzz._corrupt(inp.untouched[1:], inp) == 0


class _Work:
    """Bytes the reference decoder's frame search handles: decoded, and visited by first_frame_start."""

    def __init__(self, monkeypatch):
        self.bytes = 0
        unstuff, search = decoder.unstuff, decoder.first_frame_start

        def counted_unstuff(seg, *args):
            self.bytes += len(seg)
            return unstuff(seg, *args)

        def counted_search(seg, *args):
            self.bytes += len(seg)
            return search(seg, *args)

        monkeypatch.setattr(decoder, "unstuff", counted_unstuff)
        monkeypatch.setattr(decoder, "first_frame_start", counted_search)


def test_junk_search_work_is_linear_in_the_worst_pieces(monkeypatch):
    """Pieces where nearly every start qualifies (the old search decoded each: quadratic)."""
    rng = np.random.default_rng(1)
    limit = max_encoded_length(MAX_FRAME)
    node = traffic.TrafficBuilder(2)
    junk = [fuzz.dense_chain(n, rng) for n in (limit, limit - 1, 2000, limit + 1, 3 * limit)]
    data = b"".join(j + node.climate(100 * k, 20.0, 50.0) for k, j in enumerate(junk))
    starts = sum(1 for s in range(1, limit) if junk[0][s - 1] > 1 and junk[0][s] >> 5 == 1)
    assert starts > 0.95 * limit  # the piece really is the worst case
    work = _Work(monkeypatch)
    msgs, stats = decoder.decode_all(data)
    assert [m.seq for m in msgs] == [0, 1, 2, 3, 4]
    # each piece: decoded whole once, searched once, the frame found decoded once
    assert work.bytes <= 3 * len(data)


def test_junk_search_work_is_linear_on_fuzz_inputs(monkeypatch):
    work = _Work(monkeypatch)
    total = 0
    for seed in SEEDS:
        inp = fuzz.make_input(seed)
        decoder.decode_all(inp.data)
        total += len(inp.data)
    assert work.bytes <= 3 * total


def test_tables_stage_on_fuzz_inputs():
    """The bulk decoder's batches through tables.batch_tables, as `citynode decode` does."""
    node = traffic.TrafficBuilder(5)
    wire = node.frame("time", 0, {"utc_ms": (1 << 64) - 1}) + node.climate(10, 20.0, 50.0)
    failed = {}
    got = fuzz.check_tables(fuzz.Input(0, "absurd", wire, []))
    if got:
        failed["utc_ms 2^64-1"] = got
    for seed in SEEDS:
        got = fuzz.check_tables(fuzz.make_input(seed))
        if got:
            failed[seed] = got
    assert failed == {}


def test_the_long_run_script_reports_every_check(capsys):
    """bench/fuzz_decoders.py on a few seeds: its report (its timings are not judged here)."""
    import importlib.util
    from pathlib import Path

    path = Path(__file__).resolve().parents[2] / "bench" / "fuzz_decoders.py"
    spec = importlib.util.spec_from_file_location("fuzz_decoders", path)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    module.main(["--inputs", "3", "--seed", "1"])
    out = capsys.readouterr().out
    for label in module.LABELS.values():
        assert label in out
    assert "worst time per byte, reference" in out and "worst time per byte, bulk" in out
    assert "dense junk ns/B" in out
