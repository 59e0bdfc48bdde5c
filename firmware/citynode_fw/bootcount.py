"""The boot counter that signed frames carry (SPEC.md §9.2): +1 at every boot, on flash.

Kept as a checked document by store.py, so a power cut during the write leaves
the old or the new count. The host raises the count to a floor whenever it
provisions the uplink (`bootfloor.set_floor`, over the raw REPL): minutes since
2020-01-01 UTC, more than any boot number the node id can have used before, so
a replacement board or an erased boot.json never counts from 1 again under an
id whose frames receivers already hold. A count lost between two provisionings
(damaged, erased) cannot be known again: the node starts from 1 and says so,
and its receivers take its frames as replays until the host provisions it again.
"""

from citynode_fw import store

PATH = "boot.json"
KEY = "boot"


def stored(path=PATH):
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
    n, fallback = stored(path)
    n += 1
    store.write(path, KEY, {"n": n})
    return n, fallback
