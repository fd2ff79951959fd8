# The imperative shell: a 1 kHz loop that feeds the core from the board,
# applies its outputs and services the serial line. The same loop runs on
# the RP2040 and in the simulator; only the board object differs.
from pen import auth as A
from pen.compat import const
from pen.core import Config, Core
from pen.integrity import check, root_dir
from pen.persist import AuthLog, AuthStore
from pen.persist import attach as attach_persistence
from pen.protocol import Protocol

SERIAL_BYTES_PER_TICK = const(64)  # a flood cannot starve the control loop


class Firmware:
    def __init__(self, board):
        self.board = board
        self.config = Config()
        self.core = Core(self.config)
        self.proto = Protocol(self.core, board.serial_write, board.name, board.serial_number)
        # what the serial line dropped rather than wait for (status)
        self._tx_dropped = getattr(board, "serial_dropped", None)
        self.proto.status_parts.append(self._serial_status)
        # outputs are safe before the first tick: drive off, brake on
        board.apply(self.core.out)
        # stored configuration, event log, treatment records (pen.persist)
        self.persist = attach_persistence(self, board)
        self._security(board)

    def _security(self, board):
        # docs/security.md. Secrets, the failure counter and security events
        # live in the flash store when the board has one (pen.persist);
        # a board without storage keeps them in memory.
        p = self.persist
        if p is not None:
            self.store = AuthStore(p)
            self.log = AuthLog(p, self.proto.event)
        else:
            self.store = getattr(board, "store", None) or A.MemStore()
            self.log = A.MemLog(echo=self.proto.event)
        self.auth = A.Auth(self.store, self.log, board.serial_number, self._now)
        state = _check_integrity(board, self.auth.key())
        if state != "ok" and state != "unverified":
            self.log("integrity_fail", reason=state)
        self.sec = A.register(self.proto, self.auth, self.log, state, self.log.clear)
        # the host's side of the port (USB CDC DTR on the pen, a pty hang-up
        # in the simulator); a board that cannot tell has no host_connected
        self.host_connected = getattr(board, "host_connected", None)
        self.connected = 1

    def _serial_status(self):
        d = self._tx_dropped
        return "tx_dropped=%d rt_skipped=%d" % (d() if d is not None else 0, self.proto.rt_skipped)

    def _now(self):
        return self.core.inp.now_ms

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
        if self.persist is not None:
            self.persist.service(now)  # outside the tick; writes only with the drive off
        feed = self.proto.feed
        read = board.serial_read
        for _ in range(SERIAL_BYTES_PER_TICK):
            b = read()
            if b < 0:
                break
            feed(b)
        # events, telemetry, heartbeat, session timeouts: outside the tick
        self.proto.service(now)
        hc = self.host_connected
        if hc is not None:
            c = 1 if hc() else 0
            if c != self.connected:
                self.connected = c
                self.sec.host_link(c)
        self.sec.service(now)

    def run(self, repl_exit=False):
        """Runs for ever; returns "maintenance" only on a board with a REPL
        (main.py then reboots into maintenance). The simulator stays in the
        loop with the drive locked off and reports mode=maintenance."""
        while True:
            self.step()
            if repl_exit and self.auth.leave_requested:
                return A.MODE_MAINTENANCE


def _check_integrity(board, key):
    # runs once at boot, before the first tick
    root = getattr(board, "fw_root", None)
    if root is None:
        from pen.version import CODE_SOURCE

        return check(root_dir(), key, board.feed_watchdog, CODE_SOURCE == "frozen")
    return check(root, key, board.feed_watchdog)


def run(board, repl_exit=False):
    return Firmware(board).run(repl_exit)
