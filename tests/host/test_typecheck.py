"""mypy over the node's code against MicroPython's ESP32 stubs (mypy-firmware.ini).

The self-tests run the same config over a copy of the repository layout in a
temporary folder: a bad snippet must fail (so the check can catch something)
and a good one must pass (so it does not fail on everything).
"""

import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]
CONFIG = "mypy-firmware.ini"
STUBS = Path(".venv") / "mpstubs"
TARGETS = ("firmware/citynode_fw", "firmware/boot.py", "firmware/main.py", "protocol/citynode_protocol")


def _require_stubs(root):
    if not (root / STUBS / "micropython.pyi").is_file():
        pytest.fail("MicroPython stubs missing from %s: run `make` (requirements/mpstubs.txt)" % (root / STUBS))


def run_mypy(root, targets, cache_dir):
    done = subprocess.run(
        [sys.executable, "-m", "mypy", "--config-file", str(root / CONFIG), "--cache-dir", str(cache_dir)]
        + [str(t) for t in targets],
        cwd=str(root),
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        timeout=600,
    )
    return done.returncode, done.stdout.decode("utf-8", "replace")


def test_node_code_typechecks_against_esp32_stubs():
    _require_stubs(ROOT)
    targets = [t for t in TARGETS if (ROOT / t).exists()]
    if not targets:
        pytest.skip("no firmware or protocol code yet")
    code, output = run_mypy(ROOT, targets, ROOT / ".mypy_cache" / "firmware")
    assert code == 0, "mypy (%s) over %s:\n%s" % (CONFIG, " ".join(targets), output)


# --- the check itself --------------------------------------------------------

_GOOD = '''\
try:
    from micropython import const
except ImportError:  # CPython

    def const(value):
        return value

try:
    import ujson as json
except ImportError:
    import json

import gc
import struct
import time

from machine import I2C, Pin

from citynode_protocol.wire import MAGIC

_REG = const(0x10)
TABLE = (("a", "int", (0, 9)), ("b", "enum", ("x", "y")), ("c", "bool", None))


class Base:
    RATES = ()


class Part(Base):
    RATES = (1, 2, 3)

    def __init__(self, i2c, address=0x44):
        self._i2c = i2c
        self._buf = bytearray(6)
        self._later = None
        self.address = address

    def read(self):
        self._i2c.readfrom_mem_into(self.address, _REG, self._buf)
        t0 = time.ticks_ms()
        time.sleep_ms(1)
        gc.collect()
        x, y, z = struct.unpack("<hhh", self._buf)
        return x + MAGIC, time.ticks_diff(time.ticks_ms(), t0), json.dumps([y, z])


def check(name, value):
    for row in TABLE:
        if row[0] == name and row[1] == "int" and not row[2][0] <= value <= row[2][1]:
            raise ValueError("%s out of range %d..%d" % (name, row[2][0], row[2][1]))
    out = []
    out.append(value)
    return out


def make():
    return Part(I2C(0, scl=Pin(22), sda=Pin(21), freq=400000))
'''

# One line per kind of mistake the check must catch, with the text mypy gives.
_BAD = {
    "import numpy": 'module named "numpy"',
    "import time\nt = time.monotonic()": 'has no attribute "monotonic"',
    "import time\ntime.sleep_ms('10')": 'incompatible type "str"',
    "import time\nt = time.ticks_ms(1)": "Too many arguments",
    "def f():\n    return undefined_name": 'Name "undefined_name" is not defined',
    "import machine\nmachine.Pin(4).no_such_method()": 'has no attribute "no_such_method"',
    "from citynode_protocol.wire import NO_SUCH": 'has no attribute "NO_SUCH"',
}


def _layout(tmp_path, module_source):
    """A repository-shaped folder with the real config, the real stubs and one firmware module."""
    _require_stubs(ROOT)
    (tmp_path / CONFIG).write_bytes((ROOT / CONFIG).read_bytes())
    (tmp_path / ".venv").mkdir()
    (tmp_path / STUBS).symlink_to(ROOT / STUBS, target_is_directory=True)
    fw = tmp_path / "firmware" / "citynode_fw"
    fw.mkdir(parents=True)
    (fw / "__init__.py").write_text("")
    (fw / "probe.py").write_text(module_source)
    proto = tmp_path / "protocol" / "citynode_protocol"
    proto.mkdir(parents=True)
    (proto / "__init__.py").write_text("")
    (proto / "wire.py").write_text("MAGIC = 0x5A\n")
    return ["firmware/citynode_fw", "protocol/citynode_protocol"]


def test_check_passes_good_micropython_code(tmp_path):
    targets = _layout(tmp_path, _GOOD)
    code, output = run_mypy(tmp_path, targets, tmp_path / "cache")
    assert code == 0, output


def test_check_catches_bad_micropython_code(tmp_path):
    source = "\n\n".join("def case_%d():\n    %s\n" % (i, s.replace("\n", "\n    ")) for i, s in enumerate(_BAD))
    targets = _layout(tmp_path, source)
    code, output = run_mypy(tmp_path, targets, tmp_path / "cache")
    assert code == 1, output
    for snippet, message in _BAD.items():
        assert message in output, "mypy did not catch %r:\n%s" % (snippet, output)
    assert "citynode_protocol/wire.py" not in output and ".venv" not in output, output
