"""The boot counter's floor (SPEC §9.2): whenever the host provisions a node (flash, config set of
the uplink, restore), the node's boot numbers go above the minutes since 2020 by the host's clock,
so a replacement board or an erased boot.json never signs again under numbers its node id used."""

import datetime

import pytest

from citynode import boot_floor, provision
from citynode.errors import CitynodeError
from citynode.keystore import Keystore
from citynode.verifier import Verifier
from citynode_protocol import auth, frame, payload
from test_technician_cli import NODE_HEAP, SCENARIO, run
from vnode_fixtures import virtual_node

UTC = datetime.timezone.utc
T0 = datetime.datetime(2026, 12, 7, 2, 0, tzinfo=UTC)
UPLINK = ("--set", "uplink=wifi", "--wifi-ssid", "city-iot", "--set", "broker_url=mqtt://127.0.0.1:9")


@pytest.fixture(autouse=True)
def isolated(tmp_path, tmp_path_factory, monkeypatch):
    monkeypatch.setenv("CITYNODE_INVENTORY", str(tmp_path / "inventory.sqlite"))
    monkeypatch.setenv("CITYNODE_KEYSTORE", str(tmp_path / "keys.json"))
    monkeypatch.setenv("CITYNODE_MPY_CACHE", str(tmp_path_factory.getbasetemp() / "mpy-cache"))
    monkeypatch.delenv("CITYNODE_PORT", raising=False)


@pytest.fixture
def clock(monkeypatch):
    """The host's UTC clock, set by the test: clock.now = ..."""

    class Clock:
        now = T0

    c = Clock()
    monkeypatch.setattr(boot_floor, "utc_now", lambda: c.now)
    return c


def test_the_floor_is_minutes_since_2020_utc():
    assert boot_floor.floor_at(datetime.datetime(2020, 1, 1, tzinfo=UTC)) == 0
    assert boot_floor.floor_at(datetime.datetime(2020, 1, 1, 0, 1, 59, tzinfo=UTC)) == 1
    assert boot_floor.floor_at(T0) == (366 + 365 * 3 + 366 + 365 + 340) * 1440 + 120  # 2020 and 2024 are leap years
    with pytest.raises(CitynodeError, match="clock"):
        boot_floor.floor_at(datetime.datetime(2019, 12, 31, tzinfo=UTC))


def test_needed_when_the_host_gives_the_node_its_uplink():
    assert boot_floor.needed({"uplink": "wifi"}) and boot_floor.needed({"node_key": "ab" * 32})
    assert not boot_floor.needed({"uplink": "serial", "node_key": ""})
    assert not boot_floor.needed({"node_id": 3, "site": "pier"})  # a serial node: its count is never signed


def _boot(port):
    client, info = provision.wait_for_app(port)
    client.close()
    return (info.get("uplink") or {}).get("boot")


def _reboot(port):
    client, _ = provision.wait_for_app(port)
    try:
        client.command("reboot")
    finally:
        client.close()
    return _boot(port)


def test_an_erased_count_is_raised_again_when_the_uplink_is_provisioned(tmp_path, capsys, clock):
    floor = boot_floor.floor_at(T0)
    with virtual_node(tmp_path / "n", scenario=SCENARIO, heap=NODE_HEAP) as n:
        code, out, err = run(capsys, "flash", "--app-only", "--port", n.port, "--node-id", "31", "--plain", *UPLINK)
        assert code == 0, err
        first = _boot(n.port)
        assert first is not None and first > floor
        used = [first, _reboot(n.port), _reboot(n.port)]
        assert used == [first, first + 1, first + 2]
        # boot.json erased: the node counts from 1, under numbers its id signed long ago
        for name in ("boot.json", "boot.json.tmp"):
            (n.root / name).unlink(missing_ok=True)
        assert _reboot(n.port) == 1
        client, info = provision.wait_for_app(n.port)
        client.close()
        assert any("boot.json missing: counting boots from 1 again" in e for e in info["last_errors"])
        # provisioned again a few minutes on: above every number it used
        clock.now = T0 + datetime.timedelta(minutes=5)
        code, out, err = run(capsys, "config", "set", "--port", n.port, "uplink", "wifi", "--reboot")
        assert code == 0, err
        assert _boot(n.port) > max(used)
        assert _boot(n.port) >= boot_floor.floor_at(clock.now)
        code, out, err = run(capsys, "info", "--port", n.port)
        assert code == 0 and "boot %d" % _boot(n.port) in out, out


