"""`citynode config get|set --port P KEY [VALUE]`: read or change a node's config.

Secrets are never shown (the node answers "***") and never taken from the
command line: `config set --port P wifi_password -` reads the value from
standard input without echo.
"""

import json

from citynode.commands.common import add_port_argument, port_of, read_secret
from citynode.errors import UsageError


def add_arguments(parser):
    from citynode import inventory, keystore

    sub = parser.add_subparsers(dest="action", metavar="ACTION")
    get = sub.add_parser("get", help="print the config, or one key")
    add_port_argument(get)
    get.add_argument("key", nargs="?")
    get.add_argument("--json", action="store_true")
    put = sub.add_parser("set", help="set one key (a secret: give - and type it)")
    add_port_argument(put)
    put.add_argument("key")
    put.add_argument("value", help="the value; for a secret, - reads it from standard input; "
                                   "for mqtt_ca, @FILE uploads that CA certificate (PEM or DER)")
    put.add_argument("--reboot", action="store_true", help="reboot the node if the key needs it")
    inventory.add_argument(put)
    keystore.add_argument(put)
    parser.set_defaults(action=None)


def run(args):
    if args.action is None:
        raise UsageError("config get|set: say which (`citynode config get --port P`)")
    args.port = port_of(args)
    if args.action == "get":
        return _get(args)
    return _set(args)


def _get(args):
    from citynode import serial_link

    with serial_link.NodeClient(args.port) as client:
        kw = {"key": args.key} if args.key else {}
        cfg = client.command("config_get", **kw).get("config") or {}
    if args.json:
        print(json.dumps(cfg, indent=2, sort_keys=True))
    elif args.key:
        print(json.dumps(cfg.get(args.key)))
    else:
        for key, value in sorted(cfg.items()):
            print("%-22s %s" % (key, json.dumps(value)))
    return 0


def _set(args):
    from citynode import boot_floor, node_config, provision, serial_link
    from citynode.errors import DeviceError

    key = args.key
    secret = key in node_config.secret_keys()
    if key == "node_id":
        raise UsageError("node_id is set by `citynode flash --app-only --port P --node-id N --force`, "
                         "so that the inventory follows")
    if secret:
        if args.value != "-":
            raise UsageError("%s is secret: give - as the value and type it (it never goes on the command "
                             "line, where the shell history would keep it)" % key)
        value = node_config.check_value(key, read_secret(key))
    elif key == "mqtt_ca" and args.value.startswith("@"):
        from citynode import ca_cert

        ca_der = ca_cert.load_der(args.value[1:])  # a bad file stops here: nothing written
        value = ca_cert.DEFAULT_NAME
        ca_cert.upload(args.port, ca_der, value)  # the app restarts after: wait for it below
        print("CA certificate %s written to the node as %s (%d bytes, DER)" % (args.value[1:], value, len(ca_der)))
        provision.wait_for_app(args.port)[0].close()
    else:
        value = node_config.parse_value(key, args.value)
    if boot_floor.needed({key: value}):  # the uplink goes on under this node id (SPEC §9.2)
        boot_floor.raise_floor_on_port(args.port)
        provision.wait_for_app(args.port)[0].close()  # the app starts again after the raw REPL
    with serial_link.NodeClient(args.port) as client:
        values = {key: value}
        if key == "uplink" and value == "wifi":  # the node signs its network frames: it needs a key
            now = client.command("config_get").get("config") or {}
            values = node_config.with_node_key(values, now.get("node_id"), args.keystore,
                                               node_has_key=bool(now.get("node_key")))
        try:
            reply = client.command("config_set", values=values)
        except DeviceError as exc:
            raise DeviceError(node_config.scrub(str(exc), values), exc.code)
        restart = reply.get("restart_required") or []
        rebooted = False
        if restart and args.reboot:
            client.command("reboot")
            rebooted = True
    shown = node_config.MASK if secret else json.dumps(value)
    if restart and not rebooted:
        print("%s = %s saved; takes effect after a reboot (add --reboot)" % (key, shown))
    else:
        print("%s = %s%s" % (key, shown, " saved; node rebooting" if rebooted else " applied"))
    provision.sync_inventory(args.port, args.inventory)
    return 0
