"""Code and files on a node through the raw REPL (mpremote's transport): what the
maintenance verbs `exec`, `fs`, `reset` and `hil` share.

Each function takes a transport from `citynode.serial_link.raw_repl(port)` and
turns mpremote's errors into one line naming the node's port.
"""

import errno
import time

from citynode.errors import CitynodeError, DeviceError, TransportError

DEFAULT_EXEC_TIMEOUT_S = 30.0

_FS_WORDS = {
    errno.ENOENT: "no such file or folder",
    errno.ENOTDIR: "not a folder",
    errno.EISDIR: "is a folder",
    errno.EACCES: "permission denied",
    errno.ENOSPC: "no space left on the node's flash",
}


def exception_line(error_output):
    """The last line of a MicroPython traceback: `ZeroDivisionError: divide by zero`."""
    lines = [line.strip() for line in error_output.splitlines() if line.strip()]
    return lines[-1] if lines else "error with no message"


class OutputTimeout(TransportError):
    """Code sent to the raw REPL did not finish its output in time."""


def follow(transport, timeout, on_output=None, overall=None):
    """mpremote's `follow` (the output, then the error output, of code sent to the raw REPL),
    with an overall bound as well: a node streaming bytes that never end the output
    (its app came back, say) cannot keep us waiting. OutputTimeout when a bound runs out."""
    deadline = None if overall is None else time.monotonic() + overall

    def remaining():
        return None if deadline is None else max(0.0, deadline - time.monotonic())

    out = transport.read_until(1, b"\x04", timeout=timeout, data_consumer=on_output, timeout_overall=remaining())
    if not out.endswith(b"\x04"):
        raise OutputTimeout("timeout waiting for the end of the output")
    err = transport.read_until(1, b"\x04", timeout=timeout, timeout_overall=remaining())
    if not err.endswith(b"\x04"):
        raise OutputTimeout("timeout waiting for the end of the error output")
    return err[:-1]


def run_code(transport, code, timeout=DEFAULT_EXEC_TIMEOUT_S, on_output=None):
    """Run `code` on the node; its output goes to `on_output(bytes)` as it comes.

    Returns None, or the node's exception as one line. `timeout` bounds the wait
    for more output (a program that prints now and then may run longer).
    """
    from mpremote.transport import TransportError as MpremoteTransportError

    def consume(data):
        data = data.replace(b"\x04", b"")  # the end marker arrives with the last output, as in mpremote
        if data and on_output is not None:
            on_output(data)

    try:
        transport.exec_raw_no_follow(code)
        err = follow(transport, timeout, consume)
    except OutputTimeout:
        interrupt(transport)
        raise TransportError("the code ran on %s for %g s without finishing or printing; "
                             "interrupted (raise --timeout for longer runs)" % (transport.device_name, timeout)) from None
    except MpremoteTransportError as exc:
        raise TransportError("link to %s: %s" % (transport.device_name, exc)) from None
    if err:
        return exception_line(err.decode("utf-8", "replace"))
    return None


def interrupt(transport, timeout=3.0):
    """Ctrl-C what still runs in the raw REPL and wait (bounded) for the REPL to take the
    next command, so that the next step (another run, the soft reset) reaches it."""
    transport.serial.write(b"\x03")
    transport.serial.flush()
    try:
        follow(transport, timeout, overall=timeout)  # the KeyboardInterrupt traceback, between the end markers
    except OutputTimeout:
        pass


def _fs_error(port, path, exc):
    from mpremote.transport import TransportExecError

    if isinstance(exc, TransportExecError):
        return DeviceError("%s on %s: %s" % (path, port, exception_line(exc.error_output)))
    if isinstance(exc, OSError) and exc.errno in _FS_WORDS:
        return CitynodeError("%s on %s: %s" % (path, port, _FS_WORDS[exc.errno]))
    return CitynodeError("%s on %s: %s" % (path, port, exc))


def list_dir(transport, path):
    """[(name, is_folder, size)] of a folder on the node, sorted by name."""
    from mpremote.transport import TransportError as MpremoteTransportError

    try:
        entries = transport.fs_listdir(path)
    except (OSError, MpremoteTransportError) as exc:
        raise _fs_error(transport.device_name, path, exc) from None
    return sorted((e.name, bool(e.st_mode & 0x4000), e.st_size) for e in entries)


def is_folder(transport, path):
    from mpremote.transport import TransportError as MpremoteTransportError

    try:
        return transport.fs_isdir(path)
    except MpremoteTransportError as exc:
        raise _fs_error(transport.device_name, path, exc) from None


def read_file(transport, path, chunk_size=1024):
    """The bytes of a file on the node."""
    from mpremote.transport import TransportError as MpremoteTransportError

    if is_folder(transport, path):
        raise CitynodeError("%s on %s: is a folder (`citynode fs ls %s` lists it)"
                            % (path, transport.device_name, path))
    try:
        return bytes(transport.fs_readfile(path, chunk_size=chunk_size))
    except (OSError, MpremoteTransportError) as exc:
        raise _fs_error(transport.device_name, path, exc) from None
