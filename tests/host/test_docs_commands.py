"""docs/commands.md lists every command and config key the firmware has."""

import re
from pathlib import Path

from citynode_protocol import messages

ROOT = Path(__file__).resolve().parents[2]
DOC = (ROOT / "docs" / "commands.md").read_text()


def _firmware_table(path, pattern):
    return set(re.findall(pattern, (ROOT / path).read_text(), re.M))


def test_every_command_is_documented_and_in_the_protocol_list():
    handlers = _firmware_table("firmware/citynode_fw/commands.py", r'^    "(\w+)": cmd_\w+,$')
    assert handlers == set(messages.COMMANDS)
    for name in handlers:
        assert re.search(r"^\| `%s` \|" % name, DOC, re.M), name


def test_every_config_key_is_documented():
    keys = _firmware_table("firmware/citynode_fw/config.py", r'^    \("(\w+)", "(?:int|num|str|bool|enum)"')
    assert len(keys) > 10
    for key in keys:
        assert "`%s`" % key in DOC, key
