"""Deploy the app to a virtual node throttled to 115200 baud: `citynode deploy` against
`mpremote fs cp -r` of the same sources, full and with nothing changed, in the same run.

    python bench/bench_deploy.py [--reps N] [--baud B] [--quick]

Both tools run as the commands a technician types (a fresh process each time),
against a fresh virtual node (an empty flash) for the full copy, then again with
nothing changed. Our compile cache starts empty, so the full deploy includes
compiling with mpy-cross. Prints medians and the ratios against the targets of
issue 4: full deploy <= 0.3 x mpremote's, no-change <= 0.5 x.
"""

import argparse
import os
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

HERE = Path(__file__).resolve().parent
REPO = HERE.parent
sys.path[:0] = [str(REPO / "host"), str(REPO / "protocol")]

from citynode.paths import firmware_files  # noqa: E402
from citynode.virtual_node import VirtualNode  # noqa: E402

FULL_TARGET = 0.3
NOCHANGE_TARGET = 0.5


def bin_path(name):
    here = Path(sys.executable).parent / name
    return str(here) if here.exists() else shutil.which(name) or name


def stage_sources(dest):
    """The app's sources laid out as on the node: what mpremote copies."""
    tops = set()
    for src, node_path in firmware_files():
        target = dest / node_path
        target.parent.mkdir(parents=True, exist_ok=True)
        shutil.copyfile(src, target)
        tops.add(node_path.split("/", 1)[0])
    return sorted(tops)


def timed(cmd, env=None, cwd=None):
    t0 = time.perf_counter()
    proc = subprocess.run(cmd, env=env, cwd=cwd, capture_output=True, text=True, timeout=600)
    seconds = time.perf_counter() - t0
    if proc.returncode != 0:
        raise SystemExit("bench: %s failed (%d): %s" % (" ".join(cmd[:4]), proc.returncode,
                                                       (proc.stderr or proc.stdout)[-500:]))
    return seconds, proc.stdout


def tree(root, tops):
    out = {}
    for top in tops:
        p = root / top
        files = [p] if p.is_file() else sorted(f for f in p.rglob("*") if f.is_file())
        for f in files:
            out[f.relative_to(root).as_posix()] = f.read_bytes()
    return out


def run_citynode(port, env):
    cmd = [sys.executable, "-m", "citynode", "deploy", "--port", port, "--json"]
    return timed(cmd, env=env)


def run_mpremote(port, staged, tops):
    cmd = [bin_path("mpremote"), "connect", port, "fs", "cp", "-r"] + tops + [":"]
    return timed(cmd, cwd=staged)


def one_round(baud, work, staged, tops, env):
    import json

    res = {}
    with tempfile.TemporaryDirectory(dir=work) as root:
        node = VirtualNode(Path(root), baud=baud)
        port = node.start()
        try:
            node.wait_ready()
            t_full, out = run_citynode(port, env)
            full = json.loads(out)
            t_same, out = run_citynode(port, env)
            same = json.loads(out)
            assert full["changed"] and not same["changed"], (full, same)
            res["citynode"] = (t_full, t_same, full["wire_bytes"])
        finally:
            node.stop()
    with tempfile.TemporaryDirectory(dir=work) as root:
        node = VirtualNode(Path(root), baud=baud)
        port = node.start()
        try:
            node.wait_ready()
            t_full, _ = run_mpremote(port, staged, tops)
            t_same, out = run_mpremote(port, staged, tops)
            assert tree(Path(root), tops) == tree(staged, tops), "mpremote copy differs from the sources"
            assert "Up to date" in out
            res["mpremote"] = (t_full, t_same)
        finally:
            node.stop()
    return res


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--reps", type=int, default=3)
    parser.add_argument("--baud", type=int, default=115200)
    parser.add_argument("--quick", action="store_true",
                        help="smoke test: one round at 1 Mbaud (the ratios are not the targets' then)")
    args = parser.parse_args(argv)
    if args.quick:
        args.reps, args.baud = 1, 1000000
    work = Path(tempfile.mkdtemp(prefix="bench-deploy-"))
    try:
        staged = work / "staged"
        tops = stage_sources(staged)
        source_bytes = sum(len(b) for b in tree(staged, tops).values())
        env = dict(os.environ)
        env["PYTHONPATH"] = os.pathsep.join([str(REPO / "host"), str(REPO / "protocol"), env.get("PYTHONPATH", "")])
        rows = []
        for rep in range(args.reps):
            env["CITYNODE_MPY_CACHE"] = str(work / ("mpy-cache-%d" % rep))  # cold: compile included
            rows.append(one_round(args.baud, work, staged, tops, env))
            print("round %d: citynode full %.2f s, no-change %.2f s | mpremote full %.2f s, no-change %.2f s"
                  % (rep + 1, rows[-1]["citynode"][0], rows[-1]["citynode"][1],
                     rows[-1]["mpremote"][0], rows[-1]["mpremote"][1]), flush=True)
        med = lambda tool, i: statistics.median(r[tool][i] for r in rows)  # noqa: E731
        ours_full, ours_same = med("citynode", 0), med("citynode", 1)
        mp_full, mp_same = med("mpremote", 0), med("mpremote", 1)
        wire = rows[-1]["citynode"][2]
        full_ratio, same_ratio = ours_full / mp_full, ours_same / mp_same
        print()
        print("virtual node at %d baud, %d source files, %d bytes of source; median of %d rounds"
              % (args.baud, len(tree(staged, tops)), source_bytes, args.reps))
        print("%-28s %10s %12s" % ("", "full", "no change"))
        print("%-28s %9.2fs %11.2fs" % ("citynode deploy", ours_full, ours_same))
        print("%-28s %9.2fs %11.2fs" % ("mpremote fs cp -r", mp_full, mp_same))
        print("%-28s %10.3f %12.3f" % ("ratio citynode/mpremote", full_ratio, same_ratio))
        print("%-28s %10s %12s" % ("target", "<= %.1f" % FULL_TARGET, "<= %.1f" % NOCHANGE_TARGET))
        print("citynode sent %d bytes on the wire for %d bytes of source (%.2f)"
              % (wire, source_bytes, wire / source_bytes))
        ok = full_ratio <= FULL_TARGET and same_ratio <= NOCHANGE_TARGET
        if args.baud != 115200:
            print("targets: not judged (they are for 115200 baud)")
        else:
            print("targets: %s" % ("met" if ok else "MISSED"))
        return {"full_ratio": full_ratio, "nochange_ratio": same_ratio, "met": ok}
    finally:
        shutil.rmtree(work, ignore_errors=True)


if __name__ == "__main__":
    main()
