"""What the benchmarks print besides their figures: the machine they ran on and
tables in aligned columns, so every bench/bench_*.py reports the same way.

The benchmarks put bench/ on sys.path and import this as `_report` (they run as
scripts and are also loaded from their path by tests/host).
"""

import platform


def cpu_model():
    """The CPU's model name from /proc/cpuinfo, else what platform knows."""
    try:
        with open("/proc/cpuinfo") as f:
            for line in f:
                if line.startswith("model name"):
                    return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or "unknown"


def table(header, rows, indent="  ", left=(0,)):
    """Print header then rows, columns two spaces apart after indent: the columns
    numbered in `left` flush left, the others flush right (cells through str());
    no trailing spaces."""
    lines = [[str(c) for c in r] for r in [header, *rows]]
    widths = [max(len(r[i]) for r in lines) for i in range(len(header))]
    for r in lines:
        print((indent + "  ".join(c.ljust(w) if i in left else c.rjust(w) for i, (c, w) in enumerate(zip(r, widths)))).rstrip())
