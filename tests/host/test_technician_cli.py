"""The technician's commands end to end: ports, and (with virtual nodes) flash --app-only,
info, config, backup and restore."""

import json

import pytest
from serial.tools.list_ports_common import ListPortInfo

from citynode import cli, ports


def _info(device, vid=None, pid=None, serial=None, description="n/a"):
    info = ListPortInfo(device, skip_link_detection=True)
    info.vid, info.pid, info.serial_number, info.description = vid, pid, serial, description
    return info


FAKE_PORTS = [
    _info("/dev/ttyS0"),
    _info("/dev/ttyUSB1", 0x1A86, 0x7523, None, "USB Serial"),
    _info("/dev/ttyUSB0", 0x10C4, 0xEA60, "0001", "CP2102 USB to UART Bridge Controller"),
    _info("/dev/ttyACM0", 0x303A, 0x1001, "F4:12:FA:00:11:22", "USB JTAG/serial debug unit"),
    _info("/dev/ttyACM1", 0x2341, 0x0043, "85736323", "Arduino Uno"),
]


def test_ports_marks_esp32_boards(mocker, capsys):
    mocker.patch.object(ports.list_ports, "comports", return_value=FAKE_PORTS)
    assert cli.main(["ports", "--json"]) == 0
    listed = json.loads(capsys.readouterr().out)
    marked = {p["port"]: p["esp32"] for p in listed}
    assert marked == {"/dev/ttyACM0": True, "/dev/ttyUSB0": True, "/dev/ttyUSB1": True,
                      "/dev/ttyACM1": False, "/dev/ttyS0": False}
    assert [p["port"] for p in listed][:3] == ["/dev/ttyACM0", "/dev/ttyUSB0", "/dev/ttyUSB1"]
    by_port = {p["port"]: p for p in listed}
    assert by_port["/dev/ttyUSB0"]["serial_number"] == "0001"
    assert by_port["/dev/ttyUSB0"]["usb_id"] == "10C4:EA60"
    assert by_port["/dev/ttyS0"]["description"] is None
    assert ports.esp32_ports() == ["/dev/ttyACM0", "/dev/ttyUSB0", "/dev/ttyUSB1"]
    assert cli.main(["ports"]) == 0
    table = capsys.readouterr().out
    assert "F4:12:FA:00:11:22" in table and "CH340" in table
    assert cli.main(["ports", "--esp32"]) == 0
    assert "ttyS0" not in capsys.readouterr().out


# -- against virtual nodes ----------------------------------------------------------------

import hashlib  # noqa: E402
import os  # noqa: E402
import sqlite3  # noqa: E402

from citynode import deploy, serial_link  # noqa: E402
from citynode.inventory import Inventory  # noqa: E402
from vnode_fixtures import virtual_node  # noqa: E402

NODE_HEAP = "1m"  # the app and the simulator, as the other end-to-end tests run them
SCENARIO = {"temperature_c": 21.5, "relative_humidity_pct": 48.0, "noise_g": 0.0005, "seed": 5}
CALIB = {"id": 100, "date": "2026-01-01", "method": "climate: reference", "site": {"name": "lab"},
         "climate": {"t_gain": 1.0, "t_offset_c": -0.2, "rh_gain": 1.0, "rh_offset_pct": 0.5}}


@pytest.fixture(autouse=True)
def isolated(tmp_path, tmp_path_factory, monkeypatch):
    """Each test its own inventory; one mpy cache for the session."""
    monkeypatch.setenv("CITYNODE_INVENTORY", str(tmp_path / "inventory.sqlite"))
    monkeypatch.setenv("CITYNODE_MPY_CACHE", str(tmp_path_factory.getbasetemp() / "mpy-cache"))
    monkeypatch.delenv("CITYNODE_WIFI_PASSWORD", raising=False)
    monkeypatch.delenv("CITYNODE_PORT", raising=False)


def node(tmp_path, name="n0", scenario=SCENARIO):
    return virtual_node(tmp_path / name, scenario=scenario, heap=NODE_HEAP)


def run(capsys, *argv):
    code = cli.main(list(argv))
    out, err = capsys.readouterr()
    return code, out, err


def one_line(err):
    """The error: one line `citynode: ...`, the last on stderr (plain progress lines may precede it
    when stderr is not a terminal), and never a traceback."""
    lines = err.splitlines()
    assert lines and lines[-1].startswith("citynode: "), err
    assert "Traceback" not in err and all(not ln.startswith("citynode: ") for ln in lines[:-1]), err
    return lines[-1]


