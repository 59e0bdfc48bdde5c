"""A Ctrl-C for a virtual node's interpreter, delivered only where it can land safely.

The MicroPython Unix port we run is built with MICROPY_ASYNC_KBD_INTR: its
SIGINT handler longjmps to the innermost exception handler from whatever C
code runs at that instant. Landing in code that holds the qstr or GC mutex
(parsing, compiling, allocating: an app importing its modules just after a
boot) leaks the mutex, and the next compile or allocation waits on it forever:
the node goes silent (mpremote: "timeout waiting for first EOF reception").
A board never does this: its Ctrl-C is a pending exception taken between
bytecodes.

So the supervisor stops the interpreter (SIGSTOP), looks where it stopped, and
sends SIGINT only where a longjmp leaves no lock held: waiting in one of the
interpreter's own system calls (reading the console, writing, sleeping,
polling: what a REPL or an app's loop does) or in the bytecode loop itself
(`while True: pass`). Anywhere else it lets the
interpreter run on (SIGCONT) and looks again a moment later. Linux only
(/proc/PID/syscall); elsewhere `Interrupter.send` reports None and the caller
sends the byte as before.
"""

import os
import signal
import struct
import time

_VM_LOOP = b"mp_execute_bytecode"
_STOP_WAIT_S = 1.0  # for a loaded machine to get round to stopping the interpreter
_PENDING_WAIT_S = 0.5
# Per machine: the instruction just before a user PC that sits at a system call, and
# the calls the interpreter itself waits in (read, write, poll, select, sleep; each
# retried on EINTR, so made to be interrupted). Not the calls libc makes inside
# malloc, opendir or stdio: a longjmp out of those leaves libc's state half-done.
_SYSCALLS = {
    "x86_64": (2, b"\x0f\x05", {0, 1, 7, 23, 35, 230, 270, 271}),
    "aarch64": (4, b"\x01\x00\x00\xd4", {63, 64, 72, 73, 101, 115}),
}
_SIGINT_BIT = 1 << (signal.SIGINT - 1)

_symbol_cache = {}  # (path, mtime) -> [(start, end)] of the VM loop in that file, relative


def elf_symbol(path, name):
    """[(start, end)] of the function `name` in a 64-bit little-endian ELF file (its
    .symtab and .dynsym), relative to the file's load address; [] if not there."""
    try:
        with open(path, "rb") as f:
            data = f.read()
    except OSError:
        return []
    if data[:4] != b"\x7fELF" or data[4] != 2 or data[5] != 1:
        return []
    phoff, shoff = struct.unpack_from("<QQ", data, 0x20)
    phentsize, phnum, shentsize, shnum = struct.unpack_from("<HHHH", data, 0x36)
    load = 0  # the address the file's first byte is linked at: 0 for a shared object
    for i in range(phnum):
        p_type, _flags, p_offset, p_vaddr = struct.unpack_from("<IIQQ", data, phoff + i * phentsize)
        if p_type == 1 and p_offset == 0:  # PT_LOAD
            load = p_vaddr
    sections = [struct.unpack_from("<IIQQQQIIQQ", data, shoff + i * shentsize) for i in range(shnum)]
    found = set()
    for sh in sections:
        if sh[1] not in (2, 11):  # SHT_SYMTAB, SHT_DYNSYM
            continue
        _n, _t, _fl, _addr, offset, size, link, _info, _align, entsize = sh
        strtab = sections[link][4]
        for at in range(offset, offset + size, entsize or 24):
            st_name, st_info, _other, _shndx, value, st_size = struct.unpack_from("<IBBHQQ", data, at)
            if st_info & 0xF != 2 or not value:  # STT_FUNC, defined
                continue
            end = data.find(b"\0", strtab + st_name)
            if data[strtab + st_name:end] == name:
                found.add((value - load, value - load + max(1, st_size)))
    return sorted(found)


