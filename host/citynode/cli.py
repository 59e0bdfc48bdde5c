"""The `citynode` command: a table of subcommands, one handler module each, one error exit."""

import argparse
import importlib
import os
import sys

from citynode.errors import CitynodeError

# name -> (module under citynode.commands, one-line help)
COMMANDS = {
    "decode": ("decode", "decode a raw capture into tables (CSV, JSONL, Parquet) with link statistics"),
    "encode": ("encode", "build frames from JSON messages, for test traffic"),
    "sim": ("sim", "run a virtual node: real MicroPython on a pseudo-terminal with simulated sensors"),
    "record": ("record", "record the raw bytes a node sends"),
    "monitor": ("monitor", "live values, link statistics and a terminal plot of acceleration"),
    "plot": ("plot", "plot a capture: time series and acceleration spectrum"),
    "ports": ("ports", "list serial ports, marking those that look like ESP32 boards"),
    "flash": ("flash", "flash, deploy, provision, verify and record a node"),
    "deploy": ("deploy", "install the app, copying only files that changed"),
    "info": ("info", "show a node's identity, versions, config and health"),
    "config": ("config", "get or set a node's config"),
    "backup": ("backup", "save a node's config and calibration to a folder"),
    "restore": ("restore", "restore a node's config and calibration from a folder"),
    "inventory": ("inventory", "list and export the node inventory"),
    "calibrate": ("calibrate", "guided calibration of climate and accelerometer sensors"),
}


def _load(name):
    module_name, _ = COMMANDS[name]
    return importlib.import_module("citynode.commands." + module_name)


def _available_commands():
    """Commands whose handler module exists in this install."""
    here = os.path.join(os.path.dirname(__file__), "commands")
    return [n for n, (m, _) in COMMANDS.items() if os.path.exists(os.path.join(here, m + ".py"))]


def build_parser():
    parser = argparse.ArgumentParser(
        prog="citynode",
        description="Flash, calibrate, monitor and decode citynode sensor nodes.",
    )
    from citynode import __version__

    parser.add_argument("--version", action="version", version="citynode " + __version__)
    sub = parser.add_subparsers(dest="command", metavar="COMMAND")
    for name in _available_commands():
        handler = _load(name)
        sub_parser = sub.add_parser(name, help=COMMANDS[name][1], description=COMMANDS[name][1])
        handler.add_arguments(sub_parser)
        sub_parser.set_defaults(run=handler.run)
    return parser




def main(argv=None):
    parser = build_parser()
    args = parser.parse_args(argv)
    if not getattr(args, "run", None):
        parser.print_help()
        return 2
    try:
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
