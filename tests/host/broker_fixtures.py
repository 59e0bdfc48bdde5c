"""A real Mosquitto for tests, one broker per test module, and the signed frames nodes send to it.

    from broker_fixtures import SignedNode, broker, needs_mosquitto  # noqa: F401 (fixture)
    pytestmark = [needs_mosquitto]

    def test_something(broker):        # a LocalBroker: broker.url, broker.port, broker.restart()
        node = SignedNode(7, key)
        publish(topic, node.climate(...))   # the TrafficBuilder's frame, signed (SPEC §9)
"""

import pytest

from citynode.broker import LocalBroker, mosquitto_path
from citynode.traffic import TrafficBuilder
from citynode_protocol import auth, cobs, frame

needs_mosquitto = pytest.mark.skipif(mosquitto_path() is None, reason="mosquitto is not installed (`make install` "
                                     "installs it as root; else apt-get install mosquitto mosquitto-clients)")


@pytest.fixture(scope="module")
def broker(tmp_path_factory):
    with LocalBroker(tmp_path_factory.mktemp("broker")) as b:
        yield b


class SignedNode:
    """A node's signed frames (SPEC §9): a TrafficBuilder's frames, signed with its key, boot and seq_hi."""

    def __init__(self, node_id, key, boot=1, seq_hi=0):
        self.traffic = TrafficBuilder(node_id)
        self.key = key
        self.boot = boot
        self.seq_hi = seq_hi

    def __getattr__(self, name):  # node.climate(...), node.time_anchor(...): signed wire bytes
        build = getattr(self.traffic, name)

        def signed(*args, **kwargs):
            raw = cobs.decode(build(*args, **kwargs)[:-1])
            return frame.to_wire(auth.sign(raw, auth.Signer(self.key), self.boot, self.seq_hi))

        return signed

    def reboot(self):
        self.traffic.restart()
        self.boot += 1
