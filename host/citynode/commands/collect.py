"""`citynode collect --broker URL [--group NAME] [--store TARGET]`: the fleet's frames into a store.

Subscribes to `$share/GROUP/PREFIX/+/frames` with MQTT 5 (QoS 1, a persistent
session), checks every frame's signature with the keystore, decodes, flags
climate rows (citynode.fleet.qc, when installed) and writes to the store
(citynode.fleet.store: a Parquet folder by default, or postgresql://...). A
message is acknowledged to the broker only after its rows are committed. Any
number of collectors may run in one group; give each one on the same host its
own `--instance N`, and keep it when restarting, so the broker hands back the
messages it kept for that collector while it was away.

Without --duration it runs until Ctrl-C or SIGTERM, which finish the batch in
hand (stored and acknowledged) before disconnecting; a second signal stops at once.
"""

import json
import signal
import sys
import threading
import time

from citynode.commands.common import add_broker_arguments
from citynode.errors import CitynodeError, UsageError


def add_arguments(parser):
    add_broker_arguments(parser)
    parser.add_argument("--group", default="citynode", help="shared subscription group (default: %(default)s)")
    parser.add_argument("--store", metavar="TARGET",
                        help="a folder for Parquet files or postgresql://... (default: the local store folder)")
    parser.add_argument("--instance", type=int, default=0, metavar="N",
                        help="this collector's number on this host; keeps its MQTT session across restarts "
                        "(default: %(default)s)")
    parser.add_argument("--duration", type=float, metavar="S", help="stop after S seconds (default: until Ctrl-C)")
    parser.add_argument("--batch", type=float, default=0.5, metavar="S",
                        help="seconds of messages written in one transaction (default: %(default)s)")
    parser.add_argument("--qc-config", metavar="FILE", help="QC checks' parameters (TOML or JSON)")
    parser.add_argument("--positions", metavar="FILE", help="node positions for the spatial buddy check")
    parser.add_argument("--json", action="store_true", help="print the final summary as JSON")


def run(args):
    from citynode import broker_url
    from citynode.keystore import Keystore

    broker = broker_url.parse(args.broker)
    if args.duration is not None and not args.duration > 0:
        raise UsageError("--duration %g: must be more than 0 seconds" % args.duration)
    if not args.batch > 0:
        raise UsageError("--batch %g: must be more than 0 seconds" % args.batch)
    if args.instance < 0:
        raise UsageError("--instance %d: 0 or more" % args.instance)
    for name, value in (("--group", args.group), ("--prefix", args.prefix)):
        if not value or any(c in value for c in "/+#"):
            raise UsageError("%s %r: a name without / + #" % (name, value))
    keys = Keystore(args.keystore)
    qc = quality_control(args.qc_config, args.positions)
    session = connect(broker, args)  # a broker that does not answer is said before any store is touched
    try:
        store = open_store(args.store)
    except CitynodeError:
        session.close()
        raise
    from citynode.fleet.collector import Collector, summary_line

    collector = Collector(broker, store, keys, group=args.group, prefix=args.prefix, qc=qc, batch_s=args.batch,
                          instance=args.instance, reopen=lambda: open_store(args.store), session=session)
    live = None if args.json else LiveLine(sys.stderr)
    try:
        collector.start()
        with stop_on_signals(collector):
            collector.run(args.duration, on_progress=live)
    finally:
        collector.close()
        collector.store.close()
        if live is not None:
            live.end()
    summary = collector.summary()
    print(json.dumps(summary, indent=2, sort_keys=True) if args.json else "collected " + summary_line(summary))
    if collector.unstored:
        return 1
    return 0


def connect(broker, args):
    """The collector's MQTT session, connected (not yet subscribed)."""
    from citynode.fleet.mqtt_session import Session, default_client_id

    return Session(broker, default_client_id(args.group, args.instance), ca=args.ca).connect()


def open_store(target):
    """The store at target; a missing engine is one line too."""
    from citynode.fleet.store import open_store as open_target

    try:
        return open_target(target)
    except ImportError as exc:
        where = _masked(target) if target else "(the default folder)"
        raise CitynodeError("store %s: its engine is not in this install (%s)" % (where, exc)) from None


def _masked(target):
    """A store target with any password in it replaced by ***."""
    import re

    return re.sub(r"^(\w+://[^:/@]*):[^@]*@", r"\1:***@", target)


def quality_control(config_path, positions_path):
    """The QC checker (citynode.fleet.qc) with its config and positions, or None when QC is not installed."""
    import importlib

    try:
        qc = importlib.import_module("citynode.fleet.qc")
    except ModuleNotFoundError as exc:
        if exc.name != "citynode.fleet.qc":
            raise CitynodeError("QC needs %s, which is not installed" % exc.name) from None
        if config_path or positions_path:
            raise UsageError("--qc-config/--positions: this install has no QC (citynode.fleet.qc)") from None
        return None
    config = qc.QcConfig.load(config_path) if config_path else qc.QcConfig()
    positions = qc.load_positions(positions_path) if positions_path else None
    return QcStep(qc, qc.QcChecker(config, positions), config)


class QcStep:
    """The collector's view of QC: apply(climate, history), history_window_us() and history_nodes(nodes)."""

    def __init__(self, module, checker, config):
        self.module = module
        self.checker = checker
        self.config = config

    def apply(self, climate, history):
        return self.checker.apply(climate, history)

    def history_window_us(self):
        return self.module.history_window_us(self.config)

    def history_nodes(self, node_ids):
        """The nodes whose history the checks need: those, and their buddies where the checker says."""
        more = getattr(self.checker, "history_nodes", None)
        return more(node_ids) if more else sorted(node_ids)


class stop_on_signals:
    """SIGTERM and SIGINT ask the collector to finish its batch and stop; a second one stops at once."""

    def __init__(self, collector):
        self.collector = collector
        self.previous = {}

    def __enter__(self):
        if threading.current_thread() is threading.main_thread():
            for sig in (signal.SIGTERM, signal.SIGINT):
                self.previous[sig] = signal.signal(sig, self._handle)
        return self

    def _handle(self, _signum, _frame):
        if self.collector.stopping:
            raise KeyboardInterrupt
        self.collector.stop()

    def __exit__(self, *exc):
        for sig, handler in self.previous.items():
            signal.signal(sig, handler)


class LiveLine:
    """The running summary: one line redrawn on a terminal, else a line every 10 s."""

    def __init__(self, out):
        self.out = out
        self.tty = out.isatty()
        self.last = 0.0

    def __call__(self, summary):
        from citynode.fleet.collector import summary_line

        line = "collecting " + summary_line(summary)
        if self.tty:
            self.out.write("\r\x1b[K" + line[:200])
            self.out.flush()
        elif time.monotonic() - self.last >= 10.0:
            self.out.write(line + "\n")
            self.out.flush()
            self.last = time.monotonic()

    def end(self):
        if self.tty:
            self.out.write("\r\x1b[K")
            self.out.flush()
