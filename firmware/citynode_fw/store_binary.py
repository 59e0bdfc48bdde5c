"""Binary files on flash (the uplink's ring segments) by store.py's write and recovery
rules: a module of its own so that a node without the uplink never loads it."""

from citynode_fw.store import TMP, _keep_only_good_tmp, _rename_over, exists, remove_quiet

def write_binary(path, head, data, n, good):
    """head, then data[:n], as one file by the write rule; good(path) checks a file
    (its own checksum), for the tmp that may be the only good copy."""
    _keep_only_good_tmp(path, good)
    tmp = path + TMP
    f = open(tmp, "wb")
    try:
        f.write(head)
        f.write(data, 0, n)
        f.flush()
    finally:
        f.close()
    _rename_over(tmp, path)


def recover_binary(path, good):
    """By the recovery rule: True when path checks, or its tmp did and is now in its
    place; False (and any tmp removed) when neither does."""
    tmp = path + TMP
    if good(path):
        remove_quiet(tmp)
        return True
    if exists(tmp) and good(tmp):
        _rename_over(tmp, path)
        return True
    remove_quiet(tmp)
    return False


def make_folder(path):
    import os

    try:
        os.mkdir(path)
    except OSError:
        pass
