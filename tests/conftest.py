"""pytest setup for the whole suite.

tests/firmware/ is MicroPython-only: pytest does not import it, but
tests/test_micropython.py runs it (and tests/both/) under the Unix port.
tests/both/ is collected by pytest as well, under CPython.

Skipping: raise mp_skip.SkipTest("reason"), which is pytest's own skip
exception under CPython and is reported as SKIP by tests/mp_runner.py.
"""

collect_ignore = ["firmware"]
