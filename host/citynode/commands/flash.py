"""`citynode flash`: flash, deploy, provision, verify and record nodes, one or many in parallel."""

import time

from citynode.commands.common import add_port_argument, ports_of
from citynode.errors import UsageError
from citynode.progress import ProgressBoard

# -- the command ------------------------------------------------------------------------


def add_arguments(parser):
    from citynode import flash, inventory

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
    parser.add_argument("--force", action="store_true", help="replace a node id already in the inventory")
    inventory.add_argument(parser)
    parser.add_argument("--json", action="store_true", help="print the results as JSON")
    parser.add_argument("--plain", action="store_true", help="plain progress lines instead of live bars")


class Job:
    """One port's run and its outcome."""

    def __init__(self, port, node_id):
        self.port = port
        self.node_id = node_id
        self.ok = False
        self.stage = None
        self.words = ""
        self.mac = None
        self.chip = None
        self.micropython = None
        self.app_version = None
        self.app_hash = None
        self.calibration = None
        self.checks = []
        self.recorded = False
        self.seconds = 0.0
        self.exit_code = 1  # when it failed: 3 for a node id already in the inventory
        self.started = None  # monotonic times, to show the ports ran side by side
        self.ended = None

    def as_dict(self):
        return {
            "port": self.port, "node_id": self.node_id, "result": "pass" if self.ok else "fail",
            "failed_at": None if self.ok else self.stage, "detail": self.words, "mac": self.mac, "chip": self.chip,
            "micropython": self.micropython, "app_version": self.app_version, "app_hash": self.app_hash,
            "calibration": self.calibration, "recorded": self.recorded, "seconds": round(self.seconds, 2),
            "started": self.started, "ended": self.ended, "checks": self.checks,
        }


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


def run_job(job, args, image, values, inv, progress):
    """Flash, deploy, provision, verify and record one node. Never raises: the outcome is in job."""
    from citynode import flash, provision, verify
    from citynode.board_id import mac_from_uid
    from citynode.errors import CitynodeError
    from citynode.inventory import DuplicateNode

    started = time.monotonic()
    job.started = started
    provisioned = False
    try:
        job.stage = "inventory"
        existing = inv.get(job.node_id)
        defer_mac = False
        if existing is not None and not args.force:
            if existing.get("result") == "fail" and existing.get("mac"):
                defer_mac = True  # a retry of the same board is fine: decided once its MAC is known
            else:
                inv.check_free(job.node_id, force=False)
        if not args.app_only:
            job.stage = "flash"
            res = flash.flash_image(job.port, image, chip=args.chip, baud=args.baud, progress=progress)
            job.mac, job.chip = res.mac, res.chip.name
            if defer_mac:
                inv.check_free(job.node_id, mac=job.mac)
                defer_mac = False
        job.stage = "deploy"
        result = _deploy_after_boot(job.port, progress, fresh_board=not args.app_only)
        job.app_hash = result.app_hash
        job.app_version = result.build.app_version
        if job.chip is None:
            job.chip = result.facts.get("platform")
        job.stage = "provision"
        info = provision.provision(job.port, dict(values, node_id=job.node_id), progress=progress)
        provisioned = True
        job.mac = job.mac or mac_from_uid(info.get("uid"))
        if defer_mac:
            inv.check_free(job.node_id, mac=job.mac)
        job.stage = "verify"
        client, _ = provision.wait_for_app(job.port)
        try:
            files = (True, "%d files match (SHA-256 read back on the node)" % len(result.build.files))
            expect = {"node_id": job.node_id, "app_version": job.app_version, "app_hash": job.app_hash,
                      "config": dict(values, node_id=job.node_id)}
            vres = verify.verify_node(client, expect, files_checked=files, progress=progress)
        finally:
            client.close()
        job.micropython = vres.info.get("micropython")
        job.calibration = vres.calibration
        job.checks = [c.as_dict() for c in vres.checks]
        job.ok = vres.passed
        job.words = "verified" if vres.passed else vres.failure_words()
        if job.ok:
            job.stage = "record"
        progress("record")
        inv.record(_record(job, args, vres.config_hash), force=args.force)
        job.recorded = True
    except DuplicateNode as exc:
        job.ok = False
        job.words = str(exc)
        job.exit_code = exc.exit_code
    except CitynodeError as exc:
        job.ok = False
        job.words = str(exc)
        try:
            rec = _record(job, args, None)
            if provisioned:  # the node carries the id now: the inventory says so, as failed
                inv.record(rec, force=True)
                job.recorded = True
            else:
                inv.log_run(rec)
        except CitynodeError:
            pass
    except Exception as exc:  # a bug must not take the other ports down
        job.ok = False
        job.words = "internal error: %s: %s" % (type(exc).__name__, exc)
    job.ended = time.monotonic()
    job.seconds = job.ended - started
    return job


