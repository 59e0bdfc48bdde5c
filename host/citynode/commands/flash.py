"""`citynode flash`: flash, deploy, provision, verify and record nodes, one or many in parallel.

The arguments and the report; the pipeline itself is `citynode.flash_pipeline`."""

from citynode.commands.common import add_port_argument, ports_of
from citynode.errors import UsageError
from citynode.progress import ProgressBoard

# -- the command ------------------------------------------------------------------------


def add_arguments(parser):
    from citynode import flash, inventory, keystore

    add_port_argument(parser, many=True)
    parser.add_argument("--all", action="store_true", help="every port that looks like an ESP32 board")
    parser.add_argument("--firmware", "-f", metavar="IMAGE", help="MicroPython image (.bin) for the board's chip")
    parser.add_argument("--node-id", type=int, action="append", metavar="N",
                        help="node id (0-65535); with several ports, the first of consecutive ids, "
                             "or give one per port")
    parser.add_argument("--site", help="where the node goes (free text)")
    parser.add_argument("--chip", default="auto", choices=flash.CHIP_CHOICES,
                        help="expected chip (default: detect it)")
    parser.add_argument("--app-only", action="store_true",
                        help="skip esptool: the board already runs MicroPython (or is a virtual node)")
    parser.add_argument("--baud", type=int, default=flash.DEFAULT_BAUD, help="esptool baud rate (default %(default)s)")
    parser.add_argument("--profile", metavar="FILE", help="JSON object of config keys: sampling and uplink settings")
    parser.add_argument("--set", action="append", metavar="KEY=VALUE", help="one config value (repeatable)")
    parser.add_argument("--wifi-ssid", help="Wi-Fi network for uplink=wifi")
    parser.add_argument("--wifi-password-file", metavar="FILE",
                        help="file holding the Wi-Fi password (or $CITYNODE_WIFI_PASSWORD); never echoed")
    parser.add_argument("--mqtt-password-file", metavar="FILE",
                        help="file holding the broker password (or $CITYNODE_MQTT_PASSWORD)")
    parser.add_argument("--ca", metavar="FILE", help="the broker's CA certificate (PEM or DER) for mqtts:// "
                        "(or --set mqtt_ca=@FILE): written to the node as DER (its mqtt_ca file, ca.der by default)")
    keystore.add_argument(parser)
    parser.add_argument("--force", action="store_true", help="replace a node id already in the inventory")
    inventory.add_argument(parser)
    parser.add_argument("--json", action="store_true", help="print the results as JSON")
    parser.add_argument("--plain", action="store_true", help="plain progress lines instead of live bars")


def _plan(args):
    """[(port, node id)] from --port/--all and --node-id."""
    from citynode.ports import esp32_ports

    ports = list(args.port or [])
    if args.all:
        found = esp32_ports()
        if not found:
            raise UsageError("--all: no port looks like an ESP32 board (`citynode ports` lists every port)")
        ports += [p for p in found if p not in ports]
    if not ports:
        ports = ports_of(args)
        if not ports:
            raise UsageError("give --port PORT (repeatable) or --all; `citynode ports` lists ports")
    if len(set(ports)) != len(ports):
        raise UsageError("a port is given twice")
    ids = args.node_id or []
    if not ids:
        raise UsageError("--node-id is required: the node's number in the network (0-65535)")
    if len(ids) == 1:
        ids = [ids[0] + i for i in range(len(ports))]
    elif len(ids) != len(ports):
        raise UsageError("%d node ids for %d ports: give one id (the first of consecutive ones) or one per port"
                         % (len(ids), len(ports)))
    for n in ids:
        if not 0 <= n <= 65535:
            raise UsageError("node id %d outside 0..65535" % n)
    if len(set(ids)) != len(ids):
        raise UsageError("node ids must differ: %s" % ", ".join(str(i) for i in ids))
    return list(zip(ports, ids))


