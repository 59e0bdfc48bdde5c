"""The esptool step of `citynode flash`: put a MicroPython image on an ESP32-family board.

    image = inspect_image(path)                 # before touching any board
    result = flash_image(port, image, progress=...)

1. The image is checked first, offline: a full MicroPython image (bootloader,
   partition table, app) as micropython.org ships it. The bootloader header
   names the chip it was built for; the bootloader and app images must be
   complete, with matching checksums and SHA-256 digests, and the partition
   table intact (its MD5). A truncated or damaged download is refused here.
2. Through esptool's Python API: connect, detect the chip, refuse a board that
   is not an ESP32 or not the image's chip, refuse Secure Boot / flash
   encryption, load the flasher stub, raise the baud rate, check the flash is
   big enough, erase it, write the image zlib-compressed at the chip's
   bootloader offset (ESP32 and S2 at 0x1000; S3, C3, C6 at 0x0: esptool's
   `BOOTLOADER_FLASH_OFFSET`), verify it by MD5 read back, read the MAC, and
   hard-reset the board so MicroPython boots.

The chip table comes from esptool's own registry (`esptool.targets.CHIP_DEFS`),
so a chip esptool learns about needs no change here. Progress goes to a
callback `progress(stage, done, total)`; esptool's own printing is silenced.
"""

import hashlib
import struct
import threading
import time
import zlib
from pathlib import Path

from citynode.errors import CitynodeError, TransportError, UsageError

IMAGE_MAGIC = 0xE9
PARTITION_TABLE_OFFSET = 0x8000  # absolute flash address, every ESP32 chip
_PART_MAGIC = b"\xaa\x50"
_PART_MD5_MAGIC = b"\xeb\xeb"
_PART_ENTRY = 32
_PART_MAX = 0xC00  # the table's size in flash
_APP_TYPE = 0x00
_SUBTYPE_FACTORY = 0x00
_SUBTYPE_OTA_0 = 0x10
_CHECKSUM_SEED = 0xEF

DEFAULT_BAUD = 460800
STAGES = ("connect", "erase", "write", "verify", "mac")


class Chip:
    """One ESP32-family chip as esptool knows it."""

    def __init__(self, key, name, image_chip_id, offset):
        self.key = key  # "esp32s3": what --chip takes
        self.name = name  # "ESP32-S3": what esptool reports
        self.image_chip_id = image_chip_id  # in the image's extended header
        self.offset = offset  # where the MicroPython image goes

    def __repr__(self):
        return "Chip(%s, id=%d, offset=0x%x)" % (self.name, self.image_chip_id, self.offset)


def _chip_table():
    from esptool.targets import CHIP_DEFS

    table = {}
    for key, cls in CHIP_DEFS.items():
        if key == "esp8266":
            continue  # not an ESP32: a different image format and loader
        table[key] = Chip(key, cls.CHIP_NAME, cls.IMAGE_CHIP_ID, cls.BOOTLOADER_FLASH_OFFSET)
    return table


CHIPS = _chip_table()
CHIP_CHOICES = ("auto",) + tuple(CHIPS)


def chip_by_name(name):
    """The Chip for an esptool CHIP_NAME ("ESP32-S3") or --chip key ("esp32s3"), or None."""
    for chip in CHIPS.values():
        if name in (chip.name, chip.key):
            return chip
    return None


def chip_by_image_id(image_chip_id):
    for chip in CHIPS.values():
        if chip.image_chip_id == image_chip_id:
            return chip
    return None


# -- the image, offline ------------------------------------------------------------


class Image:
    """A checked MicroPython image: its bytes, the chip it is for, and where its parts are."""

    def __init__(self, path, data, chip, app_label, app_offset, app_size, flash_size):
        self.path = path
        self.data = data
        self.chip = chip
        self.app_label = app_label
        self.app_offset = app_offset  # absolute flash address of the app
        self.app_size = app_size  # bytes of the app image, digest included
        self.flash_size = flash_size  # from the bootloader header, e.g. "4MB", or None

    @property
    def name(self):
        return Path(self.path).name if self.path else "image"

    @property
    def md5(self):
        return hashlib.md5(_pad4(self.data)).hexdigest()

    @property
    def sha256(self):
        return hashlib.sha256(self.data).hexdigest()


def _pad4(data):
    return data + b"\xff" * (-len(data) % 4)


class ImageError(UsageError):
    """An image that must not be flashed."""


_HEADER_FLASH_SIZES = {0: "1MB", 1: "2MB", 2: "4MB", 3: "8MB", 4: "16MB", 5: "32MB", 6: "64MB", 7: "128MB"}


