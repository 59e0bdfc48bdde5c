"""The `citynode` command: a table of subcommands, one handler module each, one error exit."""

import argparse
import importlib
import sys

from citynode.errors import CitynodeError, UsageError

# name -> (module under citynode.commands, one-line help)
COMMANDS = {
    "decode": ("decode", "decode a raw capture into tables (CSV, JSONL, Parquet) with link statistics"),
    "encode": ("encode", "build frames from JSON messages, for test traffic"),
    "sim": ("sim", "run a virtual node: real MicroPython on a pseudo-terminal with simulated sensors"),
    "record": ("record", "record the raw bytes a node sends"),
    "monitor": ("monitor", "live values, link statistics and a terminal plot of acceleration"),
    "logs": ("logs", "the node's log lines as text, live"),
    "plot": ("plot", "plot a capture: time series and acceleration spectrum"),
    "ports": ("ports", "list serial ports and running virtual nodes, marking those that look like ESP32 boards"),
    "flash": ("flash", "flash, deploy, provision, verify and record a node"),
    "deploy": ("deploy", "install the app, copying only files that changed"),
    "info": ("info", "show a node's identity, versions, config and health"),
    "config": ("config", "get or set a node's config"),
    "backup": ("backup", "save a node's config and calibration to a folder"),
    "restore": ("restore", "restore a node's config and calibration from a folder"),
    "inventory": ("inventory", "list and export the node inventory"),
    "calibrate": ("calibrate", "guided calibration of climate and accelerometer sensors"),
    "repl": ("repl", "the node's MicroPython REPL in this terminal (Ctrl-] leaves)"),
    "exec": ("exec_code", "run Python code on the node and print its output"),
    "fs": ("fs", "list and print files on the node"),
    "reset": ("reset", "restart the node (soft; --hard: the chip)"),
    "hil": ("hil", "run the MicroPython tests on a board (hardware in the loop), reported like pytest"),
    "listen": ("listen", "network traffic of nodes from an MQTT broker, every frame's signature checked"),
    "query": ("query", "rows of the fleet store (collected from the broker) as decode's tables"),
    "fleet": ("fleet", "one row per node from the store: health and warnings; `report` writes an HTML page"),
    "fleet-sim": ("fleet_sim", "publish signed traffic of many simulated nodes to a broker (load, tests)"),
    "collect": ("collect", "the fleet's frames from an MQTT broker into a store, verified, acknowledged after the commit"),
    "remote": ("remote", "a node's commands over MQTT, signed with its key; the reply verified"),
}


class BadArguments(UsageError):
    """argparse refused the arguments; the message names the command and where its usage is."""


class OneLineParser(argparse.ArgumentParser):
    """An argparse parser whose errors are one line (`citynode: ...`), the usage only on --help.

    Every subparser (and theirs) is made by `add_subparsers`, which takes the
    class of its parent, so the commands' own modules need nothing special.
    """

    def error(self, message):
        raise BadArguments("%s%s (`%s --help` for usage)" % (self._command_words(), message, self.prog))

    def _command_words(self):
        words = self.prog.split()[1:]  # "citynode calibrate accel" -> ["calibrate", "accel"]
        return "%s: " % " ".join(words) if words else ""


def _load(name):
    module_name, _ = COMMANDS[name]
    return importlib.import_module("citynode.commands." + module_name)


def build_parser(command=None):
    """The parser; only the chosen command's module is imported, so one command's
    missing dependency never breaks the others."""
    from citynode import __version__

    parser = OneLineParser(
        prog="citynode",
        description="Flash, calibrate, monitor and decode citynode sensor nodes.",
        epilog="Run `citynode COMMAND --help` for a command's options.",
    )
    parser.add_argument("--version", action="version", version="citynode " + __version__)
    sub = parser.add_subparsers(dest="command", metavar="COMMAND")
    for name, (_module, help_text) in COMMANDS.items():
        sub_parser = sub.add_parser(name, help=help_text, description=help_text)
        if name == command:
            handler = _load(name)
            handler.add_arguments(sub_parser)
            sub_parser.set_defaults(run=handler.run)
    return parser


def _chosen_command(argv):
    for arg in argv:
        if not arg.startswith("-"):
            return arg if arg in COMMANDS else None
    return None


def _command_words(parser, argv):
    """The (sub)command words argv chose: ["config", "get"] for `config get --bogus`."""
    words = []
    for arg in argv:
        subparsers = [a for a in parser._actions if isinstance(a, argparse._SubParsersAction)]
        if arg.startswith("-") or not subparsers:
            continue
        if arg not in subparsers[0].choices:
            break
        words.append(arg)
        parser = subparsers[0].choices[arg]
    return words


def _parse(parser, argv):
    args, extra = parser.parse_known_args(argv)
    if extra:
        # parse_args would say this at the top level; say it for the (sub)command, whose usage it is
        prog = " ".join(["citynode"] + _command_words(parser, argv))
        OneLineParser(prog=prog).error("unrecognized arguments: %s" % " ".join(extra))
    return args


def main(argv=None):
    argv = sys.argv[1:] if argv is None else list(argv)
    command = _chosen_command(argv)
    try:
        parser = build_parser(command)
    except ImportError as exc:
        print("citynode: %s is not available in this install (%s)" % (command, exc), file=sys.stderr)
        return 1
    try:
        args = _parse(parser, argv)
        if not getattr(args, "run", None):
            raise UsageError("no command given: one of %s (`citynode --help` says what each does)"
                             % ", ".join(COMMANDS))
        return args.run(args) or 0
    except CitynodeError as exc:
        print("citynode: %s" % exc, file=sys.stderr)
        return exc.exit_code
    except KeyboardInterrupt:
        print("citynode: interrupted", file=sys.stderr)
        return 130
    except BrokenPipeError:
        return 1

if __name__ == "__main__":
    sys.exit(main())
