# The board part of a virtual node: run on the MicroPython Unix port as the
# main program, it plays what a board's firmware does around the user's code.
#
# - The node's flash is the host folder in env CITYNODE_ROOT: it is mounted at
#   `/`, so `/main.py`, `main.py` and `:main.py` (mpremote) all mean that folder.
#   The simulation package is reachable at `/.sim` (hidden from listings), and
#   the scenario file at `/.scenario/<name>` (env CITYNODE_SCENARIO is rewritten).
# - boot.py, then main.py (friendly mode only), then the REPL, byte for byte as
#   MicroPython's shared/runtime/pyexec.c does it: friendly REPL, paste mode,
#   raw REPL, raw-paste mode with flow control.
# - A soft reboot (Ctrl-D, or SystemExit) prints "MPY: soft reboot" and exits
#   with status 64 (friendly) or 65 (raw REPL); the supervisor then starts a
#   fresh interpreter, so no RAM state survives, as on a board.
#
# Ctrl-C reaches us as SIGINT (the supervisor sends it for the byte, at a system
# call or between bytecodes, never inside the interpreter's C code), so it arrives
# as KeyboardInterrupt wherever we are; while the REPL waits for input that is the
# same as reading the byte 0x03.
#
# Env: CITYNODE_ROOT (flash folder), CITYNODE_SIM_PKG (host folder of the
# citynode_sim package), CITYNODE_SCENARIO (host path, optional),
# CITYNODE_REPL_MODE ("raw" or "friendly"), CITYNODE_CTL_FD (supervisor pipe).

import os
import sys
import io

_EXIT_FRIENDLY = 64
_EXIT_RAW = 65

_NORMAL = 1  # pyexec: code ran to the end
_EXCEPTION = 0  # pyexec: an exception was printed
_FORCED_EXIT = 0x100  # pyexec: soft reboot wanted

_PRINT_EOF = 1
_IS_REPL = 2

_Q_NONE = 0
_Q_1_SINGLE = 1
_Q_1_DOUBLE = 2
_Q_3_SINGLE = 3
_Q_3_DOUBLE = 4

_COMPOUND = ("if", "while", "for", "try", "with", "def", "class", "async")

_RAW_BANNER = b"raw REPL; CTRL-B to exit\r\n"
_BLOCK = 4096
_FLASH_BLOCKS = int(os.getenv("CITYNODE_FLASH_KB") or "2048") // 4  # ESP32 4 MB module: ~2 MB filesystem
_STDIN_BUFFER_MAX = 256  # MICROPY_REPL_STDIN_BUFFER_MAX: raw-paste window is half

_stdout = sys.stdout.buffer
_stdin = sys.stdin.buffer
_ME = __file__


def _out(b):
    _stdout.write(b)


