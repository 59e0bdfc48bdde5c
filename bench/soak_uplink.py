"""Long runs of the uplink's outage and power-cut tests, which the suite runs short.

    python bench/soak_uplink.py                  # 60 s broker and Wi-Fi outages, 100 power cuts
    python bench/soak_uplink.py --outage-s 600 --kills 0   # the 10-minute outages alone

Each is tests/host/test_uplink_end_to_end.py with its length raised through
the environment (CITYNODE_OUTAGE_S, CITYNODE_KILLS): the same checks (nothing
lost, order kept, repeats recognised, no FIFO overflow; nothing corrupt sent,
nothing twice). Needs mosquitto (see the README). Exits non-zero on a failure.
"""

import argparse
import os
import subprocess
import sys
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
TEST = "tests/host/test_uplink_end_to_end.py"


# the test's node (ADXL355 at 250 Hz, raw blocks of 200, SHT35 every 2 s) fills its ring at
# about 2.1 kB/s (a 10-minute outage with ring_kb 1024 dropped 162 s of acceleration), and
# raw acceleration may take 7/8 of the ring
RING_BYTES_PER_S = 2200


def ring_for(outage_s):
    """ring_kb that holds an outage of outage_s with a margin of 1/4, in steps of 256."""
    need = outage_s * RING_BYTES_PER_S * 8 / 7 * 1.25 / 1024
    return max(256, -(-int(need) // 256) * 256)


def main():
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--outage-s", type=float, default=60.0, help="length of each outage (default %(default)g)")
    p.add_argument("--kills", type=int, default=100, help="power cuts (default %(default)d; 0: none)")
    p.add_argument("--ring-kb", type=int, help="the node's ring_kb (default: what the outage needs, at least 256)")
    args = p.parse_args()
    ring_kb = args.ring_kb or ring_for(args.outage_s)
    env = dict(os.environ, CITYNODE_OUTAGE_S=str(args.outage_s), CITYNODE_KILLS=str(args.kills),
               CITYNODE_RING_KB=str(ring_kb))
    runs = [("outages of %g s, ring_kb %d" % (args.outage_s, ring_kb), "outages")]
    if args.kills:
        runs.append(("%d power cuts" % args.kills, "power_cuts"))
    failed = 0
    for words, k in runs:
        print("== %s" % words, flush=True)
        code = subprocess.call([sys.executable, "-m", "pytest", "-q", "-p", "no:cacheprovider", "-n", "0", TEST,
                                "-k", k], cwd=REPO, env=env)
        failed += code != 0
    print("soak: %d of %d runs failed" % (failed, len(runs)))
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
