"""Signed command lines for network links (SPEC.md §9.4): an armoured command line
(armour.py, SPEC §7) with a host counter and a truncated HMAC-SHA256 after it.

    >{"id":7,"cmd":"info","args":{}}*9c1d2e3f~0000018c2b3a4f10~<32 hex digits>

The counter is 16 lowercase hex digits (u64; the host takes its UTC in ms, kept
above the last it used). The MAC is the first 16 bytes of HMAC-SHA256(node key,
"citynode-cmd:<node id>:" + everything before the second `~`), in hex. The
prefix keeps a command's MAC apart from a frame's (same key) and binds the
line to one node. A node runs a command only when the MAC is right and the
counter is above the last it accepted (which it keeps on flash).
"""

MAC_SIZE = 16
COUNTER_DIGITS = 16
_SEP = "~"
_TRAILER = 1 + COUNTER_DIGITS + 1 + 2 * MAC_SIZE  # "~" counter "~" mac
_HEX = "0123456789abcdef"


class CommandAuthError(ValueError):
    """reason: "unsigned" (no trailer), "malformed" (a trailer that does not parse) or "bad_mac"."""

    def __init__(self, reason, message):
        super().__init__(message)
        self.reason = reason


def _signed_text(node_id, head):
    return ("citynode-cmd:%d:" % node_id) + head


def _mac_hex(signer, node_id, head):
    mac = signer.digest(_signed_text(node_id, head).encode())
    return "".join(["%02x" % b for b in mac[:MAC_SIZE]])


def sign(line, signer, node_id, counter):
    """The signed line (bytes, no line feed) for an armoured line (bytes or str)."""
    if isinstance(line, (bytes, bytearray)):
        line = bytes(line).decode()
    line = line.rstrip("\r\n")
    if not 0 <= counter < 1 << 64:
        raise ValueError("counter %d outside 0..2^64-1" % counter)
    head = line + _SEP + ("%016x" % counter)
    return (head + _SEP + _mac_hex(signer, node_id, head)).encode()


def open_line(payload, signer, node_id):
    """(armoured line as bytes, counter) of a signed payload whose MAC is right for this
    node's key; raises CommandAuthError. The counter's freshness is the caller's check."""
    try:
        text = bytes(payload).decode().rstrip("\r\n")
    except UnicodeError:
        raise CommandAuthError("malformed", "not text")
    n = len(text)
    if n <= _TRAILER or text[n - _TRAILER] != _SEP or text[n - 2 * MAC_SIZE - 1] != _SEP:
        if n > 9 and text[n - 9] == "*":  # an armoured line as is (SPEC §7)
            raise CommandAuthError("unsigned", "command not signed")
        raise CommandAuthError("malformed", "signature trailer does not parse")
    digits = text[n - _TRAILER + 1 : n - 2 * MAC_SIZE - 1]
    mac = text[n - 2 * MAC_SIZE :]
    for ch in digits + mac:
        if ch not in _HEX:
            raise CommandAuthError("malformed", "signature trailer does not parse")
    head = text[: n - 2 * MAC_SIZE - 1]
    want = _mac_hex(signer, node_id, head)
    diff = 0
    for a, b in zip(mac, want):
        diff |= ord(a) ^ ord(b)
    if diff:
        raise CommandAuthError("bad_mac", "bad signature")
    return text[: n - _TRAILER].encode(), int(digits, 16)

