# Simulated peripherals with the methods of machine.Pin/PWM/ADC/I2C that the
# firmware drivers use. They hold state; the world reads actuators from them
# and writes sensor states into them. MicroPython-compatible.


class SimPin:
    IN = 0
    OUT = 1
    PULL_UP = 1
    IRQ_RISING = 8
    IRQ_FALLING = 4

    def __init__(self, value=0, on_write=None):
        self._v = value
        self._on_write = on_write
        self._handler = None

    def value(self, v=None):
        if v is None:
            return self._v
        v = 1 if v else 0
        old = self._v
        self._v = v
        if self._on_write is not None:
            self._on_write(old, v)
        return None

    def irq(self, handler=None, trigger=0):
        self._handler = handler

    def fire(self):
        # the world raises the interrupt at the edge's simulated time
        if self._handler is not None:
            self._handler(self)


class SimPWM:
    def __init__(self):
        self._freq = 0
        self._duty = 0

    def freq(self, f=None):
        if f is None:
            return self._freq
        self._freq = f
        return None

    def duty_u16(self, d=None):
        if d is None:
            return self._duty
        if d < 0 or d > 65535:
            raise ValueError("duty out of range")
        self._duty = d
        return None


class SimADC:
    def __init__(self):
        self.counts = 0

    def read_u16(self):
        return self.counts


class SimI2C:
    """An I2C bus with devices addressed by 7-bit address. A device has
    read(reg, n) -> bytes-like and write(reg, data). A lost device raises
    OSError like machine.I2C does on a NACK."""

    def __init__(self):
        self.devices = {}

    def _dev(self, addr):
        d = self.devices.get(addr)
        if d is None or not d.present:
            raise OSError(19)  # ENODEV, as the rp2 port raises on NACK
        return d

    def readfrom_mem_into(self, addr, reg, buf):
        d = self.devices.get(addr)
        if d is None or not d.present:
            raise OSError(19)
        d.read_into(reg, buf)

    def readfrom_mem(self, addr, reg, n):
        return bytes(self._dev(addr).read(reg, n))

    def writeto_mem(self, addr, reg, buf):
        self._dev(addr).write(reg, buf)

    def scan(self):
        return [a for a in self.devices if self.devices[a].present]
