"""The floor of a node's boot counter (SPEC.md §9.2), raised whenever the host provisions a node.

Signed frames carry (boot, seq), and receivers keep, per node id, the newest
pair they accepted (`verifier.Verifier`'s replay windows; the fleet store keys
frames by (node_id, boot, seq)). A board that counted its boots from 1 again
under an id that has signed before (a replacement board, a restored backup, an
erased boot.json) would have every frame rejected as a replay or dropped as a
repeat. So before the host gives a node its uplink (turns it on, sends its key,
restores a backup of a node that has it), it raises the
node's boot count to the minutes since 2020-01-01T00:00Z by the host's UTC
clock, and the node keeps max(count, floor) (`citynode_fw.bootfloor.set_floor`,
through its store). To reach a number above that floor, the id would have had
to boot more than once a minute on average since it was last provisioned.

    count = raise_floor(transport)        # in a raw-REPL session the caller holds
    count = raise_floor_on_port(port)     # its own session; the app starts again after it
"""

import datetime

from citynode.errors import CitynodeError, DeviceError

EPOCH = datetime.datetime(2020, 1, 1, tzinfo=datetime.timezone.utc)
MAX_FLOOR = 0x3FFFFFFF  # citynode_fw.bootfloor.MAX_FLOOR
_CODE = "from citynode_fw import bootfloor\nprint('boot count', bootfloor.set_floor(%d))"


def utc_now():
    return datetime.datetime.now(datetime.timezone.utc)


def floor_at(when=None):
    """Whole minutes from 2020-01-01T00:00Z to `when` (an aware datetime; default: now)."""
    when = when or utc_now()
    minutes = int((when - EPOCH).total_seconds() // 60)
    if not 0 <= minutes <= MAX_FLOOR:
        raise CitynodeError("the host's clock reads %s: set it to UTC before provisioning a node (its boot "
                            "counter is raised to the minutes since 2020 by this clock)" % when.isoformat())
    return minutes


def needed(values):
    """Whether config values give the node its uplink: they turn it on or carry the node's key."""
    return values.get("uplink") == "wifi" or bool(values.get("node_key"))


def raise_floor(transport, floor=None):
    """Raise the boot count of the node in raw REPL on `transport` to `floor` (default: now).
    Returns the node's count (its next boot is numbered one above)."""
    from citynode import node_shell

    floor = floor_at() if floor is None else floor
    out = bytearray()
    error = node_shell.run_code(transport, _CODE % floor, on_output=out.extend)
    if error:
        if "bootfloor" in error or "set_floor" in error:
            raise DeviceError("the app on %s predates the boot counter's floor (%s): deploy the current app "
                              "(`citynode deploy --port %s`), then provision again"
                              % (transport.device_name, error, transport.device_name))
        raise DeviceError("boot counter not raised on %s: %s" % (transport.device_name, error))
    words = out.decode("utf-8", "replace").split()
    if len(words) != 3 or words[:2] != ["boot", "count"] or not words[2].isdigit() or int(words[2]) < floor:
        raise DeviceError("boot counter on %s: unexpected answer %r" % (transport.device_name, bytes(out)))
    return int(words[2])


def raise_floor_on_port(port, floor=None, baudrate=115200):
    """`raise_floor` in a raw-REPL session of its own; the node's app is restarted after it."""
    from citynode import serial_link

    with serial_link.raw_repl(port, baudrate=baudrate) as transport:
        return raise_floor(transport, floor)