class NodeFS:
    """The node's filesystem: one host folder at `/`, plus hidden host folders
    at fixed prefixes (not listed in `/`). Paths given to a mounted VFS are
    absolute within it, or relative to the cwd this object keeps."""

    def __init__(self, root, hidden):
        self._root = os.VfsPosix(root)
        self._hidden = [(prefix, os.VfsPosix(host)) for prefix, host in hidden]
        # Host folders, for rename: VfsPosix(root).rename builds both paths in one
        # buffer (old == new, ENOENT) on this Unix port, so rename host paths instead.
        self._hosts = {id(self._root): root}
        for (prefix, host), (_, fs) in zip(hidden, self._hidden):
            self._hosts[id(fs)] = host
        self._plain = os.VfsPosix()
        self._cwd = "/"

    def _abs(self, path):
        if not path.startswith("/"):
            path = self._cwd + "/" + path
        parts = []
        for p in path.split("/"):
            if p == "..":
                if parts:
                    parts.pop()
            elif p and p != ".":
                parts.append(p)
        return "/" + "/".join(parts)

    def _pick(self, path):
        path = self._abs(path)
        for prefix, fs in self._hidden:
            if path == prefix or path.startswith(prefix + "/"):
                return fs, path[len(prefix) :] or "/"
        return self._root, path

    def mount(self, readonly, mkfs):
        pass

    def umount(self):
        pass

    def open(self, path, mode):
        fs, p = self._pick(path)
        return fs.open(p, mode)

    def stat(self, path):
        fs, p = self._pick(path)
        return fs.stat(p)

    def ilistdir(self, path):
        # Board filesystems give (name, type, inode, size); VfsPosix leaves size out.
        fs, p = self._pick(path)
        base = p.rstrip("/") + "/"
        for entry in fs.ilistdir(p):
            if len(entry) >= 4:
                yield entry
            elif entry[1] & 0x4000:
                yield (entry[0], entry[1], entry[2], 0)
            else:
                try:
                    size = fs.stat(base + entry[0])[6]
                except OSError:
                    size = 0
                yield (entry[0], entry[1], entry[2], size)

    def mkdir(self, path):
        fs, p = self._pick(path)
        return fs.mkdir(p)

    def rmdir(self, path):
        fs, p = self._pick(path)
        return fs.rmdir(p)

    def remove(self, path):
        fs, p = self._pick(path)
        return fs.remove(p)

    def rename(self, old, new):
        fs, p = self._pick(old)
        fs2, p2 = self._pick(new)
        if fs is not fs2:
            raise OSError(18)  # EXDEV
        host = self._hosts[id(fs)].rstrip("/")
        return self._plain.rename(host + p, host + p2)

    def statvfs(self, path):
        """A flash partition of _FLASH_BLOCKS blocks of 4 KiB, less what the files take."""
        used = self._blocks_used(self._root, "/")
        free = max(0, _FLASH_BLOCKS - used)
        return (_BLOCK, _BLOCK, _FLASH_BLOCKS, free, free, 0, 0, 0, 0, 255)

    def _blocks_used(self, fs, path):
        used = 1
        for entry in fs.ilistdir(path):
            child = path + entry[0]
            if entry[1] & 0x4000:
                used += self._blocks_used(fs, child + "/")
            else:
                used += (fs.stat(child)[6] + _BLOCK - 1) // _BLOCK
        return used

    def __repr__(self):
        return "<NodeFS>"

    def chdir(self, path):
        p = self._abs(path)
        if not self.stat(p)[0] & 0x4000:
            raise OSError(20)  # ENOTDIR
        self._cwd = p

    def getcwd(self):
        return self._cwd


_ctl = None  # pipe to the supervisor: b"B" up, b"R" at the REPL, b"I" took a Ctrl-C, b"S...\n" a console line


def _setup():
    """Mount the flash, point the import path at it; open the supervisor's pipe."""
    global _ctl
    fd = os.getenv("CITYNODE_CTL_FD")
    if fd:
        _ctl = open(int(fd), "wb")
    root = os.getenv("CITYNODE_ROOT") or os.getcwd()
    hidden = []  # (node path prefix, host folder)
    sim_pkg = os.getenv("CITYNODE_SIM_PKG")
    if sim_pkg:
        hidden.append(("/.sim/citynode_sim", sim_pkg))
    scenario = os.getenv("CITYNODE_SCENARIO")
    if scenario and scenario.startswith("/") and not scenario.startswith("/.scenario/"):
        cut = scenario.rfind("/")
        hidden.append(("/.scenario", scenario[:cut] or "/"))
        os.putenv("CITYNODE_SCENARIO", "/.scenario/" + scenario[cut + 1 :])
    os.umount("/")
    os.mount(NodeFS(root, hidden), "/")
    os.chdir("/")
    sys.path[:] = ["", ".frozen", "/lib", "/.sim"]
    if sim_pkg and _ctl is not None:
        from citynode_sim import console

        console.pipe = _ctl  # the simulator's lines for the supervisor's console


def _tell(what):
    if _ctl is not None:
        try:
            _ctl.write(what)
            _ctl.flush()
        except OSError:
            pass


def _took_ctrl_c():
    """The supervisor holds back what follows a Ctrl-C until we say we took it,
    so the bytes after it are read after the KeyboardInterrupt, in order."""
    _tell(b"I")


def _print_exc(e):
    """Print a traceback as a board does: CRLF line ends, no frames of this file."""
    buf = io.StringIO()
    sys.print_exception(e, buf)
    lines = buf.getvalue().split("\n")
    keep = [ln for ln in lines if _ME not in ln]
    _out("\r\n".join(keep).encode())


def _decode(src):
    if isinstance(src, str):
        return src
    return str(bytes(src), "utf-8")


