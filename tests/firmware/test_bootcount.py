"""citynode_fw.bootcount: one more at every boot, kept through a damaged or missing file;
bootfloor: the host raises it, never lowers it."""

import fw_helpers as h
from citynode_fw import bootcount, bootfloor


def test_counts_up_across_boots():
    h.enter_tmpdir("boot")
    try:
        n, why = bootcount.next_boot()  # the host raises the count before the first: none is a count lost
        assert n == 1 and "boot.json missing" in why and "from 1" in why
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


def test_a_floor_raises_the_count_and_never_lowers_it():
    h.enter_tmpdir("boot")
    try:
        assert bootfloor.set_floor(3_600_000) == 3_600_000  # a fresh board: no boot.json yet
        assert bootcount.next_boot() == (3_600_001, None)
        assert bootfloor.set_floor(1000) == 3_600_001  # below the count: kept as it is
        assert bootcount.next_boot() == (3_600_002, None)
        assert bootfloor.set_floor(3_600_500) == 3_600_500
        assert bootcount.next_boot() == (3_600_501, None)
    finally:
        h.leave_tmpdir()


def test_a_floor_mends_a_damaged_count():
    h.enter_tmpdir("boot")
    try:
        with open(bootcount.PATH, "w") as f:
            f.write("not a count")
        assert bootfloor.set_floor(500) == 500
        assert bootcount.next_boot() == (501, None)
    finally:
        h.leave_tmpdir()


def test_a_floor_that_is_not_a_count_is_refused():
    h.enter_tmpdir("boot")
    try:
        for bad in (-1, True, "5", 1.5, bootfloor.MAX_FLOOR + 1):
            try:
                bootfloor.set_floor(bad)
            except ValueError:
                continue
            assert False, "floor %r accepted" % (bad,)
        assert bootfloor.set_floor(0) == 0 and bootcount.next_boot() == (1, None)
    finally:
        h.leave_tmpdir()
