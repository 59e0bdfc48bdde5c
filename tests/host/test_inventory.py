"""The SQLite inventory: records, the duplicate rule, exports, the path rules, the command."""

import csv
import io
import json
import sqlite3
import threading

import pytest

from citynode import cli
from citynode.inventory import FIELDS, DuplicateNode, Inventory, default_path, resolve_path, to_csv, to_json


def rec(node_id, mac="24:6f:28:00:00:01", result="pass", **kw):
    base = {
        "node_id": node_id, "mac": mac, "chip": "ESP32", "micropython": "1.29.0", "app_version": "0.1.0",
        "app_hash": "ab" * 8, "config_hash": "cd" * 8, "calibration": "none", "site": "Bridge 7",
        "result": result, "port": "/dev/ttyUSB0",
    }
    base.update(kw)
    return base


@pytest.fixture
def inv(tmp_path):
    return Inventory(tmp_path / "sub" / "inventory.sqlite")


def test_record_and_read_back(inv):
    inv.record(rec(17))
    got = inv.get(17)
    assert got["mac"] == "24:6f:28:00:00:01" and got["result"] == "pass"
    assert got["recorded_at"].endswith("Z")
    assert [r["node_id"] for r in inv.nodes()] == [17]
    assert len(inv.runs(17)) == 1
    assert inv.get(18) is None


def test_duplicate_id_is_refused_unless_force(inv):
    inv.record(rec(5, mac="aa:aa:aa:aa:aa:aa"))
    with pytest.raises(DuplicateNode) as info:
        inv.record(rec(5, mac="bb:bb:bb:bb:bb:bb"))
    assert "node id 5 is already in the inventory" in str(info.value) and "--force" in str(info.value)
    assert inv.get(5)["mac"] == "aa:aa:aa:aa:aa:aa"  # untouched
    assert len(inv.runs(5)) == 1  # the refused write left no trace
    inv.record(rec(5, mac="bb:bb:bb:bb:bb:bb"), force=True)
    assert inv.get(5)["mac"] == "bb:bb:bb:bb:bb:bb"
    assert len(inv.runs(5)) == 2


def test_same_board_passed_is_still_a_duplicate(inv):
    inv.record(rec(6))
    with pytest.raises(DuplicateNode):
        inv.check_free(6, mac="24:6f:28:00:00:01")


def test_failed_run_of_the_same_board_may_be_retried(inv):
    inv.record(rec(9, result="fail", detail="no sensor found"))
    inv.check_free(9, mac="24:6f:28:00:00:01")  # same board: fine
    with pytest.raises(DuplicateNode):
        inv.check_free(9, mac="11:11:11:11:11:11")  # another board: no
    with pytest.raises(DuplicateNode):
        inv.check_free(9, mac=None)  # unknown board: no
    inv.record(rec(9))
    assert inv.get(9)["result"] == "pass"
    assert [r["result"] for r in inv.runs(9)] == ["fail", "pass"]


