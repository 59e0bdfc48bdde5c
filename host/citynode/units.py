"""Units of the wire on the host: acceleration counts to g."""

FULL_SCALE_COUNTS = 32768.0  # ±32768 counts is ±range_g on the wire (SPEC.md, accel blocks)


def counts_to_g(counts, range_g):
    """Counts (a number or numpy array) to g at the block's range."""
    return counts * (range_g / FULL_SCALE_COUNTS)


def g_per_count(range_g):
    return range_g / FULL_SCALE_COUNTS
