# USB CDC serial as MicroPython sees it: sys.stdin/sys.stdout. After a poll
# only a 1-byte read is non-blocking on the RP2040, so bytes come one at a
# time. Used by the RP2040 board and by the simulator (stdin/stdout are the
# master side of a pty there).
import select
import sys


class StdioSerial:
    def __init__(self):
        inp = sys.stdin.buffer
        out = sys.stdout.buffer
        # CPython wraps the fd in a buffer that would read ahead of poll
        self.inp = getattr(inp, "raw", inp)
        self.out = getattr(out, "raw", out)
        self.poll = select.poll()
        self.poll.register(sys.stdin, select.POLLIN)
        self.one = bytearray(1)
        self.dropped = 0

    def read(self):
        for ev in self.poll.ipoll(0) if hasattr(self.poll, "ipoll") else self.poll.poll(0):
            if not ev[1] & select.POLLIN:
                return -1  # a hang-up (the simulator's pty with no host): nothing to read
            n = self.inp.readinto(self.one)
            if n:
                return self.one[0]
            return -1
        return -1

    def write(self, data):
        try:
            n = self.out.write(data)
        except OSError:
            n = 0
        if n is not None and n < len(data):
            # nobody is reading the port: drop rather than stall the loop
            self.dropped += len(data) - (n or 0)
