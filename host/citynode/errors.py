"""Error layers of the host tools. `cli.main` catches `CitynodeError` and exits."""


class CitynodeError(Exception):
    """Anything the user can act on: printed as one line, exit status `exit_code`."""

    exit_code = 1


class UsageError(CitynodeError):
    """Bad arguments or bad input files."""

    exit_code = 2


class TransportError(CitynodeError):
    """The link to the node failed: no such port, busy port, no answer."""


class DeviceError(CitynodeError):
    """The node answered with an error code; carries the code and the node's words."""

    def __init__(self, message, code=None):
        super().__init__(message)
        self.code = code
