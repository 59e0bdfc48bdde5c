"""`citynode ports`: list serial ports, marking those that look like ESP32 boards."""

import json

from citynode.ports import list_serial_ports


def add_arguments(parser):
    parser.add_argument("--json", action="store_true", help="print JSON instead of a table")
    parser.add_argument("--esp32", action="store_true", help="only ports that look like ESP32 boards")


def run(args):
    ports = list_serial_ports()
    if args.esp32:
        ports = [p for p in ports if p.looks_like_esp32]
    if args.json:
        print(json.dumps([p.as_dict() for p in ports], indent=2))
        return 0
    if not ports:
        print("no serial ports found%s" % (" that look like ESP32 boards" if args.esp32 else ""))
        return 0
    from rich.console import Console
    from rich.table import Table

    table = Table(box=None, pad_edge=False)
    for col in ("", "port", "USB id", "serial number", "what"):
        table.add_column(col)
    for p in ports:
        what = p.bridge or p.description or ""
        table.add_row("ESP32?" if p.looks_like_esp32 else "", p.device, p.usb_id or "-",
                      p.serial_number or "-", what)
    Console().print(table)
    return 0
