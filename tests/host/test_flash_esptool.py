"""The esptool step of `citynode flash`, against a scripted fake loader (no board).

The fake stands where esptool's `detect_chip` returns an ESPLoader: it keeps a
call log and a 4 MB flash, decompresses what `flash_defl_block` sends into it,
and answers `flash_md5sum` from it, so the test sees what lands where. Images
are built here byte by byte in the ESP32 image format and checked against
esptool's own image loader (the oracle) so that the builder cannot drift.
"""

import hashlib
import struct
import zlib

import pytest

from citynode import flash
from citynode.errors import CitynodeError, TransportError, UsageError

# -- images -----------------------------------------------------------------------


def app_image(chip_id, payload, hash_appended=True, flash_size_code=2):
    """One ESP32 image (bootloader or app): header, extended header, one segment, checksum, digest."""
    head = struct.pack("<BBBBI", 0xE9, 1, 2, (flash_size_code << 4) | 0x0, 0x40080400)
    ext = struct.pack("<B3sHBHH4sB", 0xEE, b"\0\0\0", chip_id, 0, 0, 0xFFFF, b"\0" * 4, int(hash_appended))
    seg = struct.pack("<II", 0x3FFF0000, len(payload)) + payload
    body = head + ext + seg
    checksum = 0xEF
    for b in payload:
        checksum ^= b
    body += b"\0" * (15 - len(body) % 16) + bytes([checksum])
    if hash_appended:
        body += hashlib.sha256(body).digest()
    return body


def partition_table(entries):
    table = b""
    for ptype, subtype, offset, size, label in entries:
        table += b"\xaa\x50" + struct.pack("<BBII", ptype, subtype, offset, size)
        table += label.encode().ljust(16, b"\0") + b"\0" * 4
    table += b"\xeb\xeb" + b"\xff" * 14 + hashlib.md5(table).digest()
    return table


def micropython_image(chip_id, offset, app_size=20000, seed=1):
    """A merged image as micropython.org ships it, to be flashed at `offset`."""
    rnd = bytes((seed * 131 + i * 7 + (i >> 5)) & 0xFF for i in range(app_size))
    boot = app_image(chip_id, bytes(range(256)) * 8)
    table = partition_table([
        (1, 2, 0x9000, 0x6000, "nvs"),
        (1, 1, 0xF000, 0x1000, "phy_init"),
        (0, 0, 0x10000, 0x1F0000, "factory"),
        (1, 0x81, 0x200000, 0x200000, "vfs"),
    ])
    app = app_image(chip_id, rnd)
    image = bytearray(b"\xff" * (0x10000 - offset + len(app)))
    image[0 : len(boot)] = boot
    image[0x8000 - offset : 0x8000 - offset + len(table)] = table
    image[0x10000 - offset :] = app
    return bytes(image)


IMAGES = {
    "ESP32": (0, 0x1000),
    "ESP32-S2": (2, 0x1000),
    "ESP32-S3": (9, 0x0),
    "ESP32-C3": (5, 0x0),
}


def image_for(chip_name, **kw):
    chip_id, offset = IMAGES[chip_name]
    return micropython_image(chip_id, offset, **kw)


# -- the fake loader ---------------------------------------------------------------


