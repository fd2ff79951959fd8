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
    """An RP2040 PWM slice: the duty (compare) register is double-buffered,
    so a write takes effect at the next counter wrap (20 kHz: up to 50 us
    later), while a GPIO such as the brake acts at once. ``_duty`` is the
    level the pin drives now, ``_next``/``_at`` a write waiting for the wrap
    at simulated time ``_at`` (us, -1: none). ``now`` returns the simulated
    time in us (the counter is taken to wrap at multiples of its period
    from the moment freq() was set)."""

    def __init__(self, now=None):
        self._freq = 0
        self._duty = 0
        self._next = 0
        self._at = -1
        self._t0 = 0
        self._now = now

    def _us(self):
        return self._now() if self._now is not None else 0

    def freq(self, f=None):
        if f is None:
            return self._freq
        self._freq = f
        self._t0 = self._us()
        return None

    def duty_u16(self, d=None):
        if d is None:
            return self.register()
        if d < 0 or d > 65535:
            raise ValueError("duty out of range")
        now = self._us()
        self.settle(now)
        if self._freq <= 0 or self._now is None:
            self._duty = d  # no counter running: nothing to wait for
            return None
        period = 1000000 // self._freq
        self._next = d
        self._at = now + period - (now - self._t0) % period
        return None

    def register(self):
        """The duty last written (what duty_u16() reads back)."""
        return self._next if self._at >= 0 else self._duty

    def deinit(self):
        """Slice off: the output drops at once (no wrap to wait for)."""
        self._duty = 0
        self._next = 0
        self._at = -1

    def settle(self, now):
        """Latch a buffered duty whose wrap time has come."""
        if self._at >= 0 and now >= self._at:
            self._duty = self._next
            self._at = -1

    def on_us(self, t0, t1):
        """Microseconds in [t0, t1) during which the pin drives (duty > 0)."""
        at = self._at
        if at < 0 or at >= t1:
            return t1 - t0 if self._duty > 0 else 0
        if at < t0:
            at = t0
        n = at - t0 if self._duty > 0 else 0
        if self._next > 0:
            n += t1 - at
        return n


class SimADC:
    def __init__(self):
        self.counts = 0

    def read_u16(self):
        return self.counts


ETIMEDOUT = 110  # what the rp2 port raises when a transfer times out
ENODEV = 19  # ... and on a NACK


class SimI2C:
    """An I2C bus with devices addressed by 7-bit address. A device has
    read(reg, n) -> bytes-like, read_into(reg, buf), write(reg, data), and
    flags ``present`` (False: NACK, OSError(19)) and ``stalled`` (True: the
    device holds SDA low, so every transfer on the bus waits ``timeout`` us
    and raises OSError(110), as machine.I2C(timeout=us) does on the rp2).
    ``block(us)`` is called with the time a transfer spent waiting, so the
    simulated clock moves on by it."""

    def __init__(self, timeout=50000, block=None):
        self.devices = {}
        self.timeout = timeout
        self.block = block
        self.timeouts = 0

    def _stalled(self):
        for a in self.devices:
            if getattr(self.devices[a], "stalled", False):
                self.timeouts += 1
                if self.block is not None:
                    self.block(self.timeout)
                return True
        return False

    def _dev(self, addr):
        if self._stalled():
            raise OSError(ETIMEDOUT)
        d = self.devices.get(addr)
        if d is None or not d.present:
            raise OSError(ENODEV)  # ENODEV, as the rp2 port raises on NACK
        return d

    def readfrom_mem_into(self, addr, reg, buf):
        self._dev(addr).read_into(reg, buf)

    def readfrom_mem(self, addr, reg, n):
        return bytes(self._dev(addr).read(reg, n))

    def writeto_mem(self, addr, reg, buf):
        self._dev(addr).write(reg, buf)

    def scan(self):
        if self._stalled():
            raise OSError(ETIMEDOUT)
        return [a for a in self.devices if self.devices[a].present]


CDC_TX_BUF = 256  # TinyUSB CDC TX FIFO of the rp2 port (CFG_TUD_CDC_TX_BUFSIZE)
CDC_TX_TIMEOUT_MS = 500  # MICROPY_HW_USB_CDC_TX_TIMEOUT: how long a write waits


class SimCdcOut:
    """The USB CDC TX path as the firmware's serial driver sees it: a byte
    stream ``write(data) -> n`` in front of the real output (the pty).
    While ``blocked`` (the `serial_blocked` fault: the host holds the port
    open and reads nothing) the TX FIFO fills and is never drained; a write
    takes what fits and, like MicroPython's rp2 CDC write, waits for room
    up to CDC_TX_TIMEOUT_MS before returning the count it took. The wait
    is simulated time: ``block(us)`` moves the clock. ``room()`` is what a
    poll for POLLOUT sees (0: a write would block)."""

    def __init__(self, out, block=None):
        self.out = out
        self.block = block
        self.blocked = False
        self.queued = 0  # bytes in the undrained FIFO
        self.stalls = 0  # writes that had to wait
        self.stalled_us = 0

    def room(self):
        if not self.blocked:
            return CDC_TX_BUF
        return CDC_TX_BUF - self.queued

    def write(self, data):
        if not self.blocked:
            return self.out.write(data)
        n = len(data)
        take = CDC_TX_BUF - self.queued
        if take >= n:
            self.queued += n
            return n
        self.queued = CDC_TX_BUF
        self.stalls += 1
        us = CDC_TX_TIMEOUT_MS * 1000
        self.stalled_us += us
        if self.block is not None:
            self.block(us)
        return take

    def set_blocked(self, on):
        self.blocked = on
        self.queued = 0