def _check_app_image(data, start, what, name):
    """Walk one ESP32 app/bootloader image at `start` in `data`; return (end, chip_id, flash size).

    Raises ImageError when it is cut short or its checksum or digest is wrong.
    """
    def short(need):
        return ImageError("%s: truncated: the %s needs %d bytes from offset 0x%x but the file ends at 0x%x"
                          % (name, what, need - start, start, len(data)))

    if len(data) < start + 24:
        raise short(start + 24)
    magic, segments, _mode, size_freq, _entry = struct.unpack_from("<BBBBI", data, start)
    if magic != IMAGE_MAGIC:
        raise ImageError("%s: no ESP image at offset 0x%x (magic 0x%02x, expected 0x%02x): %s"
                         % (name, start, magic, IMAGE_MAGIC,
                            "not an ESP32 firmware image" if start == 0 else "damaged %s" % what))
    chip_id = struct.unpack_from("<H", data, start + 12)[0]
    hash_appended = data[start + 23]
    if not 1 <= segments <= 16:
        raise ImageError("%s: %s header claims %d segments: damaged" % (name, what, segments))
    pos = start + 24
    checksum = _CHECKSUM_SEED
    for _ in range(segments):
        if len(data) < pos + 8:
            raise short(pos + 8)
        _addr, length = struct.unpack_from("<II", data, pos)
        pos += 8
        if length > len(data) + (1 << 24):
            raise ImageError("%s: %s segment of %d bytes: damaged" % (name, what, length))
        if len(data) < pos + length:
            raise short(pos + length)
        for b in data[pos : pos + length]:
            checksum ^= b
        pos += length
    pos += 15 - (pos % 16)  # zero padding, then the checksum byte at a 16-byte boundary - 1
    if len(data) < pos + 1:
        raise short(pos + 1)
    if data[pos] != checksum:
        raise ImageError("%s: %s checksum mismatch (stored 0x%02x, computed 0x%02x): damaged download"
                         % (name, what, data[pos], checksum))
    pos += 1
    if hash_appended == 1:
        if len(data) < pos + 32:
            raise short(pos + 32)
        if hashlib.sha256(data[start:pos]).digest() != data[pos : pos + 32]:
            raise ImageError("%s: %s SHA-256 digest mismatch: damaged download" % (name, what))
        pos += 32
    return pos, chip_id, _HEADER_FLASH_SIZES.get(size_freq >> 4)


def _partitions(data, at, name):
    """Entries of the partition table at file offset `at`: [(type, subtype, offset, size, label)]."""
    if len(data) < at + _PART_ENTRY:
        raise ImageError("%s: truncated: it ends at 0x%x, before the partition table (0x%x)" % (name, len(data), at))
    entries = []
    pos = at
    while pos + _PART_ENTRY <= at + _PART_MAX:
        if len(data) < pos + _PART_ENTRY:
            raise ImageError("%s: truncated inside the partition table (file ends at 0x%x)" % (name, len(data)))
        entry = data[pos : pos + _PART_ENTRY]
        if entry[:2] == _PART_MAGIC:
            ptype, subtype, offset, size = struct.unpack_from("<BBII", entry, 2)
            label = entry[12:28].split(b"\0", 1)[0].decode("ascii", "replace")
            entries.append((ptype, subtype, offset, size, label))
        elif entry[:2] == _PART_MD5_MAGIC:
            if hashlib.md5(data[at:pos]).digest() != entry[16:32]:
                raise ImageError("%s: partition table MD5 mismatch: damaged download" % name)
        elif entry == b"\xff" * _PART_ENTRY:
            break
        else:
            if not entries:
                return None  # no partition table here at all
            raise ImageError("%s: partition table entry %d is damaged" % (name, len(entries)))
        pos += _PART_ENTRY
    return entries


