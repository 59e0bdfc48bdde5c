"""citynode_sim.radio: the scenario's wifi key decides joining, failures, losing the link and RSSI."""

import time

from citynode_sim import radio as radio_mod
from citynode_sim.radio import SimRadio
from citynode_sim.scenario import Scenario, validate


class _Board:
    def __init__(self, wifi):
        self.scenario = Scenario()
        self.scenario.data["wifi"].update(wifi)

    def sync(self):
        pass


def _joined(r):
    time.sleep_ms(radio_mod.JOIN_MS + 20)
    return r.connected(), r.failure()


def test_joins_a_network_in_reach_and_reports_rssi():
    r = SimRadio(_Board({"ssids": ["city-iot"], "password": "pw", "rssi": -71}))
    assert not r.connected() and r.failure() is None  # not asked yet
    r.connect("city-iot", "pw")
    assert not r.connected() and r.failure() is None  # still joining
    assert _joined(r) == (True, None)
    assert r.rssi() == -71


def test_an_ssid_out_of_reach_a_wrong_password_and_no_network_are_named():
    for wifi, ssid, pw, why in (
        ({"ssids": ["city-iot"]}, "other", "pw", "no AP found"),
        ({"password": "right"}, "x", "wrong", "wrong password"),
        ({"up": False}, "x", "pw", "no AP found"),
    ):
        r = SimRadio(_Board(wifi))
        r.connect(ssid, pw)
        assert _joined(r) == (False, why)


def test_going_down_drops_the_link():
    b = _Board({})
    r = SimRadio(b)
    r.connect("any", "thing")
    assert _joined(r)[0]
    b.scenario.data["wifi"]["up"] = False
    assert not r.connected() and r.failure() == "no AP found"


def test_the_wifi_key_is_validated():
    assert validate({"wifi": {"up": True, "rssi": -50, "ssids": ["a"], "password": None}}) == []
    for bad in ({"up": "yes"}, {"rssi": 5}, {"ssids": "a"}, {"password": 3}, {"channel": 6}, []):
        assert validate({"wifi": bad}), bad
