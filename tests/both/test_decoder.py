from citynode_protocol import frame, messages, payload
from citynode_protocol.decoder import BadFrame, Decoder, decode_all


def _climate(node, seq, t, temp=21.0):
    msg_type, body = payload.pack("climate", {"temperature_c": temp, "relative_humidity_pct": 40.0})
    return frame.to_wire(frame.build(msg_type, node, seq, t, body))


def test_many_nodes_counted_separately():
    data = _climate(1, 0, 0) + _climate(2, 0, 0) + _climate(1, 2, 100) + _climate(2, 1, 100)
    msgs, stats = decode_all(data)
    assert len(msgs) == 4
    assert stats.nodes[1].lost == 1
    assert stats.nodes[2].lost == 0


def test_loss_counted_across_sequence_wrap():
    data = _climate(7, 65533, 10) + _climate(7, 65535, 20) + _climate(7, 1, 30)
    msgs, stats = decode_all(data)
    assert stats.nodes[7].lost == 2


def test_garbage_run_reported_once():
    dec = Decoder(report_bad=True)
    out = dec.feed(b"\xff" * 300 + b"\x00" + _climate(1, 0, 0))
    bad = [o for o in out if isinstance(o, BadFrame)]
    assert len(bad) == 1
    assert dec.stats.bytes_skipped == 300
    assert dec.stats.frames == 1


def test_never_raises_on_arbitrary_bytes():
    dec = Decoder()
    state = 99
    data = bytearray(4000)
    for i in range(len(data)):
        state = (state * 1103515245 + 12345) & 0x7FFFFFFF
        data[i] = (state >> 16) & 0xFF
        if state % 50 == 0:
            data[i] = 0
    dec.feed(bytes(data))
    dec.flush()
    assert dec.stats.frames == 0
    assert dec.stats.bytes_in == 4000


def test_message_fields_in_units():
    msgs, stats = decode_all(_climate(1, 0, 0, temp=-12.34))
    assert msgs[0].name == "climate"
    assert msgs[0]["temperature_c"] == -12.34
    assert msgs[0]["relative_humidity_pct"] == 40.0


def test_truncated_tail_counted_on_flush():
    data = _climate(1, 0, 0)
    dec = Decoder()
    dec.feed(data + data[:7])
    dec.flush()
    assert dec.stats.frames == 1
    assert dec.stats.bytes_skipped == 7


def test_reply_body_and_code_word():
    msg_type, body = payload.pack("reply", {"request_id": 9, "code": messages.ERR_BAD_ARGUMENT, "body": {"error": "odr 333 not supported"}})
    msgs, _ = decode_all(frame.to_wire(frame.build(msg_type, 1, 0, 0, body)))
    assert msgs[0]["code"] == messages.ERR_BAD_ARGUMENT
    assert msgs[0]["body"] == {"error": "odr 333 not supported"}
    assert messages.reply_word(msgs[0]["code"]) == "bad argument"
    assert "unknown" in messages.reply_word(200)


def test_stats_declare_every_link_counter():
    from citynode_protocol.decoder import LINK_COUNTERS, DecoderStats

    stats = DecoderStats().as_dict()
    assert [k for k in stats if k != "nodes"] == list(LINK_COUNTERS) or sorted(k for k in stats if k != "nodes") == sorted(LINK_COUNTERS)
    for name in LINK_COUNTERS:
        assert stats[name] == 0


# -- junk recovery ------------------------------------------------------------


def _rand_bytes(state, n, lo=1, hi=255):
    out = bytearray(n)
    for i in range(n):
        state = (state * 1103515245 + 12345) & 0x7FFFFFFF
        out[i] = lo + (state >> 16) % (hi - lo + 1)
    return bytes(out), state


def _first_start_by_trying_each(seg):
    """The search as a brute force: decode and check every start in turn (quadratic)."""
    from citynode_protocol.decoder import unstuff

    scratch = bytearray(len(seg))
    for s in range(1, len(seg)):
        if not isinstance(unstuff(seg[s:], scratch), str):
            return s
    return 0


def test_first_frame_start_agrees_with_trying_each_start():
    from citynode_protocol.decoder import first_frame_start

    state = 7
    for k in range(40):
        frame_wire = _climate(1 + k, k, 1000 * k)[:-1]
        junk, state = _rand_bytes(state, 1 + k * 3, lo=1, hi=0x3F if k % 2 else 255)
        for seg in (junk + frame_wire, junk, frame_wire[3:], junk + frame_wire + junk[:2]):
            assert first_frame_start(seg) == _first_start_by_trying_each(seg), (k, seg)
    assert first_frame_start(junk + frame_wire) == len(junk)


def _dense_chain(n, seed):
    """n non-zero bytes where almost every position starts a COBS chain that lands
    on the end and carries version 1 in its next byte: the worst case for junk recovery."""
    out = bytearray(n)
    state = seed
    for i in range(n - 1, -1, -1):
        room = n - i
        if room < 0x21:
            out[i] = 1
        else:
            state = (state * 1103515245 + 12345) & 0x7FFFFFFF
            out[i] = 0x21 + (state >> 16) % (min(0x3F, room) - 0x21 + 1)
    return bytes(out)


def test_frame_behind_a_dense_chain_is_kept_and_the_junk_counted():
    junk = _dense_chain(600, 3)
    good = _climate(5, 1, 2000)
    msgs, stats = decode_all(junk + b"\x00" + junk + good + _climate(5, 2, 3000))
    assert [m.seq for m in msgs] == [1, 2]
    assert stats.bytes_skipped == 2 * len(junk)
    assert stats.bad_frames == 2


def test_frame_behind_junk_longer_than_any_frame_is_kept():
    from citynode_protocol.cobs import max_encoded_length

    limit = max_encoded_length(frame.MAX_FRAME)
    good = _climate(3, 7, 500)
    for junk_size in (limit - len(good) + 2, limit, 3 * limit + 5):
        junk = b"\x41" * junk_size
        data = _climate(3, 6, 400) + junk + good + b"\xff" * (limit + 9) + b"\x00" + _climate(3, 8, 600)
        for chunk in (1, 97, len(data)):
            dec = Decoder()
            msgs = []
            for i in range(0, len(data), chunk):
                msgs.extend(dec.feed(data[i : i + chunk]))
            dec.flush()
            assert [m.seq for m in msgs] == [6, 7, 8], (junk_size, chunk)
            assert dec.stats.too_long == 2 and dec.stats.bad_frames == 2, (junk_size, chunk)
            assert dec.stats.bytes_skipped == junk_size + limit + 9, (junk_size, chunk)


def test_an_overlong_tail_at_the_end_of_the_stream_is_skipped():
    dec = Decoder()
    dec.feed(_climate(1, 0, 0) + b"\x41" * 9000)
    dec.flush()
    assert (dec.stats.frames, dec.stats.too_long, dec.stats.bad_frames, dec.stats.bytes_skipped) == (1, 1, 1, 9000)
