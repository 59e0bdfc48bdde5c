"""`citynode remote --broker URL --node N COMMAND [ARGS]`: a node's commands over MQTT.

The same commands as over USB, signed with the node's key from the keystore
(SPEC.md §9.4) and answered by a signed reply on the node's reply topic:

    citynode remote --broker mqtt://host --node 7 info
    citynode remote --broker mqtt://host --node 7 config get [KEY]
    citynode remote --broker mqtt://host --node 7 config set KEY VALUE   (a secret: VALUE -, typed)
    citynode remote --broker mqtt://host --node 7 set_time [UTC_MS]      (default: this host's clock)
    citynode remote --broker mqtt://host --node 7 raw_mode on|off
    citynode remote --broker mqtt://host --node 7 status|selftest|reboot|stream_start|stream_stop|calib_get
"""

import json

from citynode.commands.common import add_broker_arguments
from citynode.errors import UsageError

NO_ARGS = ("info", "status", "selftest", "reboot", "stream_start", "stream_stop", "calib_get")
COMMANDS = NO_ARGS + ("config", "set_time", "raw_mode")


def add_arguments(parser):
    from citynode import remote

    add_broker_arguments(parser)
    parser.add_argument("--node", required=True, type=int, metavar="N", help="the node's id")
    parser.add_argument("--timeout", type=float, default=remote.DEFAULT_TIMEOUT_S, metavar="S",
                        help="seconds to wait for the reply (default: %(default)g)")
    parser.add_argument("--json", action="store_true", help="print the node's answer as JSON")
    parser.add_argument("command", choices=COMMANDS, metavar="COMMAND", help=", ".join(COMMANDS))
    parser.add_argument("args", nargs="*", help="config: get [KEY] | set KEY VALUE; set_time: [UTC_MS]; "
                                                "raw_mode: on|off")


def request(args):
    """(node command, its arguments, what to print) from the command line; UsageError when it does not fit."""
    name, words = args.command, list(args.args)
    if name in NO_ARGS:
        if words:
            raise UsageError("remote %s takes no arguments, got %s" % (name, " ".join(words)))
        return name, {}, None
    if name == "raw_mode":
        if words not in (["on"], ["off"]):
            raise UsageError("remote raw_mode: give on or off")
        return name, {"on": words[0] == "on"}, None
    if name == "set_time":
        from citynode.serial_link import host_utc_ms

        if len(words) > 1:
            raise UsageError("remote set_time: at most one argument, UTC in ms since 1970")
        if words:
            try:
                return name, {"utc_ms": int(words[0])}, None
            except ValueError:
                raise UsageError("remote set_time %s: give UTC in ms since 1970" % words[0]) from None
        utc = host_utc_ms()
        if utc is None:
            raise UsageError("remote set_time: this host's clock is not plausible; give UTC_MS")
        return name, {"utc_ms": utc}, None
    return _config_request(words)


def _config_request(words):
    from citynode import node_config

    if words[:1] == ["get"] and len(words) <= 2:
        return "config_get", ({"key": words[1]} if len(words) == 2 else {}), ("get", words[1:])
    if words[:1] == ["set"] and len(words) == 3:
        key, text = words[1], words[2]
        if key in ("node_id", "node_key"):
            raise UsageError("remote config set %s: set it over USB (`citynode flash` / `citynode config`), "
                             "so that the inventory and the keystore follow" % key)
        if key in node_config.secret_keys():
            if text != "-":
                raise UsageError("%s is secret: give - as the value and type it" % key)
            from citynode.commands.common import read_secret

            value = node_config.check_value(key, read_secret(key))
        else:
            value = node_config.parse_value(key, text)
        return "config_set", {"values": {key: value}}, ("set", [key, value])
    raise UsageError("remote config: give `get [KEY]` or `set KEY VALUE`")


def run(args):
    from citynode import node_config
    from citynode.errors import DeviceError
    from citynode.keystore import Keystore
    from citynode.remote import RemoteClient

    if not 0 <= args.node <= 0xFFFF:
        raise UsageError("--node %d: outside 0..65535" % args.node)
    if not args.timeout > 0:
        raise UsageError("--timeout %g: must be more than 0 seconds" % args.timeout)
    name, node_args, config_view = request(args)
    with RemoteClient(args.broker, args.node, Keystore(args.keystore), prefix=args.prefix, ca=args.ca,
                      timeout=args.timeout) as client:
        try:
            body = client.command(name, **node_args)
        except DeviceError as exc:
            raise DeviceError(node_config.scrub(str(exc), node_args.get("values") or {}), exc.code) from None
    if args.json:
        print(json.dumps(body, indent=2, sort_keys=True))
    elif config_view is not None and config_view[0] == "get":
        cfg = body.get("config") or {}
        for key, value in sorted(cfg.items()):
            print("%-22s %s" % (key, json.dumps(value)))
    elif config_view is not None:
        key, value = config_view[1]
        shown = node_config.MASK if key in node_config.secret_keys() else json.dumps(value)
        if body.get("restart_required"):
            print("%s = %s saved; takes effect after a reboot (`citynode remote ... reboot`)" % (key, shown))
        else:
            print("%s = %s applied" % (key, shown))
    elif name == "reboot":
        print("node %d rebooting" % args.node)
    else:
        _print_body(body)
    return 0


def _print_body(body, indent=""):
    for key in sorted(body):
        value = body[key]
        if isinstance(value, dict) and value:
            print("%s%s:" % (indent, key))
            _print_body(value, indent + "  ")
        else:
            print("%s%-22s %s" % (indent, key, json.dumps(value)))
