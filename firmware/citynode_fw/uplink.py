"""The network uplink: the node's frames, signed, through the flash ring to an MQTT broker.

    frame made ──▶ put(): signed in place (auth.sign_writer), COBS into the ring's page
               └─ lingering: a record of the open bundle (bundle.Writer), which is
                  signed into the ring when the linger ends (SPEC.md §4, type 8)
    poll(now) ──▶ radio joined? ──▶ MQTT session up? ──▶ publish the ring's front (QoS 1)
                                                     ◀── PUBACK: those frames leave the ring

Everything is driven from the node loop by `poll(now)`; nothing here waits.
The radio is the board's (`board.radio()`: Wi-Fi on an ESP32, simulated on the
Unix port; a cellular modem would be another object with the same four
methods: connect, connected, failure, rssi). Joining is bounded
(JOIN_TIMEOUT_MS) and retried after a pause that doubles up to 5 minutes.

Order and loss: frames enter the ring in the order the node made them and
leave it oldest first, one MQTT message in flight (several frames in it). A
message not acknowledged goes again (the session resends it with DUP; after a
reboot the ring offers it again), so receivers drop repeats by (node, boot,
seq), which the signature makes trustworthy (SPEC.md §9, §10).

Bundles: a node that lingers (a climate node, `uplink_linger_s`) makes its
frames records of one bundle frame: one header, trailer and CRC for all, and a
STATUS after the first as a byte delta. The bundle is closed (signed, into the
ring) when its first record has waited linger_ms, when the next record does
not fit, before a frame that is never bundled (a REPLY, an ACCEL block) and on
close(). An open bundle is saved to flash (BUNDLE_FILE, the store's write
rule) at most FLUSH_AFTER_MS after it changed, with its boot; a saved bundle
found at start-up is closed, signed with its own boot and queued before the
new boot's frames, so a power cut loses what it lost before bundles.
"""

import struct

from citynode_protocol import auth, bundle, topics
from citynode_protocol.cobs import max_encoded_length
from citynode_fw import mqtt
from citynode_fw import store_binary as store
from citynode_fw.nodetime import add, diff
from citynode_fw.ring import Ring

JOIN_TIMEOUT_MS = 20000
RETRY_MIN_MS = 2000
RETRY_MAX_MS = 300000
FLUSH_AFTER_MS = 30000  # frames wait in RAM at most this long before they go to flash
MAX_MESSAGE = 2048  # bytes of frames in one MQTT message
LINGER_BYTES = 1024  # a lingering node publishes once this much waits in the ring
BUNDLE_BYTES = 1024  # records in one bundle at most
BUNDLE_FILE = "bundle"  # the open bundle on flash, in the ring's folder
_BUNDLE_MAGIC = b"CNB1"
_BUNDLE_HEAD = "<4sHHHHHHHHHII"  # magic, used, count, last seq, time lo, time hi, seq_fwd, seq_hi, boot lo, boot hi, time_fwd, CRC
_BUNDLE_HEAD_SIZE = 30
_ACCEL = 2
_REPLY = 7
REPLY_WAIT_MS = 5000  # a reboot waits at most this long for its reply to leave on the reply topic