class Board:
    def __init__(self, raw):
        self.raw = raw
        self.globals = {"__name__": "__main__"}
        self.line = bytearray()
        self.history = []
        self.start = 0  # where the current physical line begins in self.line
        self.cont = False  # in a compound statement (`... ` lines)
        self.paste = False
        self.esc = 0  # escape sequence state
        self.indent_added = False
        self.hist = -1
        self.acked = False  # the KeyboardInterrupt in flight was reported already

    # -- executing code: pyexec.c parse_compile_execute -------------------------

    def execute(self, src, mode, flags, name="<stdin>"):
        ret = _NORMAL
        try:
            if mode == "exec":
                self.globals["__file__"] = name
            if callable(src):
                src = src()  # raw-paste: read the code while we may be interrupted
            code = compile(_decode(src), name, mode)
            exec(code, self.globals)
            if flags & _PRINT_EOF:
                _out(b"\x04")
        except SystemExit:
            if flags & _PRINT_EOF:
                _out(b"\x04")
            ret = _FORCED_EXIT
        except BaseException as e:  # KeyboardInterrupt too: printed, as a board does
            if isinstance(e, KeyboardInterrupt) and not self.acked:
                _took_ctrl_c()
            self.acked = False
            try:
                if flags & _PRINT_EOF:
                    _out(b"\x04")
                _print_exc(e)
            except KeyboardInterrupt:
                _took_ctrl_c()
            ret = _EXCEPTION
        if flags & _PRINT_EOF:
            _out(b"\x04")
        return ret

    def exec_file(self, name):
        """pyexec_file_if_exists: 1 if absent or ran fine, 0 after an exception."""
        try:
            with open(name, "rb") as f:
                src = f.read()
        except OSError:
            return _NORMAL
        return self.execute(src, "exec", 0, name)

    # -- input ------------------------------------------------------------------

    def getc(self):
        try:
            b = _stdin.read(1)
        except KeyboardInterrupt:
            _took_ctrl_c()
            return 3
        if not b:
            return 4  # EOF reads as Ctrl-D, as on the Unix port
        return b[0]

    # -- raw REPL ---------------------------------------------------------------

    def raw_paste(self, cmd):
        if cmd != ord("A"):
            _out(b"R\x00")
            return 0
        _out(b"R\x01")
        window = _STDIN_BUFFER_MAX // 2
        _out(bytes((window & 0xFF, window >> 8, 0x01)))

        def read_all():
            data = bytearray()
            remain = window
            while True:
                c = self.getc()
                if c == 3 or c == 4:
                    _out(b"\x04")  # indicate end to host
                    if c == 3:
                        self.acked = True  # getc told the supervisor already
                        raise KeyboardInterrupt
                    return data
                data.append(c)
                remain -= 1
                if remain == 0:
                    _out(b"\x01")  # another window is free
                    remain = window

        return self.execute(read_all, "exec", _PRINT_EOF)

    def raw_char(self, c):
        line = self.line
        if c == 1:
            if len(line) == 2 and line[0] == 5:
                cmd = line[1]
                self.line = bytearray()
                ret = self.raw_paste(cmd)
                if ret & _FORCED_EXIT:
                    return ret
                _out(b">")
                return 0
            self.line = bytearray()
            _out(_RAW_BANNER + b">")
            return 0
        if c == 2:
            _out(b"\r\n")
            self.raw = False
            self.line = bytearray()
            self.friendly_reset()
            return 0
        if c == 3:
            self.line = bytearray()
            return 0
        if c != 4:
            line.append(c)
            return 0
        _out(b"OK")
        if not line:
            _out(b"\r\n")
            return _FORCED_EXIT
        self.line = bytearray()
        ret = self.execute(line, "exec", _PRINT_EOF)
        if ret & _FORCED_EXIT:
            return ret
        _out(b">")
        return 0

    # -- friendly REPL ----------------------------------------------------------

    def friendly_reset(self):
        ver = sys.version.split("; ", 1)[-1]
        _out(b"%s; citynode virtual node (Unix port)\r\n" % ver.encode())
        _out(b'Type "help()" for more information.\r\n')
        self.input_restart()

    def input_restart(self):
        self.line = bytearray()
        self.start = 0
        self.cont = False
        self.paste = False
        self.esc = 0
        self.indent_added = False
        self.hist = -1
        _out(b">>> ")

    def note_newline(self):
        """readline_note_newline + auto-indent: a new `... ` line."""
        self.line.append(10)
        self.start = len(self.line)
        _out(b"... ")
        line = self.line
        if len(line) > 1:
            i = len(line) - 1
            while i > 0 and line[i - 1] != 10:
                i -= 1
            j = i
            while j < len(line) and line[j] == 32:
                j += 1
            if i > 0 and j + 1 == len(line):
                k = i - 1
                while k > 0:
                    if line[k - 1] == 10:
                        return  # last two lines all spaces: no auto-indent
                    if line[k - 1] != 32:
                        break
                    k -= 1
            n = (j - i) // 4
            if line[len(line) - 2] == ord(":"):
                n += 1
            while n > 0:
                line.extend(b"    ")
                _out(b"    ")
                self.indent_added = True
                n -= 1

    def readline_char(self, c):
        """shared/readline/readline.c, cursor kept at the end: the key or -1."""
        line = self.line
        empty = len(line) == self.start
        if self.esc:
            if self.esc == 1:
                self.esc = 2 if c == ord("[") else (3 if c == ord("O") else 0)
            elif self.esc == 2 and ord("0") <= c <= ord("9"):
                self.esc = 4
            elif self.esc == 4:
                self.esc = 0
            else:
                self.esc = 0
                if c in (ord("A"), ord("B")) and not self.cont:
                    self.history_step(1 if c == ord("A") else -1)
            return -1
        if 1 <= c <= 5 and empty:
            return c
        if c == 3:
            return c
        if c == 13:
            _out(b"\r\n")
            cur = bytes(line[self.start :])
            if cur and not self.cont:
                if cur in self.history:
                    self.history.remove(cur)
                self.history.insert(0, cur)
                self.history = self.history[:8]
            return 0
        if c == 27:
            self.esc = 1
        elif c == 8 or c == 127:
            if not empty:
                n = 1
                tail = line[self.start :]
                if len(tail) >= 4 and tail.count(b" ") == len(tail):
                    n = 4
                self.line = line[: len(line) - n]  # MicroPython: no slice deletion
                _out(b"\b" * n + b"\x1b[K")
        elif self.indent_added and (c == 9 or c == 32):
            self.indent_added = False
            if c == 32:
                self.line = line[: len(line) - 3]
                _out(b"\b\b\b\x1b[K")
        elif 32 <= c <= 126:
            self.indent_added = False
            line.append(c)
            _out(bytes((c,)))
        return -1

    def history_step(self, step):
        n = self.hist + step
        if n < -1 or n >= len(self.history):
            return
        self.hist = n
        old = len(self.line) - self.start
        self.line = self.line[: self.start]
        if n >= 0:
            self.line.extend(self.history[n])
        if old:
            _out(b"\b" * old + b"\x1b[K")
        _out(bytes(self.line[self.start :]))

    def friendly_char(self, c):
        if self.paste:
            if c == 3:
                _out(b"\r\n")
                self.input_restart()
                return 0
            if c == 4:
                _out(b"\r\n")
                ret = self.execute(self.line, "exec", _IS_REPL)
                if ret & _FORCED_EXIT:
                    return ret
                self.input_restart()
                return 0
            self.line.append(c)
            _out(b"\r\n=== " if c == 13 else bytes((c,)))
            return 0

        ret = self.readline_char(c)
        if not self.cont:
            if ret == 1:
                self.raw = True
                _out(b"\r\n" + _RAW_BANNER + b">")
                self.line = bytearray()
                return 0
            if ret == 2:
                _out(b"\r\n")
                self.friendly_reset()
                return 0
            if ret == 3:
                _out(b"\r\n")
                self.input_restart()
                return 0
            if ret == 4:
                _out(b"\r\n")
                return _FORCED_EXIT
            if ret == 5:
                _out(b"\r\npaste mode; Ctrl-C to cancel, Ctrl-D to finish\r\n=== ")
                self.line = bytearray()
                self.paste = True
                return 0
            if ret < 0:
                return 0
            if not self.line:
                self.input_restart()
                return 0
            if _continue_with_input(self.line):
                self.cont = True
                self.note_newline()
                return 0
        else:
            if ret == 3:
                _out(b"\r\n")
                self.input_restart()
                return 0
            if ret < 0:
                return 0
            if ret != 4 and _continue_with_input(self.line):
                self.note_newline()
                return 0
        ret = self.execute(self.line, "single", _IS_REPL)
        if ret & _FORCED_EXIT:
            return ret
        self.input_restart()
        return 0

    # -- the loop -----------------------------------------------------------------

    def repl(self):
        pending = 0  # 0: print the first prompt
        while True:
            try:
                if pending == 0:
                    ret = 0
                    if self.raw:
                        _out(_RAW_BANNER + b">")
                    else:
                        self.friendly_reset()
                else:
                    c = pending if pending is not None else self.getc()
                    ret = self.raw_char(c) if self.raw else self.friendly_char(c)
                pending = None
            except KeyboardInterrupt:
                # Ctrl-C landed while we were busy with the last key: take it as the next key.
                _took_ctrl_c()
                pending = 3
                continue
            if ret & _FORCED_EXIT:
                return


