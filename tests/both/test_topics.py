"""MQTT topic layout (SPEC.md §10)."""

from citynode_protocol import topics
from golden import raises


def test_topics_by_node_and_kind():
    assert topics.topic(7, "frames") == "citynode/7/frames"
    assert topics.topic(65535, "cmd", prefix="city/x") == "city/x/65535/cmd"
    assert topics.every("status") == "citynode/+/status"


def test_parse_round_trips_and_refuses_what_is_not_ours():
    for kind in topics.KINDS:
        assert topics.parse(topics.topic(12, kind)) == (12, kind)
    for bad in ("citynode/7", "citynode/7/frames/x", "other/7/frames", "citynode/07/frames",
                "citynode/-1/frames", "citynode/65536/frames", "citynode//frames", "citynode/7/log", "citynode/1e3/frames"):
        assert topics.parse(bad) is None, bad


def test_bad_arguments_are_refused():
    assert raises(ValueError, topics.topic, 1, "data")
    assert raises(ValueError, topics.topic, 70000, "frames")