def test_flash_app_only_deploys_provisions_verifies_and_records(tmp_path, capsys):
    with node(tmp_path) as n:
        code, out, err = run(capsys, "flash", "--app-only", "--port", n.port, "--node-id", "17",
                             "--site", "Bridge 7", "--set", "climate_period_s=30", "--plain")
        assert code == 0, err
        assert "node 17 PASS" in out and "self-test" in out
        rec = Inventory().get(17)
        with serial_link.NodeClient(n.port) as client:
            info = client.command("info")
        # the record says what the node says
        assert rec["result"] == "pass" and rec["site"] == "Bridge 7" and rec["port"] == n.port
        assert rec["app_hash"] == info["app_hash"] and rec["app_version"] == info["app_version"] == "0.1.0"
        assert rec["micropython"] == info["micropython"]
        from citynode.provision import config_hash

        assert rec["config_hash"] == config_hash(info["config"])
        assert rec["calibration"] == "uncalibrated"
        assert info["node_id"] == 17 and info["config"]["site"] == "Bridge 7"
        assert info["config"]["climate_period_s"] == 30
        # an empty root was a fresh board: it now holds the app, the manifest and the config
        assert (n.root / deploy.MANIFEST).is_file() and (n.root / "config.json").is_file()

        # the same node id again: refused, nothing touched
        before = (n.root / "config.json").read_bytes()
        code, out, err = run(capsys, "flash", "--app-only", "--port", n.port, "--node-id", "17", "--plain")
        assert code == 3 and "node id 17 is already in the inventory" in one_line(err) and "--force" in err
        assert (n.root / "config.json").read_bytes() == before
        assert len(Inventory().runs(17)) == 1

        # --force replaces it
        code, out, err = run(capsys, "flash", "--app-only", "--port", n.port, "--node-id", "17", "--force",
                             "--site", "Bridge 8", "--plain")
        assert code == 0, err
        assert Inventory().get(17)["site"] == "Bridge 8" and len(Inventory().runs(17)) == 2


def test_duplicate_id_never_touches_the_other_board(tmp_path, capsys):
    with node(tmp_path, "a") as a, node(tmp_path, "b") as b:
        assert run(capsys, "flash", "--app-only", "--port", a.port, "--node-id", "5", "--plain")[0] == 0
        code, out, err = run(capsys, "flash", "--app-only", "--port", b.port, "--node-id", "5", "--plain")
        assert code != 0 and "already in the inventory" in one_line(err)
        assert list(b.root.iterdir()) == []  # a fresh board stays fresh
        assert [r["node_id"] for r in Inventory().nodes()] == [5]
        assert Inventory().get(5)["port"] == a.port


def test_a_required_sensor_missing_fails_verify_and_is_recorded_as_failed(tmp_path, capsys):
    scenario = dict(SCENARIO, faults={"climate": "absent", "accel": "none"})
    with node(tmp_path, scenario=scenario) as n:
        code, out, err = run(capsys, "flash", "--app-only", "--port", n.port, "--node-id", "9",
                             "--set", "climate_part=sht3x", "--plain")
        assert code != 0
        assert "no climate sensor found" in one_line(err)
        rec = Inventory().get(9)
        assert rec["result"] == "fail" and "no climate sensor found" in rec["detail"]
        with serial_link.NodeClient(n.port) as client:
            assert client.command("info")["node_id"] == 9  # inventory and node agree


