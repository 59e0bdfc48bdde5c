"""Every file the node writes goes through citynode_fw/store.py, the one module whose
write and recovery rule tests/firmware/test_power_cut.py cuts at every step (and
store_binary.py, the same rules for binary files, which tests/firmware/test_ring.py
cuts at every step)."""

import re
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
FIRMWARE = ROOT / "firmware" / "citynode_fw"

# a write, rename or removal on the node's flash
_FLASH_WRITE = re.compile(r"""\bos\.(rename|remove|unlink|rmdir|mkdir)\b|\bopen\([^)\n]*["'][wax+]b?["']""")


def test_only_the_store_writes_to_flash():
    offenders = []
    for path in sorted(FIRMWARE.rglob("*.py")):
        if path.name in ("store.py", "store_binary.py"):
            continue
        for n, line in enumerate(path.read_text().splitlines(), 1):
            if _FLASH_WRITE.search(line):
                offenders.append("%s:%d: %s" % (path.relative_to(ROOT), n, line.strip()))
    assert not offenders, (
        "flash writes outside store.py (give the document to store.write, or extend store's rule "
        "and tests/firmware/test_power_cut.py):\n" + "\n".join(offenders)
    )


def test_the_pattern_sees_the_writes_it_guards_against():
    for line in ('f = open(tmp, "w")', "with open(p, 'wb') as f:", 'open(path, "a")', "os.rename(a, b)",
                 "os.remove(path)"):
        assert _FLASH_WRITE.search(line), line
    for line in ("with open(prefix + path, \"rb\") as f:", "f = open(path)", "os.stat(path)"):
        assert not _FLASH_WRITE.search(line), line
