"""Commands that come over the network (the MQTT cmd topic): checked, then run as serial ones.

A payload is a signed command line (SPEC.md §9.4, citynode_protocol/cmdauth.py).
It runs, through the node's own `handle_line` (the dispatcher of serial lines),
only when its MAC is right for the node's key and its counter is above the last
one accepted; that counter is on flash (store.py), so a reboot does not let an
old command in again. Anything else is refused: counted, answered with an error
reply, never run. Loaded only when the node has an uplink.
"""

from citynode_protocol import cmdauth, wire
from citynode_fw import store
from citynode_fw.link import guess_id

PATH = "cmdcount.json"
KEY = "cmd"

_WORDS = {
    "unsigned": "not signed",
    "malformed": "signature does not parse",
    "bad_mac": "bad signature",
    "replay": "replayed: counter not above the last accepted",
    "storage": "counter not saved",
}


class NetCommands:
    def __init__(self, node_id, signer, path=PATH):
        self.node_id = node_id
        self.signer = signer
        self.path = path
        self.run = 0
        self.refused = 0
        self.last_refusal = ""
        self.fallback = None
        try:
            parts, recovered = store.load(path, KEY)
            last = parts[KEY].get("last", 0)
            if recovered:
                self.fallback = store.recovered(path, recovered)
        except store.StoreError as exc:
            last = 0
            if exc.reason != "missing":
                self.fallback = "%s: commands accepted from counter 1 again" % store.describe(path, exc.reason)
        self.last = last if isinstance(last, int) and last > 0 else 0

    def take(self, node, payload):
        """Run one payload of the cmd topic on node, or refuse it; True when it ran."""
        try:
            line, counter = cmdauth.open_line(payload, self.signer, self.node_id)
        except cmdauth.CommandAuthError as exc:
            return self._refuse(node, payload, exc.reason)
        if counter <= self.last:
            return self._refuse(node, line, "replay")
        try:
            store.write(self.path, KEY, {"last": counter})
        except OSError:
            return self._refuse(node, line, "storage")
        self.last = counter
        self.run += 1
        node.handle_line(line)
        return True

    def _refuse(self, node, line, reason):
        self.refused += 1
        self.last_refusal = reason
        node.counters.command_errors += 1
        code = wire.ERR_STORAGE if reason == "storage" else wire.ERR_REFUSED
        node.link.reply(guess_id(line), code, {"error": "command refused: " + _WORDS[reason]}, node.now())
        return False

    def status(self):
        return {"commands_run": self.run, "commands_refused": self.refused, "last_refusal": self.last_refusal}