def test_secrets_are_never_echoed_or_stored(tmp_path, capsys, monkeypatch):
    secret = "correct-horse-battery-staple"
    pw_file = tmp_path / "wifi.txt"
    pw_file.write_text(secret + "\n")
    with node(tmp_path) as n:
        code, out, err = run(capsys, "flash", "--app-only", "--port", n.port, "--node-id", "3",
                             "--wifi-ssid", "citynet", "--wifi-password-file", str(pw_file), "--plain")
        assert code == 0, err
        assert secret not in out + err
        assert secret.encode() not in (tmp_path / "inventory.sqlite").read_bytes()
        code, out, err = run(capsys, "config", "get", "--port", n.port, "wifi_password")
        assert out.strip() == '"***"' and secret not in out
        code, out, err = run(capsys, "info", "--port", n.port, "--json")
        assert code == 0 and secret not in out
        # the node does hold it
        assert secret.encode() in (n.root / "config.json").read_bytes()
        # never on the command line
        code, out, err = run(capsys, "config", "set", "--port", n.port, "wifi_password", "hunter2")
        assert code == 2 and "secret" in one_line(err) and "hunter2" not in err
        code, out, err = run(capsys, "flash", "--app-only", "--port", n.port, "--node-id", "3", "--force",
                             "--set", "wifi_password=hunter2")
        assert code == 2 and "hunter2" not in err
        # from standard input
        monkeypatch.setattr("sys.stdin", __import__("io").StringIO("new-secret-value\n"))
        code, out, err = run(capsys, "config", "set", "--port", n.port, "wifi_password", "-")
        assert code == 0 and "***" in out and "new-secret-value" not in out + err
        assert b"new-secret-value" in (n.root / "config.json").read_bytes()


def test_info_and_config_get_set(tmp_path, capsys):
    with node(tmp_path) as n:
        assert run(capsys, "flash", "--app-only", "--port", n.port, "--node-id", "21", "--site", "Pier",
                   "--plain")[0] == 0
        code, out, err = run(capsys, "info", "--port", n.port, "--json")
        info = json.loads(out)
        assert info["node_id"] == 21 and info["site"] == "Pier" and info["micropython"] == "1.29.0"
        assert info["app_hash"] == Inventory().get(21)["app_hash"] and info["calibration"] is None
        assert {s["kind"] for s in info["sensors"]} == {"climate", "accel"}
        assert info["inventory"]["result"] == "pass"
        assert info["read_at"].endswith("Z") and info["fitted"] == "climate sht3x, accel adxl355"
        code, out, err = run(capsys, "info", "--port", n.port)
        assert "node id" in out and "sensors" in out and "climate" in out
        code, out, err = run(capsys, "config", "get", "--port", n.port, "site")
        assert out.strip() == '"Pier"'
        code, out, err = run(capsys, "config", "set", "--port", n.port, "site", "Quay 3")
        assert code == 0 and 'site = "Quay 3"' in out
        assert run(capsys, "config", "get", "--port", n.port, "site")[1].strip() == '"Quay 3"'
        assert Inventory().get(21)["site"] == "Quay 3"  # the inventory follows
        code, out, err = run(capsys, "config", "set", "--port", n.port, "climate_period_s", "1")
        assert code == 2 and "outside 2..86400" in one_line(err)
        code, out, err = run(capsys, "config", "set", "--port", n.port, "no_such_key", "1")
        assert code == 2 and "unknown config key" in one_line(err)
        code, out, err = run(capsys, "config", "set", "--port", n.port, "i2c_freq", "100000")
        assert code == 0 and "after a reboot" in out
        code, out, err = run(capsys, "config", "set", "--port", n.port, "node_id", "4")
        assert code == 2 and "--force" in one_line(err)


def test_backup_and_restore_with_hashes(tmp_path, capsys):
    with node(tmp_path) as n:
        assert run(capsys, "flash", "--app-only", "--port", n.port, "--node-id", "31", "--site", "Dock",
                   "--plain")[0] == 0
        with serial_link.NodeClient(n.port) as client:
            client.command("calib_write", calib=CALIB)
        saved = tmp_path / "backup-31"
        code, out, err = run(capsys, "backup", "--port", n.port, "-o", str(saved))
        assert code == 0, err
        manifest = json.loads((saved / "manifest.json").read_text())
        assert set(manifest["files"]) == {"config.json", "calib.json"}
        for name, meta in manifest["files"].items():
            data = (saved / name).read_bytes()
            assert hashlib.sha256(data).hexdigest() == meta["sha256"] and meta["status"] == "ok"
            assert data == (n.root / name).read_bytes()
            assert os.stat(saved / name).st_mode & 0o077 == 0  # owner only: the config holds secrets
        assert manifest["node"] == {"node_id": 31, "site": "Dock", "calibration_id": 100}

        # the node drifts: another site, another calibration
        assert run(capsys, "config", "set", "--port", n.port, "site", "Elsewhere")[0] == 0
        with serial_link.NodeClient(n.port) as client:
            client.command("calib_write", calib=dict(CALIB, id=101))
        code, out, err = run(capsys, "restore", "--port", n.port, str(saved))
        assert code == 0, err
        with serial_link.NodeClient(n.port) as client:
            info = client.command("info")
        assert info["site"] == "Dock" and info["calibration"]["id"] == 100 and info["config_fallback"] is None
        assert (n.root / "config.json").read_bytes() == (saved / "config.json").read_bytes()
        assert Inventory().get(31)["site"] == "Dock"

        # a damaged backup is refused before the node is touched
        (saved / "calib.json").write_bytes((saved / "calib.json").read_bytes().replace(b"100", b"666"))
        before = (n.root / "calib.json").read_bytes()
        code, out, err = run(capsys, "restore", "--port", n.port, str(saved))
        assert code == 2 and "does not match its SHA-256" in one_line(err)
        assert (n.root / "calib.json").read_bytes() == before
        # backup into a folder that is not empty: refused
        code, out, err = run(capsys, "backup", "--port", n.port, "-o", str(saved))
        assert code == 2 and "not empty" in one_line(err)