def vm_ranges(pid):
    """Where the bytecode loop lies in process `pid`'s memory: [(start, end)]."""
    try:
        with open("/proc/%d/maps" % pid) as f:
            lines = f.read().splitlines()
    except OSError:
        return []
    bases = {}
    for line in lines:
        parts = line.split(None, 5)
        if len(parts) < 6 or not parts[5].startswith("/"):
            continue
        path = parts[5]
        if "micropython" not in os.path.basename(path).lower():
            continue
        start = int(parts[0].split("-")[0], 16)
        if int(parts[2], 16) == 0 and path not in bases:
            bases[path] = start
    ranges = []
    for path, base in bases.items():
        try:
            key = (path, os.stat(path).st_mtime_ns)
        except OSError:
            continue
        if key not in _symbol_cache:
            _symbol_cache[key] = elf_symbol(path, _VM_LOOP)
        ranges += [(base + lo, base + hi) for lo, hi in _symbol_cache[key]]
    return ranges


def _state(pid):
    """The one-letter state of process `pid`, or None when it is gone."""
    try:
        with open("/proc/%d/stat" % pid, "rb") as f:
            stat = f.read()
    except OSError:
        return None
    return chr(stat[stat.rindex(b")") + 2])


def _wait_for(test, seconds):
    deadline = time.monotonic() + seconds
    while not test():
        if time.monotonic() > deadline:
            return False
        time.sleep(0.0005)
    return True


def _sigint_pending(pid):
    try:
        with open("/proc/%d/status" % pid) as f:
            for line in f:
                if line.startswith(("SigPnd:", "ShdPnd:")) and int(line.split()[1], 16) & _SIGINT_BIT:
                    return True
    except OSError:
        return True  # gone: nothing to wait for
    return False


class Interrupter:
    """Ctrl-C for one interpreter process at a safe point (see the module's docstring)."""

    def __init__(self, pid):
        self.pid = pid
        self.vm = None  # looked up at the first Ctrl-C: the interpreter is loaded by then
        self.syscalls = _SYSCALLS.get(os.uname().machine)

    def _at_safe_point(self):
        """True when the stopped interpreter sits at a system call or in the bytecode loop;
        None when /proc does not tell."""
        try:
            with open("/proc/%d/syscall" % self.pid) as f:
                fields = f.read().split()
        except OSError:
            return None
        if not fields or fields[0] == "running":
            return False
        pc = int(fields[-1], 16)
        if any(lo <= pc < hi for lo, hi in self.vm):
            return True
        if int(fields[0]) < 0:
            return False  # stopped in user code (an interrupt, not a system call)
        if self.syscalls is None:
            return None
        back, insn, waits = self.syscalls
        if int(fields[0]) not in waits:
            return False
        # a fault's error code also reads as a number here: the PC tells a system call apart
        try:
            with open("/proc/%d/mem" % self.pid, "rb") as mem:
                mem.seek(pc - back)
                return mem.read(back) == insn
        except (OSError, ValueError, OverflowError):
            return None

    def send(self, force=False):
        """SIGINT if the interpreter is at a safe point now (or `force`): True sent,
        False not now (try again shortly), None cannot tell here (send as before)."""
        pid = self.pid
        if self.vm is None:
            self.vm = vm_ranges(pid)
        try:
            os.kill(pid, signal.SIGSTOP)
        except ProcessLookupError:
            return False
        try:
            if not _wait_for(lambda: _state(pid) in ("T", "t", None), _STOP_WAIT_S):
                return False
            safe = self._at_safe_point()
            if safe is None and not force:
                return None
            if not safe and not force:
                return False
            os.kill(pid, signal.SIGINT)
            # queued before it runs again, so it lands where we looked
            _wait_for(lambda: _sigint_pending(pid), _PENDING_WAIT_S)
            return True
        except ProcessLookupError:
            return False
        finally:
            try:
                os.kill(pid, signal.SIGCONT)
            except ProcessLookupError:
                pass