def _deploy_after_boot(port, progress, fresh_board):
    """Deploy; right after esptool the board is still booting MicroPython (and formatting its flash)."""
    from citynode import deploy
    from citynode.errors import TransportError

    # A fresh MicroPython formats its filesystem on the first boot (seconds), and a native-USB
    # board's port goes away and comes back with the reset: wait for it, bounded.
    attempts = 8 if fresh_board else 1
    for attempt in range(attempts):
        try:
            if attempt:
                progress("boot")
            return deploy.deploy_port(port, progress=progress)
        except TransportError as exc:
            words = str(exc)
            booting = "raw REPL" in words or "no such port" in words or "lost" in words
            if attempt + 1 >= attempts or not booting:
                raise
            time.sleep(1.0)


def _record(job, args, cfg_hash):
    return {
        "node_id": job.node_id, "mac": job.mac, "chip": job.chip, "micropython": job.micropython,
        "app_version": job.app_version, "app_hash": job.app_hash, "config_hash": cfg_hash,
        "calibration": job.calibration, "site": args.site, "result": "pass" if job.ok else "fail",
        "port": job.port, "detail": None if job.ok else "%s: %s" % (job.stage, job.words),
    }


def run(args):
    from concurrent.futures import ThreadPoolExecutor

    from citynode import flash, provision
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
    values = provision.values_from_args(args)
    inv = Inventory(args.inventory)
    inv.nodes()  # a broken inventory file stops us here, not after flashing
    jobs = [Job(port, node_id) for port, node_id in plan]
    with ProgressBoard(plain=args.plain or args.json, quiet=args.json) as board:
        def work(job):
            run_job(job, args, image, values, inv, board.job(job.port))
            board.finish(job.port, job.ok, "PASS" if job.ok else "FAIL: %s" % job.words)
            return job

        if len(jobs) == 1:
            work(jobs[0])
        else:
            with ThreadPoolExecutor(max_workers=len(jobs)) as pool:
                list(pool.map(work, jobs))
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


def _print_table(jobs, inv):
    from rich.console import Console
    from rich.table import Table

    table = Table(title="citynode flash: %d node%s" % (len(jobs), "" if len(jobs) == 1 else "s"))
    for col in ("port", "node id", "result", "chip", "MAC", "app", "time"):
        table.add_column(col, no_wrap=True)
    table.add_column("detail")
    for j in jobs:
        table.add_row(j.port, str(j.node_id), "[green]PASS" if j.ok else "[red]FAIL", j.chip or "-",
                      j.mac or "-", "%s (%s)" % (j.app_version, j.app_hash) if j.app_hash else "-",
                      "%.1f s" % j.seconds, "recorded" if j.ok else "%s: %s" % (j.stage, j.words))
    console = Console()
    if not console.is_terminal:  # a log file or a pipe: room for the whole table
        console = Console(width=200)
    console.print(table)
    print("inventory: %s" % inv.path)
