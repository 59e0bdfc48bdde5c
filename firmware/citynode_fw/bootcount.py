"""The boot counter that signed frames carry (SPEC.md §9.2): +1 at every boot, on flash.

Kept as a checked document by store.py, so a power cut during the write leaves
the old or the new count. The host raises the count to a floor whenever it
provisions the uplink (`set_floor`, over the raw REPL): minutes since
2020-01-01 UTC, more than any boot number the node id can have used before, so
a replacement board or an erased boot.json never counts from 1 again under an
id whose frames receivers already hold. A count lost between two provisionings
(damaged, erased) cannot be known again: the node starts from 1 and says so,
and its receivers take its frames as replays until the host provisions it again.
"""

from citynode_fw import store

PATH = "boot.json"
KEY = "boot"
MAX_FLOOR = 0x3FFFFFFF  # a small int on a 32-bit port (no long int per frame); minutes until the year 4061


def _stored(path):
    """(count on flash, fallback words or None); 0 when there is none."""
    try:
        parts, recovered = store.load(path, KEY)
        n = parts[KEY].get("n", 0)
        if not isinstance(n, int) or n < 0:
            raise store.StoreError("bad_json", "boot count is not a count")
        return n, store.recovered(path, recovered) if recovered else None
    except store.StoreError as exc:
        # the host writes the count before the uplink first starts: none is a count lost
        return 0, "%s: counting boots from 1 again (provision the uplink to raise it)" % store.describe(
            path, exc.reason)


def next_boot(path=PATH):
    """(this boot's number, fallback words or None); the new number is on flash when it returns."""
    n, fallback = _stored(path)
    n += 1
    store.write(path, KEY, {"n": n})
    return n, fallback


def set_floor(floor, path=PATH):
    """The count becomes max(count, floor), so the next boot is numbered above floor; a
    missing or damaged count becomes floor. Returns the count on flash. Raises
    ValueError for a floor that is not a count, OSError when the flash refuses."""
    if isinstance(floor, bool) or not isinstance(floor, int) or not 0 <= floor <= MAX_FLOOR:
        raise ValueError("boot floor %r is not a count" % (floor,))
    n, fallback = _stored(path)
    if n < floor or fallback:
        n = max(n, floor)
        store.write(path, KEY, {"n": n})
    return n
