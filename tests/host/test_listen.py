"""`citynode listen` against the real Mosquitto: signed traffic is shown and recorded; forged,
replayed, unknown and malformed frames are all refused and counted by reason."""

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

from broker_fixtures import needs_mosquitto
from citynode.broker import LocalBroker
from citynode.keystore import Keystore
from citynode_protocol import auth, frame, payload, topics
from citynode_protocol.decoder import Decoder

REPO = Path(__file__).resolve().parents[2]
ENV = dict(os.environ, PYTHONPATH=os.pathsep.join([str(REPO / "host"), str(REPO / "protocol")]))
pytestmark = [needs_mosquitto]


def climate(node, seq, t_c, key, boot=1, seq_hi=0, sign=True):
    msg_type, body = payload.pack("climate", {"temperature_c": t_c, "relative_humidity_pct": 50.0, "status": 0})
    raw = frame.build(msg_type, node, seq, 1000 + seq * 100, body)
    return frame.to_wire(auth.sign(raw, auth.Signer(key), boot, seq_hi) if sign else raw)


def publisher(port):
    import paho.mqtt.client as paho

    c = paho.Client(paho.CallbackAPIVersion.VERSION2, client_id="fake-nodes")
    c.connect("127.0.0.1", port)
    c.loop_start()
    return c


def start_listen(broker, keystore_path, *extra):
    return subprocess.Popen([sys.executable, "-m", "citynode", "listen", "--broker", broker.url, "--keystore",
                             str(keystore_path), *extra], env=ENV, stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                            text=True)


def wait_line(proc, text, timeout=10):
    end = time.monotonic() + timeout
    seen = []
    while time.monotonic() < end:
        line = proc.stdout.readline()
        seen.append(line)
        if text in line:
            return seen
    raise AssertionError("no %r from listen in %.0f s: %r" % (text, timeout, seen))


def test_listen_shows_and_records_verified_frames_and_refuses_every_forgery(tmp_path):
    ks = Keystore(tmp_path / "keys.json")
    key7, key8 = ks.new_key(7), ks.new_key(8)
    cap = tmp_path / "net.bin"
    with LocalBroker(tmp_path / "broker") as broker:
        pub = publisher(broker.port)
        pub.publish(topics.topic(7, "status"), b"online", qos=1, retain=True).wait_for_publish(5)
        proc = start_listen(broker, tmp_path / "keys.json", "-o", str(cap))
        wait_line(proc, "status node=7 online")
        good = [climate(7, i, 20.0 + i, key7) for i in range(6)]
        frames7 = topics.topic(7, "frames")
        pub.publish(frames7, b"".join(good[:3]), qos=1).wait_for_publish(5)  # three frames in one message
        pub.publish(frames7, b"".join(good[3:]), qos=1).wait_for_publish(5)
        forged = [
            (frames7, climate(7, 10, 99.0, bytes(32))),  # bad MAC: signed with another key
            (frames7, good[1]),  # replay of a frame already accepted
            (frames7, climate(7, 0xFFF0, 99.0, key7, boot=0)),  # an older boot, validly signed
            (topics.topic(9, "frames"), climate(9, 1, 99.0, os.urandom(32))),  # a node the keystore does not know
            (frames7, climate(7, 11, 99.0, key7, sign=False)),  # unsigned
            (frames7, climate(8, 1, 99.0, key8)),  # node 8's genuine frame on node 7's topic
            (frames7, b"\x05\x01\x02\x03\x00"),  # bytes that are no frame
        ]
        for topic, data in forged:
            pub.publish(topic, data, qos=1).wait_for_publish(5)
        pub.publish(frames7, climate(7, 6, 26.0, key7), qos=1).wait_for_publish(5)
        wait_line(proc, "seq=6")
        proc.send_signal(signal.SIGINT)
        out, err = proc.communicate(timeout=15)
        pub.loop_stop()
    assert proc.returncode == 0, err
    summary = out.strip().splitlines()[-1]
    assert "7 frames from 1 nodes accepted, 7 rejected" in summary, summary
    for reason in ("bad_mac 1", "replay 2", "unknown_node 1", "unsigned 1", "wrong_topic 1", "malformed 1"):
        assert reason in summary, (reason, summary)
    msgs = Decoder().feed(cap.read_bytes())
    assert [round(m["temperature_c"], 2) for m in msgs] == [20.0, 21.0, 22.0, 23.0, 24.0, 25.0, 26.0]
    assert {m.node_id for m in msgs} == {7}
    assert not (tmp_path / "net.bin.part").exists()
    decoded = subprocess.run([sys.executable, "-m", "citynode", "decode", str(cap), "--out-dir",
                              str(tmp_path / "tables")], env=ENV, capture_output=True, text=True)
    assert decoded.returncode == 0, decoded.stderr
    assert (tmp_path / "tables" / "climate.csv").read_text().count("\n") == 8  # header and 7 rows


