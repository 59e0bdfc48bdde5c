"""`citynode encode`: JSON Lines to frames that decode back to the same messages; bad lines named by number."""

import json
import os

import pytest

from citynode import traffic
from citynode.cli import main
from citynode_protocol.decoder import decode_all


def encode(capsys, tmp_path, lines, *extra):
    src = tmp_path / "in.jsonl"
    src.write_text("".join((l if isinstance(l, str) else json.dumps(l)) + "\n" for l in lines), encoding="utf-8")
    out = tmp_path / "cap.bin"
    code = main(["encode", str(src), "-o", str(out), *extra])
    stdout, stderr = capsys.readouterr()
    return code, stdout, stderr, out


def test_round_trip_through_the_reference_decoder(capsys, tmp_path):
    lines = [
        {"type": "time", "node_id": 1, "time_ms": 1000, "fields": {"utc": "2026-11-26T06:12:24Z"}},
        {"type": "climate", "node_id": 1, "time_ms": 1500, "fields": {"temperature_c": 21.5, "relative_humidity_pct": 48.25}},
        {"type": "accel", "node_id": 1, "time_ms": 2000, "fields": {"odr_hz": 200, "range_g": 2, "samples": [[1, 2, 3], [4, 5, 6]]}},
        {"type": "accel", "node_id": 1, "time_ms": 2010, "fields": {"samples": [7, 8, 9], "encoding": "raw"}},
        {"type": "climate", "node_id": 2, "seq": 100, "time_ms": 7, "fields": {"temperature_c": -1}},
        {"type": "climate", "node_id": 2, "time_ms": 8, "fields": {}},
        {"type": "log", "node_id": 2, "time_ms": 9, "fields": {"level": "error", "text": "oops"}},
        {"type": "reply", "node_id": 2, "time_ms": 10, "fields": {"request_id": 5, "code": 0, "body": {"ok": [1, 2]}}},
        {"type": 6, "node_id": 3, "time_ms": 11, "fields": {"utc_ms": 123}},
        {"type": 29, "node_id": 3, "time_ms": 12, "payload_hex": "0102"},
        {"raw_hex": "deadbeef"},
        "",
    ]
    code, out, err, cap = encode(capsys, tmp_path, lines)
    assert code == 0, err
    assert "wrote 10 frame(s)" in out
    msgs, stats = decode_all(cap.read_bytes())
    assert [(m.name, m.node_id, m.seq) for m in msgs] == [
        ("time", 1, 0),
        ("climate", 1, 1),
        ("accel", 1, 2),
        ("accel", 1, 3),
        ("climate", 2, 100),
        ("climate", 2, 101),  # seq continues per node
        ("log", 2, 102),
        ("reply", 2, 103),
        ("time", 3, 0),
    ]
    assert msgs[0]["utc_ms"] == 1795673544000
    assert msgs[2]["samples"] == [1, 2, 3, 4, 5, 6] and msgs[2]["odr_hz"] == 200.0
    assert (msgs[3]["first_index"], msgs[3]["encoding"]) == (2, 0)  # continues the sample index
    assert msgs[6]["level"] == 3 and msgs[7]["body"] == {"ok": [1, 2]}
    # the type 29 frame is counted; deadbeef at the end, with no delimiter, is a partial frame
    assert stats.unknown_type == 1 and stats.bad_frames == 1 and stats.bytes_skipped == 4


