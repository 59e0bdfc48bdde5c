"""Run test modules under MicroPython: the Unix port here, a board through mpremote later.

    micropython tests/mp_runner.py tests/both/test_cobs.py [MORE.py ...] [-k NAME]

Imports each module and runs its top-level `def test_*():` functions, in source
order, with gc.collect() between them. One line per test:

    PASS test_cobs::test_roundtrip (mem 1234 bytes)
    FAIL test_cobs::test_bad: AssertionError: message      (then the traceback)
    SKIP test_cobs::test_big: reason                       (raise mp_skip.SkipTest)

then `N passed, N failed, N skipped`, and exits with the number of failures
(at most 255). "mem" is what the test allocated and had not yet freed when it
returned (gc.mem_alloc() after minus before).

-k NAME runs only tests whose name contains NAME.

sys.path gets the repository's firmware/, protocol/, tests/, tests/both/,
tests/firmware/ and each module's own folder. The repository root is found from
this file's path, or is the current folder when there is no __file__ (a board
with `mpremote mount .`: call `main([...])`).

Only modules that the ESP32 port has are used here: sys, gc, os (optional).
"""

import gc
import sys

try:
    import os
except ImportError:  # some boards
    os = None

_STATUS = ("PASS", "FAIL", "SKIP")


def _dirname(path):
    i = path.rfind("/")
    if i < 0:
        return "."
    if i == 0:
        return "/"
    return path[:i]


def _basename(path):
    return path[path.rfind("/") + 1 :]


def _absolute(path):
    if path.startswith("/") or os is None:
        return path
    cwd = os.getcwd()
    while path.startswith("./"):
        path = path[2:]
    return cwd.rstrip("/") + "/" + path


def repo_root():
    try:
        here = __file__
    except NameError:
        return "."
    if not here:
        return "."
    return _dirname(_dirname(_absolute(here)))


def test_names(path):
    """Top-level `def test_*(` functions in source order, as (name, takes_arguments)."""
    names = []
    with open(path) as f:
        for line in f:
            if not line.startswith("def test_"):
                continue
            head = line[4:]
            paren = head.find("(")
            if paren < 0:
                continue
            name = head[:paren].strip()
            rest = head[paren + 1 :].strip()
            names.append((name, not rest.startswith(")")))
    return names


def _message(exc):
    args = getattr(exc, "args", ())
    if len(args) == 1:
        return str(args[0])
    if not args:
        return ""
    return str(args)


def _describe(exc):
    """`ExcType: message`, or `ExcType` alone when there is no message."""
    message = _message(exc)
    if message:
        return "%s: %s" % (type(exc).__name__, message)
    return type(exc).__name__


def _print_exception(exc):
    if hasattr(sys, "print_exception"):
        sys.print_exception(exc)  # MicroPython
    else:  # CPython, when the runner is tried there
        import traceback

        traceback.print_exception(type(exc), exc, exc.__traceback__)


class Counts:
    def __init__(self):
        self.passed = 0
        self.failed = 0
        self.skipped = 0


def _skip_class():
    try:
        from mp_skip import SkipTest
    except ImportError:
        return None
    return SkipTest


def run_module(path, counts, keyword=None):
    module_name = _basename(path)
    if module_name.endswith(".py"):
        module_name = module_name[:-3]
    tests = [t for t in test_names(path) if keyword is None or keyword in t[0]]
    folder = _dirname(_absolute(path))
    sys.path.insert(0, folder)
    if module_name in sys.modules:
        del sys.modules[module_name]
    skip_class = _skip_class()
    try:
        try:
            module = __import__(module_name)
        except Exception as exc:  # an import that fails fails every test in it
            for name, _ in tests:
                print("FAIL %s::%s: import failed: %s" % (module_name, name, _describe(exc)))
                counts.failed += 1
            if not tests:
                print("FAIL %s::<import>: %s" % (module_name, _describe(exc)))
                counts.failed += 1
            _print_exception(exc)
            return
        for name, takes_arguments in tests:
            label = "%s::%s" % (module_name, name)
            func = getattr(module, name, None)
            if func is None or not callable(func):
                print("FAIL %s: not a function at module level after import" % label)
                counts.failed += 1
                continue
            if takes_arguments:
                print("SKIP %s: takes arguments (pytest fixtures); MicroPython runs only test_x()" % label)
                counts.skipped += 1
                continue
            gc.collect()
            before = gc.mem_alloc() if hasattr(gc, "mem_alloc") else 0
            try:
                func()
            except Exception as exc:
                if skip_class is not None and isinstance(exc, skip_class):
                    print("SKIP %s: %s" % (label, _message(exc)))
                    counts.skipped += 1
                else:
                    print("FAIL %s: %s" % (label, _describe(exc)))
                    _print_exception(exc)
                    counts.failed += 1
            else:
                used = (gc.mem_alloc() - before) if hasattr(gc, "mem_alloc") else 0
                print("PASS %s (mem %d bytes)" % (label, used))
                counts.passed += 1
            func = None
            gc.collect()
    finally:
        if sys.path and sys.path[0] == folder:
            sys.path.pop(0)


def setup_path(root):
    for sub in ("tests/firmware", "tests/both", "tests", "protocol", "firmware"):
        entry = root + "/" + sub
        if entry not in sys.path:
            sys.path.insert(0, entry)


def main(argv, root=None):
    """Run the modules named in argv (paths, plus an optional `-k NAME`); return the failure count."""
    keyword = None
    paths = []
    i = 0
    while i < len(argv):
        arg = argv[i]
        if arg == "-k":
            if i + 1 >= len(argv):
                print("usage: micropython tests/mp_runner.py MODULE.py [MODULE.py ...] [-k NAME]")
                return 2
            keyword = argv[i + 1]
            i += 2
            continue
        paths.append(arg)
        i += 1
    if not paths:
        print("usage: micropython tests/mp_runner.py MODULE.py [MODULE.py ...] [-k NAME]")
        return 2
    setup_path(root or repo_root())
    counts = Counts()
    for path in paths:
        run_module(path, counts, keyword)
    print("%d passed, %d failed, %d skipped" % (counts.passed, counts.failed, counts.skipped))
    return counts.failed


if __name__ == "__main__":
    sys.exit(min(main(sys.argv[1:]), 255))
