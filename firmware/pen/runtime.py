# The imperative shell: the control loop (1 kHz in the simulator, a 5 ms
# period on the RP2040: boards/pico.py LOOP_US) that feeds the core from the board,
# applies its outputs and services the serial line. The same loop runs on
# the RP2040 and in the simulator; only the board object differs.
import gc

from pen import auth as A
from pen import tilt as T
from pen.compat import const, keep_room, micropython
from pen.core import Config, Core
from pen.frame import put_int, put_text
from pen.integrity import check, root_dir
from pen.looptime import LoopTime
from pen.looptime import register as register_looptime
from pen.persist import AuthLog, AuthStore
from pen.persist import attach as attach_persistence
from pen.protocol import Protocol

SERIAL_BYTES_PER_TICK = const(64)  # a flood cannot starve the control loop
# stage marks of a loop pass (bench/chip.py times them on the virtual Pico:
# the board's `marks` is machine.mem32 there, a watchdog scratch register)
MARK = const(0x40058010)  # RP2040 WATCHDOG SCRATCH1
# GC policy of a board that asks for it (boards/pico.py gc_policy; the
# simulator keeps its own, sim/device/runner.py). A loop pass while the
# drive runs allocates nothing (DESIGN §6), and from the tick that starts
# the drive no collection is started by an allocation count (gc.threshold
# off); hb, ping, status and '?' allocate nothing, the other requests
# served during one run are bounded (pen/protocol.py RUN_REQUESTS), so
# they cannot fill the heap and force one (a collection
# takes ~12 ms on the chip, longer than the 6 ms dead-man). With the drive
# off the threshold is GC_IDLE_BYTES: the garbage of requests, flash writes
# and events is collected as it is made, so a run starts with at most that
# much; and a collection when the drive stops.
GC_IDLE_BYTES = const(16384)