def test_bad_ports_are_one_line(tmp_path, capsys):
    code, out, err = run(capsys, "flash", "--app-only", "--port", str(tmp_path / "ttyUSB7"), "--node-id", "1")
    assert code != 0 and "no such port" in one_line(err)
    code, out, err = run(capsys, "info", "--port", str(tmp_path / "ttyUSB7"))
    assert code != 0 and "no such port" in one_line(err)
    with node(tmp_path) as n:
        with serial_link.open_serial(n.port):
            code, out, err = run(capsys, "flash", "--app-only", "--port", n.port, "--node-id", "1")
            assert code != 0 and "busy" in one_line(err)
            code, out, err = run(capsys, "backup", "--port", n.port, "-o", str(tmp_path / "b"))
            assert code != 0 and "busy" in one_line(err)
    assert Inventory().nodes() == []


def test_a_port_where_nothing_answers_info(tmp_path, capsys):
    master, slave = os.openpty()  # a serial port with nothing behind it
    try:
        code, out, err = run(capsys, "info", "--port", os.ttyname(slave))
        assert code != 0 and "did not answer" in one_line(err)
    finally:
        os.close(master)
        os.close(slave)


def test_a_port_where_nothing_answers_flash(tmp_path):
    """Run as a process with a deadline: a hang is a failure, not a stuck test run."""
    import subprocess
    import sys

    master, slave = os.openpty()  # a serial port with nothing behind it
    repo = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
    env = dict(os.environ, PYTHONPATH=os.pathsep.join([os.path.join(repo, "host"), os.path.join(repo, "protocol")]))
    try:
        proc = subprocess.run([sys.executable, "-m", "citynode", "flash", "--app-only", "--port",
                               os.ttyname(slave), "--node-id", "2"], env=env, capture_output=True, text=True,
                              timeout=25)
    except subprocess.TimeoutExpired:
        pytest.fail("citynode flash hung on a port where nothing answers")
    finally:
        os.close(master)
        os.close(slave)
    assert proc.returncode != 0 and "could not enter raw REPL" in one_line(proc.stderr)
    assert "no bytes at all" in proc.stderr
    assert Inventory().nodes() == []


def test_flash_refuses_a_truncated_image_before_touching_anything(tmp_path, capsys, mocker):
    from test_flash_esptool import image_for

    from citynode import flash

    opened = mocker.patch.object(flash, "open_port")
    image = tmp_path / "fw.bin"
    image.write_bytes(image_for("ESP32")[:50000])
    code, out, err = run(capsys, "flash", "--port", "/dev/ttyUSB0", "--firmware", str(image), "--node-id", "1")
    assert code == 2 and "truncated" in one_line(err)
    opened.assert_not_called()
    code, out, err = run(capsys, "flash", "--port", "/dev/ttyUSB0", "--node-id", "1")
    assert code == 2 and "--firmware" in one_line(err)
    assert not (tmp_path / "inventory.sqlite").exists() or Inventory().nodes() == []


