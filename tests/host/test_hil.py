"""`citynode hil`: the MicroPython test modules run on a board through the raw REPL.

A virtual node with the app deployed stands for the board: the same command
runs on /dev/ttyUSB0 the day one is plugged in.
"""

import re
import shutil
from pathlib import Path

import pytest
from vnode_fixtures import virtual_node

from citynode import hil
from citynode.cli import main
from citynode.serial_link import NodeClient

ROOT = Path(__file__).resolve().parents[2]
_TEST_DEF = re.compile(r"^def (test_\w+)\s*\(", re.MULTILINE)


@pytest.fixture(scope="module")
def board(tmp_path_factory):
    with virtual_node(tmp_path_factory.mktemp("hil"), with_app=True) as node:
        assert app_runs(node.port)  # the app is up: the first run does not meet it booting
        yield node


def app_runs(port):
    with NodeClient(port) as client:
        return client.command("status") is not None


def run_hil(capfd, *argv):
    """`citynode hil ...` in this process; then the node's app must answer again (which also
    keeps the next run from meeting a virtual node whose app is still starting, see
    tests/host/test_maintenance_verbs.py `cli`)."""
    code = main(["hil", *argv])
    out, err = capfd.readouterr()
    if "--port" in argv and argv[argv.index("--port") + 1] != "loop://":
        assert app_runs(argv[argv.index("--port") + 1])
    return code, out, err


def names_in(rel):
    return _TEST_DEF.findall((ROOT / "tests" / rel).read_text())


@pytest.mark.parametrize("rel", ["both/test_cobs.py", "firmware/test_config.py"])
def test_real_modules_pass_on_the_board_reported_like_pytest(board, capfd, rel):
    code, out, err = run_hil(capfd, rel, "--port", board.port)
    assert code == 0, out + err
    lines = out.splitlines()
    assert lines[0].startswith("hil: 1 module on %s (" % board.port)
    assert lines[1:-1] == ["%s::%s PASSED" % (rel, name) for name in names_in(rel)]
    assert re.fullmatch(r"=+ %d passed in [\d.]+s =+" % len(names_in(rel)), lines[-1])
    assert (board.root / "hil" / "tests" / rel).read_bytes() == (ROOT / "tests" / rel).read_bytes()


def test_a_second_run_copies_nothing_and_k_selects(board, capfd):
    run_hil(capfd, "test_cobs", "--port", board.port)
    code, out, _err = run_hil(capfd, "test_cobs", "--port", board.port, "-k", "chain_ends")
    assert code == 0
    lines = out.splitlines()
    assert re.fullmatch(r"hil: 1 module on \S+ \(0 files copied to /hil, \d+ unchanged\)", lines[0])
    assert lines[1:-1] == ["both/test_cobs.py::test_chain_ends_finds_frame_start_behind_junk PASSED"]


_MIXED = '''\
# mp: timeout=60
from mp_skip import SkipTest


def test_ok():
    pass


def test_bad():
    assert 1 + 1 == 3, "arithmetic"


def test_skipped():
    raise SkipTest("not on this board")
'''

_BROKEN = "import numpy\n\n\ndef test_a():\n    pass\n\n\ndef test_b():\n    pass\n"

_HANGS = "def test_first():\n    pass\n\n\ndef test_hangs():\n    while True:\n        pass\n"


@pytest.fixture
def own_tests(tmp_path, monkeypatch):
    """A tests/ folder of our own beside the repository's protocol/, as hil.tests_root()."""
    tests = tmp_path / "repo" / "tests"
    (tests / "both").mkdir(parents=True)
    (tests / "firmware").mkdir()
    (tmp_path / "repo" / "protocol").symlink_to(ROOT / "protocol")
    for name in ("mp_runner.py", "mp_skip.py"):
        shutil.copy(ROOT / "tests" / name, tests / name)
    (tests / "both" / "test_hil_mixed.py").write_text(_MIXED)
    (tests / "both" / "test_hil_broken.py").write_text(_BROKEN)
    (tests / "both" / "test_hil_hangs.py").write_text(_HANGS)
    monkeypatch.setattr(hil, "tests_root", lambda: tests)
    return tests


def test_failures_skips_and_broken_modules_are_reported_and_counted(board, capfd, own_tests):
    code, out, _err = run_hil(capfd, "test_hil_[mb]*", "--port", board.port)
    assert code == 3, out + _err  # the number of failed tests
    assert [line for line in out.splitlines() if line.startswith("both/")] == [
        "both/test_hil_broken.py::test_a FAILED",
        "both/test_hil_broken.py::test_b FAILED",
        "both/test_hil_mixed.py::test_ok PASSED",
        "both/test_hil_mixed.py::test_bad FAILED",
        "both/test_hil_mixed.py::test_skipped SKIPPED",
    ]
    failures = out.split(" FAILURES ", 1)[1]
    assert "no module named 'numpy'" in failures
    assert "AssertionError: arithmetic" in failures and 'test_hil_mixed.py", line 10' in failures
    assert re.search(r"=+ 3 failed, 1 passed, 1 skipped in [\d.]+s =+$", out)


def test_a_module_that_hangs_fails_and_the_next_one_still_runs(board, capfd, own_tests):
    code, out, _err = run_hil(capfd, "test_hil_[hm]*", "--port", board.port, "--timeout", "1")
    assert code == 2, out + _err  # test_hangs, and test_bad of the module after it, which ran
    lines = out.splitlines()
    assert "both/test_hil_hangs.py::test_first PASSED" in lines
    assert "both/test_hil_hangs.py::test_hangs FAILED" in lines
    assert "both/test_hil_mixed.py::test_ok PASSED" in lines
    assert "no result from the node: the run ended" in out


def test_clean_removes_the_files_from_the_node(board, capfd):
    code, _out, _err = run_hil(capfd, "test_cobs", "--port", board.port, "-k", "chain_ends", "--clean")
    assert code == 0
    assert not (board.root / "hil").exists()
    assert not (board.root / "tmp").exists()  # the firmware tests' scratch folder, left empty


def test_no_matching_module_is_one_line(capfd):
    code, out, err = run_hil(capfd, "no_such_module", "--port", "loop://")
    assert code == 1 and out == ""
    assert err.startswith("citynode: no test module matches 'no_such_module'") and err.count("\n") == 1
