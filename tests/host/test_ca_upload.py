"""The broker's CA for mqtts:// from the host to the node (`citynode config set mqtt_ca @FILE`,
`citynode flash --ca FILE`): PEM or DER in, DER on the node; with the right CA the virtual
node connects to Mosquitto over TLS, with another it says TLS failed and keeps sampling."""

import time

import pytest

from broker_fixtures import needs_mosquitto
from citynode import cli
from citynode.broker import LocalBroker, make_ca_and_server_cert
from citynode.demo import NODE_HEAP, provision
from citynode.keystore import Keystore
from citynode.serial_link import NodeClient
from vnode_fixtures import virtual_node

SCENARIO = {"temperature_c": 18.0, "relative_humidity_pct": 55.0, "seed": 4,
            "wifi": {"up": True, "rssi": -63, "ssids": ["city-iot"], "password": "pw-lamp-7"}}


@pytest.fixture(autouse=True)
def isolated(tmp_path, tmp_path_factory, monkeypatch):
    monkeypatch.setenv("CITYNODE_INVENTORY", str(tmp_path / "inventory.sqlite"))
    monkeypatch.setenv("CITYNODE_KEYSTORE", str(tmp_path / "keys.json"))
    monkeypatch.setenv("CITYNODE_MPY_CACHE", str(tmp_path_factory.getbasetemp() / "mpy-cache"))
    monkeypatch.delenv("CITYNODE_PORT", raising=False)


def _run(capsys, *argv):
    code = cli.main(list(argv))
    out, err = capsys.readouterr()
    return code, out, err


def _uplink_until(node, done, timeout=30):
    end = time.monotonic() + timeout
    while True:
        with NodeClient(node.port) as client:
            up = client.command("info")["uplink"]
        if done(up) or time.monotonic() > end:
            return up
        time.sleep(0.5)


def test_bad_ca_files_are_one_line_and_write_nothing(tmp_path, capsys):
    (tmp_path / "hello.pem").write_text("hello\n")
    (tmp_path / "key.pem").write_text("-----BEGIN PRIVATE KEY-----\nMIIB\n-----END PRIVATE KEY-----\n")
    (tmp_path / "junk.der").write_bytes(bytes(range(256)))
    cases = ((tmp_path / "missing.pem", "No such file"), (tmp_path / "hello.pem", "not a certificate"),
             (tmp_path / "key.pem", "not a CERTIFICATE"), (tmp_path / "junk.der", "not a certificate"))
    for path, words in cases:
        # checked before any port is opened: the port named here does not exist
        code, out, err = _run(capsys, "config", "set", "--port", str(tmp_path / "no-port"), "mqtt_ca", "@%s" % path)
        assert code != 0 and out == "" and err.count("\n") == 1 and words in err, (path, err)
        code, out, err = _run(capsys, "flash", "--app-only", "--port", str(tmp_path / "no-port"), "--node-id", "3",
                              "--plain", "--ca", str(path))
        assert code != 0 and err.strip().splitlines()[-1].count("citynode:") == 1 and words in err, (path, err)
        code, out, err = _run(capsys, "flash", "--app-only", "--port", str(tmp_path / "no-port"), "--node-id", "3",
                              "--plain", "--set", "mqtt_ca=@%s" % path)
        assert code != 0 and words in err, (path, err)


def test_to_der_takes_pem_and_der_of_one_certificate(tmp_path):
    from citynode import ca_cert

    ca_pem = make_ca_and_server_cert(tmp_path)[0]
    der = (tmp_path / "ca.der").read_bytes()
    assert ca_cert.load_der(ca_pem) == der
    assert ca_cert.load_der(tmp_path / "ca.der") == der
    bundle = tmp_path / "bundle.pem"
    bundle.write_bytes(b"# the first certificate counts\n" + ca_pem.read_bytes() + ca_pem.read_bytes())
    assert ca_cert.load_der(bundle) == der


@needs_mosquitto
@pytest.mark.timeout(180)
def test_the_right_ca_connects_over_tls_and_another_is_a_tls_failure_while_sampling_goes_on(tmp_path, capsys):
    key = Keystore().new_key(7)
    with LocalBroker(tmp_path / "broker", tls=True) as broker, virtual_node(
            tmp_path, scenario=SCENARIO, with_app=True, heap=NODE_HEAP) as node:
        provision(node, {"node_id": 7, "uplink": "wifi", "wifi_ssid": "city-iot", "wifi_password": "pw-lamp-7",
                         "broker_url": broker.tls_url, "node_key": key.hex(), "climate_period_s": 2})
        with NodeClient(node.port) as client:
            assert client.command("info")["uplink"]["error"].startswith("uplink: CA ca.der unusable")

        code, out, err = _run(capsys, "config", "set", "--port", node.port, "mqtt_ca", "@%s" % broker.ca_pem)
        assert code == 0, err
        assert "written to the node as ca.der" in out
        assert (node.root / "ca.der").read_bytes() == broker.ca_der.read_bytes()  # PEM in, DER on the node
        up = _uplink_until(node, lambda u: u.get("broker") == "up")
        assert up["broker"] == "up" and up["acked"] >= 1, up

        (tmp_path / "other").mkdir()
        make_ca_and_server_cert(tmp_path / "other")  # a CA that did not sign the broker's certificate
        other = tmp_path / "other" / "ca.der"
        code, out, err = _run(capsys, "config", "set", "--port", node.port, "mqtt_ca", "@%s" % other)
        assert code == 0, err
        up = _uplink_until(node, lambda u: u.get("broker_error", "").startswith("TLS"))
        assert up["broker"] != "up" and up["broker_error"].startswith("TLS: "), up
        later = _uplink_until(node, lambda u: u["frames_signed"] > up["frames_signed"] + 2)
        assert later["frames_signed"] > up["frames_signed"] + 2 and later["pending_bytes"] > 0  # still sampling


@pytest.mark.timeout(180)
def test_flash_writes_the_ca_before_provisioning(tmp_path, capsys):
    (tmp_path / "ca").mkdir()
    ca_pem = make_ca_and_server_cert(tmp_path / "ca")[0]
    with virtual_node(tmp_path / "n", scenario=SCENARIO, heap=NODE_HEAP) as n:
        code, out, err = _run(capsys, "flash", "--app-only", "--port", n.port, "--node-id", "12", "--plain",
                              "--set", "mqtt_ca=@%s" % ca_pem, "--set", "uplink=wifi", "--wifi-ssid", "city-iot",
                              "--set", "broker_url=mqtts://127.0.0.1:9")
        assert code == 0, err
        assert (n.root / "ca.der").read_bytes() == (tmp_path / "ca" / "ca.der").read_bytes()
