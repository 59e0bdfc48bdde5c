"""What names a board: its MAC, read from what the node reports."""


def mac_from_uid(uid):
    """machine.unique_id() on an ESP32 is its MAC: 12 hex digits -> aa:bb:..., else None."""
    if isinstance(uid, str) and len(uid) == 12:
        try:
            int(uid, 16)
        except ValueError:
            return None
        return ":".join(uid[i : i + 2] for i in range(0, 12, 2)).lower()
    return None
