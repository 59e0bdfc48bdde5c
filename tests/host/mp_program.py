"""Start a MicroPython program from tests/host/mp_programs/ under the Unix port, with the
node's code on its path and its options in a JSON file (program_io.options reads it)."""

import json
import os
import subprocess
import sys
import tempfile
from pathlib import Path

from citynode.paths import firmware_root, protocol_root

PROGRAMS = Path(__file__).resolve().parent / "mp_programs"
MICROPYTHON = Path(sys.executable).parent / "micropython"


def start(program, **opt):
    env = dict(os.environ, MICROPYPATH="%s:%s:%s" % (firmware_root(), protocol_root(), PROGRAMS))
    fd, path = tempfile.mkstemp(prefix="opt", suffix=".json")
    with os.fdopen(fd, "w") as f:
        json.dump(opt, f)
    return subprocess.Popen([str(MICROPYTHON), str(PROGRAMS / program), path], env=env,
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