def _continue_with_input(line):
    """py/repl.c mp_repl_continue_with_input."""
    s = bytes(line)
    if not s:
        return False
    first = s.split(b"\n", 1)[0]
    word = first.split(None, 1)[0] if first.split() else b""
    compound = first[:1] == b"@" or word.rstrip(b":") in [w.encode() for w in _COMPOUND]
    n_paren = n_brack = n_brace = 0
    q = _Q_NONE
    i = 0
    n = len(s)
    while i < n:
        ch = s[i]
        if ch == 39 or ch == 34:  # ' "
            q1, q3 = (_Q_1_SINGLE, _Q_3_SINGLE) if ch == 39 else (_Q_1_DOUBLE, _Q_3_DOUBLE)
            if (q == _Q_NONE or q == q3) and s[i + 1 : i + 3] == bytes((ch, ch)):
                i += 2
                q = q3 - q
            elif q == _Q_NONE or q == q1:
                q = q1 - q
        elif ch == 92 and i + 1 < n and s[i + 1] in (39, 34, 92):
            if q != _Q_NONE:
                i += 1
        elif q == _Q_NONE:
            if ch == 40:
                n_paren += 1
            elif ch == 41:
                n_paren -= 1
            elif ch == 91:
                n_brack += 1
            elif ch == 93:
                n_brack -= 1
            elif ch == 123:
                n_brace += 1
            elif ch == 125:
                n_brace -= 1
        i += 1
    if q == _Q_3_SINGLE or q == _Q_3_DOUBLE:
        return True
    if (n_paren > 0 or n_brack > 0 or n_brace > 0) and q == _Q_NONE:
        return True
    if s[-1] == 92:
        return True
    if compound and s[-1] != 10:
        return True
    return False