def inspect_image(path, data=None):
    """Read and check a MicroPython image; returns an Image or raises ImageError (one line)."""
    name = str(path)
    if data is None:
        try:
            data = Path(path).read_bytes()
        except FileNotFoundError:
            raise ImageError("%s: no such file" % name)
        except IsADirectoryError:
            raise ImageError("%s: is a folder, not a firmware image" % name)
        except OSError as exc:
            raise ImageError("%s: cannot read it: %s" % (name, exc.strerror or exc))
    if not data:
        raise ImageError("%s: empty file" % name)
    if data[0] != IMAGE_MAGIC:
        hint = " (an ELF file: pass the .bin)" if data[:4] == b"\x7fELF" else ""
        if data[:5] == b"<html" or data[:9] == b"<!DOCTYPE":
            hint = " (an HTML page: the download failed)"
        raise ImageError("%s: not an ESP32 firmware image (first byte 0x%02x, expected 0x%02x)%s"
                         % (name, data[0], IMAGE_MAGIC, hint))
    _end, chip_id, flash_size = _check_app_image(data, 0, "bootloader", name)
    chip = chip_by_image_id(chip_id)
    if chip is None:
        raise ImageError("%s: built for chip id %d, which is not an ESP32-family chip esptool knows"
                         % (name, chip_id))
    table_at = PARTITION_TABLE_OFFSET - chip.offset
    entries = _partitions(data, table_at, name)
    if entries is None:
        raise ImageError("%s: no partition table at 0x%x: not a full MicroPython image for %s "
                         "(use the .bin from micropython.org that is flashed at 0x%x)"
                         % (name, PARTITION_TABLE_OFFSET, chip.name, chip.offset))
    apps = [e for e in entries if e[0] == _APP_TYPE]
    app = next((e for e in apps if e[1] == _SUBTYPE_FACTORY), None) or next(
        (e for e in apps if e[1] == _SUBTYPE_OTA_0), None)
    if app is None:
        raise ImageError("%s: its partition table has no factory or ota_0 app partition" % name)
    _ptype, _subtype, app_offset, app_part_size, label = app
    app_at = app_offset - chip.offset
    if app_at >= len(data):
        raise ImageError("%s: truncated: it ends at 0x%x, before the app partition %r at 0x%x"
                         % (name, len(data) + chip.offset, label, app_offset))
    app_end, app_chip_id, _ = _check_app_image(data, app_at, "app", name)
    if app_chip_id != chip_id:
        raise ImageError("%s: the bootloader is for %s but the app for chip id %d: mixed image"
                         % (name, chip.name, app_chip_id))
    if app_end - app_at > app_part_size:
        raise ImageError("%s: the app (%d bytes) does not fit its partition (%d bytes)"
                         % (name, app_end - app_at, app_part_size))
    return Image(path, bytes(data), chip, label, app_offset, app_end - app_at, flash_size)


# -- the board ------------------------------------------------------------------------


def _esptool():
    """esptool's modules, imported on first use (they pull in rich and more)."""
    import esptool.cmds
    import esptool.loader
    import esptool.util

    return esptool


_quiet_lock = threading.Lock()
_quiet_done = False


def _silence_esptool():
    """Route esptool's printing nowhere: we show our own progress, per board, from threads."""
    global _quiet_done
    with _quiet_lock:
        if _quiet_done:
            return
        from esptool.logger import TemplateLogger, log

        class _Quiet(TemplateLogger):
            def print(self, *args, **kwargs):
                pass

            def note(self, message):
                pass

            def warning(self, message):
                pass

            def error(self, message):
                pass

            def stage(self, finish=False):
                pass

            def progress_bar(self, cur_iter, total_iters, prefix="", suffix="", bar_length=30):
                pass

            def set_verbosity(self, verbosity):
                pass

        log.set_logger(_Quiet())
        _quiet_done = True


def detect_chip(port, baud):
    """esptool's detect_chip on an open serial port; patched by the fake-loader tests."""
    return _esptool().cmds.detect_chip(port, baud=baud, connect_mode="default-reset", connect_attempts=3)


def open_port(port):
    """The serial port, opened the way every citynode command opens one (one-line errors:
    no such port, busy, permission); esptool drives it from there."""
    from citynode.serial_link import open_serial

    return open_serial(port, baudrate=115200, timeout=1)


class FlashResult:
    def __init__(self, port, chip, mac, offset, size, compressed, md5, seconds):
        self.port = port
        self.chip = chip  # Chip
        self.mac = mac  # "aa:bb:cc:dd:ee:ff"
        self.offset = offset
        self.size = size
        self.compressed = compressed
        self.md5 = md5
        self.seconds = seconds


def format_mac(mac):
    if mac is None:
        return None
    return ":".join("%02x" % b for b in bytes(mac))


def _fatal_words(exc):
    """esptool's message on one line."""
    return " ".join(str(exc).split())


def _nop(stage, done=None, total=None):
    pass


