"""The `citynode collect` loop: frames off the broker, verified, into the store, acknowledged after the commit.

    collector = Collector("mqtt://broker", store, Keystore(), group="citynode")
    collector.start()            # connect and subscribe; CitynodeError in one line
    collector.run(duration=60)   # until stop() (SIGTERM, SIGINT) or the duration
    collector.close()

Subscriptions (MQTT 5, one persistent session per collector, mqtt_session.py):

    $share/<group>/<prefix>/+/frames   QoS 1: every message goes to one collector of the group
    <prefix>/+/status                  QoS 0, not shared: every collector sees every node's
                                       uplink state (`online`/`offline`, retained), which
                                       Mosquitto 2.0.11 would also send to a new shared
                                       subscriber, and later versions would not

Messages are taken in batches (`batch_s`, at most `max_batch_messages`); a
batch's rows go to `store.write` in one transaction, and only after it returns
are its messages acknowledged. When the store fails (StoreError), nothing is
acknowledged: one line goes to the log, the store is opened again (`reopen`)
with a growing pause, and the same batch is written again, until it is stored
or the collector is told to stop; then it leaves the batch to the broker,
which sends it again to this client id. A frame stored twice (a redelivery,
two collectors, a node's own resend) is dropped by the store's frames ledger.

Stopping (`stop()`, from a signal handler too) finishes the batch being built,
with everything already received, commits and acknowledges it, then
disconnects. The session stays on the broker: Mosquitto goes on giving this
client id its share of the group's messages while it is away, and hands them
over when it comes back with the same id (`--instance N` keeps ids stable).
"""

import collections
import queue
import sys
import threading
import time

import numpy as np

from citynode.fleet.mqtt_session import Session, default_client_id
from citynode.fleet.rows import RowBuilder, replays, take
from citynode.fleet.store import IngestBatch, StoreError
from citynode.verifier import REASONS, Verifier

POLL_S = 0.1
PROGRESS_S = 1.0
LATENCY_WINDOW = 10_000  # PUBACK-to-commit latencies kept for p50/p99
RETRY_FIRST_S = 0.2
RETRY_MAX_S = 10.0


class Counters:
    def __init__(self):
        self.messages = 0
        self.status_messages = 0
        self.frames_accepted = 0  # new in the store
        self.frames_duplicate = 0  # already stored, or twice in a batch
        self.rejected = dict.fromkeys(REASONS, 0)
        self.rows = 0
        self.batches = 0
        self.store_errors = 0
        self.latency_s = collections.deque(maxlen=LATENCY_WINDOW)

    def latency_ms(self):
        """{"p50": ms, "p99": ms} of the arrival-to-PUBACK times in the window, or None."""
        if not self.latency_s:
            return None
        p50, p99 = np.percentile(np.fromiter(self.latency_s, float), [50, 99])
        return {"p50": round(p50 * 1000, 1), "p99": round(p99 * 1000, 1)}


