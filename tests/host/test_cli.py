"""The command table: every command is listed, has help, and fails in one line."""

import subprocess
import sys

import pytest

from citynode.cli import COMMANDS, main


def test_help_lists_every_command(capsys):
    with pytest.raises(SystemExit) as exc:
        main(["--help"])
    assert exc.value.code == 0
    out = capsys.readouterr().out
    for name in COMMANDS:
        assert name in out


@pytest.mark.parametrize("name", sorted(COMMANDS))
def test_every_command_has_help(name, capsys):
    with pytest.raises(SystemExit) as exc:
        main([name, "--help"])
    assert exc.value.code == 0
    assert "usage: citynode " + name in capsys.readouterr().out


def test_no_command_prints_help_and_fails(capsys):
    assert main([]) == 2
    assert "COMMAND" in capsys.readouterr().out


def test_unknown_command_is_refused():
    proc = subprocess.run([sys.executable, "-m", "citynode", "frobnicate"], capture_output=True, text=True)
    assert proc.returncode == 2
    assert "invalid choice" in proc.stderr
    assert "Traceback" not in proc.stderr


def test_version():
    proc = subprocess.run([sys.executable, "-m", "citynode", "--version"], capture_output=True, text=True)
    assert proc.returncode == 0 and proc.stdout.startswith("citynode ")
