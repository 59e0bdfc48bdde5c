"""Host commands: one table, name -> handler(node, args) -> (code, body dict).

Every handler checks its arguments and answers with wire.OK and a body, or
an ERR_* code and {"error": "short message"}. The link turns that into a REPLY
frame for the request id.

A host resends a request it got no reply to. `answer` applies a request that
changes the node (CHANGES) once: a repeat of the same line is answered from the
link's memory of replies (link.Answered). The others are read-only and simply
run again.
"""

import sys

from citynode_protocol import wire
from citynode_fw import calibration, version

OK = wire.OK


def _err(code, text):
    return code, {"error": text}


def _no_args(args):
    if args:
        return _err(wire.ERR_BAD_ARGUMENT, "takes no arguments, got %s" % ", ".join(sorted(args)))
    return None


def _flag(args, name):
    v = args.get(name)
    if not isinstance(v, bool):
        return None
    return v


def cmd_info(node, args):
    bad = _no_args(args)
    if bad:
        return bad
    cal = node.calib
    impl = sys.implementation
    return OK, {
        "node_id": node.cfg["node_id"],
        "site": node.cfg["site"],
        "uid": node.board.unique_id(),
        "micropython": "%d.%d.%d" % (impl.version[0], impl.version[1], impl.version[2]),
        "sys_version": sys.version,
        "platform": sys.platform,
        "app_version": version.version_string(),
        "app_hash": version.app_hash(),
        "reset_cause": node.reset_cause,
        "config": node.config.masked(),
        "config_fallback": node.config.fallback,
        "calibration": {"id": cal.id, "date": cal.date} if cal is not None else None,
        "calibration_fallback": node.calib_fallback,
        "sensors": node.sensors_found(),
        "last_errors": node.last_errors,
        "counters": node.counters.as_dict(),
        "uplink": node.uplink.status() if node.uplink is not None else (
            {"error": node.uplink_error} if node.uplink_error else None),
    }


def cmd_config_get(node, args):
    key = args.get("key")
    if key is None:
        if args:
            return _err(wire.ERR_BAD_ARGUMENT, "only 'key' is accepted")
        return OK, {"config": node.config.masked()}
    if key not in node.config.values:
        return _err(wire.ERR_BAD_ARGUMENT, "unknown config key %r" % key)
    return OK, {"config": node.config.masked(key)}


def cmd_config_set(node, args):
    values = args.get("values")
    if not isinstance(values, dict) or not values or len(args) != 1:
        return _err(wire.ERR_BAD_ARGUMENT, "expects {'values': {key: value, ...}}")
    return node.set_config(values)


def cmd_stream_start(node, args):
    bad = _no_args(args)
    if bad:
        return bad
    if node.sampler.accel is None:
        return _err(wire.ERR_NO_SENSOR, "no accelerometer fitted")
    if not node.sampler.streaming and not node.sampler.start_stream(node.now()):
        return _err(wire.ERR_NO_SENSOR, "accelerometer did not start")
    return OK, {"streaming": True}


def cmd_stream_stop(node, args):
    bad = _no_args(args)
    if bad:
        return bad
    node.sampler.stop_stream()
    return OK, {"streaming": False}


def cmd_raw_mode(node, args):
    on = _flag(args, "on")
    if on is None or len(args) != 1:
        return _err(wire.ERR_BAD_ARGUMENT, "expects {'on': true|false}")
    node.sampler.set_raw_mode(on, node.now())
    return OK, {"raw_mode": on}


def cmd_calib_get(node, args):
    bad = _no_args(args)
    if bad:
        return bad
    cal = node.calib
    return OK, {"calib": cal.doc if cal is not None else None, "fallback": node.calib_fallback}


def _store_and_use(node, store, failed):
    """Run a calibration store step (save or rollback) and apply what it returns."""
    try:
        cal = store(node.calib_path, node.calib_prev_path)
    except ValueError as exc:
        return _err(wire.ERR_BAD_ARGUMENT, str(exc))
    except OSError as exc:
        return _err(wire.ERR_STORAGE, "%s: %s" % (failed, exc))
    node.use_calibration(cal)
    return OK, {"id": cal.id}


def cmd_calib_write(node, args):
    doc = args.get("calib")
    if not isinstance(doc, dict) or len(args) != 1:
        return _err(wire.ERR_BAD_ARGUMENT, "expects {'calib': {...}}")
    return _store_and_use(node, lambda path, prev: calibration.save(doc, path, prev), "calibration not saved")


def cmd_calib_rollback(node, args):
    bad = _no_args(args)
    if bad:
        return bad
    return _store_and_use(node, calibration.rollback, "rollback not saved")


def cmd_selftest(node, args):
    bad = _no_args(args)
    if bad:
        return bad
    checks = node.selftest()
    passed = True
    for c in checks:
        if not c["pass"]:
            passed = False
    return OK, {"pass": passed, "checks": checks}


def cmd_set_time(node, args):
    utc = args.get("utc_ms")
    if isinstance(utc, bool) or not isinstance(utc, int) or len(args) != 1:
        return _err(wire.ERR_BAD_ARGUMENT, "expects {'utc_ms': milliseconds since 1970}")
    if not wire.UTC_MIN_MS <= utc < wire.UTC_MAX_MS:
        return _err(wire.ERR_BAD_ARGUMENT, "utc_ms %d is not a plausible UTC: it must be from 2020-01-01 (%d) "
                    "up to 2100-01-01 (%d) in ms since 1970" % (utc, wire.UTC_MIN_MS, wire.UTC_MAX_MS))
    node.set_time(utc)
    now = node.now()
    return OK, {"utc_ms": utc, "node_ms": now | node.link.time_hi(now) << 30}


def cmd_status(node, args):
    bad = _no_args(args)
    if bad:
        return bad
    node.send_status()
    return OK, node.status_dict()


def cmd_reboot(node, args):
    bad = _no_args(args)
    if bad:
        return bad
    node.reboot_pending = True
    return OK, {"rebooting": True}


COMMANDS = {
    "info": cmd_info,
    "config_get": cmd_config_get,
    "config_set": cmd_config_set,
    "stream_start": cmd_stream_start,
    "stream_stop": cmd_stream_stop,
    "raw_mode": cmd_raw_mode,
    "calib_get": cmd_calib_get,
    "calib_write": cmd_calib_write,
    "calib_rollback": cmd_calib_rollback,
    "selftest": cmd_selftest,
    "set_time": cmd_set_time,
    "status": cmd_status,
    "reboot": cmd_reboot,
}


# The commands that change the node: applied once per request (see `answer`).
CHANGES = ("config_set", "stream_start", "stream_stop", "raw_mode", "calib_write", "calib_rollback",
           "set_time", "reboot")


def answer(node, request_id, command, args, line):
    """(code, body) for one decoded request line; a repeat of a change is not applied again."""
    if command not in CHANGES:
        return run(node, command, args)
    answered = node.link.answered
    kept = answered.find(request_id, line, node.now())
    if kept is not None:
        return kept
    code, body = run(node, command, args)
    answered.keep(request_id, line, code, body, node.now())
    return code, body


def run(node, command, args):
    """(code, body) for one decoded command; never raises for a bad request."""
    handler = COMMANDS.get(command)
    if handler is None:
        return _err(wire.ERR_UNKNOWN_COMMAND, "unknown command %r" % command)
    try:
        return handler(node, args)
    except Exception as exc:  # a handler bug must not stop the node
        return _err(wire.ERR_INTERNAL, "%s: %s" % (type(exc).__name__, exc))
