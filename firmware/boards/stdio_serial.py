# USB CDC serial as MicroPython sees it: sys.stdin/sys.stdout. After a poll
# only a 1-byte read is non-blocking on the RP2040, so bytes come one at a
# time (~100 us each on the chip with the poll), unless the image has the
# native helper penusb.read_into (image/usermod/penusb), which takes every
# byte received so far in one call: read_into uses it when there. Used by the
# RP2040 board and by the simulator (stdin/stdout are the master side of a
# pty there).
#
# Writes never wait. On the rp2 a write to sys.stdout waits for room in the
# 256-byte TinyUSB TX FIFO up to MICROPY_HW_USB_CDC_TX_TIMEOUT (500 ms) when
# the host holds the port open and reads nothing (shared/tinyusb/
# mp_usbd_cdc.c): the loop would stall with the motor driven. So a message
# is written only as far as the port reports room (poll for POLLOUT on
# stdout: the port says writable while the FIFO has a free byte, or while no
# host is connected and old data is overwritten), in chunks of at most the
# room; the rest is dropped and counted. On the port a chunk longer than the
# room really left (POLLOUT only promises one byte) may still wait:
# the image sets MICROPY_HW_USB_CDC_TX_TIMEOUT to 0 so that such a write
# returns at once with what fitted (docs/protocol.md, docs/hardware.md).
import select
import sys

TX_ROOM = 256  # what a writable port is taken to hold (the rp2 TX FIFO)
POLLIN = select.POLLIN


class StdioSerial:
    def __init__(self):
        inp = sys.stdin.buffer
        out = sys.stdout.buffer
        # CPython wraps the fd in a buffer that would read ahead of poll
        self.inp = getattr(inp, "raw", inp)
        self.out = getattr(out, "raw", out)
        self.poll = select.poll()
        self.poll.register(sys.stdin, select.POLLIN)
        self.wpoll = select.poll()
        self.wpoll.register(sys.stdout, select.POLLOUT)
        # bound once: a poll per byte is the serial stage's main cost
        self.ipoll = self.poll.ipoll if hasattr(self.poll, "ipoll") else self.poll.poll
        self.wipoll = self.wpoll.ipoll if hasattr(self.wpoll, "ipoll") else self.wpoll.poll
        self.one = bytearray(1)
        self.native_read = None  # penusb.read_into on the pen's image
        try:
            import penusb  # type: ignore[import-not-found]  # pyright: ignore[reportMissingImports]

            self.native_read = penusb.read_into  # pyright: ignore[reportUnknownMemberType]
        except (ImportError, AttributeError):
            pass
        self.room_of = None  # the output whose room() out_room is
        self.out_room = None
        self.dropped = 0  # bytes not sent: the host did not read
        self.drops = 0  # messages dropped or cut short

    def read(self):
        for ev in self.ipoll(0):
            if not ev[1] & POLLIN:
                return -1  # a hang-up (the simulator's pty with no host): nothing to read
            n = self.inp.readinto(self.one)
            if n:
                return self.one[0]
            return -1
        return -1

    def read_into(self, buf):
        """The bytes received so far into buf (at most len(buf)), never
        waiting; returns their count."""
        r = self.native_read
        if r is not None:
            return r(buf)
        n = 0
        for n in range(len(buf)):
            b = self.read()
            if b < 0:
                return n
            buf[n] = b
        return len(buf)

    def room(self):
        """Bytes a write takes without waiting: the simulator's CDC model
        knows it exactly (out.room); on the port, POLLOUT or nothing."""
        out = self.out
        if out is not self.room_of:  # looked up once per output (the simulator sets its own)
            self.room_of = out
            self.out_room = getattr(out, "room", None)
        r = self.out_room
        if r is not None:
            return r()
        for _ in self.wipoll(0):
            return TX_ROOM
        return 0

    def write(self, data):
        n = len(data)
        i = 0
        mv = None
        while i < n:
            r = self.room()
            if r <= 0:
                break  # nobody is reading the port: drop rather than stall the loop
            k = n - i
            if k > r:
                k = r
            if i == 0 and k == n:
                chunk = data
            else:
                if mv is None:
                    mv = memoryview(data)
                chunk = mv[i : i + k]
            try:
                w = self.out.write(chunk)
            except OSError:
                w = 0
            if w is None:
                w = k
            i += w
            if w < k:
                break
        if i < n:
            self.dropped += n - i
            self.drops += 1
