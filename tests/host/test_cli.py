"""The command table: every command is listed, has help, and fails in one line."""

import argparse
import os
import subprocess
import sys
from pathlib import Path

import pytest

from citynode.cli import COMMANDS, build_parser, main

ROOT = Path(__file__).resolve().parents[2]


def _env():
    """This tree's host/ and protocol/ first, as pytest has them."""
    return dict(os.environ, PYTHONPATH=os.pathsep.join([str(ROOT / "host"), str(ROOT / "protocol")]))


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


def test_no_command_lists_the_commands_in_one_line(capsys):
    assert main([]) == 2
    out, err = capsys.readouterr()
    assert out == "" and err.count("\n") == 1
    assert all(name in err for name in COMMANDS)


def test_unknown_command_is_refused():
    proc = subprocess.run([sys.executable, "-m", "citynode", "frobnicate"], capture_output=True, text=True, env=_env())
    assert proc.returncode == 2
    assert "invalid choice" in proc.stderr
    assert "Traceback" not in proc.stderr


def test_version():
    proc = subprocess.run([sys.executable, "-m", "citynode", "--version"], capture_output=True, text=True, env=_env())
    assert proc.returncode == 0 and proc.stdout.startswith("citynode ")


# --- every argument error is one line -----------------------------------------

BAD_VALUE = "not-a-value"


def _parsers(argv, parser):
    """(argv prefix, parser) for a parser and every subcommand parser below it."""
    yield argv, parser
    for action in parser._actions:
        if isinstance(action, argparse._SubParsersAction):
            for name, sub in action.choices.items():
                yield from _parsers(argv + [name], sub)


def _has_subcommands(parser):
    return any(isinstance(a, argparse._SubParsersAction) for a in parser._actions)


def _bad_argument_cases():
    """Bad command lines for every command and subcommand: (id, argv)."""
    cases = []
    for command in sorted(COMMANDS):
        for prefix, parser in _parsers([command], build_parser(command)._subparsers._group_actions[0].choices[command]):
            label = " ".join(prefix)
            cases.append(("%s: unknown option" % label, prefix + ["--no-such-option"]))
            required = [a for a in parser._actions if a.required]
            if required:
                cases.append(("%s: missing required" % label, prefix))
            for action in parser._actions:
                if not action.option_strings or action.nargs == 0 or isinstance(action, argparse._HelpAction):
                    continue
                option = action.option_strings[-1]
                cases.append(("%s %s: missing value" % (label, option), prefix + [option]))
                if action.type in (int, float):
                    cases.append(("%s %s: bad type" % (label, option), prefix + [option, BAD_VALUE]))
                if action.choices:
                    cases.append(("%s %s: bad choice" % (label, option), prefix + [option, BAD_VALUE]))
            positionals = [a for a in parser._actions if not a.option_strings]
            if positionals and positionals[0].type in (int, float) and not _has_subcommands(parser):
                cases.append(("%s %s: bad type" % (label, positionals[0].dest), prefix + [BAD_VALUE]))
            if _has_subcommands(parser):
                cases.append(("%s: bad choice of subcommand" % label, prefix + ["no-such-subcommand"]))
    cases.append(("citynode: unknown command", ["no-such-command"]))
    cases.append(("citynode: unknown option", ["--no-such-option"]))
    cases.append(("citynode: no command", []))
    return cases


_CASES = _bad_argument_cases()


def test_the_walk_covers_every_kind_of_bad_argument():
    kinds = {case_id.rsplit(": ", 1)[1] for case_id, _ in _CASES}
    assert {"unknown option", "missing value", "bad type", "missing required", "bad choice"} <= kinds
    assert {argv[0] for _, argv in _CASES if argv} >= set(COMMANDS)


@pytest.mark.parametrize("argv", [argv for _, argv in _CASES], ids=[case_id for case_id, _ in _CASES])
def test_bad_arguments_are_one_line(argv, capsys, monkeypatch, tmp_path):
    monkeypatch.chdir(tmp_path)  # nothing a command might write lands in the tree
    code = main(argv)
    out, err = capsys.readouterr()
    assert code != 0
    lines = err.splitlines()
    assert len(lines) == 1 and lines[0].startswith("citynode: "), err
    assert "usage:" not in err + out and "Traceback" not in err


def test_bad_arguments_are_one_line_from_the_shell():
    proc = subprocess.run([sys.executable, "-m", "citynode", "plot", "capture.bin", "--node", "x"],
                          capture_output=True, text=True, env=_env())
    assert proc.returncode == 2
    assert proc.stderr.splitlines() == [
        "citynode: plot: argument --node: invalid int value: 'x' (`citynode plot --help` for usage)"]


def test_help_still_prints_the_usage():
    proc = subprocess.run([sys.executable, "-m", "citynode", "calibrate", "accel", "--help"],
                          capture_output=True, text=True, env=_env())
    assert proc.returncode == 0
    assert proc.stdout.startswith("usage: citynode calibrate accel")


@pytest.mark.parametrize("argv, words", [
    (["config", "get", "--bogus"], "citynode: config get: unrecognized arguments: --bogus (`citynode config get --help`"),
    (["calibrate", "accel", "--positions", "x"], "citynode: calibrate accel: argument --positions: invalid int"),
    (["inventory", "export", "--format", "xml"], "citynode: inventory export: argument --format: invalid choice"),
    (["no-such-command"], "citynode: argument COMMAND: invalid choice: 'no-such-command'"),
])
def test_the_error_names_the_subcommand_whose_usage_it_is(argv, words, capsys):
    assert main(argv) == 2
    assert capsys.readouterr().err.startswith(words)