def test_full_flash_path_with_the_fake_loader_then_a_virtual_node(tmp_path, capsys, mocker):
    """The esptool step (fake loader) followed by deploy/provision/verify/record on a virtual node:
    the MAC and chip from esptool land in the inventory."""
    from test_flash_esptool import FakeLoader, image_for

    from citynode import flash

    fake = FakeLoader(chip_name="ESP32-S3", mac=(0x34, 0x85, 0x18, 0xAA, 0xBB, 0xCC))
    mocker.patch.object(flash, "detect_chip", return_value=fake)
    mocker.patch.object(flash, "open_port", return_value=mocker.MagicMock())
    image = tmp_path / "s3.bin"
    image.write_bytes(image_for("ESP32-S3"))
    with node(tmp_path) as n:
        code, out, err = run(capsys, "flash", "--port", n.port, "--firmware", str(image), "--node-id", "44",
                             "--site", "Lab", "--plain")
        assert code == 0, err
        rec = Inventory().get(44)
        assert rec["mac"] == "34:85:18:aa:bb:cc" and rec["chip"] == "ESP32-S3" and rec["result"] == "pass"
        assert "erase_flash" in fake.names and bytes(fake.flash[: len(image.read_bytes())]) == image.read_bytes()
        db = sqlite3.connect(str(tmp_path / "inventory.sqlite"))
        assert db.execute("select count(*) from runs").fetchone()[0] == 1
        # the same board (its MAC) flashed as another node: recorded once, under the new id
        code, out, err = run(capsys, "flash", "--port", n.port, "--firmware", str(image), "--node-id", "45",
                             "--plain")
        assert code == 0, err
        assert "was recorded as node 44" in out
        assert [r["node_id"] for r in Inventory().nodes()] == [45] and Inventory().get(45)["site"] == "Lab"


# -- restore makes the node match its backup ----------------------------------------------


def test_restore_makes_the_node_match_its_backup_exactly(tmp_path, capsys):
    """A backup without calib.json removes the board's own calibration; --dry-run changes nothing;
    --json says what changed, when."""
    with node(tmp_path) as n:
        assert run(capsys, "flash", "--app-only", "--port", n.port, "--node-id", "12", "--site", "Weir",
                   "--plain")[0] == 0
        saved = tmp_path / "backup-12"
        code, out, err = run(capsys, "backup", "--port", n.port, "-o", str(saved), "--json")
        assert code == 0, err
        manifest = json.loads(out)
        assert set(manifest["files"]) == {"config.json"} and manifest["created"].endswith("Z")
        # later the board is calibrated twice (calib.json keeps both) and moved
        with serial_link.NodeClient(n.port) as client:
            client.command("calib_write", calib=CALIB)
            client.command("calib_write", calib=dict(CALIB, id=101))
        assert run(capsys, "config", "set", "--port", n.port, "site", "Lock 2")[0] == 0
        before = {p.name: p.read_bytes() for p in n.root.iterdir() if p.suffix == ".json"}

        code, out, err = run(capsys, "restore", "--port", n.port, str(saved), "--dry-run")
        assert code == 0, err
        assert "config.json      would write" in out and "calib.json       would remove" in out
        assert "nothing written" in out
        assert {p.name: p.read_bytes() for p in n.root.iterdir() if p.suffix == ".json"} == before

        code, out, err = run(capsys, "restore", "--port", n.port, str(saved), "--json")
        assert code == 0, err
        report = json.loads(out)
        assert report["restored"] and report["restored_at"].endswith("Z") and report["node_id"] == 12
        assert {c["file"]: c["action"] for c in report["changes"]} == {"config.json": "write", "calib.json": "remove"}
        assert sorted(p.name for p in n.root.iterdir() if p.suffix == ".json") == ["config.json"]
        assert (n.root / "config.json").read_bytes() == (saved / "config.json").read_bytes()
        with serial_link.NodeClient(n.port) as client:
            info = client.command("info")
        assert info["calibration"] is None and info["site"] == "Weir"
        rec = Inventory().get(12)
        assert rec["site"] == "Weir" and rec["calibration"] == "uncalibrated"
        assert Inventory().runs(12)[-1]["detail"].startswith("restored from")
        # restoring again: nothing left to change
        code, out, err = run(capsys, "restore", "--port", n.port, str(saved), "--dry-run")
        assert "0 changes" in out and "config.json      unchanged" in out