@pytest.mark.parametrize(
    "line, words",
    [
        ('{"type": "climate", "node_id": 1, "time_ms": 1, fields}', ["in.jsonl:2:", "not valid JSON"]),
        ("[1, 2]", ["in.jsonl:2:", "JSON object"]),
        ('{"type": "weather", "node_id": 1, "time_ms": 1}', ["in.jsonl:2:", "unknown message type", "climate"]),
        ('{"type": "climate", "time_ms": 1}', ["in.jsonl:2:", "node_id"]),
        ('{"type": "climate", "node_id": 1}', ["in.jsonl:2:", "time_ms"]),
        ('{"type": "climate", "node_id": 70000, "time_ms": 1}', ["in.jsonl:2:", "node_id", "0..65535"]),
        ('{"type": "climate", "node_id": 1, "time_ms": 1, "fields": {"temp": 3}}', ["in.jsonl:2:", "no field 'temp'", "temperature_c"]),
        ('{"type": "climate", "node_id": 1, "time_ms": 1, "fields": {"temperature_c": 400}}', ["in.jsonl:2:", "out of range"]),
        ('{"type": "accel", "node_id": 1, "time_ms": 1, "fields": {"samples": [1, 2]}}', ["in.jsonl:2:", "triples"]),
        ('{"type": "accel", "node_id": 1, "time_ms": 1, "fields": {"samples": [[1, 2, 40000]]}}', ["in.jsonl:2:", "int16"]),
        ('{"type": "accel", "node_id": 1, "time_ms": 1, "fields": {"samples": [[1, 2, 3]], "encoding": "zip"}}', ["in.jsonl:2:", "encoding"]),
        ('{"type": 29, "node_id": 1, "time_ms": 1}', ["in.jsonl:2:", "payload_hex"]),
        ('{"raw_hex": "xyz"}', ["in.jsonl:2:", "not hex"]),
        ('{"type": "time", "node_id": 1, "time_ms": 1, "fields": {"utc": "soon"}}', ["in.jsonl:2:", "ISO 8601"]),
        ('{"type": "climate", "node_id": 1, "time_ms": 1, "colour": "red"}', ["in.jsonl:2:", "unknown key 'colour'"]),
    ],
)
def test_bad_line_is_named_by_number_and_nothing_is_written(capsys, tmp_path, line, words):
    good = {"type": "climate", "node_id": 1, "time_ms": 0, "fields": {}}
    code, out, err, cap = encode(capsys, tmp_path, [good, line])
    assert code != 0
    lines = err.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("citynode: "), err
    for w in words:
        assert w in lines[0], (w, lines[0])
    assert not cap.exists()
    assert sorted(os.listdir(tmp_path)) == ["in.jsonl"]


def test_missing_input_and_folder_output(capsys, tmp_path):
    assert main(["encode", str(tmp_path / "none.jsonl"), "-o", str(tmp_path / "x.bin")]) != 0
    assert "no such file" in capsys.readouterr().err
    (tmp_path / "in.jsonl").write_text("{}\n")
    assert main(["encode", str(tmp_path / "in.jsonl"), "-o", str(tmp_path)]) != 0
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and "citynode: " in err


def test_encoded_capture_decodes_with_the_cli(capsys, tmp_path):
    lines = [
        {"type": "time", "node_id": 1, "time_ms": 1000, "fields": {"utc": "2026-11-26T06:12:24Z"}},
        {"type": "accel", "node_id": 1, "time_ms": 1500, "fields": {"odr_hz": 100, "range_g": 4, "samples": [[8192, 0, -8192]]}},
    ]
    code, _, err, cap = encode(capsys, tmp_path, lines)
    assert code == 0, err
    assert main(["decode", str(cap), "--out-dir", str(tmp_path / "t")]) == 0
    capsys.readouterr()
    text = (tmp_path / "t" / "accel.csv").read_text().splitlines()
    assert text[1] == "1,2026-11-26T06:12:24.500000Z,1.5,0,1,0,1,0,-1,0"  # ..., ax, ay, az, segment


def test_decoded_messages_encode_back_to_the_same_frames(capsys, tmp_path):
    """decode --format jsonl writes messages.jsonl; encode turns it into the capture's bytes again."""
    cap = traffic.capture(nodes=(1, 2), duration_s=20, seed=5, start_ms=(1 << 32) - 6000, features_period_s=4, status_period_s=5)
    node = traffic.TrafficBuilder(3)
    tail = node.log(10, "d\u00e9j\u00e0 \"vu\", line\nbreak", level="warning") + node.reply(20, 7, 0, {"ok": [1, 2.5]})
    tail += node.reply(30, 8, 3) + node.time_anchor(40, 2**64 - 1)
    tail += node.accel_block(50, [[-32768, 32767, 0]] * 5, encoding=0, flags=1, age_ms=3)
    tail += node.accel_block(60, [[1, 2, 3], [4, 5, 6]], encoding=1, odr_hz=3200.0, range_g=16)
    wire = cap.wire + tail
    capture = tmp_path / "c.bin"
    capture.write_bytes(wire)
    assert main(["decode", str(capture), "--format", "jsonl", "--out-dir", str(tmp_path / "t")]) == 0
    capsys.readouterr()
    messages = tmp_path / "t" / "messages.jsonl"
    assert main(["encode", str(messages), "-o", str(tmp_path / "again.bin")]) == 0
    assert (tmp_path / "again.bin").read_bytes() == wire
    kinds = {json.loads(line)["type"] for line in messages.read_text(encoding="utf-8").splitlines()}
    assert kinds == {"climate", "accel", "features", "status", "log", "time", "reply"}


def test_help_describes_the_input(capsys):
    with pytest.raises(SystemExit) as exc:
        main(["encode", "--help"])
    assert exc.value.code == 0
    out = capsys.readouterr().out
    for words in ('"type": "climate"', "raw_hex", "payload_hex", "time_ms", "samples", "utc_ms", "messages.jsonl"):
        assert words in out, words
