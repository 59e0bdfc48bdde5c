"""`citynode calibrate rollback`: back to the node's previous calibration, read back."""

from citynode.errors import DeviceError


def run_rollback(session):
    ui = session.ui
    session.load_info()
    before = session.calib_get()
    body = session.client.command("calib_rollback") or {}
    after = session.calib_get()
    if after is None or after.get("id") != body.get("id"):
        raise DeviceError("rollback acknowledged (id %s) but the node reads back %s" % (
            body.get("id"), (after or {}).get("id")))
    ui.say("node %s: calibration id %s (%s, %s) restored; %s" % (
        session.node_id, after.get("id"), after.get("date"), after.get("method"),
        "id %s is now the previous one" % before.get("id") if before else "there was none in use before"))
    return {"kind": "rollback", "previous": before, "document": after}