def test_listen_json_summary_and_bad_inputs_are_one_line(tmp_path):
    ks = Keystore(tmp_path / "keys.json")
    ks.new_key(7)
    with LocalBroker(tmp_path / "broker") as broker:
        done = subprocess.run([sys.executable, "-m", "citynode", "listen", "--broker", broker.url, "--keystore",
                               str(tmp_path / "keys.json"), "--duration", "0.5", "--json"], env=ENV,
                              capture_output=True, text=True, timeout=30)
        assert done.returncode == 0, done.stderr
        summary = json.loads(done.stdout)
        assert summary["frames_accepted"] == 0 and summary["broker"] == broker.url
        bad = [
            (["--broker", "http://x"], "give mqtt://"),
            (["--broker", "mqtt://user:hunter2@127.0.0.1:1"], "does not answer"),
            (["--broker", "mqtt://127.0.0.1:99999"], "broker URL"),
            (["--broker", broker.url, "--duration", "-1"], "--duration"),
            (["--broker", broker.url, "--node", "70000"], "--node"),
            (["--broker", broker.url, "-o", str(tmp_path / "nope" / "x.bin")], "does not exist"),
        ]
        for argv, words in bad:
            p = listen_once(tmp_path, argv)
            lines = p.stderr.strip().splitlines()
            assert p.returncode != 0 and len(lines) == 1 and words in lines[0], (argv, p.stderr)
            assert "hunter2" not in p.stderr + p.stdout
        os.chmod(tmp_path / "keys.json", 0o644)
        p = listen_once(tmp_path, ["--broker", broker.url])
        assert p.returncode != 0 and "can be read by others" in p.stderr and len(p.stderr.splitlines()) == 1


def listen_once(tmp_path, argv):
    return subprocess.run([sys.executable, "-m", "citynode", "listen", "--duration", "0.2", *argv, "--keystore",
                           str(tmp_path / "keys.json")], env=ENV, capture_output=True, text=True, timeout=30)


def test_keystore_is_private_and_keeps_keys_across_loads(tmp_path):
    path = tmp_path / "sub" / "keys.json"
    ks = Keystore(path)
    key = ks.new_key(42)
    assert len(key) == 32 and ks.new_key(42) == key  # an existing key is kept
    assert oct(os.stat(path).st_mode & 0o777) == "0o600"
    again = Keystore(path)
    assert again.key(42) == key and again.node_ids() == [42]
    assert again.new_key(42, replace=True) != key
    path.write_text("{not json")
    with pytest.raises(Exception, match="not valid JSON"):
        Keystore(path)


def test_without_paho_the_broker_commands_say_what_to_install(monkeypatch):
    import builtins

    from citynode import broker_url
    from citynode.errors import CitynodeError

    real_import = builtins.__import__

    def no_paho(name, *args, **kwargs):
        if name.startswith("paho"):
            raise ImportError("No module named 'paho'")
        return real_import(name, *args, **kwargs)

    monkeypatch.setattr(builtins, "__import__", no_paho)
    with pytest.raises(CitynodeError, match="paho-mqtt"):
        broker_url.connect("mqtt://127.0.0.1:1", "x")
