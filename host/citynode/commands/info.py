"""`citynode info --port P [--json]`: a node's identity, versions, config and health."""

import json

from citynode.commands.common import add_port_argument, port_of


def add_arguments(parser):
    from citynode import inventory

    add_port_argument(parser)
    parser.add_argument("--json", action="store_true", help="print the node's answer as JSON")
    inventory.add_argument(parser)


def gather(port, inventory_path=None):
    from citynode import serial_link
    from citynode.inventory import Inventory
    from citynode.board_id import mac_from_uid
    from citynode.node_config import config_hash
    from citynode.verify import sensor_words

    from citynode.inventory import utc_iso

    with serial_link.NodeClient(port) as client:
        info = client.command("info")
    cal = info.get("calibration")
    out = {
        "port": port,
        "read_at": utc_iso(),
        "node_id": info.get("node_id"),
        "site": info.get("site"),
        "mac": mac_from_uid(info.get("uid")),
        "uid": info.get("uid"),
        "micropython": info.get("micropython"),
        "platform": info.get("platform"),
        "app_version": info.get("app_version"),
        "app_hash": info.get("app_hash"),
        "config": info.get("config"),
        "config_hash": config_hash(info["config"]) if isinstance(info.get("config"), dict) else None,
        "config_fallback": info.get("config_fallback"),
        "calibration": cal,
        "calibration_fallback": info.get("calibration_fallback"),
        "sensors": info.get("sensors") or [],
        "fitted": sensor_words(info.get("config"), info.get("sensors")),
        "last_errors": info.get("last_errors") or [],
        "counters": info.get("counters") or {},
        "reset_cause": info.get("reset_cause"),
        "uplink": info.get("uplink"),
    }
    rec = None
    if isinstance(out["node_id"], int):
        rec = Inventory(inventory_path).get(out["node_id"])
    out["inventory"] = rec
    return out


def run(args):
    args.port = port_of(args)
    info = gather(args.port, args.inventory)
    if args.json:
        print(json.dumps(info, indent=2, sort_keys=True))
        return 0
    cal = info["calibration"]
    rows = [
        ("node id", info["node_id"]),
        ("site", info["site"] or "-"),
        ("MAC", info["mac"] or "unknown (uid %s)" % info["uid"]),
        ("MicroPython", "%s (%s)" % (info["micropython"], info["platform"])),
        ("app", "%s (hash %s)" % (info["app_version"], info["app_hash"])),
        ("config", "hash %s%s" % (info["config_hash"], "" if not info["config_fallback"]
                                  else ", FALLBACK: %s" % info["config_fallback"])),
        ("calibration", ("id %s, %s" % (cal.get("id"), cal.get("date") or "no date")) if cal else
         "none" + (" (%s)" % info["calibration_fallback"] if info["calibration_fallback"] else "")),
        ("sensors", "%s%s" % (info["fitted"], "".join(
            " (%s at %s)" % (s.get("part"), s.get("address")) for s in info["sensors"]))),
        ("last errors", "; ".join(info["last_errors"]) or "none"),
        ("reset cause", info["reset_cause"]),
    ]
    if info["uplink"]:
        rows.append(("uplink", uplink_words(info["uplink"])))
    rec = info["inventory"]
    if rec:
        same = rec.get("app_hash") == info["app_hash"] and rec.get("config_hash") == info["config_hash"]
        rows.append(("inventory", "%s %s%s" % (rec.get("result"), rec.get("recorded_at"),
                                               "" if same else " (app or config changed since)")))
    else:
        rows.append(("inventory", "not recorded"))
    width = max(len(k) for k, _ in rows)
    for k, v in rows:
        print("%-*s  %s" % (width, k, v))
    print("%-*s" % (width, "config:"))
    for key, value in sorted((info["config"] or {}).items()):
        print("  %-22s %s" % (key, json.dumps(value)))
    return 0


def uplink_words(up):
    """One line of the node's uplink status: network, broker, boot number, ring."""
    if up.get("error"):
        return "not running: %s" % up["error"]
    rssi = up.get("rssi")
    parts = ["network %s%s" % (up.get("network"), "" if rssi is None else " (RSSI %s dBm)" % rssi),
             "broker %s%s" % (up.get("broker"), ": %s" % up["broker_error"] if up.get("broker_error") else ""),
             "boot %s" % up.get("boot"),
             "ring %s%% full" % up.get("fill_pct"),
             "%s frames signed, %s resent" % (up.get("frames_signed"), up.get("resent"))]
    return ", ".join(parts)
