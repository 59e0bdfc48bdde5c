"""`citynode ports`: list serial ports, marking those that look like ESP32 boards, and the
running virtual nodes (`citynode sim`), marked virtual."""

import json

from citynode.ports import list_serial_ports
from citynode.sim_registry import running


def add_arguments(parser):
    parser.add_argument("--json", action="store_true", help="print JSON instead of a table")
    parser.add_argument("--esp32", action="store_true", help="only ports that look like ESP32 boards")


def _virtual_row(entry):
    return {"port": entry["port"], "usb_id": None, "serial_number": None, "esp32": False, "bridge": None,
            "description": "virtual node (citynode sim, pid %d)" % entry["pid"], "root": entry.get("root"),
            "manufacturer": None, "product": None, "location": None, "virtual": True}


def run(args):
    rows = [dict(p.as_dict(), virtual=False) for p in list_serial_ports()]
    if args.esp32:
        rows = [r for r in rows if r["esp32"]]
    else:
        rows += [_virtual_row(e) for e in running()]
    if args.json:
        print(json.dumps(rows, indent=2))
        return 0
    if not rows:
        print("no serial ports found%s" % (" that look like ESP32 boards" if args.esp32 else ""))
        return 0
    from rich.console import Console
    from rich.table import Table

    table = Table(box=None, pad_edge=False)
    for col in ("", "port", "USB id", "serial number", "what"):
        table.add_column(col)
    for r in rows:
        mark = "virtual" if r["virtual"] else "ESP32?" if r["esp32"] else ""
        table.add_row(mark, r["port"], r["usb_id"] or "-", r["serial_number"] or "-",
                      r["bridge"] or r["description"] or "")
    Console().print(table)
    return 0
