# The imperative shell: a 1 kHz loop that feeds the core from the board,
# applies its outputs and services the serial line. The same loop runs on
# the RP2040 and in the simulator; only the board object differs.
from pen.compat import const
from pen.core import Config, Core
from pen.protocol import Protocol

SERIAL_BYTES_PER_TICK = const(64)  # a flood cannot starve the control loop


class Firmware:
    def __init__(self, board):
        self.board = board
        self.config = Config()
        self.core = Core(self.config)
        self.proto = Protocol(self.core, board.serial_write, board.name, board.serial_number)
        # outputs are safe before the first tick: drive off, brake on
        board.apply(self.core.out)

    def step(self):
        """One control period: wait for the tick, sense, decide, act, talk."""
        board = self.board
        core = self.core
        now = board.wait_tick()
        inp = core.inp
        inp.now_ms = now
        board.read_inputs(inp)
        core.tick()
        board.apply(core.out)
        board.feed_watchdog()
        feed = self.proto.feed
        read = board.serial_read
        for _ in range(SERIAL_BYTES_PER_TICK):
            b = read()
            if b < 0:
                break
            feed(b)
        # events, telemetry, heartbeat: outside the control tick
        self.proto.service(now)

    def run(self):
        while True:
            self.step()


def run(board):
    Firmware(board).run()