def test_parallel_writers_of_one_id_only_one_wins(inv):
    outcomes = []

    def writer(i):
        try:
            inv.record(rec(40, mac="00:00:00:00:00:%02x" % i))
            outcomes.append("ok")
        except DuplicateNode:
            outcomes.append("dup")

    threads = [threading.Thread(target=writer, args=(i,)) for i in range(8)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert sorted(outcomes) == ["dup"] * 7 + ["ok"]
    assert len(inv.runs(40)) == 1


def test_exports(inv):
    inv.record(rec(2, site='Quay "B", north'))
    inv.record(rec(1, mac=None, calibration="id 7 2025-01-02"))
    rows = list(csv.DictReader(io.StringIO(to_csv(inv.nodes()))))
    assert [r["node_id"] for r in rows] == ["1", "2"]
    assert list(rows[0]) == list(FIELDS)
    assert rows[0]["mac"] == "" and rows[1]["site"] == 'Quay "B", north'
    data = json.loads(to_json(inv.nodes()))
    assert data[0]["mac"] is None and data[1]["node_id"] == 2
    assert data[0]["calibration"] == "id 7 2025-01-02"


def test_path_rules(tmp_path, monkeypatch):
    monkeypatch.delenv("CITYNODE_INVENTORY", raising=False)
    monkeypatch.delenv("XDG_DATA_HOME", raising=False)
    monkeypatch.setenv("HOME", str(tmp_path))
    assert default_path() == tmp_path / ".local" / "share" / "citynode" / "inventory.sqlite"
    assert resolve_path() == default_path()
    monkeypatch.setenv("CITYNODE_INVENTORY", str(tmp_path / "env.sqlite"))
    assert resolve_path() == tmp_path / "env.sqlite"
    assert resolve_path(str(tmp_path / "arg.sqlite")) == tmp_path / "arg.sqlite"


def test_not_a_database_is_one_line(tmp_path):
    bad = tmp_path / "inv.sqlite"
    bad.write_bytes(b"this is not sqlite" * 100)
    with pytest.raises(Exception) as info:
        Inventory(bad).nodes()
    assert "not a usable SQLite file" in str(info.value)


def test_schema_is_what_we_expect(inv):
    inv.record(rec(3))
    db = sqlite3.connect(str(inv.path))
    cols = [r[1] for r in db.execute("PRAGMA table_info(nodes)")]
    assert cols == list(FIELDS)
    assert db.execute("PRAGMA user_version").fetchone()[0] == 2


def test_a_version_1_inventory_gains_the_sensors_column(tmp_path):
    path = tmp_path / "old.sqlite"
    db = sqlite3.connect(str(path))
    old = [f for f in FIELDS if f != "sensors"]
    db.execute("CREATE TABLE nodes (%s)" % ", ".join(("%s INTEGER PRIMARY KEY" if f == "node_id" else "%s TEXT") % f
                                                     for f in old))
    db.execute("CREATE TABLE runs (run INTEGER PRIMARY KEY AUTOINCREMENT, %s)" % ", ".join(old))
    db.execute("INSERT INTO nodes (node_id, mac, result) VALUES (4, 'aa', 'pass')")
    db.execute("PRAGMA user_version = 1")
    db.commit()
    db.close()
    inv = Inventory(path)
    assert inv.get(4)["sensors"] is None and inv.get(4)["mac"] == "aa"
    inv.record(rec(5, sensors="climate sht3x, accel not fitted"))
    assert inv.get(5)["sensors"] == "climate sht3x, accel not fitted"


def test_one_board_holds_one_id(inv):
    inv.record(rec(7, mac="aa:00:00:00:00:07"))
    inv.record(rec(8, mac="aa:00:00:00:00:07"), force=True)  # the same board, renumbered
    assert [r["node_id"] for r in inv.nodes()] == [8]
    assert [r["node_id"] for r in inv.runs()] == [7, 8]  # the history stays
    assert inv.holder("aa:00:00:00:00:07")["node_id"] == 8


def test_a_failed_board_without_mac_may_retry_on_its_port(inv):
    inv.record(rec(9, mac=None, result="fail", port="/dev/pts/4"))
    inv.check_free(9, port="/dev/pts/4")  # the same port, no MAC on either side: the same board
    with pytest.raises(DuplicateNode):
        inv.check_free(9, port="/dev/pts/5")
    inv.record(rec(9, mac=None, port="/dev/pts/4"))
    assert inv.get(9)["result"] == "pass"
    with pytest.raises(DuplicateNode):
        inv.check_free(9, port="/dev/pts/4")  # passed: a new run needs --force


# -- the command -------------------------------------------------------------------


def test_inventory_command(tmp_path, capsys, monkeypatch):
    path = tmp_path / "inv.sqlite"
    monkeypatch.setenv("CITYNODE_INVENTORY", str(path))
    assert cli.main(["inventory"]) == 0
    assert "no nodes recorded yet" in capsys.readouterr().out
    Inventory().record(rec(11))
    Inventory().record(rec(12, mac="24:6f:28:00:00:02", result="fail", detail="selftest: no climate sensor"))
    assert cli.main(["inventory", "list"]) == 0
    out = capsys.readouterr().out
    assert "11" in out and "12" in out and "fail" in out
    assert cli.main(["inventory", "export", "--format", "json"]) == 0
    assert [r["node_id"] for r in json.loads(capsys.readouterr().out)] == [11, 12]
    out_file = tmp_path / "inv.csv"
    assert cli.main(["inventory", "export", "--format", "csv", "-o", str(out_file)]) == 0
    assert out_file.read_text().startswith("node_id,mac,chip")
    assert cli.main(["inventory", "show", "12"]) == 0
    assert "selftest: no climate sensor" in capsys.readouterr().out
    assert cli.main(["inventory", "list", "--json"]) == 0
    assert [r["node_id"] for r in json.loads(capsys.readouterr().out)] == [11, 12]
    assert cli.main(["inventory", "show", "12", "--json"]) == 0
    shown = json.loads(capsys.readouterr().out)
    assert shown["node"]["result"] == "fail" and shown["runs"][0]["recorded_at"].endswith("Z")
    assert cli.main(["inventory", "--inventory", str(tmp_path / "other.sqlite"), "path"]) == 0
    assert capsys.readouterr().out.strip() == str(tmp_path / "other.sqlite")
    assert cli.main(["inventory", "remove", "11"]) == 0
    capsys.readouterr()
    assert cli.main(["inventory", "remove", "11"]) == 2
    err = capsys.readouterr().err
    assert err.startswith("citynode: node id 11 is not in the inventory") and err.count("\n") == 1


def test_piped_list_keeps_every_column_and_shows_calibration_in_words(tmp_path, capsys, monkeypatch):
    monkeypatch.setenv("CITYNODE_INVENTORY", str(tmp_path / "inv.sqlite"))
    inv = Inventory()
    inv.record(rec(11, site="Harbour bridge, north abutment", sensors="climate sht3x, accel adxl355"))
    inv.update(11, calibration=json.dumps({"id": 100, "date": "2026-01-01", "method": "six-position",
                                           "report": "/srv/reports/n11"}))
    assert cli.main(["inventory", "list"]) == 0  # capsys: not a terminal, as in a pipe
    out = capsys.readouterr().out
    line = [ln for ln in out.splitlines() if ln.lstrip().startswith("11")][0]
    assert "Harbour bridge, north abutment" in line and "ok" not in line.split()  # one line, nothing cut
    assert "id 100 2026-01-01" in line and "{" not in out and "/srv/reports" not in out
    assert "climate sht3x, accel adxl355" in line
