# A simulated I2C bus with MicroPython's machine.I2C methods. Devices attach by
# address; an address with nothing on it raises OSError(19), as the ESP32 port
# raises `OSError: [Errno 19] ENODEV` for a NACK. A device NACKs by raising
# OSError(19) itself.
#
# Devices implement what they need of:
#   read_mem(reg, buf) / write_mem(reg, buf)   register parts (memaddr access)
#   read(buf) / write(buf)                     command parts (plain transfers)
# A register part also gets plain transfers: write([reg, data...]) sets its
# register pointer, read() continues from it.

ENODEV = 19


class SimI2C:
    def __init__(self):
        self._devices = {}
        self.hook = None  # called before every transfer (the board's scenario check)
        self.transfers = 0

    def attach(self, address, device):
        self._devices[address] = device

    def detach(self, address):
        if address in self._devices:
            del self._devices[address]

    def device(self, address):
        return self._devices.get(address)

    def _get(self, address):
        if self.hook is not None:
            self.hook()
        self.transfers += 1
        dev = self._devices.get(address)
        if dev is None:
            raise OSError(ENODEV)
        return dev

    # -- machine.I2C ------------------------------------------------------------

    def scan(self):
        if self.hook is not None:
            self.hook()
        return sorted(self._devices)

    def readfrom_mem_into(self, addr, memaddr, buf, addrsize=8):
        self._get(addr).read_mem(memaddr, buf)

    def readfrom_mem(self, addr, memaddr, nbytes, addrsize=8):
        buf = bytearray(nbytes)
        self._get(addr).read_mem(memaddr, buf)
        return bytes(buf)

    def writeto_mem(self, addr, memaddr, buf, addrsize=8):
        self._get(addr).write_mem(memaddr, buf)

    def writeto(self, addr, buf, stop=True):
        self._get(addr).write(buf)
        return len(buf)  # bytes ACKed

    def writevto(self, addr, vector, stop=True):
        data = bytearray()
        for b in vector:
            data.extend(b)
        return self.writeto(addr, data, stop)

    def readfrom_into(self, addr, buf, stop=True):
        self._get(addr).read(buf)

    def readfrom(self, addr, nbytes, stop=True):
        buf = bytearray(nbytes)
        self._get(addr).read(buf)
        return bytes(buf)


class RegisterDevice:
    """Base of register-mapped parts: plain transfers go through a register pointer."""

    def __init__(self):
        self._pointer = 0

    def read_mem(self, reg, buf):
        raise OSError(ENODEV)

    def write_mem(self, reg, buf):
        raise OSError(ENODEV)

    def write(self, buf):
        if len(buf):
            self._pointer = buf[0]
            if len(buf) > 1:
                self.write_mem(buf[0], memoryview(buf)[1:])

    def read(self, buf):
        self.read_mem(self._pointer, buf)
