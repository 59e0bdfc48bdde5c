"""pytest setup for the whole suite.

tests/firmware/ is MicroPython-only: pytest does not import it, but
tests/test_micropython.py runs it (and tests/both/) under the Unix port.
tests/both/ is collected by pytest as well, under CPython.

Skipping: raise mp_skip.SkipTest("reason"), which is pytest's own skip
exception under CPython and is reported as SKIP by tests/mp_runner.py.
"""

import os
import tempfile

collect_ignore = ["firmware"]

# `citynode sim` registers running virtual nodes there (citynode.sim_registry): each
# test process keeps its own, so no test finds another's node as "the only one".
os.environ["CITYNODE_RUNTIME_DIR"] = tempfile.mkdtemp(prefix="citynode-run-")

# Hypothesis judges behaviour here, not speed: on a loaded CI machine a slow
# example or slow input generation is not a failure (speed lives in bench/).
try:
    from hypothesis import HealthCheck, settings

    settings.register_profile("citynode", deadline=None, suppress_health_check=[HealthCheck.too_slow])
    settings.load_profile("citynode")
except ImportError:  # pragma: no cover - hypothesis is in requirements/dev.txt
    pass
