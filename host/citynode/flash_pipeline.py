"""From a board to a recorded node: flash (esptool) → deploy → provision → verify → record.

    job = Job(port, node_id)
    run_job(job, options, image, values, inventory, progress)   # never raises; the outcome is in job

Each stage is its own module (`flash`, `deploy`, `provision`, `verify`); this one
puts them in order and keeps the inventory true to the node:

- the node id is checked against the inventory before the board is touched; a
  failed record of the same board (same MAC; same port when the board reports
  no MAC) may be retried without `--force`;
- once provisioned, the node carries the id, so the inventory records it, as
  failed if a later stage failed;
- what is recorded is what the node reports (site, config hash, parts,
  calibration), never what the command line said.
"""

import time

from citynode.errors import CitynodeError, TransportError
from citynode.inventory import utc_iso


class Options:
    """What run_job takes from the command line."""

    def __init__(self, app_only=False, chip="auto", baud=None, force=False, keystore=None, ca_der=None):
        from citynode import flash

        self.keystore = keystore  # where node keys are made and kept (uplink=wifi)
        self.app_only = app_only
        self.chip = chip
        self.baud = baud or flash.DEFAULT_BAUD
        self.force = force
        self.ca_der = ca_der  # the broker's CA (DER) to write to the node, for mqtts://


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
        self.sensors = None
        self.site = None
        self.checks = []
        self.recorded = False
        self.was_node = None  # the id this board was recorded under before, when another
        self.seconds = 0.0
        self.exit_code = 1  # when it failed: 3 for a node id already in the inventory
        self.started = None  # monotonic times, to show the ports ran side by side
        self.ended = None
        self.started_at = None  # wall-clock UTC, for reports
        self.ended_at = None

    def as_dict(self):
        return {
            "port": self.port, "node_id": self.node_id, "result": "pass" if self.ok else "fail",
            "failed_at": None if self.ok else self.stage, "detail": self.words, "mac": self.mac, "chip": self.chip,
            "micropython": self.micropython, "app_version": self.app_version, "app_hash": self.app_hash,
            "calibration": self.calibration, "sensors": self.sensors, "site": self.site,
            "recorded": self.recorded, "was_node": self.was_node, "seconds": round(self.seconds, 2),
            "started": self.started, "ended": self.ended, "started_at": self.started_at, "ended_at": self.ended_at,
            "checks": self.checks,
        }

    def record(self, config_hash=None):
        """The inventory record of this run."""
        return {
            "node_id": self.node_id, "mac": self.mac, "chip": self.chip, "micropython": self.micropython,
            "app_version": self.app_version, "app_hash": self.app_hash, "config_hash": config_hash,
            "calibration": self.calibration, "sensors": self.sensors, "site": self.site,
            "result": "pass" if self.ok else "fail", "port": self.port,
            "detail": None if self.ok else "%s: %s" % (self.stage, self.words),
        }


def _nop(stage, done=None, total=None):
    pass


def _keep_uplink(port, values):
    """values, with uplink=wifi when they leave it unsaid and the node's kept config has it on:
    an app-only flash keeps the config, so a node given another id must sign with that id's
    key, above that id's boot floor (the provisioning that follows sees to both)."""
    from citynode import provision

    if "uplink" in values:
        return values
    client, info = provision.wait_for_app(port)
    client.close()
    if (info.get("config") or {}).get("uplink") == "wifi":
        return dict(values, uplink="wifi")
    return values


