"""Hardware in the loop: the MicroPython test modules of tests/both and tests/firmware, run on a
board through the raw REPL by tests/mp_runner.py, and reported like pytest.

What the runner needs goes into /hil on the node's flash, laid out like the
repository (so `mp_runner.main(paths, "/hil")` finds everything as it does on
the Unix and WebAssembly ports): tests/mp_runner.py, tests/mp_skip.py, the
suites' helpers and chosen modules, protocol/ (package and vectors) and, for
firmware tests, firmware/citynode_fw and firmware/citynode_sim. Files already
there with the same SHA-256 are not copied again. Each module runs in a fresh
interpreter (soft reset); the runner's PASS/FAIL/SKIP lines are its verdict.
"""

import fnmatch
import hashlib
import re
from pathlib import Path

from citynode import paths
from citynode.errors import CitynodeError, TransportError
from citynode.node_shell import OutputTimeout, follow, interrupt

NODE_ROOT = "/hil"
SUITES = ("both", "firmware")
DEFAULT_TIMEOUT_S = 300.0
WRITE_CHUNK = 2048

# The runner's protocol (tests/mp_runner.py); tests/test_micropython.py reads it the same way.
_TEST_DEF = re.compile(r"^def (test_\w+)\s*\(", re.MULTILINE)
_TIMEOUT_OPTION = re.compile(r"^#\s*mp:\s*timeout\s*=\s*(\S+)\s*$", re.MULTILINE)
_STATUS = re.compile(r"^(PASS|FAIL|SKIP) (\w+)::(\w+|<import>)(?:: | \(|$)(.*)$")
_SUMMARY = re.compile(r"^\d+ passed, \d+ failed, \d+ skipped$")
VERDICTS = {"PASS": "PASSED", "FAIL": "FAILED", "SKIP": "SKIPPED"}


def tests_root():
    """The repository's tests/ folder (hil runs from a checkout)."""
    root = paths.source_root() / "tests"
    if not (root / "mp_runner.py").is_file():
        raise CitynodeError("hil runs the repository's MicroPython tests, and there is no %s: "
                            "run it from a checkout of citynode" % (root / "mp_runner.py"))
    return root


def select_modules(pattern=None, root=None):
    """Test modules as paths relative to tests/ ("both/test_cobs.py"), those matching
    `pattern` when given: a part of that path, or a glob on it or on the file name."""
    root = root or tests_root()
    found = []
    for suite in SUITES:
        for path in sorted((root / suite).glob("test_*.py")):
            rel = "%s/%s" % (suite, path.name)
            if pattern is None or pattern in rel or fnmatch.fnmatch(rel, pattern) \
                    or fnmatch.fnmatch(path.name, pattern):
                found.append(rel)
    if not found:
        raise CitynodeError("no test module matches %r in %s/{%s}" % (pattern, root, ",".join(SUITES)))
    return found


def _tree(folder, node_folder, pattern="*.py"):
    return [(p, "%s/%s" % (node_folder, p.relative_to(folder).as_posix()))
            for p in sorted(folder.rglob(pattern)) if "__pycache__" not in p.parts]


def files_for(modules, root=None):
    """[(host path, node path)] that running `modules` needs on the node."""
    root = root or tests_root()
    repo = root.parent
    files = [(root / name, "%s/tests/%s" % (NODE_ROOT, name)) for name in ("mp_runner.py", "mp_skip.py")]
    for suite in SUITES:
        helpers = [p for p in sorted((root / suite).glob("*.py")) if not p.name.startswith("test_")]
        files += [(p, "%s/tests/%s/%s" % (NODE_ROOT, suite, p.name)) for p in helpers]
    files += [(root / rel, "%s/tests/%s" % (NODE_ROOT, rel)) for rel in modules]
    files += _tree(repo / "protocol" / "citynode_protocol", NODE_ROOT + "/protocol/citynode_protocol")
    files += _tree(repo / "protocol" / "vectors", NODE_ROOT + "/protocol/vectors", "*.json")
    if any(rel.startswith("firmware/") for rel in modules):
        for package in ("citynode_fw", "citynode_sim"):
            files += _tree(repo / "firmware" / package, "%s/firmware/%s" % (NODE_ROOT, package))
    return files


# --- copying ---------------------------------------------------------------------

_HASHES = """\
import os
try:
    import hashlib
except ImportError:
    hashlib = None
b = bytearray(512)
for p in %r:
    try:
        h = hashlib.sha256()
        with open(p, 'rb') as f:
            while True:
                n = f.readinto(b)
                if not n:
                    break
                h.update(b if n == 512 else b[:n])
        print(p, h.digest().hex())
    except Exception:
        print(p, '-')
"""


def node_hashes(transport, node_paths):
    """{node path: sha256 hex} of those files the node has (none when it cannot hash)."""
    out = transport.exec(_HASHES % (list(node_paths),))  # one line per file: mpremote's 10 s bound is per line
    hashes = {}
    for line in out.decode("utf-8", "replace").splitlines():
        path, _, digest = line.strip().rpartition(" ")
        if path and digest != "-":
            hashes[path] = digest
    return hashes


def _folders(node_path):
    parts = node_path.strip("/").split("/")[:-1]
    return ["/" + "/".join(parts[: i + 1]) for i in range(len(parts))]


