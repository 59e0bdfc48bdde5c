"""citynode_fw.netcmd: network commands run through the node's dispatcher only when signed
for this node and fresh; the last counter accepted is kept on flash (SPEC.md §9.4)."""

import fw_helpers as h
from citynode_protocol import auth, cmdauth, messages
from citynode_fw import config
from citynode_fw.netcmd import NetCommands
from citynode_fw.node import Node

KEY = bytes(range(1, 33))


class Rig:
    def __init__(self):
        self.clock = h.ManualClock()
        self.bus, self.scenario = h.sim_bus(self.clock, {"sensors": {"climate": "sht45"}})
        self.board = h.FakeBoard(self.clock, self.bus)
        self.cap = h.Capture()
        values = config.defaults()
        values["node_id"] = 21
        values["site"] = "lamp 4"
        self.node = Node(self.board, config.Config(values), None, None, self.cap.out, h.ScriptedInput())
        self.node.start(self.bus)
        self.net = NetCommands(21, auth.Signer(KEY))

    def send(self, payload):
        """(ran, [(request id, code, body)] of the replies it gave)."""
        self.cap.new()
        ran = self.net.take(self.node, payload)
        return ran, [(m["request_id"], m["code"], m["body"]) for m in self.cap.new() if m.name == "reply"]


def _signed(rid, name, args, counter, key=KEY, node_id=21):
    return cmdauth.sign(h.command(rid, name, args), auth.Signer(key), node_id, counter)


def _with_rig(fn):
    h.enter_tmpdir("netcmd")
    try:
        fn(Rig())
    finally:
        h.leave_tmpdir()


def test_a_signed_fresh_command_runs_like_a_serial_line():
    def body(r):
        ran, replies = r.send(_signed(5, "config_set", {"values": {"site": "bridge"}}, 100))
        assert ran and replies[0][:2] == (5, messages.OK)
        assert r.node.cfg["site"] == "bridge"
        ran, replies = r.send(_signed(6, "config_get", {"key": "site"}, 1795000000123))  # a u64 counter
        assert ran and replies == [(6, messages.OK, {"config": {"site": "bridge"}})]
        assert r.net.status() == {"commands_run": 2, "commands_refused": 0, "last_refusal": ""}

    _with_rig(body)


def test_forged_unsigned_and_replayed_commands_are_refused_and_never_run():
    def body(r):
        change = {"values": {"site": "hijacked"}}
        assert r.send(_signed(7, "config_set", {"values": {"site": "ok"}}, 50))[0]
        for payload, reason in (
            (_signed(8, "config_set", change, 60, key=bytes(32)), "bad_mac"),
            (_signed(9, "config_set", change, 61, node_id=22), "bad_mac"),
            (h.command(10, "config_set", change), "unsigned"),
            (_signed(11, "config_set", change, 62)[:-3], "malformed"),
            (_signed(12, "config_set", change, 50), "replay"),
            (_signed(13, "config_set", change, 49), "replay"),
        ):
            errors = r.node.counters.command_errors
            ran, replies = r.send(payload)
            assert not ran and r.net.last_refusal == reason, reason
            assert len(replies) == 1 and replies[0][1] == messages.ERR_REFUSED, (reason, replies)
            assert replies[0][2]["error"].startswith("command refused: ")
            assert r.node.counters.command_errors == errors + 1
        assert r.node.cfg["site"] == "ok"
        st = r.net.status()
        assert st["commands_run"] == 1 and st["commands_refused"] == 6

    _with_rig(body)


def test_the_last_counter_survives_a_reboot():
    def body(r):
        assert r.send(_signed(1, "status", {}, 1000))[0]
        again = NetCommands(21, auth.Signer(KEY))  # the next boot reads it from flash
        assert again.last == 1000 and again.fallback is None
        r.net = again
        assert not r.send(_signed(2, "status", {}, 1000))[0] and again.last_refusal == "replay"
        assert r.send(_signed(3, "status", {}, 1001))[0]

    _with_rig(body)
