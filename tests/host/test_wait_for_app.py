"""provision.wait_for_app: a node found at the REPL right after a deploy or reboot gets one
soft reset so its app starts; a board with no app still gets the deploy hint."""

import time

import pytest

from citynode import provision, serial_link
from vnode_fixtures import open_port, read_until, virtual_node


def test_a_node_left_at_the_repl_is_soft_reset_once_and_its_app_answers(tmp_path):
    with virtual_node(tmp_path, with_app=True, heap="1m") as node:
        time.sleep(1.0)  # the app runs
        boots = node.boots
        with open_port(node) as ser:  # Ctrl-C: the app stops, the friendly REPL takes over
            ser.write(b"\x03")
            read_until(ser, b">>> ")
        client, info = provision.wait_for_app(node.port, timeout=20)
        client.close()
        assert info["node_id"] == 1 and node.boots == boots + 1


def test_a_board_without_the_app_gets_the_deploy_hint(tmp_path):
    with virtual_node(tmp_path) as node:
        with pytest.raises(serial_link.AppNotRunning, match="citynode deploy"):
            provision.wait_for_app(node.port, timeout=10)
