"""Commands over MQTT (SPEC.md §9.4): a virtual node with uplink=wifi and the real Mosquitto
answers `citynode remote` with signed replies on its reply topic; forged, unsigned and
replayed commands are refused, counted and never run."""

import json
import threading
import time

import pytest

from citynode import cli
from broker_fixtures import needs_mosquitto
from citynode.broker import LocalBroker
from citynode.demo import NODE_HEAP, provision
from citynode.keystore import Keystore
from citynode.remote import RemoteClient
from citynode.serial_link import NodeClient
from citynode.verifier import Verifier
from citynode_protocol import armour, auth, cmdauth, topics
from citynode_protocol.decoder import Decoder
from citynode_protocol.frame import to_wire
from vnode_fixtures import virtual_node

pytestmark = [needs_mosquitto]
SCENARIO = {"temperature_c": 19.0, "relative_humidity_pct": 50.0, "seed": 3,
            "wifi": {"up": True, "rssi": -61, "ssids": ["city-iot"], "password": "pw-lamp-7"}}


class Watch:
    """paho on node 7's frames and reply topics: every frame verified, the replies kept."""

    def __init__(self, port, keystore, topic_kinds=("frames", "reply")):
        import paho.mqtt.client as paho

        self.verifiers = {kind: Verifier(keystore) for kind in topic_kinds}
        self.replies = {kind: [] for kind in topic_kinds}  # (request id, code)
        self.lock = threading.Lock()
        ready = threading.Event()
        self.client = paho.Client(paho.CallbackAPIVersion.VERSION2, client_id="watch")
        self.client.on_message = self._message
        self.client.on_subscribe = lambda *a: ready.set()
        self.client.connect("127.0.0.1", port)
        self.client.subscribe([(topics.topic(7, kind), 1) for kind in topic_kinds])
        self.client.loop_start()
        assert ready.wait(5)

    def _message(self, _c, _u, m):
        kind = topics.parse(m.topic)[1]
        with self.lock:
            for raw in self.verifiers[kind].feed(7, m.payload):
                for msg in Decoder().feed(to_wire(raw)):
                    if msg.name == "reply":
                        self.replies[kind].append((msg["request_id"], msg["code"]))

    def publish(self, payload):
        self.client.publish(topics.topic(7, "cmd"), payload, qos=1).wait_for_publish(5)

    def wait_reply(self, kind, request_id, timeout=15):
        end = time.monotonic() + timeout
        while time.monotonic() < end:
            with self.lock:
                got = [code for rid, code in self.replies[kind] if rid == request_id]
            if got:
                return got
            time.sleep(0.05)
        return []

    def close(self):
        self.client.loop_stop()
        self.client.disconnect()


def _wait_on_broker(node, timeout=20):
    """Until the node's session is up (and so its subscription to the cmd topic sent): a
    command published before that has no subscriber and is gone (the node's session is clean)."""
    end = time.monotonic() + timeout
    while time.monotonic() < end:
        with NodeClient(node.port) as usb:
            if (usb.command("info")["uplink"] or {}).get("broker") == "up":
                time.sleep(0.5)
                return
        time.sleep(0.3)
    raise AssertionError("node 7 never got on the broker")


@pytest.fixture(scope="module")
def net_node(tmp_path_factory):
    tmp = tmp_path_factory.mktemp("remote")
    ks_path = tmp / "keys.json"
    key = Keystore(ks_path).new_key(7)
    with LocalBroker(tmp / "broker") as broker, virtual_node(
            tmp, scenario=SCENARIO, with_app=True, heap=NODE_HEAP) as node:
        provision(node, {"node_id": 7, "site": "lamp 12", "climate_period_s": 2, "uplink": "wifi",
                         "wifi_ssid": "city-iot", "wifi_password": "pw-lamp-7", "broker_url": broker.url,
                         "node_key": key.hex()})
        watch = Watch(broker.port, Keystore(ks_path))
        _wait_on_broker(node)
        try:
            yield node, broker, ks_path, key, watch
        finally:
            watch.close()


def _remote(broker, ks_path, *words):
    return cli.main(["remote", "--broker", broker.url, "--node", "7", "--keystore", str(ks_path), "--timeout", "20"]
                    + list(words))


def test_info_over_mqtt_is_the_nodes_answer_signed_on_the_reply_topic(net_node, capsys):
    node, broker, ks_path, _key, watch = net_node
    assert _remote(broker, ks_path, "--json", "info") == 0
    info = json.loads(capsys.readouterr().out)
    assert info["node_id"] == 7 and info["site"] == "lamp 12"
    assert info["uplink"]["broker"] == "up" and info["uplink"]["commands_run"] >= 1
    assert info["config"]["node_key"] == "***"