class Uplink:
    def __init__(self, node_id, radio, signer, boot, broker, ssid="", password="", mqtt_user="",
                 mqtt_password="", prefix=topics.PREFIX, ssl_context=None, ring=None, keepalive_s=60,
                 ntp=None, on_utc=None, linger_ms=0):
        """broker: (host, port) with host an IP address or a name; ntp: (host, port) or None,
        on_utc(utc_ms, now) called when SNTP gives the time; linger_ms: how long a frame may
        wait for others to share its message (0: publish at once)."""
        self.node_id = node_id
        self.radio = radio
        self.signer = signer
        self.boot = boot
        self.broker = broker
        self.ssid = ssid
        self.password = password
        self.frames_topic = topics.topic(node_id, "frames", prefix).encode()
        self.status_topic = topics.topic(node_id, "status", prefix).encode()
        self.cmd_topic = topics.topic(node_id, "cmd", prefix).encode()
        self.reply_topic = topics.topic(node_id, "reply", prefix).encode()
        self.ring = ring if ring is not None else Ring("ring")
        self.session = mqtt.Session(
            b"citynode-%d" % node_id, keepalive_s=keepalive_s, user=mqtt_user.encode(),
            password=mqtt_password.encode(), will_topic=self.status_topic, will_payload=b"offline",
            max_packet=MAX_MESSAGE + 64, ssl_context=ssl_context,
            server_hostname=broker[0] if ssl_context is not None else None, on_message=self._on_message,
        )
        self.session.subscribe(self.cmd_topic, 1)
        self.session.on_puback = self._on_puback
        self.joined = False
        self.joining = False
        self.join_started = 0
        self.next_join = 0
        self.join_retry_ms = RETRY_MIN_MS
        self.radio_error = ""
        self.seq_hi = 0
        self._last_seq = -1
        self._ring_pid = 0
        self._online = False  # "online" was published on this connection
        self._page_since = -1  # when the page got its first frame not yet on flash
        self.linger_ms = linger_ms
        self._waiting_since = -1  # when the oldest frame not yet published was put
        self._reply_waits = False  # a REPLY is among them: someone awaits it, no lingering
        self.last_puback = -1
        self.commands = []  # armoured command lines that came on the cmd topic
        self.signed = 0
        self.ntp = ntp
        self.on_utc = on_utc
        self.sntp = None
        self.utc_known = False
        self._netcmd = None  # netcmd.NetCommands, made at the first command
        self.commands_dropped = 0  # came while 4 waited
        self._want_reply = False  # the next REPLY frame answers a network command
        self._reply = None  # that frame on the wire, for the reply topic
        self._reply_n = 0
        self._reply_pid = 0
        self._reply_since = 0
        self.notes = None  # start(): warnings that wait for the boot log (started())
        self._bundle = None  # bundle.Writer, made when the first record comes
        self._bundle_since = -1  # when the open bundle's first record was put
        self._bundle_seq_hi = 0  # seq_hi of its last record
        self._bundle_changed = -1  # when it got a record not yet saved to flash
        self._bundle_saved = False  # the open bundle is on flash (BUNDLE_FILE)
        self._bundle_queued = False  # BUNDLE_FILE holds a closed bundle that is in the ring's page
        self.bundles = 0
        self._restore_bundle()

    # -- frames in ---------------------------------------------------------------------

    def put(self, writer, msg_type, length, now):
        """Sign the frame `writer` has just finished (payload of length bytes) and queue it,
        or, lingering, add it to the open bundle. The writer must have room for the
        trailer (FrameWriter(..., trailer=auth.TRAILER_SIZE))."""
        seq = (writer.seq - 1) & 0xFFFF
        if seq <= self._last_seq:
            self.seq_hi += 1  # the node's u16 sequence wrapped
        self._last_seq = seq
        if self.linger_ms and bundle.bundled(msg_type, length):
            b = self._bundle
            if b is None:
                b = self._bundle = bundle.Writer(self.node_id, BUNDLE_BYTES)
            if not b.add(writer.raw, length):
                self._close_bundle(now)
                b.add(writer.raw, length)  # an empty bundle takes any frame bundled() allows
            if b.count == 1:
                self._bundle_since = now
            if self._bundle_changed < 0:
                self._bundle_changed = now
            self._bundle_seq_hi = self.seq_hi
            return True
        self._close_bundle(now)
        n = auth.sign_writer(writer, length, self.signer, self.boot, self.seq_hi)
        if msg_type == _REPLY and self._want_reply:
            self._keep_reply(writer, n, now)
        return self._queue(writer, n, msg_type, now)

    def _queue(self, writer, n, msg_type, since):
        """The signed frame in writer.raw[:n] into the ring; since: when it started to wait."""
        at = self.ring.room(max_encoded_length(n) + 1, msg_type == _ACCEL)
        if at < 0:
            return False
        end = writer.encode_raw_into(n, self.ring.page, at)
        self.ring.commit(end - at)
        self.signed += 1
        if self._waiting_since < 0 or diff(since, self._waiting_since) < 0:
            self._waiting_since = since
        if msg_type == _REPLY:
            self._reply_waits = True
        return True

    # -- bundles (SPEC.md §4, type 8) --------------------------------------------------

    def _close_bundle(self, now, boot=-1):
        """The open bundle, if any, signed and into the ring; it waited since its first record."""
        b = self._bundle
        if b is None or not b.count:
            return
        n = auth.sign_writer(b, b.finish(), self.signer, self.boot if boot < 0 else boot, self._bundle_seq_hi)
        since = now if self._bundle_since < 0 else self._bundle_since
        self._queue(b, n, bundle.BUNDLE, since)
        b.clear()
        self.bundles += 1
        self._bundle_since = self._bundle_changed = -1
        if self._bundle_saved:  # its copy on flash goes when the ring has it on flash or acked
            self._bundle_saved = False
            self._bundle_queued = True

    def _bundle_path(self):
        """Where the open bundle is saved: the ring's folder; None for a ring kept elsewhere (tests)."""
        folder = getattr(self.ring, "folder", None)
        return None if folder is None else folder + "/" + BUNDLE_FILE

    def _save_bundle(self):
        """The open bundle's records to flash, by the store's write rule, with its boot."""
        path = self._bundle_path()
        if path is None:
            self._bundle_changed = -1
            return
        if self._bundle_queued:
            self.ring.flush()  # the closed bundle the file still holds goes to flash first
            self._bundle_queued = False
        b = self._bundle
        view = memoryview(b.raw)[bundle.frame.HEADER_SIZE : bundle.frame.HEADER_SIZE + b.used]
        head = struct.pack(_BUNDLE_HEAD, _BUNDLE_MAGIC, b.used, b.count, b.last_seq, b.last_lo, b.last_hi,
                           b.last_seq_fwd, self._bundle_seq_hi, self.boot & 0xFFFF, self.boot >> 16,
                           b.last_time_fwd, _crc(view))
        try:
            store.write_binary(path, head, view, b.used, _bundle_intact)
        except OSError:
            return  # the flash refused: tried again after FLUSH_AFTER_MS
        self._bundle_saved = True
        self._bundle_changed = -1

    def _restore_bundle(self):
        """A bundle saved open before a reboot or power cut: closed, signed with its own
        boot and queued before anything of this boot."""
        path = self._bundle_path()
        if path is None or not store.recover_binary(path, _bundle_intact):
            return
        try:
            with open(path, "rb") as f:
                data = f.read()
        except OSError:
            return
        (_m, used, count, last_seq, lo, hi, seq_fwd, seq_hi, boot_lo, boot_hi, time_fwd,
         _crc_) = struct.unpack_from(_BUNDLE_HEAD, data, 0)
        b = self._bundle = bundle.Writer(self.node_id, BUNDLE_BYTES)
        if used > b.capacity or not count:
            store.remove_quiet(path)
            return
        at = bundle.frame.HEADER_SIZE
        b.raw[at : at + used] = data[_BUNDLE_HEAD_SIZE : _BUNDLE_HEAD_SIZE + used]
        b.used, b.count, b.last_seq, b.last_lo, b.last_hi = used, count, last_seq, lo, hi
        b.last_seq_fwd, b.last_time_fwd = seq_fwd, time_fwd
        self._bundle_seq_hi = seq_hi
        self._bundle_saved = True
        self._close_bundle(0, boot_lo | (boot_hi << 16))
        self._waiting_since = -1  # from before the reboot: it goes at once

    # -- the loop --------------------------------------------------------------------

    def poll(self, now):
        b = self._bundle
        if self._bundle_queued and self.ring.used <= self.ring.acked_page:
            store.remove_quiet(self._bundle_path())  # the closed bundle is acked or on flash
            self._bundle_queued = False
        if b is not None and b.count:
            if self.bundle_due(now):
                self._close_bundle(now)
            elif self._bundle_changed >= 0 and diff(now, self._bundle_changed) > FLUSH_AFTER_MS:
                self._save_bundle()
        self._radio(now)
        if self.joined:
            if self.session.addr is None:
                self._resolve(now)
            self.session.poll(now)
            if self.session.state == mqtt.UP:
                self._publish(now)
            else:
                self._online = False
            self._clock(now)
        if self.ring.used <= self.ring.acked_page:
            self._page_since = -1
        elif self._page_since < 0:
            self._page_since = now
        elif diff(now, self._page_since) > FLUSH_AFTER_MS:
            self.ring.flush()  # a power cut now loses at most FLUSH_AFTER_MS of frames
            self._page_since = -1

    def _radio(self, now):
        if self.radio.connected():
            if not self.joined:
                self.joined = True
                self.joining = False
                self.join_retry_ms = RETRY_MIN_MS
                self.radio_error = ""
            return
        if self.joined:
            self.joined = False
            self.radio_error = "lost the network"
            self.next_join = now
            self.session.lost("network lost", now)
        if self.joining:
            why = self.radio.failure()
            if why is None and diff(now, self.join_started) <= JOIN_TIMEOUT_MS:
                return
            self.radio_error = why or "no network within %d s" % (JOIN_TIMEOUT_MS // 1000)
            self.joining = False
            self.next_join = add(now, self.join_retry_ms)
            self.join_retry_ms = min(RETRY_MAX_MS, self.join_retry_ms * 2)
            return
        if diff(now, self.next_join) >= 0:
            self.radio.connect(self.ssid, self.password)
            self.joining = True
            self.join_started = now

    def _clock(self, now):
        if self.ntp is None:
            return
        if self.sntp is None:
            import socket

            from citynode_fw.sntp import Sntp

            try:
                self.sntp = Sntp(socket.getaddrinfo(self.ntp[0], self.ntp[1])[0][-1])
            except OSError:
                return
        utc = self.sntp.poll(now)
        if utc is not None:
            self.utc_known = True
            self.sntp.again_in(now, 6 * 3600 * 1000)  # and again every 6 hours
            if self.on_utc is not None:
                self.on_utc(utc, now)

    def _resolve(self, now):
        import socket

        try:
            addr = socket.getaddrinfo(self.broker[0], self.broker[1])[0][-1]
        except OSError as exc:
            self.session.error = "cannot resolve %s: %s" % (self.broker[0], exc)
            return
        self.session.start(addr, now)

    def _publish(self, now):
        s = self.session
        if not s.ready():
            return
        if not self._online:
            s.publish(self.status_topic, b"online", retain=True)
            self._online = True
            return
        if self._reply_n and not self._reply_pid:
            self._reply_pid = s.publish(self.reply_topic, self._reply, self._reply_n)
            return
        if not self.due(now):
            return
        n = self.ring.front(MAX_MESSAGE)
        if n:
            self._ring_pid = s.publish(self.frames_topic, self.ring.front_buf, n, off=self.ring.front_off)
            if self.ring.pending() <= n:
                self._waiting_since = -1  # everything waiting is in this message
                self._reply_waits = False

    def due(self, now):
        """Whether the frames waiting make a message worth sending now: lingering
        ends when LINGER_BYTES wait, the oldest has waited linger_ms or a REPLY
        waits. Frames from before a reboot (found on flash) go at once."""
        return (not self.linger_ms or self._waiting_since < 0 or self._reply_waits
                or self.ring.pending() >= LINGER_BYTES or diff(now, self._waiting_since) >= self.linger_ms)

    def open_records(self):
        """How many frames wait in the open bundle (not yet in the ring)."""
        return 0 if self._bundle is None else self._bundle.count

    def bundle_due(self, now):
        """Whether the open bundle's first record has waited linger_ms: poll() closes it."""
        return self._bundle_since >= 0 and diff(now, self._bundle_since) >= self.linger_ms

    def connected(self):
        """True while the session with the broker is up."""
        return self.session.state == mqtt.UP

    def _on_puback(self, pid):
        if pid == self._ring_pid and self._ring_pid:
            self._ring_pid = 0
            self.ring.acked()
        if pid == self._reply_pid and pid:
            self._reply_pid = self._reply_n = 0
        self.last_puback = pid

    def _on_message(self, topic, payload):
        if topic == self.cmd_topic:
            if len(self.commands) < 4:
                self.commands.append(payload)
            else:
                self.commands_dropped += 1

    # -- commands from the network (SPEC.md §9.4) ------------------------------------------

    def command_waiting(self):
        """True when a command from the cmd topic can run now: one reply on the reply topic at a time."""
        return len(self.commands) > 0 and not self._reply_n

    def run_command(self, node):
        """Check and run the oldest command that came on the cmd topic; its REPLY frame goes
        into the ring like every frame, and once, signed, to the reply topic."""
        if self._netcmd is None:
            from citynode_fw.netcmd import NetCommands

            self._netcmd = NetCommands(self.node_id, self.signer)
            if self._netcmd.fallback:
                node.log(2, "uplink: " + self._netcmd.fallback)
        payload = self.commands.pop(0)
        self._want_reply = True
        try:
            self._netcmd.take(node, payload)
        finally:
            self._want_reply = False

    def _keep_reply(self, writer, n, now):
        self._want_reply = False
        if self._reply is None:
            self._reply = bytearray(max_encoded_length(len(writer.raw)) + 1)
        self._reply_n = writer.encode_raw_into(n, self._reply, 0)
        self._reply_since = now

    def reply_waiting(self, now):
        """True while a reply to a network command waits for its PUBACK (at most REPLY_WAIT_MS)."""
        return self._reply_n > 0 and self.joined and diff(now, self._reply_since) < REPLY_WAIT_MS

    def _command_status(self):
        out = {"commands_run": 0, "commands_refused": 0, "last_refusal": ""}
        if self._netcmd is not None:
            out = self._netcmd.status()
        out["commands_dropped"] = self.commands_dropped
        return out

    def close(self):
        """Before a planned reboot: what waits goes to flash, the broker hears a clean goodbye."""
        self._close_bundle(self._bundle_since)
        if self.ring.close() and self._bundle_queued:
            store.remove_quiet(self._bundle_path())
            self._bundle_queued = False
        self.session.stop()

    # -- what it reports ----------------------------------------------------------------

    def status(self):
        s = self.session
        r = self.ring
        out = {
            "network": "joined" if self.joined else ("joining" if self.joining else "down"),
            "network_error": self.radio_error,
            "rssi": self.radio.rssi() if self.joined else None,
            "broker": mqtt.STATE_WORDS[s.state],
            "broker_error": s.error,
            "published": s.published,
            "acked": s.acked,
            "resent": s.resends,
            "frames_signed": self.signed,
            "bundles": self.bundles,
            "boot": self.boot,
            "last_puback_id": self.last_puback,
            "sntp": None if self.sntp is None else (self.sntp.error or "ok"),
        }
        out.update(r.status())
        out.update(self._command_status())
        return out


def _crc(view):
    import binascii

    return binascii.crc32(view) & 0xFFFFFFFF


def _bundle_intact(path):
    """A saved bundle file checks: its magic, length and the CRC of its records."""
    try:
        with open(path, "rb") as f:
            data = f.read()
    except OSError:
        return False
    if len(data) < _BUNDLE_HEAD_SIZE or data[:4] != _BUNDLE_MAGIC:
        return False
    used = struct.unpack_from("<H", data, 4)[0]
    crc = struct.unpack_from("<I", data, _BUNDLE_HEAD_SIZE - 4)[0]
    return len(data) == _BUNDLE_HEAD_SIZE + used and _crc(memoryview(data)[_BUNDLE_HEAD_SIZE:]) == crc


def start(node, board, cfg):
    """The node's uplink from its config (uplink="wifi"), made before the node's first frame
    (node.build calls it before node.start): every frame of the boot, the boot log at seq 0
    on, is signed into the ring, so the network sees each boot's sequence whole (SPEC.md §6).
    Sets node.uplink (None if it cannot be made) and node.uplink_error; what it has to say
    is logged by `started`, after the boot log."""
    notes = []
    up, node.uplink_error = _make(board, cfg, node.set_time, notes)
    node.uplink = node.link.uplink = up
    if up is not None:
        up.notes = notes


def started(node):
    """After node.start(): the uplink's error or notes are logged; a node that streams no
    acceleration lingers uplink_linger_s (its frames share bundles and messages)."""
    up = node.uplink
    if up is None:
        node.log(3, node.uplink_error)
        return
    for note in up.notes:
        node.log(2, note)
    up.notes = None
    up.linger_ms = node.cfg["uplink_linger_s"] * 1000 if node.sampler.accel is None else 0  # accel streams at once


def _make(board, cfg, set_time, notes):
    """(Uplink, None), or (None, why it cannot be made); warnings appended to notes."""
    from citynode_fw import bootcount, config

    if not cfg["wifi_ssid"] or not cfg["broker_url"] or not cfg["node_key"]:
        missing = [k for k in ("wifi_ssid", "broker_url", "node_key") if not cfg[k]]
        return None, "uplink=wifi but %s not set" % ", ".join(missing)
    tls, host, port = config.broker(cfg["broker_url"])
    ctx = None
    if tls:
        import tls as _tls

        try:
            with open(cfg["mqtt_ca"], "rb") as f:
                ca = f.read()
            ctx = _tls.SSLContext(_tls.PROTOCOL_TLS_CLIENT)  # a client context verifies (CERT_REQUIRED)
            ctx.load_verify_locations(ca)
        except (OSError, ValueError) as exc:
            return None, "uplink: CA %s unusable (%s)" % (cfg["mqtt_ca"], exc)
    boot, fallback = bootcount.next_boot()
    if fallback:
        notes.append("uplink: " + fallback)
    ntp = None
    if cfg["ntp_server"]:
        name, _, text = cfg["ntp_server"].partition(":")
        ntp = (name, int(text) if text.isdigit() else 123)
    ring = Ring("ring", capacity=cfg["ring_kb"] * 1024)
    if ring.clamped:
        notes.append("uplink: ring_kb=%d does not fit the flash: %d kB used" % (
            cfg["ring_kb"], ring.max_segments * (len(ring.page) + 12) // 1024))
    up = Uplink(cfg["node_id"], board.radio(), signer(_unhex(cfg["node_key"])), boot, (host, port),
                ssid=cfg["wifi_ssid"], password=cfg["wifi_password"], mqtt_user=cfg["mqtt_user"],
                mqtt_password=cfg["mqtt_password"], ssl_context=ctx, ring=ring, ntp=ntp,
                on_utc=lambda utc, now: set_time(utc))
    return up, None


def signer(key):
    """The node's Signer: hmac_viper's (no heap per frame) where the port runs viper
    code, else auth.Signer (hashlib). The two make the same MACs."""
    import sys

    if not getattr(sys.implementation, "_mpy", 0) >> 10:  # no native architecture: do not even try
        return auth.Signer(key)
    try:
        from citynode_fw.hmac_viper import Signer
    except (ImportError, SyntaxError, ValueError):  # no native emitter; a .mpy for another arch
        return auth.Signer(key)
    return Signer(key)


def _unhex(text):
    return bytes([int(text[i : i + 2], 16) for i in range(0, len(text), 2)])
