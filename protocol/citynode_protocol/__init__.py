"""citynode wire protocol: one implementation for the node (MicroPython) and the host (CPython).

See protocol/SPEC.md for the normative description.
"""

PROTOCOL_VERSION = 1  # major: carried in every frame header
PROTOCOL_MINOR = 1  # announced in STATUS messages
