"""Write a node's config through its app: wait for the app to answer, send the values,
reboot when a key needs it. The values come from `node_config`; the config table is the
firmware's own, so host and node check them the same way."""

import time

from citynode.errors import CitynodeError, DeviceError, TransportError
from citynode.node_config import config_hash, scrub


def wait_for_app(port, timeout=20.0, baudrate=115200, client_factory=None):
    """A NodeClient once the app answers `info` (after a deploy or reboot it is still booting).

    One session while the node answers nothing: the client resends the same
    line while the app boots, and a late answer to any of them counts (a new
    session would flush it away on opening the port)."""
    from citynode import serial_link

    factory = client_factory or (lambda: serial_link.NodeClient(port, baudrate))
    deadline = time.monotonic() + timeout
    last = None
    restarted = False
    while True:
        client = factory()
        try:
            info = client.command("info", timeout=max(0.5, deadline - time.monotonic()))
            return client, info
        except serial_link.AppNotRunning as exc:
            # at the REPL right after a deploy or reboot (a soft reset lost, the app
            # stopped at boot): soft-reset once so main.py runs; a second time is the answer
            last = exc
            if restarted:
                client.close()
                raise
            restarted = True
            client.restart_app()
            client.close()
        except TransportError as exc:
            last = exc
            client.close()
            if "busy" in str(exc) or "no such port" in str(exc) or "permission" in str(exc):
                raise
        if time.monotonic() >= deadline:
            raise TransportError("%s (waited %.0f s for the app to answer)" % (last, timeout))
        time.sleep(0.3)


def provision(port, values, progress=None, timeout=20.0, baudrate=115200):
    """Write `values` to the node's config; reboot it when a key needs it. Returns the node's info.

    Values that give the node its uplink raise its boot counter's floor first
    (`boot_floor`), so that it never signs under numbers its id has used."""
    from citynode import boot_floor

    progress = progress or (lambda *a, **k: None)
    if boot_floor.needed(values):
        progress("boot_floor")
        # right after a deploy the app is still starting: interrupt it once it answers
        wait_for_app(port, timeout, baudrate)[0].close()
        boot_floor.raise_floor_on_port(port, baudrate=baudrate)
    progress("provision")
    client, _info = wait_for_app(port, timeout, baudrate)
    try:
        try:
            reply = client.command("config_set", values=values)
        except DeviceError as exc:
            raise DeviceError(scrub(str(exc), values), exc.code)
        need_restart = reply.get("restart_required") or []
        if need_restart:
            progress("restart")
            try:
                client.command("reboot")
            except TransportError:
                pass  # it may go before the reply leaves
    finally:
        client.close()
    if need_restart:
        time.sleep(0.3)
    client, info = wait_for_app(port, timeout, baudrate)
    client.close()
    return info


def sync_inventory(port, inventory_path=None):
    """After a config change: the inventory's site, config hash and sensors follow the node
    (when its node id is recorded). Best effort: a node that does not answer leaves it as it was."""
    from citynode.inventory import Inventory

    try:
        client, info = wait_for_app(port, timeout=15)
    except CitynodeError:
        return False
    try:
        cfg = client.command("config_get").get("config")
    except CitynodeError:
        return False
    finally:
        client.close()
    node_id = info.get("node_id")
    if not isinstance(node_id, int) or not isinstance(cfg, dict):
        return False
    inv = Inventory(inventory_path)
    if inv.get(node_id) is None:
        return False
    from citynode.verify import sensor_words

    return inv.update(node_id, site=cfg.get("site"), config_hash=config_hash(cfg),
                      sensors=sensor_words(cfg, info.get("sensors")))
