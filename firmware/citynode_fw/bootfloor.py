"""The floor of the boot counter (SPEC.md §9.2): what the host runs over the raw REPL
whenever it provisions the uplink (host/citynode/boot_floor.py). The app never loads
this module, so it costs a node at work no heap."""

from citynode_fw import bootcount, store

MAX_FLOOR = 0x3FFFFFFF  # a small int on a 32-bit port (no long int per frame); minutes until the year 4061


def set_floor(floor, path=bootcount.PATH):
    """The count becomes max(count, floor), so the next boot is numbered above floor; a
    missing or damaged count becomes floor. Returns the count on flash. Raises
    ValueError for a floor that is not a count, OSError when the flash refuses."""
    if isinstance(floor, bool) or not isinstance(floor, int) or not 0 <= floor <= MAX_FLOOR:
        raise ValueError("boot floor %r is not a count" % (floor,))
    n, fallback = bootcount.stored(path)
    if n < floor or fallback:
        n = max(n, floor)
        store.write(path, bootcount.KEY, {"n": n})
    return n