def test_restore_never_makes_a_second_live_node(tmp_path, capsys):
    with node(tmp_path, "a") as a, node(tmp_path, "b") as b:
        assert run(capsys, "flash", "--app-only", "--port", a.port, "--node-id", "20", "--site", "North",
                   "--plain")[0] == 0
        assert run(capsys, "flash", "--app-only", "--port", b.port, "--node-id", "21", "--plain")[0] == 0
        saved = tmp_path / "backup-20"
        assert run(capsys, "backup", "--port", a.port, "-o", str(saved))[0] == 0
        before = (b.root / "config.json").read_bytes()
        code, out, err = run(capsys, "restore", "--port", b.port, str(saved), "--dry-run")
        assert code == 0 and "it would become node 20" in out and "refused without --force" in out
        code, out, err = run(capsys, "restore", "--port", b.port, str(saved))
        assert code == 3 and "second node 20" in one_line(err) and "--force" in err, (code, err)
        assert (b.root / "config.json").read_bytes() == before  # nothing written
        # --force: board b takes id 20 over; the inventory follows it
        code, out, err = run(capsys, "restore", "--port", b.port, str(saved), "--force")
        assert code == 0, err
        assert "was node 21; it is node 20 now" in out
        assert Inventory().get(20)["port"] == b.port and Inventory().get(20)["site"] == "North"
        assert Inventory().get(21) is None  # the board is recorded once, under its new id


# -- the inventory stays true to the nodes ----------------------------------------------------


def test_inventory_follows_the_node_not_the_command_line(tmp_path, capsys):
    scenario = dict(SCENARIO, faults={"climate": "absent", "accel": "none"})
    with node(tmp_path, scenario=scenario) as n:
        # a failed run of a board with no MAC (a virtual node) ...
        code, out, err = run(capsys, "flash", "--app-only", "--port", n.port, "--node-id", "33",
                             "--site", "Sluice", "--set", "climate_part=sht3x", "--plain")
        assert code != 0 and Inventory().get(33)["result"] == "fail"
        n.set_scenario(faults={"climate": "none", "accel": "none"})  # the technician fixes the sensor
        # ... is retried on the same port without --force
        code, out, err = run(capsys, "flash", "--app-only", "--port", n.port, "--node-id", "33", "--plain")
        assert code == 0, err
        rec = Inventory().get(33)
        assert rec["result"] == "pass" and rec["site"] == "Sluice"  # the node kept its site, so does the record
        # a --force re-flash without --site keeps the site the node still has
        code, out, err = run(capsys, "flash", "--app-only", "--port", n.port, "--node-id", "33", "--force",
                             "--json")
        assert code == 0, err
        (job,) = json.loads(out)
        assert job["site"] == "Sluice" and job["started_at"].endswith("Z") and job["ended_at"].endswith("Z")
        assert Inventory().get(33)["site"] == "Sluice"


def test_deploy_json_has_timestamps_and_bytes(tmp_path, capsys):
    with node(tmp_path) as n:
        code, out, err = run(capsys, "deploy", "--port", n.port, "--plain")
        assert code == 0, err
        sends = [ln for ln in err.splitlines() if "sending app:" in ln]
        assert sends and sends[-1].split("sending app: ")[1].split(" of ")[0] == sends[-1].split(" of ")[1].split()[0]
        code, out, err = run(capsys, "deploy", "--port", n.port, "--json")
        report = json.loads(out)
        assert report["port"] == n.port and report["started_at"].endswith("Z") and report["ended_at"].endswith("Z")


# -- backup destinations: one line each, the real reason, nothing touched ------------------


@pytest.mark.parametrize("make, words", [
    (lambda p: p.write_text("x") and p, "exists and is a file"),
    (lambda p: (p.mkdir(), (p / "f").write_text("x")) and p, "exists and is not empty"),
    (lambda p: p.write_text("x") and p / "sub" / "backup", "is a file, not a folder"),
    (lambda p: __import__("pathlib").Path("/proc/citynode-backup"), "does not take new files"),
])
def test_backup_destinations_are_one_line(tmp_path, capsys, make, words):
    target = make(tmp_path / "dest")
    # the destination is checked before the port is opened: a port that does not exist is never reached
    code, out, err = run(capsys, "backup", "--port", str(tmp_path / "ttyUSB9"), "-o", str(target))
    assert code == 2 and words in one_line(err), err


def test_backup_into_an_unwritable_folder(tmp_path, capsys):
    if os.geteuid() == 0:
        pytest.skip("root writes into any folder: the permission cannot be tested as root")
    locked = tmp_path / "locked"
    locked.mkdir()
    locked.chmod(0o500)
    try:
        code, out, err = run(capsys, "backup", "--port", str(tmp_path / "ttyUSB9"), "-o", str(locked / "b"))
        assert code == 2 and "not writable" in one_line(err)
    finally:
        locked.chmod(0o700)
