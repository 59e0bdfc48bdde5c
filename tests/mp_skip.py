"""Skipping a test the same way under MicroPython (tests/mp_runner.py) and pytest.

    from mp_skip import SkipTest

    def test_needs_big_heap():
        if not hasattr(gc, "mem_free"):
            raise SkipTest("no gc.mem_free on this interpreter")

Under pytest, SkipTest is pytest's own skip exception, so the test shows as
skipped there too.
"""

try:
    import pytest

    _Base = pytest.skip.Exception
except ImportError:  # MicroPython: no pytest
    _Base = Exception


class SkipTest(_Base):  # type: ignore[valid-type,misc]
    """Raise with the reason to skip the running test."""


def skip(reason):
    raise SkipTest(reason)
