"""Host-to-node commands as armoured text lines.

    >{"id":7,"cmd":"config_get","args":{}}*9c1d2e3f\n

`>`, a JSON object of printable ASCII (0x20-0x7E), `*`, the CRC-32 of the JSON
text as 8 lowercase hex digits, and a line feed. No byte of a command line is a
control character, so Ctrl-C (0x03) always reaches the node's REPL, and a line
corrupted in transit is refused by the node instead of acted on.
"""

import binascii
import json

MAX_LINE = 2048


class ArmourError(ValueError):
    pass


def _printable(text):
    for ch in text:
        c = ord(ch)
        if c < 0x20 or c > 0x7E:
            return False
    return True


def encode_command(request_id, command, args=None):
    """One command line as bytes. Non-ASCII text must be escaped by the caller."""
    if not 0 <= request_id <= 0xFFFF:
        raise ValueError("request id %d outside 0..65535" % request_id)
    body = json.dumps({"id": request_id, "cmd": command, "args": args or {}}, separators=(",", ":"))
    if not _printable(body):
        raise ValueError("command text must be printable ASCII")
    crc = binascii.crc32(body.encode()) & 0xFFFFFFFF
    line = ">" + body + "*" + ("%08x" % crc) + "\n"
    if len(line) > MAX_LINE:
        raise ValueError("command line of %d bytes exceeds %d" % (len(line), MAX_LINE))
    return line.encode()


def decode_command(line):
    """(request_id, command, args) from one line (bytes or str, with or without the newline).

    Raises ArmourError for anything that is not an intact command line.
    """
    if isinstance(line, (bytes, bytearray)):
        try:
            line = bytes(line).decode()
        except UnicodeError:
            raise ArmourError("not text")
    line = line.rstrip("\r\n")
    if len(line) < 12 or line[0] != ">" or line[-9] != "*":
        raise ArmourError("not a command line")
    body = line[1:-9]
    if not _printable(body):
        raise ArmourError("control or non-ASCII character in command")
    try:
        crc = int(line[-8:], 16)
    except ValueError:
        raise ArmourError("bad CRC digits")
    if binascii.crc32(body.encode()) & 0xFFFFFFFF != crc:
        raise ArmourError("CRC mismatch")
    try:
        obj = json.loads(body)
    except ValueError:
        raise ArmourError("bad JSON")
    if not isinstance(obj, dict):
        raise ArmourError("command is not a JSON object")
    request_id = obj.get("id")
    command = obj.get("cmd")
    args = obj.get("args", {})
    if not isinstance(request_id, int) or not 0 <= request_id <= 0xFFFF:
        raise ArmourError("bad request id")
    if not isinstance(command, str) or not isinstance(args, dict):
        raise ArmourError("bad command or args")
    return request_id, command, args