def _mkdir(transport, folder):
    """A folder on the node, unless it is there already."""
    transport.exec("import os\ntry:\n os.mkdir(%r)\nexcept OSError:\n pass" % folder)


def sync(transport, files):
    """Copy the files whose content differs on the node; return (copied, unchanged)."""
    from mpremote.transport import TransportError as MpremoteTransportError

    wanted = {node: hashlib.sha256(host.read_bytes()).hexdigest() for host, node in files}
    try:
        have = node_hashes(transport, [node for _, node in files])
        stale = [(host, node) for host, node in files if have.get(node) != wanted[node]]
        made = set()
        for host, node in stale:
            for folder in _folders(node):
                if folder not in made:
                    _mkdir(transport, folder)
                    made.add(folder)
            transport.fs_writefile(node, host.read_bytes(), chunk_size=WRITE_CHUNK)
    except (OSError, MpremoteTransportError) as exc:
        raise TransportError("copying the tests to %s failed: %s" % (transport.device_name, exc)) from None
    return len(stale), len(files) - len(stale)


# The firmware tests make their scratch folders in /tmp (tests/firmware/fw_helpers.py
# enter_tmpdir), which the Unix port has and a board's flash does not.
SCRATCH = "/tmp"


def make_scratch(transport):
    _mkdir(transport, SCRATCH)


def remove_scratch(transport):
    """/tmp again gone, if the tests left it empty."""
    transport.exec("import os\ntry:\n os.rmdir(%r)\nexcept OSError:\n pass" % SCRATCH)


def remove_tree(transport, folder=NODE_ROOT):
    transport.exec("import os\ndef rm(p):\n try:\n  for e in os.ilistdir(p):\n   rm(p + '/' + e[0])\n"
                   "  os.rmdir(p)\n except OSError:\n  os.remove(p)\ntry:\n rm(%r)\nexcept OSError:\n pass" % folder)


# --- running ---------------------------------------------------------------------


class Result:
    def __init__(self, nodeid, status, text):
        self.nodeid = nodeid  # "both/test_cobs.py::test_roundtrip"
        self.status = status  # PASS, FAIL or SKIP
        self.text = text  # the runner's line and what followed it (a traceback)


class ModuleOutput:
    """Splits the runner's output into results as it arrives, calling on_result(Result) for each."""

    def __init__(self, rel, on_result):
        self.rel = rel
        self.on_result = on_result
        self.results = {}
        self._partial = b""
        self._current = None
        self.summary = None

    def feed(self, data):
        self._partial += data.replace(b"\x04", b"")
        *lines, self._partial = self._partial.split(b"\n")
        for raw in lines:
            self._line(raw.decode("utf-8", "replace").rstrip("\r"))

    def close(self):
        if self._partial:
            self._line(self._partial.decode("utf-8", "replace").rstrip("\r"))
            self._partial = b""
        self._finish()

    def _finish(self):
        if self._current is not None:
            self.on_result(self._current)
            self._current = None

    def _line(self, line):
        match = _STATUS.match(line)
        if match:
            self._finish()
            status, _module, name, _ = match.groups()
            self._current = Result("%s::%s" % (self.rel, name), status, line)
            self.results[name] = self._current
        elif _SUMMARY.match(line):
            self._finish()
            self.summary = line
        elif self._current is not None:
            self._current.text += "\n" + line


def module_timeout(path):
    match = _TIMEOUT_OPTION.search(Path(path).read_text(encoding="utf-8"))
    return float(match.group(1)) if match else DEFAULT_TIMEOUT_S


def run_module(transport, rel, keyword=None, timeout=None, on_result=lambda r: None, root=None):
    """Run one module in a fresh interpreter on the node; return its [Result], one per test
    the module defines (a test the run never reached is a FAIL saying so)."""
    from mpremote.transport import TransportError as MpremoteTransportError

    root = root or tests_root()
    names = [n for n in _TEST_DEF.findall((root / rel).read_text(encoding="utf-8"))
             if keyword is None or keyword in n]
    timeout = timeout or module_timeout(root / rel)
    argv = ["%s/tests/%s" % (NODE_ROOT, rel)] + (["-k", keyword] if keyword else [])
    code = ("import sys\nsys.path.insert(0, %r)\nimport mp_runner\nmp_runner.main(%r, %r)"
            % (NODE_ROOT + "/tests", argv, NODE_ROOT))
    output = ModuleOutput(rel, on_result)
    problem = None
    try:
        transport.enter_raw_repl(soft_reset=True)
        transport.exec_raw_no_follow(code)
        err = follow(transport, timeout, output.feed, overall=timeout)
        if err:
            problem = err.decode("utf-8", "replace").strip()
    except OutputTimeout:
        problem = "the run ended: not finished within %g s (the module's `# mp: timeout=`, or --timeout)" % timeout
        interrupt(transport)
    except MpremoteTransportError as exc:
        problem = "the run ended: the link to the node failed: %s" % exc
        interrupt(transport)
    output.close()
    results = []
    for name in names:
        found = output.results.get(name)
        if found is None:
            found = Result("%s::%s" % (rel, name), "FAIL",
                           "no result from the node%s" % (": " + problem if problem else ""))
            on_result(found)
        results.append(found)
    for name, found in output.results.items():
        if name not in names:  # <import> failures
            results.append(found)
    if problem and output.summary is None and not names:
        results.append(Result("%s::<run>" % rel, "FAIL", problem))
        on_result(results[-1])
    return results
