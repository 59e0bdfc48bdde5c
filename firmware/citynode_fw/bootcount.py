"""The boot counter that signed frames carry (SPEC.md §9): +1 at every boot, on flash.

Kept as a checked document by store.py, so a power cut during the write leaves
the old or the new count. A damaged count cannot be known again: the node
starts from 1, reports the fallback, and its receivers will take its frames as
replays until the node is provisioned with a new key (which starts their
windows anew).
"""

from citynode_fw import store

PATH = "boot.json"
KEY = "boot"


def next_boot(path=PATH):
    """(this boot's number, fallback words or None); the new number is on flash when it returns."""
    fallback = None
    try:
        parts, recovered = store.load(path, KEY)
        n = parts[KEY].get("n", 0)
        if not isinstance(n, int) or n < 0:
            raise store.StoreError("bad_json", "boot count is not a count")
        if recovered:
            fallback = store.recovered(path, recovered)
    except store.StoreError as exc:
        n = 0
        if exc.reason != "missing":
            fallback = "%s: counting boots from 1 again" % store.describe(path, exc.reason)
    n += 1
    store.write(path, KEY, {"n": n})
    return n, fallback