def flash_image(port, image, chip="auto", baud=DEFAULT_BAUD, erase=True, progress=None):
    """Flash a checked Image onto the board at `port`. Returns a FlashResult.

    Raises TransportError (port, no answer), DeviceError-free CitynodeError
    (wrong chip, security features, verify failure) with one line each.
    """
    progress = progress or _nop
    et = _esptool()
    FatalError = et.util.FatalError
    _silence_esptool()
    if chip != "auto":
        wanted = CHIPS.get(chip)
        if wanted is None:
            raise UsageError("--chip %s: unknown; one of %s" % (chip, ", ".join(CHIP_CHOICES)))
        if wanted is not image.chip:
            raise UsageError("%s is built for %s, not the --chip %s you named" % (image.name, image.chip.name, wanted.name))

    started = time.monotonic()
    progress("connect")
    ser = open_port(port)
    esp = None
    try:
        try:
            esp = detect_chip(ser, 115200)
        except FatalError as exc:
            raise TransportError("%s: no ESP32 bootloader answered (%s); is it an ESP32 board? "
                                 "Hold BOOT, tap EN/RST, retry" % (port, _fatal_words(exc)))
        name = getattr(esp, "CHIP_NAME", "?")
        board_chip = chip_by_name(name)
        if board_chip is None:
            raise CitynodeError("%s: the board is an %s, not an ESP32; citynode flashes ESP32-family boards only"
                                % (port, name))
        if board_chip is not image.chip:
            raise CitynodeError("%s: %s is built for %s, but this board is an %s; use the %s image"
                                % (port, image.name, image.chip.name, board_chip.name, board_chip.name))
        try:
            if getattr(esp, "secure_download_mode", False):
                raise CitynodeError("%s: the chip is in Secure Download Mode; citynode will not flash it" % port)
            if esp.get_secure_boot_enabled():
                raise CitynodeError("%s: Secure Boot is enabled on this chip; citynode will not flash it" % port)
            if esp.get_flash_encryption_enabled():
                raise CitynodeError("%s: flash encryption is enabled on this chip; citynode will not flash it" % port)
            if not getattr(esp, "IS_STUB", False):
                esp = esp.run_stub()
            if baud and baud != 115200:
                esp.change_baud(baud)
            size_text = _flash_size(et, esp)
            if size_text:
                flash_bytes = et.util.flash_size_bytes(size_text)
                if flash_bytes and image.chip.offset + len(image.data) > flash_bytes:
                    raise CitynodeError("%s: %s (%d bytes at 0x%x) does not fit this board's %s flash"
                                        % (port, image.name, len(image.data), image.chip.offset, size_text))
            if erase:
                progress("erase")
                esp.erase_flash()
            data = _pad4(image.data)
            result = _write(et, esp, data, image.chip.offset, progress)
            progress("verify", 0, 1)
            got = esp.flash_md5sum(image.chip.offset, len(data))
            want = hashlib.md5(data).hexdigest()
            if got != want:
                empty = hashlib.md5(b"\xff" * len(data)).hexdigest()
                raise CitynodeError("%s: verify failed: flash MD5 %s, image MD5 %s%s; reflash, then try another "
                                    "cable or a lower --baud" % (port, got, want,
                                                                 " (the flash stayed empty)" if got == empty else ""))
            progress("verify", 1, 1)
            progress("mac")
            mac = format_mac(esp.read_mac())
            try:
                esp.hard_reset()
            except (FatalError, OSError):
                pass  # the image is in; a reset by hand boots it as well
        except FatalError as exc:
            raise CitynodeError("%s: esptool: %s" % (port, _fatal_words(exc)))
        except OSError as exc:  # SerialException is an OSError: cable pulled
            raise TransportError("%s: the link to the board failed while flashing (%s); "
                                 "check the cable and flash again" % (port, exc))
        size, compressed = result
        return FlashResult(port, image.chip, mac, image.chip.offset, size, compressed, want,
                           time.monotonic() - started)
    finally:
        try:
            ser.close()
        except Exception:
            pass


def _flash_size(et, esp):
    """The flash size the chip reports ("4MB"), or None when it cannot tell."""
    try:
        flash_id = esp.flash_id()
    except Exception:
        return None
    size_id = (flash_id >> 16) & 0xFF
    return et.cmds.DETECTED_FLASH_SIZES.get(size_id)


def _write(et, esp, data, offset, progress):
    """zlib-compressed write, block by block, as esptool's write_flash does it with the stub."""
    loader = et.loader
    compressed = zlib.compress(data, 9)
    esp.flash_defl_begin(len(data), len(compressed), offset)
    block_size = esp.FLASH_WRITE_SIZE
    decompress = zlib.decompressobj()
    written = 0
    total = len(data)
    timeout = loader.DEFAULT_TIMEOUT
    progress("write", 0, total)
    for seq, at in enumerate(range(0, len(compressed), block_size)):
        block = compressed[at : at + block_size]
        esp.flash_defl_block(block, seq, timeout=timeout)
        # the stub acks a block at once and writes it while the next one comes
        n = len(decompress.decompress(block))
        timeout = max(loader.DEFAULT_TIMEOUT, loader.timeout_per_mb(loader.ERASE_WRITE_TIMEOUT_PER_MB, n))
        written += n
        progress("write", min(written, total), total)
    esp.flash_defl_finish(reboot=False, timeout=timeout)
    return total, len(compressed)
