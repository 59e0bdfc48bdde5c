"""Every golden vector, decoded whole and in small chunks, gives the pinned messages and counters."""

from citynode_protocol import frame, payload
from citynode_protocol.decoder import Decoder
from citynode_protocol.messages import BY_NAME
from golden import load, same_fields, unhex


def _decode(data, chunk):
    dec = Decoder()
    got = []
    for i in range(0, len(data), chunk):
        got.extend(dec.feed(data[i : i + chunk]))
    dec.flush()
    return got, dec.stats.as_dict()


def _check_case(case, chunk):
    data = unhex(case["wire_hex"])
    got, stats = _decode(data, chunk)
    want = case["messages"]
    assert len(got) == len(want), (case["name"], chunk, len(got), len(want))
    for m, w in zip(got, want):
        assert m.name == w["type"], case["name"]
        assert (m.node_id, m.seq, m.time_ms) == (w["node_id"], w["seq"], w["time_ms"]), case["name"]
        diff = same_fields(m.fields, w["fields"])
        assert diff is None, (case["name"], diff)
    assert stats == case["stats"], (case["name"], chunk, stats, case["stats"])


def test_good_frames_whole_and_chunked():
    for case in load("frames.json")["cases"]:
        for chunk in (1, 3, 64, 1 << 20):
            _check_case(case, chunk)


def test_corrupt_input_whole_and_chunked():
    for case in load("corrupt.json")["cases"]:
        for chunk in (1, 7, 1 << 20):
            _check_case(case, chunk)


def test_good_frames_reencode_to_the_same_bytes():
    # golden bytes: packing the expected fields again gives the pinned wire bytes
    for case in load("frames.json")["cases"]:
        wire = b""
        for m in case["messages"]:
            fields = dict(m["fields"])
            if m["type"] == "accel":
                fields.pop("n_samples")
            msg_type, body = payload.pack(m["type"], fields)
            assert msg_type == BY_NAME[m["type"]][0]
            wire += frame.to_wire(frame.build(msg_type, m["node_id"], m["seq"], m["time_ms"], body))
        assert wire == unhex(case["wire_hex"]), case["name"]


def test_climate_vector_bytes():
    case = load("frames.json")["cases"][0]
    assert case["name"] == "climate"
    wire = unhex(case["wire_hex"])
    assert len(wire) == 20
    assert wire[-1] == 0 and 0 not in wire[:-1]
