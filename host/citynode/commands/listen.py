"""`citynode listen --broker URL [--node N ...] [-o CAPTURE]`: the network traffic of nodes, verified.

Subscribes to the nodes' `frames` and `status` topics (SPEC.md §10), checks every
frame with the keystore (SPEC.md §9.2) and prints one line per message that
passed; frames that did not pass are counted by reason (bad MAC, replay,
unknown node, ...) and never shown as data. `-o` writes the verified frames as
a capture that `citynode decode` reads like a serial one (to CAPTURE.part while
listening, renamed at the end, also after Ctrl-C). Without --duration it runs
until Ctrl-C or SIGTERM.
"""

import json
import os
import queue
import signal
import sys
import time

from citynode.commands.common import add_broker_arguments, check_output_path, interrupt_on
from citynode.errors import CitynodeError, UsageError

POLL_S = 0.1


def add_arguments(parser):
    add_broker_arguments(parser)
    parser.add_argument("--node", type=int, action="append", metavar="N", help="only this node (repeatable)")
    parser.add_argument("-o", "--output", metavar="CAPTURE", help="write the verified frames to this capture")
    parser.add_argument("--duration", type=float, metavar="S", help="stop after S seconds (default: until Ctrl-C)")
    parser.add_argument("--json", action="store_true", help="print the summary as JSON")
    parser.add_argument("--quiet", action="store_true", help="no line per message, only the summary")


def run(args):
    from citynode import broker_url
    from citynode.keystore import Keystore
    from citynode.verifier import Verifier
    from citynode_protocol import topics

    broker = broker_url.parse(args.broker)
    if args.duration is not None and not args.duration > 0:
        raise UsageError("--duration %g: must be more than 0 seconds" % args.duration)
    for n in args.node or []:
        if not 0 <= n <= 0xFFFF:
            raise UsageError("--node %d: outside 0..65535" % n)
    if args.output:
        check_output_path(args.output)
    keys = Keystore(args.keystore)
    wanted = args.node or None
    subscriptions = []
    for kind in ("frames", "status"):
        if wanted:
            subscriptions += [topics.topic(n, kind, args.prefix) for n in wanted]
        else:
            subscriptions.append(topics.every(kind, args.prefix))
    inbox = queue.Queue()
    client = broker_url.connect(broker, "citynode-listen-%d" % os.getpid(), ca=args.ca,
                                on_message=lambda _c, _u, m: inbox.put((m.topic, bytes(m.payload))),
                                subscriptions=subscriptions)
    session = Listening(Verifier(keys), args.prefix, args.output, quiet=args.quiet or args.json)
    try:
        session.run(inbox, args.duration)
    finally:
        client.loop_stop()
        client.disconnect()
        session.close()
    summary = session.summary(broker.safe())
    print(json.dumps(summary, indent=2, sort_keys=True) if args.json else session.summary_line(summary))
    return 0


class Listening:
    """What one `listen` got: decoded messages, node status, rejects, the capture."""

    def __init__(self, verifier, prefix, output=None, quiet=False, out=None):
        from citynode_protocol.decoder import Decoder

        self.verifier = verifier
        self.prefix = prefix
        self.output = output
        self.quiet = quiet
        self.out = out or sys.stdout
        self.decoder = Decoder()
        self.status = {}
        self.messages = 0
        self.foreign = 0  # messages on topics that are not ours
        self.started = time.time()
        self.interrupted = False
        self.capture = None
        if output:
            try:
                self.capture = open(output + ".part", "wb")
            except OSError as exc:
                raise UsageError("cannot write %s: %s" % (output, exc.strerror or exc)) from None

    def run(self, inbox, duration):
        deadline = None if duration is None else time.monotonic() + duration
        try:
            with interrupt_on(signal.SIGTERM):
                while deadline is None or time.monotonic() < deadline:
                    try:
                        topic, payload = inbox.get(timeout=POLL_S)
                    except queue.Empty:
                        continue
                    self.take(topic, payload)
        except KeyboardInterrupt:
            self.interrupted = True

    def take(self, topic, payload):
        from citynode.monitor_view import message_line
        from citynode_protocol import frame, topics

        where = topics.parse(topic, self.prefix)
        if where is None:
            self.foreign += 1
            return
        node_id, kind = where
        if kind == "status":
            self.status[node_id] = payload.decode("utf-8", "replace")[:20]
            if not self.quiet:
                self.out.write("status node=%d %s\n" % (node_id, self.status[node_id]))
            return
        wire = b"".join(frame.to_wire(raw) for raw in self.verifier.feed(node_id, payload))
        if not wire:
            return
        if self.capture is not None:
            try:
                self.capture.write(wire)
            except OSError as exc:
                raise CitynodeError("cannot write %s: %s" % (self.output, exc.strerror or exc)) from None
        for msg in self.decoder.feed(wire):
            self.messages += 1
            if not self.quiet:
                self.out.write(message_line(msg) + "\n")
        self.out.flush()

    def close(self):
        if self.capture is not None:
            self.capture.close()
            os.replace(self.output + ".part", self.output)
            self.capture = None

    def summary(self, broker):
        v = self.verifier
        return {
            "broker": broker, "seconds": round(time.time() - self.started, 3), "interrupted": self.interrupted,
            "frames_accepted": v.accepted, "frames_rejected": v.total_rejected(), "rejected": dict(v.rejected),
            "messages": self.messages, "nodes": {str(n): c for n, c in sorted(v.by_node.items())},
            "status": {str(n): s for n, s in sorted(self.status.items())}, "foreign_topics": self.foreign,
            "capture": self.output,
        }

    def summary_line(self, s):
        rejected = ", ".join("%s %d" % (k, n) for k, n in s["rejected"].items() if n) or "none"
        return ("listened %.1f s to %s: %d frames from %d nodes accepted, %d rejected (%s)%s"
                % (s["seconds"], s["broker"], s["frames_accepted"], len(s["nodes"]), s["frames_rejected"], rejected,
                   "; capture in %s" % s["capture"] if s["capture"] else ""))
