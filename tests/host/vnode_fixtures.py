"""Virtual-node helpers for host tests: a real MicroPython node on a pseudo-terminal.

Use from a test module in tests/host/:

    from vnode_fixtures import virtual_node, vnode, open_port, read_until, raw_transport

    def test_reads_temperature(tmp_path):
        with virtual_node(tmp_path, scenario={"temperature_c": 21.5}, with_app=True) as node:
            with raw_transport(node) as t:          # mpremote SerialTransport, raw REPL
                t.exec("import citynode_fw")
            node.set_scenario(temperature_c=30.0)   # the node re-reads the file
            ser = open_port(node)                   # pyserial, as for /dev/ttyUSB0
            ...

    def test_repl(vnode):                            # the fixture: empty flash, no scenario
        ser = open_port(vnode)

`node.port` is the device path, `node.root` the folder that plays the node's
flash (node path `/x.py` is `node.root / "x.py"`), `node.scenario_path` the
scenario file (None without one). Every wait here is bounded and fails the test
with the last bytes seen.
"""

import contextlib
import json
import time
from pathlib import Path

import pytest
import serial

from citynode.virtual_node import DEFAULT_HEAP, VirtualNode

READY_TIMEOUT = 10.0  # s for an interpreter to come up (normally ~30 ms)


@contextlib.contextmanager
def virtual_node(tmp_path, scenario=None, with_app=False, files=None, baud=None, heap=DEFAULT_HEAP):
    """Start a virtual node with its flash in tmp_path/"node"; stop it on exit.

    scenario: a dict (written to tmp_path/"scenario.json"), a path, or None.
    files: {node path: str or bytes} written into the flash before it boots,
    e.g. {"main.py": "print('hi')"}. with_app installs the firmware first
    (files given here win over it).
    """
    tmp_path = Path(tmp_path)
    root = tmp_path / "node"
    root.mkdir(parents=True, exist_ok=True)
    scenario_path = None
    if isinstance(scenario, dict):
        scenario_path = tmp_path / "scenario.json"
        scenario_path.write_text(json.dumps(scenario, indent=2))
    elif scenario is not None:
        scenario_path = Path(scenario)
    # what the supervisor notes (an interpreter that died, a failed bridge) goes to the
    # test's captured output: pytest shows it with a failure
    node = VirtualNode(root, scenario=scenario_path, baud=baud, heap=heap, with_app=with_app,
                       log=lambda text: print("[%.3f] %s" % (time.monotonic(), text)))
    if with_app:
        # Install now so that `files` can override app files before the first boot.
        from citynode.virtual_node import install_app

        install_app(root)
        node.with_app = False
    for name, data in (files or {}).items():
        target = root / name.lstrip("/")
        target.parent.mkdir(parents=True, exist_ok=True)
        if isinstance(data, str):
            data = data.encode()
        target.write_bytes(data)
    node.start()
    try:
        node.wait_ready(READY_TIMEOUT)
        yield node
    finally:
        node.stop()


@pytest.fixture
def vnode(tmp_path):
    """A started virtual node with an empty flash and no scenario."""
    with virtual_node(tmp_path) as node:
        yield node


def open_port(node, timeout=0.1):
    """The node's port opened with pyserial, as a host tool opens /dev/ttyUSB0."""
    return serial.serial_for_url(node.port, baudrate=115200, timeout=timeout)


def read_until(ser, marker, timeout=5.0, already=b""):
    """Read until `marker` has arrived; return everything read (from `already` on).

    Fails the test after `timeout` seconds, showing the last bytes seen.
    """
    data = bytearray(already)
    deadline = time.monotonic() + timeout
    while marker not in data:
        if time.monotonic() > deadline:
            pytest.fail("no %r within %.1f s; last bytes: %r" % (marker, timeout, bytes(data[-300:])))
        data += ser.read(max(1, ser.in_waiting))
    return bytes(data)


@contextlib.contextmanager
def raw_transport(node, soft_reset=True):
    """mpremote's SerialTransport on the node, in the raw REPL; back to friendly and closed on exit."""
    from mpremote.transport_serial import SerialTransport

    t = SerialTransport(node.port, baudrate=115200, timeout=10)  # bounds its reads on a pty
    try:
        t.enter_raw_repl(soft_reset=soft_reset)
        yield t
        t.exit_raw_repl()
    finally:
        t.close()