class FakeLoader:
    """What esptool's detect_chip returns, scripted: a call log and a flash array."""

    FLASH_WRITE_SIZE = 0x4000

    def __init__(self, chip_name="ESP32", mac=(0x24, 0x6F, 0x28, 0x01, 0x02, 0x03), flash_mb=4,
                 corrupt_verify=False, secure_boot=False, flash_encryption=False, fail_write_at=None):
        self.CHIP_NAME = chip_name
        self.IS_STUB = False
        self.secure_download_mode = False
        self.mac = mac
        self.flash = bytearray(b"\xff" * (flash_mb << 20))
        self.flash_mb = flash_mb
        self.corrupt_verify = corrupt_verify
        self.secure_boot = secure_boot
        self.flash_encryption = flash_encryption
        self.fail_write_at = fail_write_at
        self.calls = []
        self._defl = None

    def _log(self, name, *args):
        self.calls.append((name,) + args)

    @property
    def names(self):
        return [c[0] for c in self.calls]

    def get_secure_boot_enabled(self):
        self._log("get_secure_boot_enabled")
        return self.secure_boot

    def get_flash_encryption_enabled(self):
        self._log("get_flash_encryption_enabled")
        return self.flash_encryption

    def run_stub(self):
        self._log("run_stub")
        self.IS_STUB = True
        return self

    def change_baud(self, baud):
        self._log("change_baud", baud)

    def flash_id(self):
        self._log("flash_id")
        size_id = {1: 0x14, 2: 0x15, 4: 0x16, 8: 0x17, 16: 0x18}[self.flash_mb]
        return (size_id << 16) | 0x4020

    def erase_flash(self):
        self._log("erase_flash")
        assert self.IS_STUB, "erase_flash needs the stub"
        self.flash[:] = b"\xff" * len(self.flash)

    def flash_defl_begin(self, size, compsize, offset):
        self._log("flash_defl_begin", size, compsize, offset)
        self._defl = [zlib.decompressobj(), offset, size, 0]

    def flash_defl_block(self, data, seq, timeout=3):
        self._log("flash_defl_block", len(data), seq)
        if self.fail_write_at is not None and seq == self.fail_write_at:
            import serial

            raise serial.SerialException("device reports readiness to read but returned no data")
        d, offset, size, done = self._defl
        out = d.decompress(data)
        self.flash[offset + done : offset + done + len(out)] = out
        self._defl[3] = done + len(out)

    def flash_defl_finish(self, reboot=False, timeout=3):
        self._log("flash_defl_finish", reboot)

    def flash_md5sum(self, addr, size):
        self._log("flash_md5sum", addr, size)
        data = bytearray(self.flash[addr : addr + size])
        if self.corrupt_verify:
            data[len(data) // 2] ^= 0x40
        return hashlib.md5(data).hexdigest()

    def read_mac(self):
        self._log("read_mac")
        return self.mac

    def hard_reset(self):
        self._log("hard_reset")


@pytest.fixture
def board(mocker):
    """Patch the connection: returns a function that installs a FakeLoader and returns it."""
    port = mocker.MagicMock(name="serial-port")
    mocker.patch.object(flash, "open_port", return_value=port)

    def install(**kw):
        fake = FakeLoader(**kw)
        mocker.patch.object(flash, "detect_chip", return_value=fake)
        return fake

    install.port = port
    return install


def write_image(tmp_path, data, name="fw.bin"):
    path = tmp_path / name
    path.write_bytes(data)
    return path


# -- the image builder agrees with esptool -------------------------------------------


@pytest.mark.parametrize("chip_name", sorted(IMAGES))
def test_builder_matches_esptools_image_loader(chip_name):
    from esptool.bin_image import LoadFirmwareImage

    chip_id, offset = IMAGES[chip_name]
    data = image_for(chip_name)
    key = flash.chip_by_name(chip_name).key
    boot = LoadFirmwareImage(key, data)
    assert boot.chip_id == chip_id
    assert boot.checksum == boot.calculate_checksum()
    assert boot.stored_digest == boot.calc_digest
    app = LoadFirmwareImage(key, data[0x10000 - offset :])
    assert app.chip_id == chip_id and app.stored_digest == app.calc_digest


def test_chip_table_comes_from_esptool_registry():
    assert flash.CHIPS["esp32"].offset == 0x1000
    assert flash.CHIPS["esp32s2"].offset == 0x1000
    assert flash.CHIPS["esp32s3"].offset == 0x0
    assert flash.CHIPS["esp32c3"].offset == 0x0
    assert "esp8266" not in flash.CHIPS
    assert flash.chip_by_name("ESP32-S3") is flash.CHIPS["esp32s3"]


# -- offline image checks -------------------------------------------------------------


@pytest.mark.parametrize("chip_name", sorted(IMAGES))
def test_inspect_image_names_the_chip(tmp_path, chip_name):
    data = image_for(chip_name)
    image = flash.inspect_image(write_image(tmp_path, data))
    assert image.chip.name == chip_name
    assert image.app_label == "factory" and image.app_offset == 0x10000
    assert image.flash_size == "4MB"


@pytest.mark.parametrize("cut", ["in_bootloader", "before_table", "in_table", "before_app", "in_app", "digest"])
def test_truncated_image_is_refused(tmp_path, cut):
    data = image_for("ESP32")
    offset = 0x1000
    app_at = 0x10000 - offset
    at = {
        "in_bootloader": 100,
        "before_table": 0x3000,
        "in_table": 0x7000 + 40,
        "before_app": app_at - 16,
        "in_app": app_at + 5000,
        "digest": len(data) - 10,
    }[cut]
    with pytest.raises(flash.ImageError) as info:
        flash.inspect_image(write_image(tmp_path, data[:at]))
    message = str(info.value)
    assert "truncated" in message and "\n" not in message


def test_damaged_image_is_refused(tmp_path):
    data = bytearray(image_for("ESP32-S3"))
    data[0x10000 + 500] ^= 0xFF  # a byte of the app
    with pytest.raises(flash.ImageError, match="checksum mismatch|digest mismatch"):
        flash.inspect_image(write_image(tmp_path, bytes(data)))


def test_not_an_image_is_refused(tmp_path):
    with pytest.raises(flash.ImageError, match="not an ESP32 firmware image.*HTML"):
        flash.inspect_image(write_image(tmp_path, b"<html><body>404</body></html>"))
    with pytest.raises(flash.ImageError, match="no such file"):
        flash.inspect_image(tmp_path / "missing.bin")
    with pytest.raises(flash.ImageError, match="empty"):
        flash.inspect_image(write_image(tmp_path, b""))


def test_app_only_image_without_partition_table_is_refused(tmp_path):
    app = app_image(0, bytes(range(256)) * 200)  # longer than 0x8000, like a bare app .bin
    with pytest.raises(flash.ImageError, match="no partition table"):
        flash.inspect_image(write_image(tmp_path, app))


# -- flashing against the fake loader ---------------------------------------------------


@pytest.mark.parametrize("chip_name, offset", [("ESP32", 0x1000), ("ESP32-S2", 0x1000),
                                               ("ESP32-S3", 0x0), ("ESP32-C3", 0x0)])
def test_detects_chip_and_writes_at_its_offset(tmp_path, board, chip_name, offset):
    fake = board(chip_name=chip_name)
    image = flash.inspect_image(write_image(tmp_path, image_for(chip_name)))
    stages = []
    result = flash.flash_image("/dev/ttyFAKE", image, progress=lambda s, d=None, t=None: stages.append((s, d, t)))

    assert result.chip.name == chip_name
    assert result.offset == offset
    assert result.mac == "24:6f:28:01:02:03"
    # the bytes are where the chip's ROM looks for them
    assert bytes(fake.flash[offset : offset + len(image.data)]) == image.data
    if offset:
        assert fake.flash[:offset] == b"\xff" * offset
    # order: stub, erase, compressed write at the offset, verify, MAC, reset
    names = fake.names
    assert names.index("run_stub") < names.index("erase_flash") < names.index("flash_defl_begin")
    assert names.index("flash_defl_finish") < names.index("flash_md5sum") < names.index("read_mac")
    assert names[-1] == "hard_reset"
    begin = next(c for c in fake.calls if c[0] == "flash_defl_begin")
    assert begin[3] == offset and begin[2] < begin[1]  # compressed is smaller
    md5 = next(c for c in fake.calls if c[0] == "flash_md5sum")
    assert md5[1] == offset
    assert ("change_baud", flash.DEFAULT_BAUD) in fake.calls
    # progress: every stage, write ends at the full size
    seen = [s for s, _, _ in stages]
    for stage in flash.STAGES:
        assert stage in seen
    writes = [(d, t) for s, d, t in stages if s == "write"]
    assert writes[-1] == (len(image.data), len(image.data))
    board.port.close.assert_called_once()


def test_wrong_chip_image_is_refused_before_erasing(tmp_path, board):
    fake = board(chip_name="ESP32")
    image = flash.inspect_image(write_image(tmp_path, image_for("ESP32-S3"), "s3.bin"))
    with pytest.raises(CitynodeError) as info:
        flash.flash_image("/dev/ttyFAKE", image)
    message = str(info.value)
    assert "built for ESP32-S3" in message and "is an ESP32" in message
    assert "erase_flash" not in fake.names and "flash_defl_begin" not in fake.names
    assert fake.flash == bytearray(b"\xff" * len(fake.flash))
    board.port.close.assert_called_once()


def test_chip_option_must_match_the_image(tmp_path, board):
    fake = board(chip_name="ESP32")
    image = flash.inspect_image(write_image(tmp_path, image_for("ESP32")))
    with pytest.raises(UsageError, match="not the --chip ESP32-S3"):
        flash.flash_image("/dev/ttyFAKE", image, chip="esp32s3")
    assert fake.calls == []


def test_not_an_esp32_board(tmp_path, board):
    fake = board(chip_name="ESP8266")
    image = flash.inspect_image(write_image(tmp_path, image_for("ESP32")))
    with pytest.raises(CitynodeError, match="is an ESP8266, not an ESP32"):
        flash.flash_image("/dev/ttyFAKE", image)
    assert "erase_flash" not in fake.names


def test_board_that_does_not_answer(tmp_path, board, mocker):
    from esptool.util import FatalError

    mocker.patch.object(flash, "detect_chip",
                        side_effect=FatalError("Failed to connect to Espressif device: No serial data received."))
    image = flash.inspect_image(write_image(tmp_path, image_for("ESP32")))
    with pytest.raises(TransportError) as info:
        flash.flash_image("/dev/ttyFAKE", image)
    assert "no ESP32 bootloader answered" in str(info.value)
    assert "\n" not in str(info.value)
    board.port.close.assert_called_once()


def test_verify_failure(tmp_path, board):
    fake = board(chip_name="ESP32-C3", corrupt_verify=True)
    image = flash.inspect_image(write_image(tmp_path, image_for("ESP32-C3")))
    with pytest.raises(CitynodeError, match="verify failed: flash MD5 [0-9a-f]{32}, image MD5 [0-9a-f]{32}"):
        flash.flash_image("/dev/ttyFAKE", image)
    assert "read_mac" not in fake.names  # stopped at the verify
    assert "hard_reset" not in fake.names


def test_cable_pulled_while_writing(tmp_path, board):
    board(chip_name="ESP32", fail_write_at=0)
    image = flash.inspect_image(write_image(tmp_path, image_for("ESP32", app_size=80000)))
    with pytest.raises(TransportError, match="link to the board failed while flashing"):
        flash.flash_image("/dev/ttyFAKE", image)


@pytest.mark.parametrize("kw, words", [({"secure_boot": True}, "Secure Boot"),
                                       ({"flash_encryption": True}, "flash encryption")])
def test_security_features_are_refused(tmp_path, board, kw, words):
    fake = board(chip_name="ESP32", **kw)
    image = flash.inspect_image(write_image(tmp_path, image_for("ESP32")))
    with pytest.raises(CitynodeError, match=words):
        flash.flash_image("/dev/ttyFAKE", image)
    assert "erase_flash" not in fake.names


def test_image_bigger_than_the_flash(tmp_path, board):
    fake = board(chip_name="ESP32", flash_mb=1)
    data = bytearray(image_for("ESP32"))
    image = flash.inspect_image(write_image(tmp_path, bytes(data)))
    image.data = image.data + b"\xff" * (1 << 20)  # a 2 MB image on a 1 MB board
    with pytest.raises(CitynodeError, match="does not fit this board's 1MB flash"):
        flash.flash_image("/dev/ttyFAKE", image)
    assert "erase_flash" not in fake.names


def test_no_such_port_is_one_line(tmp_path):
    image = flash.inspect_image(write_image(tmp_path, image_for("ESP32")))
    with pytest.raises(TransportError) as info:
        flash.flash_image(str(tmp_path / "ttyUSB9"), image)
    assert "no such port" in str(info.value) and "\n" not in str(info.value)
