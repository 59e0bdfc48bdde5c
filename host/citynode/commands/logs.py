"""`citynode logs [--port P]`: the node's log lines (LOG frames) as text, live.

One line per log message: this computer's time, the node, the node's clock,
the level and the text. `--json` gives one JSON object per line instead.
Runs until Ctrl-C, or for `--duration` seconds; `--reboot` asks the app to
restart first, so the boot lines (version, reset cause, sensors found) show.
"""

import datetime
import json
import signal
import sys
import time

from citynode.commands.common import add_port_argument, interrupt_on, link_options
from citynode.errors import UsageError
from citynode_protocol import messages

QUIET_HINT_S = 5.0  # no frame at all for this long: say the app may not be running


def add_arguments(parser):
    add_port_argument(parser, baud=True)
    parser.add_argument("--duration", type=float, metavar="S", help="stop after S seconds (default: until Ctrl-C)")
    parser.add_argument("--level", choices=messages.LOG_LEVELS, default=messages.LOG_LEVELS[0],
                        help="show this level and above (default: %(default)s)")
    parser.add_argument("--reboot", action="store_true", help="restart the node's app first, to see its boot lines")
    parser.add_argument("--json", action="store_true", help="one JSON object per line")


def level_name(level):
    return messages.LOG_LEVELS[level] if 0 <= level < len(messages.LOG_LEVELS) else "level%d" % level


def log_record(msg, now=None):
    """A LOG message as a dict: host time (UTC), node id, seq, node time, level, text."""
    now = now or datetime.datetime.now(datetime.timezone.utc)
    return {"host_time": now.isoformat(timespec="milliseconds"), "node_id": msg.node_id, "seq": msg.seq,
            "node_time_ms": msg.time_ms, "level": level_name(msg["level"]), "text": msg.fields.get("text", "")}


def log_line(record):
    return "%s  node %d  t=%.3f  %-7s  %s" % (record["host_time"][11:23], record["node_id"],
                                             record["node_time_ms"] / 1000.0, record["level"], record["text"])


def run(args):
    from citynode.serial_link import NodeClient

    if args.duration is not None and args.duration <= 0:
        raise UsageError("--duration %g: must be positive" % args.duration)
    least = messages.LOG_LEVELS.index(args.level)
    port, baud = link_options(args)
    with NodeClient(port, baud) as client, interrupt_on(signal.SIGTERM):
        if args.reboot:
            client.command("reboot")
        quiet_until = time.monotonic() + QUIET_HINT_S

        def hint_when_quiet():
            nonlocal quiet_until
            if quiet_until is not None and time.monotonic() > quiet_until:
                quiet_until = None
                if not client.stats.frames:
                    print("citynode: no frames from the node on %s in %g s: is its app running? "
                          "(`citynode reset` restarts it)" % (port, QUIET_HINT_S), file=sys.stderr, flush=True)
            return False

        try:
            for msg in client.read_frames(seconds=args.duration, stop=hint_when_quiet):
                if msg.name != "log" or msg["level"] < least:
                    continue
                record = log_record(msg)
                print(json.dumps(record) if args.json else log_line(record), flush=True)
        except KeyboardInterrupt:
            pass
    return 0

