"""The race of two collectors in one group, as store writes: one takes a boot's data frames
while the other has not yet committed the boot's STATUS and TIME frames, so its rows come
without time, calibration id and firmware. The store fills them in, whichever commits first.

    data, anchors = race_batches()          # node 3, boot 1: frames 0-2 and 6-9, then 3-5
    ...write both, in either order, through two store objects...
    check_stamped(store)
"""

from store_rows import T0_US, batch

DATA_SEQS = [0, 1, 2, 6, 7, 8, 9]  # climate, accel, features, climate, climate, accel, features
ANCHOR_SEQS = [3, 4, 5]  # status, log, time


def race_batches():
    """(the data batch a collector stamps nothing in, the batch with the boot's STATUS and TIME)."""
    return batch(3, 1, DATA_SEQS, anchored=False), batch(3, 1, ANCHOR_SEQS)


def check_stamped(store):
    """Frames 6-9 (after the TIME at 5 and the status at 3) stamped as a collector that had seen
    those would have: the UTC of the node time by the anchor; frames 0-2 (before both) not."""
    want = batch(3, 1, range(10))
    for name in ("climate", "accel", "accel_blocks", "features"):
        got = store.query(name).to_pylist()
        expected = want.tables[name].to_pylist()
        assert [r["seq"] for r in got] == [r["seq"] for r in expected if r["seq"] in DATA_SEQS], name
        for row, exp in zip(got, (r for r in expected if r["seq"] in DATA_SEQS)):
            if row["seq"] < 3:
                assert (row["time"], row["calibration_id"], row["firmware"]) == (None, None, None), (name, row)
            else:
                assert row == exp, (name, row, exp)
    frames = {r["seq"]: r["time"] for r in store.query("frames").to_pylist()}
    us = {s: None if t is None else int(t.timestamp()) * 1_000_000 + t.microsecond for s, t in frames.items()}
    ages = {8: 40_000, 9: 5_000_000}  # an accel block and a features window are about an earlier moment
    assert us == {s: None if s < 3 else T0_US + s * 1_000_000 + ages.get(s, 0) for s in range(10)}
    assert store.query("climate", start=T0_US + 6_000_000, end=T0_US + 7_000_001).column("seq").to_pylist() == [6, 7]
    last = want.tables["climate"].slice(want.tables["climate"].num_rows - 1).select(["seq", "time", "firmware"])
    assert store.query_received("climate", columns=["seq", "time", "firmware"]).to_pylist()[-1:] == last.to_pylist()