def test_config_set_over_mqtt_changes_the_node_and_its_reply_goes_once_to_each_topic(net_node, capsys):
    node, broker, ks_path, _key, watch = net_node
    with RemoteClient(broker.url, 7, Keystore(ks_path), timeout=20) as client:
        m = client.exchange("config_set", {"values": {"site": "bridge deck"}})
        rid = m["request_id"]
    assert m["code"] == 0 and m.fields["body"]["changed"] == ["site"]
    assert watch.wait_reply("reply", rid) == [0]
    assert watch.wait_reply("frames", rid) == [0]  # in the ring once, like every frame
    time.sleep(1.0)
    assert [r for r in watch.replies["reply"] if r[0] == rid] == [(rid, 0)]
    assert [r for r in watch.replies["frames"] if r[0] == rid] == [(rid, 0)]
    with NodeClient(node.port) as usb:
        assert usb.command("config_get", key="site")["config"] == {"site": "bridge deck"}
    assert _remote(broker, ks_path, "config", "get", "site") == 0
    assert capsys.readouterr().out.split() == ["site", '"bridge', 'deck"']
    assert _remote(broker, ks_path, "config", "set", "status_period_s", "30") == 0
    assert capsys.readouterr().out.strip() == "status_period_s = 30 applied"


def test_forged_unsigned_and_replayed_commands_are_refused_counted_and_never_run(net_node):
    node, broker, ks_path, key, watch = net_node
    with NodeClient(node.port) as usb:
        before = usb.command("info")["uplink"]
    changes = {"values": {"site": "hijacked"}}
    now_ms = int(time.time() * 1000)
    line = armour.encode_command(4001, "config_set", changes)
    forged = cmdauth.sign(line, auth.Signer(bytes(32)), 7, now_ms + 10_000)
    unsigned = armour.encode_command(4002, "config_set", changes)
    genuine = cmdauth.sign(armour.encode_command(4003, "config_get", {"key": "site"}), auth.Signer(key), 7,
                           int(time.time() * 1000))
    replay_of_old = cmdauth.sign(armour.encode_command(4004, "config_set", changes), auth.Signer(key), 7, 5)
    watch.publish(forged)
    watch.publish(unsigned)
    assert watch.wait_reply("reply", 4001) == [10] and watch.wait_reply("reply", 4002) == [10]
    watch.publish(genuine)
    assert watch.wait_reply("reply", 4003) == [0]
    watch.publish(genuine)  # the same signed line again, copied off the broker
    watch.publish(replay_of_old)  # a counter far below the last accepted
    assert watch.wait_reply("reply", 4004) == [10]
    end = time.monotonic() + 10
    while time.monotonic() < end and watch.wait_reply("reply", 4003, 0.1) != [0, 10]:
        time.sleep(0.1)
    assert watch.wait_reply("reply", 4003, 0.1) == [0, 10]  # the genuine line ran once; its replay refused
    with NodeClient(node.port) as usb:
        info = usb.command("info")
    up = info["uplink"]
    assert up["commands_refused"] - before["commands_refused"] == 4
    assert up["commands_run"] - before["commands_run"] == 1
    assert up["last_refusal"] == "replay"
    assert info["config"]["site"] != "hijacked"


def test_the_last_accepted_counter_survives_a_reboot(net_node):
    node, broker, ks_path, key, watch = net_node
    with RemoteClient(broker.url, 7, Keystore(ks_path), timeout=20) as client:
        m = client.exchange("status", {})
        assert m["code"] == 0
        kept = client.signed_line("config_set", {"values": {"site": "again"}}, 4100)
        boots = node.boots
        assert client.command("reboot") == {"rebooting": True}
    node.wait_boots(boots + 1, 20)
    _wait_on_broker(node)
    with RemoteClient(broker.url, 7, Keystore(ks_path), timeout=20) as client:
        assert client.command("info")["node_id"] == 7  # the node is back on the network
    watch.publish(kept)  # signed before the reboot's command: below the counter kept on flash
    assert watch.wait_reply("reply", 4100) == [10]


def test_remote_errors_are_one_line(net_node, tmp_path, capsys):
    node, broker, ks_path, _key, watch = net_node
    assert _remote(broker, ks_path, "--node", "8", "info") != 0  # argparse: the last --node wins
    err = capsys.readouterr().err.strip()
    assert err.count("\n") == 0 and "node 8 is not in the keystore" in err
    code = cli.main(["remote", "--broker", "mqtt://127.0.0.1:9", "--node", "7", "--keystore", str(ks_path), "info"])
    err = capsys.readouterr().err.strip()
    assert code != 0 and err.count("\n") == 0 and "does not answer" in err
    ks2 = tmp_path / "keys.json"
    Keystore(ks2).new_key(9)
    code = cli.main(["remote", "--broker", broker.url, "--node", "9", "--keystore", str(ks2), "--timeout", "1", "info"])
    err = capsys.readouterr().err.strip()
    assert code != 0 and err.count("\n") == 0 and "node 9 did not answer info within 1 s" in err
    assert "never connected" in err


def test_a_broker_that_refuses_the_credentials_is_one_line_without_the_password(tmp_path, capsys):
    ks = tmp_path / "keys.json"
    Keystore(ks).new_key(7)
    with LocalBroker(tmp_path / "broker", users={"host1": "right-pw"}) as broker:
        code = cli.main(["remote", "--broker", "mqtt://host1:wrong-pw@127.0.0.1:%d" % broker.port, "--node", "7",
                         "--keystore", str(ks), "info"])
    err = capsys.readouterr().err.strip()
    assert code != 0 and err.count("\n") == 0 and "refused the connection" in err, err
    assert "wrong-pw" not in err