class Firmware:
    def __init__(self, board):
        self.board = board
        self.config = Config()
        self.core = Core(self.config)
        self.proto = Protocol(self.core, board.serial_write, board.name, board.serial_number)
        # the board's serial write sends (or drops) a line before it returns:
        # the protocol writes its lines from one reused buffer
        self.proto.write_now = 1
        self.proto.hold = 1  # a line is served from step(), on a shallower stack
        # what the serial line dropped rather than wait for (status)
        self._tx_dropped = getattr(board, "serial_dropped", None)
        self.proto.status_puts.append(self._serial_status)
        # outputs are safe before the first tick: drive off, brake on
        board.apply(self.core.out)
        # stored configuration, event log, treatment records (pen.persist)
        self.persist = attach_persistence(self, board)
        self._security(board)
        # a write per stage: one peripheral store on the chip, a dict elsewhere
        self.marks = getattr(board, "marks", None) or {MARK: 0}
        # SR1's fast path on a board that reads its accelerometer apart
        # (boards/pico.py): first thing in a pass, and between passes
        self.was_running = 0
        self.stopped = 0  # the drive stopped in this pass: collect at its end
        self.gc_policy = 0
        if getattr(board, "gc_policy", False) and hasattr(gc, "threshold"):
            self.gc_policy = 1
            gc.threshold(GC_IDLE_BYTES)
        self.spread = 1 if getattr(board, "spread_service", False) else 0
        self.half = 1  # both halves in every pass unless spread
        self.watch = None
        self.due = None  # ... and between its stages (boards/pico.py watch_due)
        # a board that can start the read and take it later (boards/pico.py
        # imu_begin/imu_end, due_begin): the bus time of the watch at the
        # start of a pass and of the watches due before the short stages
        # overlaps those stages; the cone is checked as soon as they end
        self.begin = None
        self.due_begin = None
        if hasattr(board, "read_imu"):
            self.watch = self.tilt_watch
            board.watch = self.watch
            self.due = getattr(board, "watch_due", None)
            self.begin = getattr(board, "imu_begin", None)
            if self.begin is not None:
                self.due_begin = getattr(board, "due_begin", None)
            if self.due is not None:
                # a request served while the needles run (status: ~4 ms of
                # formatting) pauses for the watch between its parts
                self.proto.pause = self.due
        # the serial bytes of a pass, read in one call where the board can
        # (boards/stdio_serial.py read_into), else a byte at a time
        self.rx = bytearray(SERIAL_BYTES_PER_TICK)
        self.read_into = getattr(board, "serial_read_into", None)
        # ... and a request that comes in while the needles run served over
        # passes, a part per pass (a board with a tight loop: boards/pico.py)
        self.proto.defer = 1 if getattr(board, "spread_requests", False) else 0
        self.proto.tel_writes = 1  # a reply's pieces: service_telemetry, every pass or every other
        # the loop's own stopwatch (pen/looptime.py, `loop`), on the board's
        # microsecond clock: a real Pico measures its own passes
        self.lt = LoopTime(board.period_us, board.ticks_us)
        self.clock = board.ticks_us
        register_looptime(self.proto, self.lt)
        # the objects every loop pass calls into: their attribute tables
        # with room (pen/compat.py keep_room)
        for obj in (self, board, self.core, self.proto, self.persist, self.lt):
            if obj is not None:
                keep_room(obj)

    @micropython.native
    def tilt_watch(self):
        """A fresh accelerometer sample, then the cone: leaving it cuts the
        drive here, before the tick (which then stops the drive, SR1)."""
        core = self.core
        inp = core.inp
        board = self.board
        board.read_imu(inp)
        if T.leave_if_out(core, inp, self.config):
            board.drive_off()

    @micropython.native
    def watch_end(self, q):
        """The second half of a watch that imu_begin/due_begin started (q:
        their answer, not 0): the sample taken (q 1), then the cone."""
        core = self.core
        inp = core.inp
        if q == 1:
            self.board.imu_end(inp)
        if T.leave_if_out(core, inp, self.config):
            self.board.drive_off()

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
        self.integrity = state
        if state != "ok" and state != "unverified":
            self.log("integrity_fail", reason=state)
        self.sec = A.register(self.proto, self.auth, self.log, state, self.log.clear)
        # the host's side of the port (USB CDC DTR on the pen, a pty hang-up
        # in the simulator); a board that cannot tell has no host_connected
        self.host_connected = getattr(board, "host_connected", None)
        self.connected = 1

    def _serial_status(self, buf, i):
        # status's part, written at buf[i:] without heap (pen.protocol status_puts)
        d = self._tx_dropped
        i = put_int(buf, put_text(buf, i, "tx_dropped="), d() if d is not None else 0)
        return put_int(buf, put_text(buf, i, " rt_skipped="), self.proto.rt_skipped)

    def _now(self):
        return self.core.inp.now_ms

    @micropython.native
    def step(self):
        """One control period: wait for the tick, sense, decide, act, talk."""
        board = self.board
        core = self.core
        marks = self.marks
        # SR1's fast path (a board that reads its accelerometer apart): a
        # tilt watch first, then one between the stages whenever the last
        # read is a sample old (due); never between the tick and apply,
        # which would switch a drive the watch cut back on for a pass
        # (where the board can, the read of such a watch is started before
        # a short stage and the cone checked after it: watch_end)
        due = self.due
        begin = self.begin
        due_begin = self.due_begin
        inp = core.inp
        now = board.wait_tick()
        clock = self.clock
        t_start = clock()
        marks[MARK] = 1
        q = 0
        if begin is not None:
            q = begin(inp)
            if q != 1:
                self.watch_end(q)  # a fresh sample already, or read by the driver: the cone now
                q = 0
        elif self.watch is not None:
            self.watch()
        inp.now_ms = now
        board.read_inputs(inp)
        if q:
            self.watch_end(q)
        if due is not None:
            due()
        marks[MARK] = 2
        t_tick = clock()
        core.tick()
        t_ticked = clock()
        marks[MARK] = 3
        q = 0
        if due_begin is not None:
            q = due_begin(inp)
        board.apply(core.out)
        board.feed_watchdog()
        running = core.running
        if running != self.was_running:
            # the GC threshold follows the drive before anything else in
            # the pass can allocate (GC_IDLE_BYTES)
            self.was_running = running
            self.stopped = 1 - running
            if self.gc_policy:
                gc.threshold(-1 if running else GC_IDLE_BYTES)
        if q:
            self.watch_end(q)
        elif due is not None:
            due()
        marks[MARK] = 4
        # a board that asks for it (boards/pico.py) spreads the periodic
        # work over two passes: persistence in one, events and telemetry in
        # the next (the serial line is read in every pass)
        half = self.half
        if self.spread:
            half ^= 1
            self.half = half
        if self.persist is not None and half:
            self.persist.service(now)  # outside the tick; writes only with the drive off
        if due is not None:
            due()
        marks[MARK] = 5
        # a request read in this pass (e.g. `tel`) schedules from this pass's
        # time, not from the last service()'s (which may be a pass behind)
        proto = self.proto
        proto.now = now
        if half:
            # the next part of a request served over passes (while the
            # needles run): where the work is spread, in the pass without
            # the telemetry frame, which has ~0.2 ms less to do
            proto.step()
        rx = self.rx
        if self.read_into is not None:
            n = self.read_into(rx)
        else:
            n = 0
            read = board.serial_read
            while n < SERIAL_BYTES_PER_TICK:
                b = read()
                if b < 0:
                    break
                rx[n] = b
                n += 1
        if n:
            i = proto.feed_from(rx, n)
            while proto.held_line:
                proto.serve_held()
                if i < n:
                    i = proto.feed_from(rx, n, i)
        q = 0
        if due_begin is not None and running:
            # while the needles run (no flash write can stall the bus read)
            # the read of a watch due here overlaps the protocol stage
            q = due_begin(inp)
        elif due is not None:
            due()
        marks[MARK] = 6
        # events, telemetry, heartbeat: outside the tick. Where the work is
        # spread, the events and timeouts go with persistence, the host link
        # and the session timeouts, and the telemetry frame (the longest
        # part, ~0.4 ms on the chip) has the other pass to itself
        if half:
            proto.service_events(now)
        if half != self.spread:
            proto.service_telemetry(now)
        if half:
            hc = self.host_connected
            if hc is not None:
                c = 1 if hc() else 0
                if c != self.connected:
                    self.connected = c
                    self.sec.host_link(c)
            self.sec.service(now)
        if q:
            self.watch_end(q)
        marks[MARK] = 7
        if self.stopped:
            # the drive has just stopped (outputs applied): collect now,
            # so a run starts with a clean heap (the drive is off)
            self.stopped = 0
            proto.run_served = 0  # pen/protocol.py RUN_REQUESTS
            gc.collect()
        self.lt.record(t_start, t_tick, t_ticked)

    def run(self, repl_exit=False, started=None):
        """Runs for ever; returns "maintenance" only on a board with a REPL
        (main.py then reboots into maintenance). The simulator stays in the
        loop with the drive locked off and reports mode=maintenance."""
        self.step()
        # started(integrity): the verified start of deployed files on trial
        # (main.py, bootguard.py), called after the first pass
        if started is not None:
            feed = getattr(self.board, "feed_flash", None)
            if feed is not None:
                feed()  # it may write the flash (the drive is off at boot)
            started(self.integrity)
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


def run(board, repl_exit=False, started=None):
    return Firmware(board).run(repl_exit, started)