def _ca_file(args):
    """The CA certificate file from --ca or --set mqtt_ca=@FILE (taken out of args.set)."""
    ca_file = args.ca
    rest = []
    for item in args.set or []:
        key, _, text = item.partition("=")
        if key.strip() == "mqtt_ca" and text.startswith("@"):
            if ca_file:
                raise UsageError("the CA certificate is given twice: --ca FILE or --set mqtt_ca=@FILE, once")
            ca_file = text[1:]
        else:
            rest.append(item)
    args.set = rest
    return ca_file


def run(args):
    from citynode import flash, flash_pipeline, node_config
    from citynode.errors import CitynodeError
    from citynode.inventory import Inventory

    plan = _plan(args)
    image = None
    if args.app_only:
        if args.firmware:
            raise UsageError("--app-only skips flashing MicroPython: leave out --firmware")
    else:
        if not args.firmware:
            raise UsageError("--firmware IMAGE is required (or --app-only for a board that runs MicroPython)")
        image = flash.inspect_image(args.firmware)  # refuses a bad image before any board is touched
    ca_file = _ca_file(args)
    values = node_config.values_from_args(args)
    ca_der = None
    if ca_file:
        from citynode import ca_cert

        ca_der = ca_cert.load_der(ca_file)  # a bad file stops here, before any board is touched
    inv = Inventory(args.inventory)
    inv.nodes()  # a broken inventory file stops us here, not after flashing
    options = flash_pipeline.Options(app_only=args.app_only, chip=args.chip, baud=args.baud, force=args.force,
                                     keystore=args.keystore, ca_der=ca_der)
    jobs = [flash_pipeline.Job(port, node_id) for port, node_id in plan]
    with ProgressBoard(plain=args.plain or args.json, quiet=args.json) as board:
        flash_pipeline.run_jobs(jobs, options, image, values, inv, board)
    failed = [j for j in jobs if not j.ok]
    if args.json:
        import json

        print(json.dumps([j.as_dict() for j in jobs], indent=2))
    elif len(jobs) == 1:
        _print_one(jobs[0], inv)
    else:
        _print_table(jobs, inv)
    if failed:
        if len(jobs) == 1:
            error = CitynodeError("%s: node %d failed at %s: %s" % (failed[0].port, failed[0].node_id,
                                                                    failed[0].stage, failed[0].words))
            error.exit_code = failed[0].exit_code
            raise error
        raise CitynodeError("%d of %d nodes failed: %s" % (
            len(failed), len(jobs), "; ".join("%s at %s: %s" % (j.port, j.stage, j.words) for j in failed)))
    return 0


def _print_one(job, inv):
    if job.checks:
        for c in job.checks:
            print("  %-18s %-4s  %s" % (c["name"], "ok" if c["pass"] else "FAIL", c["detail"]))
    if job.ok:
        print("%s: node %d PASS  %s %s  MicroPython %s  app %s (%s)  %s; recorded in %s" % (
            job.port, job.node_id, job.chip or "?", job.mac or "MAC unknown", job.micropython or "?",
            job.app_version or "?", job.app_hash or "?", job.calibration or "", inv.path))
        print("  sensors: %s" % (job.sensors or "?"))
    if job.was_node is not None:
        print("note: this board was recorded as node %d; that record is replaced by node %d"
              % (job.was_node, job.node_id))


def _print_table(jobs, inv):
    from rich.console import Console
    from rich.table import Table

    table = Table(title="citynode flash: %d node%s" % (len(jobs), "" if len(jobs) == 1 else "s"))
    for col in ("port", "node id", "result", "chip", "MAC", "app", "time"):
        table.add_column(col, no_wrap=True)
    table.add_column("sensors")
    table.add_column("detail")
    for j in jobs:
        table.add_row(j.port, str(j.node_id), "[green]PASS" if j.ok else "[red]FAIL", j.chip or "-",
                      j.mac or "-", "%s (%s)" % (j.app_version, j.app_hash) if j.app_hash else "-",
                      "%.1f s" % j.seconds, j.sensors or "-", "recorded" if j.ok else "%s: %s" % (j.stage, j.words))
    console = Console()
    if not console.is_terminal:  # a log file or a pipe: room for the whole table
        console = Console(width=200)
    console.print(table)
    print("inventory: %s" % inv.path)