def test_a_replacement_board_restored_from_a_backup_signs_above_the_old_one(tmp_path, capsys, clock):
    with virtual_node(tmp_path / "a", scenario=SCENARIO, heap=NODE_HEAP) as a:
        code, out, err = run(capsys, "flash", "--app-only", "--port", a.port, "--node-id", "20", "--plain", *UPLINK)
        assert code == 0, err
        used = [_boot(a.port), _reboot(a.port), _reboot(a.port)]
        assert run(capsys, "backup", "--port", a.port, "-o", str(tmp_path / "backup-20"))[0] == 0
    # board a fails; board b, with the app but no boot.json, takes its place ten minutes on
    clock.now = T0 + datetime.timedelta(minutes=10)
    with virtual_node(tmp_path / "b", scenario=SCENARIO, heap=NODE_HEAP, with_app=True) as b:
        code, out, err = run(capsys, "restore", "--port", b.port, str(tmp_path / "backup-20"), "--force")
        assert code == 0, err
        client, info = provision.wait_for_app(b.port)
        client.close()
        assert info["node_id"] == 20 and info["uplink"]["boot"] > max(used)
        assert info["uplink"]["boot"] > boot_floor.floor_at(clock.now)


# -- receivers: a node's replay window belongs to its key ---------------------------------------


def _signed(node, seq, key, boot):
    msg_type, body = payload.pack("climate", {"temperature_c": 20.0, "relative_humidity_pct": 50.0, "status": 0})
    raw = frame.build(msg_type, node, seq, 1000 + seq, body)
    return frame.to_wire(auth.sign(raw, auth.Signer(key), boot, 0))


def test_a_new_key_in_the_keystore_starts_the_nodes_window_anew(tmp_path):
    """A listener running while a node is provisioned with a new key (its board replaced by one
    with older firmware that counts from 1): the keystore file is read again, and the new
    signer's frames are not taken as replays of the old one's."""
    path = tmp_path / "keys.json"
    old_key = Keystore(path).new_key(5)
    verifier = Verifier(Keystore(path))
    assert len(verifier.check(5, _signed(5, 0, old_key, 9000) + _signed(5, 1, old_key, 9000))[0]) == 2
    new_key = Keystore(path).new_key(5, replace=True)  # another command, while this one listens
    accepted, rejected = verifier.check(5, _signed(5, 0, new_key, 1))
    assert [(v.boot, v.seq) for v in accepted] == [(1, 0)] and not rejected
    # the old key's frames are forgeries now; the new key's window guards against replays as before
    _, rejected = verifier.check(5, _signed(5, 2, old_key, 9000) + _signed(5, 0, new_key, 1))
    assert [r.reason for r in rejected] == ["bad_mac", "replay"]
    assert verifier.rejected["bad_mac"] == 1 and verifier.rejected["replay"] == 1


def test_with_the_same_key_an_older_boot_is_still_a_replay(tmp_path):
    path = tmp_path / "keys.json"
    key = Keystore(path).new_key(5)
    verifier = Verifier(Keystore(path))
    assert len(verifier.check(5, _signed(5, 0, key, 9000))[0]) == 1
    Keystore(path).new_key(6)  # the file changes, node 5's key does not
    _, rejected = verifier.check(5, _signed(5, 0, key, 1))
    assert [r.reason for r in rejected] == ["replay"]
