"""`citynode calibrate climate|accel|mount|verify|rollback --port P`: guided calibration.

Every calibration is written to the node atomically (id, date, method, site),
read back, and filed as a report (JSON + Markdown + PNG plots) beside the
inventory, with the report's path in the node's inventory record; `--json`
prints the report's JSON. Every argument is checked before the node is
touched. The steps and checks are explained in docs/installer-guide.md.
"""

import json
import math
import os
import sys
import time

from citynode.calibrate import climate, mount, report
from citynode.calibrate.accel_flow import AccelOptions, run_accel
from citynode.calibrate.climate_flow import ClimateOptions, run_climate
from citynode.calibrate.climate_reference import parse_point
from citynode.calibrate.installer_ui import Ui
from citynode.calibrate.mount_flow import MountOptions, run_mount
from citynode.calibrate.node_link import NodeSession
from citynode.calibrate.record import RecordOptions, Rejected, check_fits
from citynode.calibrate.rollback_flow import run_rollback
from citynode.calibrate.verify_flow import FAIL, VerifyOptions, run_verify
from citynode.commands.common import add_port_argument, link_options
from citynode.errors import CitynodeError, UsageError

CLIMATE_PERIOD_RANGE_S = (2, 86400)  # the node's config climate_period_s (citynode_fw/config.py)


def _common(p, force=True):
    add_port_argument(p, baud=True)
    p.add_argument("--inventory", metavar="PATH", help="inventory file; reports go to reports/ beside it")
    p.add_argument("--report-dir", metavar="DIR", help="file the report here instead")
    p.add_argument("--no-report", action="store_true", help="do not write a report")
    p.add_argument("--site", help="site name for the calibration record (default: the node's config)")
    p.add_argument("--installer", help="who calibrated (goes into the calibration and the report)")
    p.add_argument("--note", help="a short note for the calibration record")
    p.add_argument("--json", action="store_true",
                   help="print the report's JSON on stdout (the progress goes to stderr)")
    if force:
        p.add_argument("--force", action="store_true",
                       help="store a result outside the documented limits (the report says so)")


def add_arguments(parser):
    sub = parser.add_subparsers(dest="calibrate_what", metavar="WHAT")  # cli.py's one-line parser, inherited
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
    p.add_argument("--seconds", type=float, default=MountOptions.seconds, metavar="S",
                   help="least seconds of gravity averaged (default %g)" % MountOptions.seconds)
    p.add_argument("--timeout", type=float, default=MountOptions.timeout_s, metavar="S",
                   help="give up when the mean of gravity does not hold within this long (default %g)"
                   % MountOptions.timeout_s)
    p.set_defaults(flow="mount")

    p = sub.add_parser("verify", help="compare the node now with a reference and gravity: pass or fail")
    _common(p, force=False)
    p.add_argument("--reference-temperature", type=float, metavar="C", help="reference temperature now")
    p.add_argument("--reference-humidity", type=float, metavar="PCT", help="reference humidity now")
    p.add_argument("--seconds", type=float, default=VerifyOptions.seconds, metavar="S",
                   help="least seconds of gravity averaged (default %g; longer while the structure vibrates)"
                   % VerifyOptions.seconds)
    p.add_argument("--timeout", type=float, default=VerifyOptions.timeout_s, metavar="S",
                   help="longest measurement (default %g)" % VerifyOptions.timeout_s)
    p.set_defaults(flow="verify")

    p = sub.add_parser("rollback", help="go back to the previous calibration on the node")
    _common(p, force=False)
    p.set_defaults(flow="rollback")


def open_client(port, baud):
    """The link to the node (tests replace this with a scripted fake)."""
    from citynode.serial_link import NodeClient

    return NodeClient(port, baud)


def _positive(args, *names):
    """UsageError unless each of these options is a finite number above 0."""
    for name in names:
        v = getattr(args, name)
        if v is not None and not (math.isfinite(v) and v > 0):
            raise UsageError("--%s must be a positive number, not %s" % (name.replace("_", "-"), v))


def _not_longer(args, short, long_):
    a, b = getattr(args, short), getattr(args, long_)
    if a > b:
        raise UsageError("--%s %g is longer than --%s %g: it could never finish" % (
            short.replace("_", "-"), a, long_.replace("_", "-"), b))


def _report_options(args):
    if args.no_report and args.report_dir:
        raise UsageError("--no-report and --report-dir contradict each other: give one")
    if args.report_dir and os.path.exists(args.report_dir) and not os.path.isdir(args.report_dir):
        raise UsageError("--report-dir %s is a file, not a folder" % args.report_dir)
    if not args.no_report:
        root = report.reports_root(args.inventory, args.report_dir)
        there = root
        while not there.exists() and there != there.parent:
            there = there.parent  # the folder the reports' folders will be made in
        if not there.is_dir() or not os.access(there, os.W_OK | os.X_OK):
            raise UsageError("reports cannot be filed in %s (%s is not a writable folder): give --report-dir "
                             "or --no-report" % (root, there))