def run_job(job, options, image, values, inv, progress=None):
    """Flash, deploy, provision, verify and record one node. Never raises: the outcome is in job."""
    from citynode import flash, node_config, provision, verify
    from citynode.board_id import mac_from_uid
    from citynode.inventory import DuplicateNode

    progress = progress or _nop
    started = time.monotonic()
    job.started = started
    job.started_at = utc_iso(time.time())
    provisioned = False
    try:
        job.stage = "inventory"
        existing = inv.get(job.node_id)
        defer_mac = False
        if existing is not None and not options.force:
            if existing.get("result") == "fail" and existing.get("mac"):
                defer_mac = True  # a retry of the same board is fine: decided once its MAC is known
            else:
                inv.check_free(job.node_id, port=job.port)
        if not options.app_only:
            job.stage = "flash"
            res = flash.flash_image(job.port, image, chip=options.chip, baud=options.baud, progress=progress)
            job.mac, job.chip = res.mac, res.chip.name
            if defer_mac:
                inv.check_free(job.node_id, mac=job.mac)
                defer_mac = False
        job.stage = "deploy"
        result = deploy_after_boot(job.port, progress, fresh_board=not options.app_only)
        job.app_hash = result.app_hash
        job.app_version = result.build.app_version
        if job.chip is None:
            job.chip = result.facts.get("platform")
        if options.ca_der is not None:
            from citynode import ca_cert

            job.stage = "ca"
            progress("ca")
            ca_cert.upload(job.port, options.ca_der, values.get("mqtt_ca") or ca_cert.DEFAULT_NAME)
        job.stage = "provision"
        if options.app_only:
            values = _keep_uplink(job.port, values)
        values = node_config.with_node_key(values, job.node_id, options.keystore)
        info = provision.provision(job.port, dict(values, node_id=job.node_id), progress=progress)
        provisioned = True
        job.mac = job.mac or mac_from_uid(info.get("uid"))
        job.site = info.get("site")
        if defer_mac:
            inv.check_free(job.node_id, mac=job.mac)
        holder = inv.holder(job.mac)
        if holder is not None and holder["node_id"] != job.node_id:
            job.was_node = holder["node_id"]
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
        job.sensors = vres.sensors
        job.site = (vres.config or {}).get("site", job.site)
        job.checks = [c.as_dict() for c in vres.checks]
        job.ok = vres.passed
        job.words = "verified" if vres.passed else vres.failure_words()
        if job.ok:
            job.stage = "record"
        progress("record")
        inv.record(job.record(vres.config_hash), force=options.force)
        job.recorded = True
    except DuplicateNode as exc:
        job.ok = False
        job.words = str(exc)
        job.exit_code = exc.exit_code
    except CitynodeError as exc:
        job.ok = False
        job.words = str(exc)
        try:
            if provisioned:  # the node carries the id now: the inventory says so, as failed
                inv.record(job.record(), force=True)
                job.recorded = True
            else:
                inv.log_run(job.record())
        except CitynodeError:
            pass
    except Exception as exc:  # a bug must not take the other ports down
        job.ok = False
        job.words = "internal error: %s: %s" % (type(exc).__name__, exc)
    job.ended = time.monotonic()
    job.ended_at = utc_iso(time.time())
    job.seconds = job.ended - started
    return job


def deploy_after_boot(port, progress, fresh_board):
    """Deploy; right after esptool the board is still booting MicroPython (and formatting its flash)."""
    from citynode import deploy

    # A fresh MicroPython formats its filesystem on the first boot (seconds), and a native-USB
    # board's port goes away and comes back with the reset: wait for it, bounded.
    attempts = 8 if fresh_board else 1
    for attempt in range(attempts):
        try:
            if attempt:
                progress("boot")
            return deploy.deploy_port(port, progress=deploy.byte_progress(progress))
        except TransportError as exc:
            words = str(exc)
            booting = "raw REPL" in words or "no such port" in words or "lost" in words
            if attempt + 1 >= attempts or not booting:
                raise
            time.sleep(1.0)


def run_jobs(jobs, options, image, values, inv, board):
    """Run every job, side by side when there are several; `board` is a ProgressBoard."""
    from concurrent.futures import ThreadPoolExecutor

    def work(job):
        run_job(job, options, image, values, inv, board.job(job.port))
        board.finish(job.port, job.ok, "PASS" if job.ok else "FAIL: %s" % job.words)
        return job

    if len(jobs) == 1:
        work(jobs[0])
    else:
        _one_ast_parse_at_a_time()
        with ThreadPoolExecutor(max_workers=len(jobs)) as pool:
            list(pool.map(work, jobs))
    return jobs


_ast_lock = None


def _one_ast_parse_at_a_time():
    """CPython 3.11 keeps the AST converter's recursion depth in state shared by all
    threads: ast.parse in several at once can fail with "SystemError: AST
    constructor recursion depth mismatch" (seen in a four-board flash). Our deploy
    and mpremote's fs calls read the node's answers with ast.literal_eval, which
    calls ast.parse: while boards are flashed side by side, those take turns."""
    import ast
    import threading

    global _ast_lock
    if _ast_lock is not None:
        return
    _ast_lock = threading.Lock()
    parse = ast.parse

    def parse_in_turn(*args, **kwargs):
        with _ast_lock:
            return parse(*args, **kwargs)

    ast.parse = parse_in_turn
