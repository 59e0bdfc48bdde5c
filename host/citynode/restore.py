"""Put a backup back on a node so that the node matches it exactly, and the inventory follows.

    plan, _ = restore(port, folder, dry_run=True)   # reads the node; changes nothing
    plan, info = restore(port, folder, force=False) # refuses a live id; writes, restarts, checks, records

The node's config and calibration files become the backup's: files that differ
are written (temp name, rename, SHA-256 read back), files the backup lacks are
removed (a backup without calib.json leaves the board uncalibrated, never with
the board's own calibration). Restoring a backup of node 20 onto a board that
is not node 20 renumbers the board: refused without `force` while node 20 is
live in the inventory on another board. A backup of a node with the network
uplink first raises the board's boot counter to its floor (`boot_floor`): a
backup never holds boot.json, and the board must not sign under numbers the
node id has used.
"""

from citynode import backups, node_files
from citynode.errors import CitynodeError
from citynode.inventory import DuplicateNode, Inventory


class RestorePlan:
    def __init__(self, port, folder, manifest, files, current, changes, inventory):
        self.port = port
        self.folder = folder
        self.manifest = manifest
        self.files = files  # {name: bytes} of the backup
        self.current = current  # {name: bytes} on the node now
        self.changes = changes  # [(name, "write" | "remove")]
        self.inventory = inventory
        self.target = node_files.identity(files)
        self.before = node_files.identity(current)
        self.board_mac = None
        self.boot_count = None  # the node's boot count once its floor is raised

    @property
    def renumbers(self):
        return self.before["node_id"] is not None and self.before["node_id"] != self.target["node_id"]

    def conflict(self):
        """Why the backup's node id may not go on this board, or None: the id is recorded for
        another board (another MAC; with no MAC to tell, a board that is not node N now)."""
        rec = self.inventory.get(self.target["node_id"])
        if rec is None:
            return None
        if self.board_mac:
            same = rec.get("mac") == self.board_mac
        else:
            same = not rec.get("mac") and self.before["node_id"] == self.target["node_id"]
        if same:
            return None
        return ("node id %d is in the inventory for another board (%s, %s, recorded %s): restoring it here "
                "would make a second node %d; use --force to take the id over" % (
                    self.target["node_id"], "MAC %s" % rec["mac"] if rec.get("mac") else "port %s" % rec.get("port"),
                    rec.get("result"), rec.get("recorded_at"), self.target["node_id"]))

    def as_dict(self):
        return {
            "port": self.port, "folder": str(self.folder), "backup_created": self.manifest.get("created"),
            "node_id": self.target["node_id"], "was_node": self.before["node_id"],
            "site": self.target["site"], "calibration_id": self.target["calibration_id"],
            "changes": [{"file": name, "action": action} for name, action in self.changes],
            "unchanged": sorted(n for n in self.files if n not in dict(self.changes)),
            "conflict": self.conflict(),
        }


def _uid(transport):
    from mpremote.transport import TransportExecError

    try:
        return transport.eval("__import__('binascii').hexlify(__import__('machine').unique_id()).decode()")
    except TransportExecError:  # no machine.unique_id (a virtual node): the board has no MAC to tell
        return None


def restore(port, folder, inventory_path=None, force=False, dry_run=False):
    """Make the node on `port` match the backup in `folder`, in one raw-REPL session (what is
    read is what the plan and the writes rest on). Returns (plan, info after the restart);
    with dry_run, (plan, None) and nothing is written."""
    from citynode import boot_floor, provision, serial_link
    from citynode.board_id import mac_from_uid

    manifest, files = backups.load(folder)  # a damaged backup is refused before the node is touched
    inv = Inventory(inventory_path)
    inv.nodes()  # so is a broken inventory
    with serial_link.raw_repl(port) as transport:
        current = node_files.read(transport, what="restore")
        plan = RestorePlan(port, folder, manifest, files, current, node_files.changes(current, files), inv)
        plan.board_mac = mac_from_uid(_uid(transport))
        if dry_run:
            return plan, None
        reason = plan.conflict()
        if reason and not force:
            raise DuplicateNode(reason)
        if boot_floor.needed(_config_of(files)):  # the board signs as the backup's node from now on
            plan.boot_count = boot_floor.raise_floor(transport)
        node_files.apply(transport, files, plan.changes)
    client, info = provision.wait_for_app(port)
    client.close()
    if info.get("config_fallback"):
        raise CitynodeError("restored, but the node runs on defaults (%s)" % info["config_fallback"])
    if info.get("node_id") != plan.target["node_id"]:
        raise CitynodeError("restored, but the node reports node id %s, not %s"
                            % (info.get("node_id"), plan.target["node_id"]))
    cal = info.get("calibration") or {}
    if cal.get("id") != plan.target["calibration_id"]:
        raise CitynodeError("restored, but the node reports calibration %s, not %s"
                            % (cal.get("id"), plan.target["calibration_id"]))
    record(plan, info)
    return plan, info


def _config_of(files):
    try:
        return node_files.parse("config.json", files["config.json"])
    except (KeyError, ValueError):
        return {}


def record(plan, info):
    """The inventory follows the node: its record (created or moved to the restored id), logged as a run."""
    from citynode.board_id import mac_from_uid
    from citynode.node_config import config_hash
    from citynode.verify import calibration_words, sensor_words

    inv = plan.inventory
    config = info.get("config") or {}
    node_id = plan.target["node_id"]
    old = inv.get(node_id) or (inv.get(plan.before["node_id"]) if plan.before["node_id"] is not None else None) or {}
    mac = mac_from_uid(info.get("uid")) or plan.board_mac
    rec = {
        "node_id": node_id, "mac": mac, "chip": old.get("chip") or info.get("platform"),
        "micropython": info.get("micropython"), "app_version": info.get("app_version"),
        "app_hash": info.get("app_hash"), "config_hash": config_hash(config),
        "calibration": calibration_words(info),
        "sensors": sensor_words(config, info.get("sensors")), "site": config.get("site"),
        "result": "pass", "port": plan.port, "detail": "restored from %s" % plan.folder,
    }
    inv.record(rec, force=True)
    if plan.renumbers and not mac:
        # nothing names the board but its old id: that record is this board's, and it moved
        old_rec = inv.get(plan.before["node_id"])
        if old_rec is not None and old_rec.get("port") == plan.port:
            inv.remove(plan.before["node_id"])
    return rec
