"""Check a node after flashing: identity, versions, file hashes, config, the node's self-test.

`verify_node(client, expect)` asks the running app (`info`, `config_get`,
`selftest`) and compares with what the host deployed and provisioned. Each
check is a row (name, pass, words); the node passes when every row passes.
Calibration is reported, not judged: a fresh node is uncalibrated until the
installer calibrates it on site.
"""

from citynode.errors import CitynodeError
from citynode.node_config import MASK, config_hash, secret_keys


class Check:
    def __init__(self, name, ok, words):
        self.name = name
        self.ok = bool(ok)
        self.words = words

    def as_dict(self):
        return {"name": self.name, "pass": self.ok, "detail": self.words}


class VerifyResult:
    def __init__(self, checks, info, config, selftest):
        self.checks = checks
        self.info = info
        self.config = config
        self.selftest = selftest

    @property
    def passed(self):
        return all(c.ok for c in self.checks)

    @property
    def failures(self):
        return [c for c in self.checks if not c.ok]

    def failure_words(self):
        return "; ".join("%s: %s" % (c.name, c.words) for c in self.failures)

    @property
    def calibration(self):
        return calibration_words(self.info)

    @property
    def sensors(self):
        return sensor_words(self.config, self.info.get("sensors"))

    @property
    def config_hash(self):
        return config_hash(self.config) if self.config is not None else None

    def as_dict(self):
        return {
            "pass": self.passed,
            "checks": [c.as_dict() for c in self.checks],
            "node_id": self.info.get("node_id"),
            "micropython": self.info.get("micropython"),
            "app_version": self.info.get("app_version"),
            "app_hash": self.info.get("app_hash"),
            "config_hash": self.config_hash,
            "calibration": self.calibration,
            "sensors": self.info.get("sensors"),
            "fitted": self.sensors,
        }


def calibration_words(info):
    """The calibration a node's `info` reports, in words: "id 100 2026-01-01", "uncalibrated (...)"."""
    cal = info.get("calibration")
    if not cal:
        return "uncalibrated" + (" (%s)" % info["calibration_fallback"] if info.get("calibration_fallback") else "")
    return "id %s%s" % (cal.get("id"), (" " + str(cal["date"])) if cal.get("date") else "")


KINDS = (("climate", "climate_part"), ("accel", "accel_part"))


def sensor_words(config, sensors):
    """The parts as the config says and the node found them: "climate sht3x, accel not fitted".

    A part is "not fitted" (config `none`), the part found, "none answered" (config
    `auto` and nothing answered) or "<part> MISSING" (named in the config, not found).
    """
    found = {}
    for s in sensors or []:
        if isinstance(s, dict):
            found.setdefault(s.get("kind"), s.get("part"))
    words = []
    for kind, key in KINDS:
        wanted = (config or {}).get(key, "auto")
        if found.get(kind):
            words.append("%s %s" % (kind, found[kind]))
        elif wanted == "none":
            words.append("%s not fitted" % kind)
        elif wanted == "auto":
            words.append("%s none answered" % kind)
        else:
            words.append("%s %s MISSING" % (kind, wanted))
    return ", ".join(words)


def _selftest_words(check):
    name = check.get("name", "?")
    extra = {k: v for k, v in check.items() if k not in ("name", "pass", "detail")}
    if name.endswith("_fitted") and not check.get("pass"):
        return check.get("detail") or "no %s sensor found" % name[: -len("_fitted")]
    words = ", ".join("%s=%s" % (k, v) for k, v in sorted(extra.items()))
    if check.get("detail"):
        words = check["detail"] + ("; " + words if words else "")
    if check.get("pass"):
        return words or "ok"
    return "%s: %s" % (name, words or "failed")


_NO_SAMPLES = "no samples"
SELFTEST_WAIT_S = 8.0


def run_selftest(client, wait_s=SELFTEST_WAIT_S):
    """The node's self-test. A check that needs accelerometer samples fails right after a boot:
    start the stream if it is off and ask again until samples are there (bounded)."""
    import time

    deadline = time.monotonic() + wait_s
    started_stream = False
    while True:
        result = client.command("selftest", timeout=15)
        waiting = [c for c in result.get("checks") or []
                   if not c.get("pass") and _NO_SAMPLES in str(c.get("detail", ""))]
        if not waiting or time.monotonic() >= deadline:
            break
        if not started_stream:
            try:
                client.command("stream_start")
                started_stream = True
            except CitynodeError:
                break  # no accelerometer to start: the check stays failed
        time.sleep(0.5)
    return result, started_stream


def verify_node(client, expect=None, files_checked=None, progress=None):
    """Run the checks on the node behind `client` (a NodeClient with the app answering).

    expect: dict with any of node_id, app_version, app_hash, config (values written).
    files_checked: (ok, words) from the deploy's own read-back of file hashes, if any.
    """
    expect = expect or {}
    progress = progress or (lambda *a, **k: None)
    progress("selftest")
    info = client.command("info")
    config = client.command("config_get").get("config")
    selftest, started_stream = run_selftest(client)
    if started_stream and config is not None and config.get("stream_at_boot") is False:
        try:
            client.command("stream_stop")  # leave it as configured
        except CitynodeError:
            pass
    checks = []

    if "node_id" in expect:
        checks.append(Check("node id", info.get("node_id") == expect["node_id"],
                            "node says %s, expected %s" % (info.get("node_id"), expect["node_id"])))
    if "app_version" in expect and expect["app_version"]:
        checks.append(Check("app version", info.get("app_version") == expect["app_version"],
                            "%s (expected %s)" % (info.get("app_version"), expect["app_version"])))
    if "app_hash" in expect:
        checks.append(Check("app hash", info.get("app_hash") == expect["app_hash"],
                            "node %s, deployed %s" % (info.get("app_hash"), expect["app_hash"])))
    if files_checked is not None:
        checks.append(Check("file hashes", files_checked[0], files_checked[1]))
    checks.append(Check("micropython", bool(info.get("micropython")), info.get("micropython") or "unknown"))
    fallback = info.get("config_fallback")
    checks.append(Check("config loads", fallback is None,
                        "ok" if fallback is None else fallback))
    if "config" in expect and config is not None:
        secrets = secret_keys()
        wrong = []
        for key, want in sorted(expect["config"].items()):
            got = config.get(key)
            if key in secrets:
                want = MASK if want not in ("", None) else want
            if got != want:
                wrong.append(key if key in secrets else "%s=%r (wanted %r)" % (key, got, want))
        checks.append(Check("config", not wrong, "as written" if not wrong else "differs: " + ", ".join(wrong)))
    st_checks = selftest.get("checks") or []
    bad = [c for c in st_checks if not c.get("pass")]
    if selftest.get("pass") and not bad:
        checks.append(Check("self-test", True, "%d checks passed" % len(st_checks)))
    else:
        checks.append(Check("self-test", False, "; ".join(_selftest_words(c) for c in bad) or "failed"))
    checks.append(Check("sensors", True, sensor_words(config, info.get("sensors"))))
    for c in st_checks:
        if c.get("pass") and not c.get("name", "").endswith("_fitted"):
            checks.append(Check(c.get("name", "?"), True, _selftest_words(c)))
    return VerifyResult(checks, info, config, selftest)


def require(result):
    if not result.passed:
        raise CitynodeError("verify failed: " + result.failure_words())
    return result
