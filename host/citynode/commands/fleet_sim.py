"""`citynode fleet-sim --broker URL --climate-nodes N --bridge-nodes M`: signed load from simulated nodes.

Each node has its own key in the keystore (made for nodes that have none), its
own boot counter and 32-bit sequence, and the firmware's schedule
(citynode.fleet.fleet_sim). `--rate X` runs node time X times faster than the
wall clock (0: as fast as it goes); `--duration S` is in node time. `--record
FILE` (.jsonl or .parquet) keeps every frame published, with its values and
injections, for comparing a store against. `--json-peer` publishes the same
readings as one JSON message per reading instead (the naive peer of
bench/bench_ingest.py). Ends with one summary line (or --json).
"""

import json
import signal
import sys

from citynode.commands.common import add_broker_arguments, check_output_path, interrupt_on
from citynode.errors import UsageError


def add_arguments(parser):
    from citynode.fleet.fleet_sim import INJECTIONS

    add_broker_arguments(parser)
    parser.add_argument("--climate-nodes", type=int, default=0, metavar="N", help="climate nodes (default: 0)")
    parser.add_argument("--bridge-nodes", type=int, default=0, metavar="M", help="bridge nodes: 200 Hz acceleration, features, climate (default: 0)")
    parser.add_argument("--rate", type=float, default=1.0, metavar="X",
                        help="node time per wall time: 60 sends a node-minute a second, 0 as fast as it goes (default: 1)")
    parser.add_argument("--duration", type=float, metavar="S", help="seconds of node time (default: until Ctrl-C)")
    parser.add_argument("--first-node", type=int, default=1, metavar="ID", help="the first node id (default: 1)")
    parser.add_argument("--seed", type=int, default=0, metavar="S", help="seed of the signals (default: 0)")
    parser.add_argument("--boot", type=int, metavar="N", help="every node's boot counter (default: seconds since 2020, so it grows run to run)")
    parser.add_argument("--inject", metavar="LIST",
                        help="comma-separated, each NAME or NAME=COUNT: %s" % ", ".join(INJECTIONS))
    parser.add_argument("--record", metavar="FILE", help="what was published, one row a frame (.jsonl or .parquet)")
    parser.add_argument("--json-peer", action="store_true",
                        help="publish the readings as JSON, one message per reading (the naive peer)")
    parser.add_argument("--clients", type=int, metavar="K", help="MQTT connections (default: one per 50 nodes)")
    parser.add_argument("--json", action="store_true", help="print the summary as JSON")


def run(args):
    from citynode import broker_url
    from citynode.fleet.fleet_sim import CLIENT_NODES, FleetSim, Record, parse_injections
    from citynode.fleet.sim_publish import MqttPublisher
    from citynode.keystore import Keystore

    broker_url.parse(args.broker)
    if args.rate < 0:
        raise UsageError("--rate %g: 0 or more" % args.rate)
    if args.climate_nodes < 0 or args.bridge_nodes < 0:
        raise UsageError("--climate-nodes and --bridge-nodes: 0 or more")
    if args.boot is not None and not 0 <= args.boot <= 0xFFFFFFFF:
        raise UsageError("--boot %d: outside 0..4294967295" % args.boot)
    if args.clients is not None and args.clients < 1:
        raise UsageError("--clients %d: at least 1" % args.clients)
    injections = parse_injections(args.inject)
    if args.record:
        check_output_path(args.record)
        if not args.record.endswith((".jsonl", ".parquet")):
            raise UsageError("--record %s: name it .jsonl or .parquet" % args.record)
    sim = FleetSim(Keystore(args.keystore), args.climate_nodes, args.bridge_nodes, duration_s=args.duration,
                   first_node=args.first_node, seed=args.seed, prefix=args.prefix, injections=injections,
                   boot=args.boot, json_peer=args.json_peer)
    n = len(sim.nodes)
    clients = args.clients or (n + CLIENT_NODES - 1) // CLIENT_NODES
    record = Record(args.record) if args.record else None
    try:
        with MqttPublisher(args.broker, clients, ca=args.ca) as pub, interrupt_on(signal.SIGTERM):
            stats = sim.run(pub, rate=args.rate, record=record)
    finally:
        if record is not None:
            record.close()
    if args.json:
        print(json.dumps(stats))
    else:
        print("%d nodes, %d messages, %d frames, %d bytes in %.1f s: %.0f frames/s, %.0f samples/s, %.2f x real time%s"
              % (stats["nodes"], stats["messages"], stats["frames"], stats["bytes"], stats["seconds"],
                 stats["frames_per_s"], stats["samples_per_s"], stats["speed"],
                 "" if stats["acknowledged"] else " (not all acknowledged)"))
    sys.stdout.flush()
    return 0 if stats["acknowledged"] else 1
