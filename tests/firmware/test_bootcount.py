"""citynode_fw.bootcount: one more at every boot, kept through a damaged or missing file."""

import fw_helpers as h
from citynode_fw import bootcount


def test_counts_up_from_1_across_boots():
    h.enter_tmpdir("boot")
    try:
        assert bootcount.next_boot() == (1, None)
        assert bootcount.next_boot() == (2, None)
        assert bootcount.next_boot() == (3, None)
    finally:
        h.leave_tmpdir()


def test_a_damaged_count_starts_again_and_says_so():
    h.enter_tmpdir("boot")
    try:
        bootcount.next_boot()
        with open(bootcount.PATH, "w") as f:
            f.write('{"crc":1,"boot":{"n":7}}\n')
        n, why = bootcount.next_boot()
        assert n == 1 and "boot.json" in why and "from 1" in why
        assert bootcount.next_boot() == (2, None)
    finally:
        h.leave_tmpdir()
