"""`citynode calibrate climate|accel|mount|verify|rollback --port P`: guided calibration.

Every calibration is written to the node atomically (id, date, method, site),
read back, and filed as a report (JSON + Markdown + PNG plots) beside the
inventory, with the report's path in the node's inventory record. The steps
and checks are explained in docs/installer-guide.md.
"""

import time

from citynode.calibrate import report
from citynode.calibrate.accel_flow import AccelOptions, run_accel
from citynode.calibrate.climate_flow import ClimateOptions, run_climate
from citynode.calibrate.climate_reference import parse_point
from citynode.calibrate.installer_ui import Ui
from citynode.calibrate.mount_flow import MountOptions, run_mount
from citynode.calibrate.node_link import NodeSession
from citynode.calibrate.record import Rejected
from citynode.calibrate.rollback_flow import run_rollback
from citynode.calibrate.verify_flow import VerifyOptions, run_verify
from citynode.commands.common import add_port_argument, link_options
from citynode.errors import CitynodeError, UsageError

def _common(p, force=True):
    add_port_argument(p, baud=True)
    p.add_argument("--inventory", metavar="PATH", help="inventory file; reports go to reports/ beside it")
    p.add_argument("--report-dir", metavar="DIR", help="file the report here instead")
    p.add_argument("--no-report", action="store_true", help="do not write a report")
    p.add_argument("--site", help="site name for the calibration record (default: the node's config)")
    p.add_argument("--installer", help="who calibrated (goes into the calibration and the report)")
    p.add_argument("--note", help="a short note for the calibration record")
    if force:
        p.add_argument("--force", action="store_true",
                       help="store a result outside the documented limits (the report says so)")


def add_arguments(parser):
    sub = parser.add_subparsers(dest="calibrate_what", metavar="WHAT")
    sub.required = True

    p = sub.add_parser("climate", help="temperature/humidity against a reference: one point, salts, or a logger CSV")
    _common(p)
    p.add_argument("--reference-temperature", type=float, metavar="C", help="reference temperature (one point)")
    p.add_argument("--reference-humidity", metavar="PCT", help="reference humidity %%RH or a salt name (one point)")
    p.add_argument("--point", action="append", default=[], metavar="T,RH",
                   help="a reference point, repeat for two or more: 25,LiCl  -,75.3  21.5,48 ('-': none)")
    p.add_argument("--reference-csv", metavar="FILE", help="a reference logger's CSV, read after --duration")
    p.add_argument("--duration", type=float, default=1800.0, metavar="S",
                   help="seconds to record beside the logger (default 1800)")
    p.add_argument("--csv-time-column", metavar="NAME")
    p.add_argument("--csv-temperature-column", metavar="NAME")
    p.add_argument("--csv-humidity-column", metavar="NAME")
    p.add_argument("--csv-utc", action="store_true", help="times in the CSV without a zone are UTC "
                   "(default: this computer's time zone)")
    p.add_argument("--csv-shift", type=float, metavar="S",
                   help="seconds to add to the CSV's times (default: estimated within +-600 s)")
    p.add_argument("--min-overlap", type=float, default=300.0, metavar="S",
                   help="least overlap of CSV and node readings (default 300)")
    p.add_argument("--period", type=int, default=2, metavar="S",
                   help="climate period during the calibration (default 2; set back afterwards)")
    p.add_argument("--stable-window", type=float, default=60.0, metavar="S",
                   help="readings must be settled over this long (default 60)")
    p.add_argument("--stable-temperature", type=float, default=0.1, metavar="C",
                   help="largest spread of settled temperatures (default 0.1)")
    p.add_argument("--stable-humidity", type=float, default=0.5, metavar="PCT",
                   help="largest spread of settled humidities (default 0.5)")
    p.add_argument("--point-timeout", type=float, default=2700.0, metavar="S",
                   help="give up on a point after this long (default 2700: salts take 20 min or more)")
    p.set_defaults(flow="climate")

    p = sub.add_parser("accel", help="six-position accelerometer calibration (just turn the node)")
    _common(p)
    p.add_argument("--positions", type=int, default=6, metavar="N",
                   help="positions to take, 6..12; beyond six any orientation, for a meaningful residual")
    p.add_argument("--capture", type=float, default=2.0, metavar="S", help="seconds averaged per position")
    p.add_argument("--window", type=float, default=1.0, metavar="S", help="seconds still before a capture")
    p.add_argument("--timeout", type=float, default=180.0, metavar="S",
                   help="give up when no new position comes within this long (default 180)")
    p.add_argument("--attempts", type=int, default=3, metavar="N",
                   help="captures disturbed by motion before giving up on a position (default 3)")
    p.set_defaults(flow="accel")

    p = sub.add_parser("mount", help="once fixed to the structure: sensor-to-structure rotation and zero tilt")
    _common(p)
    p.add_argument("--up", metavar="AXIS", help="the sensor axis that points up: +x -x +y -y +z -z")
    p.add_argument("--along", metavar="AXIS", help="the sensor axis that points along the bridge")
    p.add_argument("--align", choices=("gravity", "axes"), default="gravity",
                   help="gravity: structure z is true vertical (default); axes: keep the named axes, "
                        "store the installed tilt as the zero")
    p.add_argument("--seconds", type=float, default=10.0, metavar="S", help="seconds of gravity averaged")
    p.add_argument("--timeout", type=float, default=120.0, metavar="S")
    p.set_defaults(flow="mount")

    p = sub.add_parser("verify", help="compare the node now with a reference and gravity: pass or fail")
    _common(p, force=False)
    p.add_argument("--reference-temperature", type=float, metavar="C")
    p.add_argument("--reference-humidity", type=float, metavar="PCT")
    p.add_argument("--timeout", type=float, default=120.0, metavar="S")
    p.set_defaults(flow="verify")

    p = sub.add_parser("rollback", help="go back to the previous calibration on the node")
    _common(p, force=False)
    p.set_defaults(flow="rollback")


