"""Serial ports, and which of them look like ESP32 boards (by USB VID:PID).

One table, `USB_BRIDGES`, read by `citynode ports`, by `citynode flash --all`
and by the technician's guide.
"""

from serial.tools import list_ports

# (vid, pid) -> what it is. USB-serial bridges found on ESP32 dev boards, and the
# ESP32-S2/S3/C3/C6 native USB. A bridge does not prove an ESP32 is behind it
# (an FTDI cable may lead anywhere): `flash` asks the chip itself.
USB_BRIDGES = {
    (0x10C4, 0xEA60): "Silicon Labs CP210x",
    (0x10C4, 0xEA70): "Silicon Labs CP2105",
    (0x10C4, 0xEA71): "Silicon Labs CP2108",
    (0x1A86, 0x7523): "WCH CH340",
    (0x1A86, 0x5523): "WCH CH341",
    (0x1A86, 0x55D4): "WCH CH9102",
    (0x1A86, 0x55D3): "WCH CH343",
    (0x0403, 0x6001): "FTDI FT232R",
    (0x0403, 0x6010): "FTDI FT2232",
    (0x0403, 0x6014): "FTDI FT232H",
    (0x0403, 0x6015): "FTDI FT231X",
    (0x303A, 0x1001): "Espressif USB-Serial/JTAG (ESP32-S3/C3/C6 native USB)",
    (0x303A, 0x4001): "Espressif native USB CDC (MicroPython on ESP32-S2/S3)",
    (0x303A, 0x0002): "Espressif ESP32-S2/S3 ROM USB download",
}


class Port:
    """One serial port: device, VID:PID, serial number, description, and whether it looks like an ESP32."""

    def __init__(self, device, vid=None, pid=None, serial_number=None, description=None,
                 manufacturer=None, product=None, location=None):
        self.device = device
        self.vid = vid
        self.pid = pid
        self.serial_number = serial_number
        self.description = description
        self.manufacturer = manufacturer
        self.product = product
        self.location = location

    @property
    def usb_id(self):
        if self.vid is None or self.pid is None:
            return None
        return "%04X:%04X" % (self.vid, self.pid)

    @property
    def bridge(self):
        """The USB-serial bridge this looks like, or None."""
        if self.vid is None or self.pid is None:
            return None
        return USB_BRIDGES.get((self.vid, self.pid))

    @property
    def looks_like_esp32(self):
        return self.bridge is not None

    def as_dict(self):
        return {
            "port": self.device,
            "usb_id": self.usb_id,
            "serial_number": self.serial_number,
            "esp32": self.looks_like_esp32,
            "bridge": self.bridge,
            "description": self.description,
            "manufacturer": self.manufacturer,
            "product": self.product,
            "location": self.location,
        }


def _from_info(info):
    def clean(v):
        return None if v in (None, "", "n/a") else v
    return Port(
        info.device, info.vid, info.pid, clean(info.serial_number), clean(info.description),
        clean(info.manufacturer), clean(info.product), clean(info.location),
    )


def list_serial_ports(comports=None):
    """Every serial port the OS lists, ESP32-looking ones first, then by name."""
    infos = (comports or list_ports.comports)()
    ports = [_from_info(i) for i in infos]
    ports.sort(key=lambda p: (not p.looks_like_esp32, p.device))
    return ports


def esp32_ports(comports=None):
    """Devices of the ports that look like ESP32 boards (what `flash --all` takes)."""
    return [p.device for p in list_serial_ports(comports) if p.looks_like_esp32]