class Collector:
    def __init__(self, broker_url, store, keystore, group="citynode", prefix="citynode", client_id=None, qc=None,
                 batch_s=0.5, max_batch_messages=1000, instance=0, reopen=None, ca=None, log=None,
                 session=None):
        from citynode import broker_url as urls

        if not batch_s > 0:
            raise ValueError("batch_s %r: must be more than 0" % batch_s)
        if max_batch_messages < 1:
            raise ValueError("max_batch_messages %r: at least 1" % max_batch_messages)
        self.broker = urls.parse(broker_url) if isinstance(broker_url, str) else broker_url
        self.store = store
        self.reopen = reopen  # () -> a new store after a StoreError, or None: retry the same one
        self.group = group
        self.prefix = prefix
        self.client_id = client_id or default_client_id(group, instance)
        self.batch_s = batch_s
        self.max_batch_messages = max_batch_messages
        self.verifier = Verifier(keystore)
        self.rows = RowBuilder(store, qc)
        self.counters = Counters()
        self.uplink = {}  # node id -> last status topic payload ("online", "offline")
        if session is None:
            session = Session(self.broker, self.client_id, ca=ca, receive_maximum=2 * max_batch_messages)
        self.session = session  # given: already connected, with its own client id
        self.client_id = session.client_id
        self.log = log or (lambda line: print("citynode collect: " + line, file=sys.stderr, flush=True))
        self.unstored = 0  # messages left unacknowledged when stopped while the store was failing
        self.started = None
        self.stopped_by = None  # "stop" (stop(), a signal) or "duration", once run() ended
        self._stop = threading.Event()

    @property
    def subscriptions(self):
        return [("$share/%s/%s/+/frames" % (self.group, self.prefix), 1), ("%s/+/status" % self.prefix, 0)]

    def connect(self):
        """Connect to the broker (no subscription yet); CitynodeError in one line."""
        self.session.connect()
        return self

    def start(self):
        """Connect if not yet, and subscribe."""
        if self.session.connects == 0:
            self.connect()
        self.session.subscribe(self.subscriptions)
        self.started = time.monotonic()
        return self

    def stop(self):
        """Ask run() to finish its batch and return; safe from a signal handler or another thread."""
        self._stop.set()

    @property
    def stopping(self):
        return self._stop.is_set()

    def run(self, duration=None, on_progress=None):
        """Collect until stop() or `duration` seconds; the last batch is committed and acknowledged."""
        deadline = None if duration is None else time.monotonic() + duration
        inbox = self.session.inbox
        batch, batch_ends = [], None
        last_progress = time.monotonic()
        while True:
            now = time.monotonic()
            if self._stop.is_set() or (deadline is not None and now >= deadline):
                self.stopped_by = "stop" if self._stop.is_set() else "duration"
                break
            wait = POLL_S if batch_ends is None else max(0.0, min(POLL_S, batch_ends - now))
            try:
                message = inbox.get(timeout=wait)
            except queue.Empty:
                message = None
            if message is not None and self._take(message, batch) and batch_ends is None:
                batch_ends = time.monotonic() + self.batch_s
            if batch and (len(batch) >= self.max_batch_messages or time.monotonic() >= batch_ends):
                self._commit(batch)
                batch, batch_ends = [], None
            if on_progress is not None and time.monotonic() - last_progress >= PROGRESS_S:
                on_progress(self.summary())
                last_progress = time.monotonic()
        while True:  # what already came in belongs to the last batch
            try:
                self._take(inbox.get_nowait(), batch)
            except queue.Empty:
                break
        if batch:
            self._commit(batch)

    def close(self):
        self.session.close()

    def _take(self, message, batch):
        """Put a frames message into the batch (True); note a status message (False)."""
        where = message.topic.split("/")
        if len(where) == 3 and where[0] == self.prefix and where[2] == "status":
            self.counters.status_messages += 1
            if where[1].isdigit():
                self.uplink[int(where[1])] = message.payload.decode("utf-8", "replace")[:20]
            self.session.ack(message)
            return False
        self.counters.messages += 1
        taken = take(self.verifier, self.prefix, message.topic, message.payload, message.received_us, message.dup)
        batch.append((message, taken))
        return True

    def _commit(self, batch):
        """Store the batch, retrying while the store fails, then acknowledge its messages."""
        pause = RETRY_FIRST_S
        prepared = None
        while True:
            try:
                if prepared is None:  # made once: it moves the node clocks of the rows
                    prepared = self.rows.prepare([t for _m, t in batch])
                    duplicates = self.rows.duplicates
                written = self.store.write(self.rows.flag(prepared))
                break
            except StoreError as exc:
                self.counters.store_errors += 1
                if self._stop.is_set():
                    self.unstored += len(batch)
                    self.log("store %s: %s; stopping with %d messages not stored and not acknowledged "
                             "(the broker keeps them)" % (self.store.target, exc, len(batch)))
                    return False
                self.log("store %s: %s; %d messages held, not acknowledged; retrying in %.1f s"
                         % (self.store.target, exc, len(batch), pause))
                self._stop.wait(pause)
                pause = min(pause * 2, RETRY_MAX_S)
                self._reopen()
        c = self.counters
        c.batches += 1
        c.frames_accepted += written.frames_new
        replayed = self._store_replays(batch, written.duplicates)
        c.frames_duplicate += written.frames_duplicate + duplicates - replayed
        c.rows += written.rows
        for _m, taken in batch:
            for r in taken.rejected:
                c.rejected[r.reason] = c.rejected.get(r.reason, 0) + 1
        now = time.monotonic()
        for message, _t in batch:
            if self.session.ack(message):
                c.latency_s.append(now - message.arrived)
        return True

    def _store_replays(self, batch, stored_before):
        """Frames of messages sent once that the ledger already held (another collector of the group
        took the original): replays, into `rejects` as this verifier's are. How many frames; 0 if that fails."""
        if not stored_before:
            return 0
        once = [t for m, t in batch if not m.dup]
        rejects = replays(once, stored_before)
        if not rejects.num_rows:
            return 0
        keys = set(stored_before)  # a bundle's records are many frames in one row
        frames = sum(1 for t in once for v in t.verified if (v.node_id, v.boot, v.seq) in keys)
        try:
            self.store.write(IngestBatch({}, rejects))
        except StoreError as exc:  # the data is stored; only the note of the replay is lost
            self.log("store %s: %s; %d replays not noted in rejects" % (self.store.target, exc, rejects.num_rows))
            return 0
        self.counters.rejected["replay"] += rejects.num_rows
        return frames

    def _reopen(self):
        if self.reopen is None:
            return
        try:
            self.store.close()
        except Exception:  # noqa: BLE001 - a store that failed may fail to close too; it is replaced
            pass
        try:
            self.store = self.reopen()
            self.rows.store = self.store
        except StoreError as exc:
            self.log("store: %s" % exc)

    def summary(self):
        c = self.counters
        return {
            "broker": self.broker.safe(), "client_id": self.client_id, "group": self.group,
            "store": getattr(self.store, "target", None),
            "seconds": round(time.monotonic() - self.started, 3) if self.started else 0.0,
            "messages": c.messages, "frames_accepted": c.frames_accepted, "frames_duplicate": c.frames_duplicate,
            "frames_rejected": sum(c.rejected.values()), "rejected": dict(c.rejected), "rows": c.rows,
            "batches": c.batches, "store_errors": c.store_errors, "latency_ms": c.latency_ms(),
            "unstored_messages": self.unstored, "stopped_by": self.stopped_by, "reconnects": max(0, self.session.connects - 1),
            "uplink": {str(n): s for n, s in sorted(self.uplink.items())},
        }


def summary_line(s):
    rejected = ", ".join("%s %d" % (k, n) for k, n in s["rejected"].items() if n) or "none"
    latency = s["latency_ms"]
    return ("%.0f s: %d messages, %d frames stored, %d duplicate, %d rejected (%s), %d rows in %d batches%s%s"
            % (s["seconds"], s["messages"], s["frames_accepted"], s["frames_duplicate"], s["frames_rejected"], rejected,
               s["rows"], s["batches"],
               "; PUBACK after %.0f ms (p50), %.0f ms (p99)" % (latency["p50"], latency["p99"]) if latency else "",
               "; %d store errors" % s["store_errors"] if s["store_errors"] else ""))

