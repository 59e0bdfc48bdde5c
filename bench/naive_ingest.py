"""The naive peer of bench_ingest.py: MQTT JSON into PostgreSQL the way typical city IoT scripts do it.

    python bench/naive_ingest.py --broker mqtt://127.0.0.1:1883 --pg-url postgresql://... [--duration S]

A paho-mqtt subscriber to `+/sensor/+/state` (one JSON message per reading, as
ESPHome/Tasmota-style nodes publish them and as `citynode fleet-sim --json-peer`
does for the same simulated readings), and for every message one INSERT with
psycopg in autocommit mode: a climate value into `readings`, an acceleration
sample into `accel`. Nothing batched, nothing verified, nothing deduplicated:
that is the point of the comparison. Deliberately plain; do not optimise it.

Prints `rows N` on stdout every second (the harness reads it) and a last line
with the total when it stops (--duration, SIGTERM or Ctrl-C).
"""

import argparse
import json
import signal
import sys
import time

import paho.mqtt.client as mqtt
import psycopg

SCHEMA = """
CREATE TABLE IF NOT EXISTS readings (
    id BIGSERIAL PRIMARY KEY,
    node TEXT NOT NULL,
    sensor TEXT NOT NULL,
    time TIMESTAMPTZ NOT NULL,
    value DOUBLE PRECISION
);
CREATE TABLE IF NOT EXISTS accel (
    id BIGSERIAL PRIMARY KEY,
    node TEXT NOT NULL,
    time TIMESTAMPTZ NOT NULL,
    x DOUBLE PRECISION,
    y DOUBLE PRECISION,
    z DOUBLE PRECISION
);
"""


def main(argv=None):
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--broker", default="mqtt://127.0.0.1:1883")
    ap.add_argument("--pg-url", required=True)
    ap.add_argument("--client-id", default="naive-ingest")
    ap.add_argument("--duration", type=float, help="stop after S seconds (default: until SIGTERM)")
    args = ap.parse_args(argv)

    host, _, port = args.broker.split("://", 1)[-1].partition(":")
    conn = psycopg.connect(args.pg_url, autocommit=True)
    conn.execute(SCHEMA)
    counts = {"rows": 0, "bad": 0}

    def on_connect(client, userdata, flags, reason_code, properties):
        client.subscribe("+/sensor/+/state", qos=1)

    def on_message(client, userdata, msg):
        try:
            data = json.loads(msg.payload)
            node, _, sensor, _ = msg.topic.split("/")
        except ValueError:
            counts["bad"] += 1
            return
        if sensor == "accel":
            conn.execute(
                "INSERT INTO accel (node, time, x, y, z) VALUES (%s, to_timestamp(%s / 1000.0), %s, %s, %s)",
                (node, data["time"], data["x"], data["y"], data["z"]),
            )
        else:
            conn.execute(
                "INSERT INTO readings (node, sensor, time, value) VALUES (%s, %s, to_timestamp(%s / 1000.0), %s)",
                (node, sensor, data["time"], data["value"]),
            )
        counts["rows"] += 1

    client = mqtt.Client(mqtt.CallbackAPIVersion.VERSION2, client_id=args.client_id)
    client.on_connect = on_connect
    client.on_message = on_message
    client.connect(host, int(port or 1883))
    client.loop_start()

    stop = []
    signal.signal(signal.SIGTERM, lambda *_: stop.append(1))
    end = None if args.duration is None else time.monotonic() + args.duration
    try:
        while not stop and (end is None or time.monotonic() < end):
            time.sleep(1.0)
            print("rows %d" % counts["rows"], flush=True)
    except KeyboardInterrupt:
        pass
    client.loop_stop()
    client.disconnect()
    conn.close()
    print("total rows %d, unreadable messages %d" % (counts["rows"], counts["bad"]), flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