def _climate_options(args):
    _positive(args, "duration", "stable_window", "stable_temperature", "stable_humidity", "point_timeout")
    if not math.isfinite(args.min_overlap) or args.min_overlap < 0:
        raise UsageError("--min-overlap must be 0 or more seconds, not %s" % args.min_overlap)
    if args.csv_shift is not None and not math.isfinite(args.csv_shift):
        raise UsageError("--csv-shift must be a number of seconds, not %s" % args.csv_shift)
    lo, hi = CLIMATE_PERIOD_RANGE_S
    if not lo <= args.period <= hi:
        raise UsageError("--period must be %d..%d s (the node's climate_period_s), not %d" % (lo, hi, args.period))
    if args.stable_window < (climate.SETTLED_MIN_READINGS - 1) * args.period:
        raise UsageError("--stable-window %g s holds fewer than %d readings at --period %d s: give at least %d s"
                         % (args.stable_window, climate.SETTLED_MIN_READINGS, args.period,
                            (climate.SETTLED_MIN_READINGS - 1) * args.period))
    if args.reference_csv:
        csv = os.path.abspath(args.reference_csv)
        if os.path.isdir(csv) or not os.path.isdir(os.path.dirname(csv)):
            raise UsageError("--reference-csv %s: no such file can be there (a folder, or its folder is missing)"
                             % args.reference_csv)
        if os.path.isfile(csv):  # already there: a line that cannot be read is said now, not after --duration
            from datetime import timezone

            climate.read_reference_csv(args.reference_csv, args.csv_time_column, args.csv_temperature_column,
                                       args.csv_humidity_column, tz=timezone.utc if args.csv_utc else None)
        if args.duration < args.min_overlap:
            raise UsageError("--duration %g s is shorter than --min-overlap %g s: the overlap could never be reached"
                             % (args.duration, args.min_overlap))
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
    _positive(args, "capture", "window", "timeout")
    if args.attempts < 1:
        raise UsageError("--attempts must be 1 or more, not %d" % args.attempts)
    return AccelOptions(
        positions=args.positions, window_s=args.window, capture_s=args.capture, position_timeout_s=args.timeout,
        max_attempts=args.attempts, force=args.force, site=args.site, installer=args.installer, note=args.note)


def _mount_options(args):
    _positive(args, "seconds", "timeout")
    _not_longer(args, "seconds", "timeout")
    if args.up is not None:
        mount.parse_axis(args.up)
    if args.along is not None:
        mount.parse_axis(args.along)
    if args.up is not None and args.along is not None:
        mount.check_axes(args.up, args.along)
    return MountOptions(up=args.up, along=args.along, align=args.align, seconds=args.seconds,
                                timeout_s=args.timeout, force=args.force, site=args.site,
                                installer=args.installer, note=args.note)


def _verify_options(args):
    for q, v in (("temperature", args.reference_temperature), ("humidity", args.reference_humidity)):
        if v is not None:
            climate.check_reference(q, v)
    _positive(args, "seconds", "timeout")
    _not_longer(args, "seconds", "timeout")
    return VerifyOptions(reference_temperature=args.reference_temperature,
                         reference_humidity=args.reference_humidity, seconds=args.seconds, timeout_s=args.timeout)


def _node_words(s, port):
    info = s.info or {}
    return {"node_id": s.node_id, "site": s.site, "port": port, "uid": info.get("uid"),
            "app_version": info.get("app_version"), "parts": s.parts()}


def _outcome(args, s, port, status, error=None):
    """File the report of the flow's result (unless --no-report); returns (folder, inventory words, summary).

    The summary is report.json's document, with where it was filed: what --json prints.
    """
    if not s.result:
        return None, None, None
    run_words = {"installer": args.installer, "note": args.note, "started_utc": s.started_utc,
                 "finished_utc": s.utc()}
    doc = s.result.get("document")
    node = _node_words(s, port)
    folder = inv = None
    if args.no_report:
        data = report.summary(s.result, node, status, error, run_words)
        inv = "not recorded (--no-report)"
    else:
        root = report.reports_root(args.inventory, args.report_dir)
        folder = report.folder_for(root, s.node_id, s.result["kind"], (doc or {}).get("id"))
        try:
            data = report.write(s.result, node, status, folder, error, run_words)
        except OSError as exc:
            raise CitynodeError("%sthe report could not be written to %s: %s" % (
                "the node holds the new calibration, but " if status in ("written", "rolled back") else "",
                folder, exc)) from None
        if doc is None or status not in ("written", "rolled back"):
            inv = "not recorded (nothing was written to the node)"
        elif args.report_dir:
            inv = "not recorded (the report was filed with --report-dir)"
        else:
            try:
                inv = report.record_in_inventory(args.inventory, s.node_id, doc, folder) or (
                    "record of node %s updated with the report's path" % s.node_id)
            except CitynodeError as exc:
                inv = str(exc)
    data.update(report_folder=str(folder) if folder else None, inventory=inv)
    if args.json:
        print(json.dumps(data, indent=2, default=str), flush=True)
    return folder, inv, data


def run(args):
    # check every argument before touching the node
    _report_options(args)
    options = None
    if args.flow == "climate":
        options = _climate_options(args)
    elif args.flow == "accel":
        options = _accel_options(args)
    elif args.flow == "mount":
        options = _mount_options(args)
    elif args.flow == "verify":
        options = _verify_options(args)
    if isinstance(options, RecordOptions):
        check_fits(options)
    port, baud = link_options(args)
    ui = Ui(out=sys.stderr) if args.json else Ui()  # --json: stdout carries the JSON only
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
            folder, _, _ = _outcome(args, s, port, "rejected", str(exc))
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
        folder, _, _ = _outcome(args, s, port, "pass" if ok else "fail")
        if folder is not None:
            ui.say("report: %s" % folder)
        if not ok:
            failed = [c["check"] for c in s.result["checks"] if c["result"] == FAIL]
            raise CitynodeError("verify failed: %s" % ", ".join(failed))
        ui.say("verify passed")
        return 0
    status = "rolled back" if args.flow == "rollback" else "written"
    folder, inv, _ = _outcome(args, s, port, status)
    if folder is not None:
        ui.say("report: %s" % folder)
        ui.say("inventory: " + inv)
    return 0