def open_client(port, baud):
    """The link to the node (tests replace this with a scripted fake)."""
    from citynode.serial_link import NodeClient

    return NodeClient(port, baud)


def _climate_options(args):
    points = [parse_point(p) for p in args.point]
    if args.reference_temperature is not None or args.reference_humidity is not None:
        t = "-" if args.reference_temperature is None else repr(args.reference_temperature)
        h = "-" if args.reference_humidity is None else args.reference_humidity
        points.insert(0, parse_point("%s,%s" % (t, h)))
    if args.reference_csv and points:
        raise UsageError("give either reference points or --reference-csv, not both")
    return ClimateOptions(
        points=points, reference_csv=args.reference_csv, csv_time_column=args.csv_time_column,
        csv_temperature_column=args.csv_temperature_column, csv_humidity_column=args.csv_humidity_column,
        csv_utc=args.csv_utc, csv_shift_s=args.csv_shift, duration_s=args.duration, period_s=args.period,
        window_s=args.stable_window, max_spread_c=args.stable_temperature, max_spread_pct=args.stable_humidity,
        point_timeout_s=args.point_timeout, force=args.force, site=args.site, installer=args.installer,
        note=args.note, min_overlap_s=args.min_overlap)


def _accel_options(args):
    if not 6 <= args.positions <= 12:
        raise UsageError("--positions must be 6..12, not %d" % args.positions)
    return AccelOptions(
        positions=args.positions, window_s=args.window, capture_s=args.capture, position_timeout_s=args.timeout,
        max_attempts=args.attempts, force=args.force, site=args.site, installer=args.installer, note=args.note)


def _mount_options(args):
    return MountOptions(up=args.up, along=args.along, align=args.align, seconds=args.seconds,
                                timeout_s=args.timeout, force=args.force, site=args.site,
                                installer=args.installer, note=args.note)


def _node_words(s, port):
    info = s.info or {}
    return {"node_id": s.node_id, "site": s.site, "port": port, "uid": info.get("uid"),
            "app_version": info.get("app_version"), "parts": s.parts()}


def _file(args, s, port, status, error=None):
    """Write the report of the flow's result; returns (folder, inventory words) or (None, None)."""
    if args.no_report or not s.result:
        return None, None
    root = report.reports_root(args.inventory, args.report_dir)
    doc = s.result.get("document")
    folder = report.folder_for(root, s.node_id, s.result["kind"], (doc or {}).get("id"))
    report.write(s.result, _node_words(s, port), status, folder, error)
    if doc is None or status not in ("written", "rolled back"):
        return folder, "not recorded (nothing was written to the node)"
    if args.report_dir:
        return folder, "not recorded (the report was filed with --report-dir)"
    try:
        inv = report.record_in_inventory(args.inventory, s.node_id, doc, folder)
    except CitynodeError as exc:
        inv = str(exc)
    return folder, inv


def run(args):
    # check the arguments before touching the node
    options = None
    if args.flow == "climate":
        options = _climate_options(args)
    elif args.flow == "accel":
        options = _accel_options(args)
    elif args.flow == "mount":
        options = _mount_options(args)
    elif args.flow == "verify":
        options = VerifyOptions(reference_temperature=args.reference_temperature,
                                reference_humidity=args.reference_humidity, timeout_s=args.timeout)
        from citynode.calibrate import climate

        for q, v in (("temperature", options.reference_temperature), ("humidity", options.reference_humidity)):
            if v is not None:
                climate.check_reference(q, v)
    port, baud = link_options(args)
    ui = Ui()
    client = open_client(port, baud)
    # a scripted fake link brings its own clock (tests); a real one uses the computer's
    clock = getattr(client, "session_clock", None) or time.monotonic
    wall = getattr(client, "session_wall", None) or time.time
    s = NodeSession(client, ui, clock=clock, wall=wall, reconnect=lambda: open_client(port, baud), port=port)
    try:
        try:
            if args.flow == "climate":
                run_climate(s, options)
            elif args.flow == "accel":
                run_accel(s, options)
            elif args.flow == "mount":
                run_mount(s, options)
            elif args.flow == "verify":
                s.result = run_verify(s, options)
            else:
                s.result = run_rollback(s)
        except Rejected as exc:
            folder, _ = _file(args, s, port, "rejected", str(exc))
            if folder is not None:
                raise Rejected("%s; report: %s" % (exc, folder)) from None
            raise
    finally:
        try:
            s.client.close()
        except Exception:  # closing a dead link must not hide the real error
            pass
    if args.flow == "verify":
        ok = s.result["pass"]
        folder, _ = _file(args, s, port, "pass" if ok else "fail")
        if folder is not None:
            ui.say("report: %s" % folder)
        if not ok:
            failed = [c["check"] for c in s.result["checks"] if not c["pass"]]
            raise CitynodeError("verify failed: %s" % ", ".join(failed))
        ui.say("verify passed")
        return 0
    status = "rolled back" if args.flow == "rollback" else "written"
    folder, inv = _file(args, s, port, status)
    if folder is not None:
        ui.say("report: %s" % folder)
        ui.say("inventory: " + (inv if inv else "record of node %s updated with the report's path" % s.node_id))
    return 0