def main():
    """A board's start-up: boot.py, main.py (friendly mode only), the REPL, soft reboot.

    A Ctrl-C may land anywhere once we told the supervisor "B". Before main.py
    runs it means "give me the REPL": main.py is skipped, as after an interrupted
    boot.py on a board.
    """
    _setup()  # the supervisor holds Ctrl-C back until "B", so this is never interrupted
    board = Board(os.getenv("CITYNODE_REPL_MODE") == "raw")
    step = "up"
    while step != "done":
        try:
            if step == "up":
                step = "boot"
                _tell(b"B")  # from here on a Ctrl-C may come
            elif step == "boot":
                step = "repl"
                ret = board.exec_file("boot.py")
                if ret & _FORCED_EXIT:
                    step = "reboot"
                elif not board.raw and ret != _EXCEPTION:
                    step = "main"
            elif step == "main":
                step = "repl"
                if board.exec_file("main.py") & _FORCED_EXIT:
                    step = "reboot"
            elif step == "repl":
                _tell(b"R")
                board.repl()  # returns for a soft reboot
                step = "reboot"
            else:
                _tell(b"D")  # going down: from here a SIGINT would kill the process, not raise
                _out(b"MPY: soft reboot\r\n")
                step = "done"
        except KeyboardInterrupt:
            _took_ctrl_c()
            if step in ("boot", "main"):
                step = "repl"  # Ctrl-C while starting up: no main.py, straight to the REPL
    return _EXIT_RAW if board.raw else _EXIT_FRIENDLY


if __name__ == "__main__":
    sys.exit(main())
