# A node-side MQTT session under MicroPython for tests/host/test_node_mqtt.py.
# argv[1] is a JSON file of options; events are printed as JSON lines.
import json
import socket
import time

from citynode_fw import mqtt
from program_io import now, options

opt = options()


def say(kind, **fields):
    fields["event"] = kind
    fields["t"] = now()
    print(json.dumps(fields))


def on_message(topic, payload):
    say("message", topic=topic.decode(), payload=payload.decode())


ctx = None
if opt.get("ca"):
    import tls

    ctx = tls.SSLContext(tls.PROTOCOL_TLS_CLIENT)
    ctx.verify_mode = tls.CERT_REQUIRED
    with open(opt["ca"], "rb") as f:
        ctx.load_verify_locations(f.read())
s = mqtt.Session(
    opt.get("client_id", "node7").encode(), keepalive_s=opt.get("keepalive", 30),
    user=opt.get("user", "").encode(), password=opt.get("password", "").encode(),
    will_topic=opt.get("will_topic", "").encode(), will_payload=b"offline",
    puback_ms=opt.get("puback_ms", 5000), ssl_context=ctx, server_hostname="127.0.0.1", on_message=on_message,
)
for topic in opt.get("subscribe", []):
    s.subscribe(topic.encode(), 1)
s.pid = opt.get("first_pid", 0)
s.start(socket.getaddrinfo("127.0.0.1", opt["port"])[0][-1], now())
count = opt.get("count", 0)
sent = 0
state = s.state
deadline = now() + int(opt.get("seconds", 10) * 1000)
while now() < deadline:
    s.poll(now())
    if s.state != state:
        state = s.state
        say("state", state=mqtt.STATE_WORDS[state], error=s.error, refused=s.refused)
    if s.ready() and sent < count:
        pid = s.publish(opt.get("topic", "t/data").encode(), b"m%d" % sent, qos=opt.get("qos", 1))
        say("published", n=sent, pid=pid)
        sent += 1
    if opt.get("until_acked") and sent == count and s.ready():
        break
    time.sleep_ms(2)
say("end", state=mqtt.STATE_WORDS[s.state], published=s.published, acked=s.acked, resends=s.resends,
    failures=s.failures, connects=s.connects, error=s.error)
if opt.get("clean_stop", True):
    s.stop()
