"""Batch flashing: several ports at once (app-only, virtual nodes), one progress line each,
a summary table, and one failure never stops the others."""

import io
import json

import pytest

from citynode import cli, ports, serial_link
from citynode.progress import ProgressBoard
from citynode.inventory import Inventory
from vnode_fixtures import virtual_node

NODE_HEAP = "1m"
SCENARIO = {"temperature_c": 19.0, "relative_humidity_pct": 55.0, "noise_g": 0.0005, "seed": 9}


@pytest.fixture(autouse=True)
def isolated(tmp_path, tmp_path_factory, monkeypatch):
    monkeypatch.setenv("CITYNODE_INVENTORY", str(tmp_path / "inventory.sqlite"))
    monkeypatch.setenv("CITYNODE_MPY_CACHE", str(tmp_path_factory.getbasetemp() / "mpy-cache"))
    monkeypatch.delenv("CITYNODE_PORT", raising=False)


class Nodes:
    """n virtual nodes, started and stopped together."""

    def __init__(self, tmp_path, scenarios):
        self.contexts = [virtual_node(tmp_path / ("node%d" % i), scenario=sc, heap=NODE_HEAP)
                         for i, sc in enumerate(scenarios)]
        self.nodes = []

    def __enter__(self):
        for c in self.contexts:
            self.nodes.append(c.__enter__())
        return self.nodes

    def __exit__(self, *exc):
        for c in reversed(self.contexts):
            c.__exit__(*exc)


def run(capsys, *argv):
    code = cli.main(list(argv))
    out, err = capsys.readouterr()
    return code, out, err


def node_id_of(port):
    with serial_link.NodeClient(port) as client:
        return client.command("info")["node_id"]


def test_four_nodes_in_parallel_end_with_a_correct_inventory(tmp_path, capsys):
    with Nodes(tmp_path, [SCENARIO] * 4) as nodes:
        argv = ["flash", "--app-only", "--node-id", "100", "--site", "Row 4", "--json"]
        for n in nodes:
            argv += ["--port", n.port]
        code, out, err = run(capsys, *argv)
        assert code == 0, err
        jobs = json.loads(out)
        assert [j["result"] for j in jobs] == ["pass"] * 4
        # they ran side by side: every job started before any ended
        assert max(j["started"] for j in jobs) < min(j["ended"] for j in jobs)
        inv = Inventory()
        records = inv.nodes()
        assert [r["node_id"] for r in records] == [100, 101, 102, 103]
        by_port = {r["port"]: r for r in records}
        app_hashes = set()
        for expected_id, n in zip(range(100, 104), nodes):
            rec = by_port[n.port]
            assert rec["node_id"] == expected_id == node_id_of(n.port)  # inventory and node agree
            assert rec["result"] == "pass" and rec["site"] == "Row 4" and rec["calibration"] == "uncalibrated"
            assert rec["micropython"] == "1.29.0" and rec["app_version"] == "0.1.0"
            app_hashes.add(rec["app_hash"])
        assert len(app_hashes) == 1
        assert len(inv.runs()) == 4


def test_one_failure_never_stops_the_others(tmp_path, capsys):
    no_sensor = dict(SCENARIO, faults={"climate": "none", "accel": "absent"})
    with Nodes(tmp_path, [SCENARIO, no_sensor, SCENARIO]) as nodes:
        missing = "/dev/ttyCITYNODE9"  # no such port
        argv = ["flash", "--app-only", "--plain",
                "--port", nodes[0].port, "--port", missing, "--port", nodes[1].port, "--port", nodes[2].port,
                "--node-id", "7", "--node-id", "8", "--node-id", "9", "--node-id", "10",
                "--set", "accel_part=adxl355"]  # named: required, so the absent one fails
        code, out, err = run(capsys, *argv)
        assert code == 1
        last = err.splitlines()[-1]
        assert last.startswith("citynode: 2 of 4 nodes failed") and "Traceback" not in err
        # the summary table names every port and why the failures failed
        for port in (nodes[0].port, missing, nodes[1].port, nodes[2].port):
            assert port in out
        flat = " ".join(out.split())
        assert "no such port" in flat and "no accel sensor found" in flat
        # each port had its own progress lines
        for n in nodes:
            assert "%s: sending app" % n.port in err
        inv = Inventory()
        got = {r["node_id"]: r["result"] for r in inv.nodes()}
        assert got == {7: "pass", 9: "fail", 10: "pass"}  # 8 never reached a node: not recorded
        assert "no accel sensor found" in inv.get(9)["detail"]
        assert sorted(r["node_id"] for r in inv.runs() if r["result"] == "fail") == [8, 9]
        assert node_id_of(nodes[0].port) == 7 and node_id_of(nodes[2].port) == 10


def test_all_takes_the_ports_that_look_like_boards(tmp_path, capsys, mocker):
    with Nodes(tmp_path, [SCENARIO, SCENARIO]) as nodes:
        mocker.patch.object(ports, "esp32_ports", return_value=[n.port for n in nodes])
        code, out, err = run(capsys, "flash", "--all", "--app-only", "--node-id", "300", "--plain")
        assert code == 0, err
        assert "citynode flash: 2 nodes" in out and out.count("PASS") == 2
        assert [r["node_id"] for r in Inventory().nodes()] == [300, 301]
    mocker.patch.object(ports, "esp32_ports", return_value=[])
    code, out, err = run(capsys, "flash", "--all", "--app-only", "--node-id", "1")
    assert code == 2 and err.startswith("citynode: --all: no port looks like an ESP32") and err.count("\n") == 1


@pytest.mark.parametrize("argv, words", [
    (["--port", "/dev/a", "--port", "/dev/b", "--node-id", "5", "--node-id", "5"], "node ids must differ"),
    (["--port", "/dev/a", "--port", "/dev/b", "--node-id", "1", "--node-id", "2", "--node-id", "3"],
     "3 node ids for 2 ports"),
    (["--port", "/dev/a", "--port", "/dev/a", "--node-id", "1"], "a port is given twice"),
    (["--port", "/dev/a"], "--node-id is required"),
    (["--port", "/dev/a", "--node-id", "70000"], "outside 0..65535"),
])
def test_batch_arguments_are_checked_first(capsys, argv, words):
    code, out, err = run(capsys, "flash", "--app-only", *argv)
    assert code == 2 and words in err and err.count("\n") == 1


def test_live_progress_has_one_line_per_port():
    class Tty(io.StringIO):
        def isatty(self):
            return True

    stream = Tty()
    with ProgressBoard(stream=stream) as board:
        a, b = board.job("/dev/ttyUSB0"), board.job("/dev/ttyUSB1")
        a("send", 50, 100)
        b("erase")
        board.finish("/dev/ttyUSB1", False, "FAIL: no such port")
        a("done", 1, 1)
        board.finish("/dev/ttyUSB0", True, "PASS")
    text = stream.getvalue()
    assert "/dev/ttyUSB0" in text and "/dev/ttyUSB1" in text
    assert "PASS" in text and "FAIL: no such port" in text
