# The serial line protocol (docs/protocol.md). Bytes arrive one at a time
# (on the RP2040 only a 1-byte read is non-blocking after poll); real-time
# bytes act before any line parsing; lines are bounded, decoded, split and
# dispatched to the command table. Replies:
#   ok key=value ...        success
#   err CODE NAME: text     refusal, nothing changed
# Unprompted lines from the pen start with "!" (events) or "~" (telemetry).
from pen import core as C
from pen import errors as E
from pen import limits as L
from pen.compat import const
from pen.version import FIRMWARE_VERSION, PROTOCOL_VERSION

MAX_LINE = const(128)
RT_STOP = const(0x21)  # '!': immediate STOP, always allowed, no reply
RT_STOP_CTRL_C = const(0x03)  # Ctrl-C from a terminal also means STOP
RT_STATUS = const(0x3F)  # '?': one-line status right away


class Protocol:
    def __init__(self, core, write, board_name, serial_number):
        self.core = core
        self.write = write  # callable taking bytes
        self.board_name = board_name
        self.serial_number = serial_number
        self.buf = bytearray(MAX_LINE)
        self.n = 0
        self.overflow = 0
        self.bad_byte = 0
        self.ignored = 0
        self.commands = {
            "id": self.cmd_id,
            "info": self.cmd_id,
            "status": self.cmd_status,
            "get": self.cmd_get,
            "set": self.cmd_set,
            "limits": self.cmd_limits,
            "stop": self.cmd_stop,
            "clear-fault": self.cmd_clear_fault,
            "help": self.cmd_help,
        }

    # --- byte level ---
    def feed(self, b):
        if b == RT_STOP or b == RT_STOP_CTRL_C:
            self.core.request_stop()
            return
        if b == RT_STATUS:
            self.write(b"? " + self.status_text().encode() + b"\n")
            return
        if b == 0x0A or b == 0x0D:
            self._end_line()
            return
        if b < 0x20 or b > 0x7E:
            # NUL, other control bytes (Ctrl-A/B/D/E of the raw REPL) and
            # non-ASCII never enter a command; inside a line they void it,
            # between lines they are dropped
            if self.n:
                self.bad_byte = 1
            self.ignored += 1
            return
        if self.n >= MAX_LINE:
            self.overflow = 1
            return
        self.buf[self.n] = b
        self.n += 1

    def _end_line(self):
        n = self.n
        self.n = 0
        if self.overflow:
            self.overflow = 0
            self.bad_byte = 0
            self._err(E.LINE_TOO_LONG, "line longer than %d bytes ignored" % MAX_LINE)
            return
        if self.bad_byte:
            self.bad_byte = 0
            self._err(E.BAD_BYTES, "line with control or non-ASCII bytes ignored")
            return
        if n == 0:
            return
        self.handle(bytes(self.buf[:n]).decode())

    # --- line level ---
    def handle(self, line):
        words = line.split()
        if not words:
            return
        fn = self.commands.get(words[0])
        if fn is None:
            self._err(E.UNKNOWN_COMMAND, "unknown command '%s'; try 'help'" % words[0][:24])
            return
        try:
            text = fn(words[1:])
        except E.PenError as e:
            self._err(e.code, e.text)
            return
        except Exception as e:  # noqa: BLE001 - no input may crash the pen (SR9)
            self._err(E.INTERNAL, "command failed: %s" % type(e).__name__)
            return
        self.write(("ok " + text + "\n").encode() if text else b"ok\n")

    def _err(self, code, text):
        self.write(("err %d %s: %s\n" % (code, E.NAMES.get(code, "error"), text)).encode())

    def event(self, text):
        self.write(("! " + text + "\n").encode())

    # --- commands: each returns the text after "ok" or raises PenError ---
    def cmd_id(self, args):
        self._no_args(args)
        return "fw=%s proto=%d board=%s serial=%s" % (
            FIRMWARE_VERSION,
            PROTOCOL_VERSION,
            self.board_name,
            self.serial_number,
        )

    def status_text(self):
        c = self.core
        blocks = []
        for k in range(len(C.BLOCK_NAMES)):
            if c.block & (1 << k):
                blocks.append(C.BLOCK_NAMES[k])
        return (
            "state=%s fault=%s fault_code=%d block=%s stop=%s depth=%s depth_target=%s rate_set=%s rate=%s "
            "tilt=%s duty=%s current=%d battery=%d run_s=%d strokes=%d"
            % (
                C.STATE_NAMES[c.state],
                C.FAULT_NAMES[c.fault],
                c.fault,
                ",".join(blocks) or "none",
                C.STOP_NAMES[c.stop_reason],
                L.fmt_fixed(c.depth_pos_um() // 10, 2),
                L.fmt_fixed(c.depth_target_um() // 10, 2),
                L.fmt_fixed(c.cfg.rate // 100, 1),
                L.fmt_fixed(c.meas_mhz // 100, 1),
                L.fmt_fixed(c.tilt_cdeg // 10, 1),
                L.fmt_fixed(c.out.duty // 10, 1),
                c.inp.motor_ma,
                c.inp.battery_mv,
                c.run_ms // 1000,
                c.strokes,
            )
        )

    def cmd_status(self, args):
        self._no_args(args)
        return self.status_text()

    def _pairs(self, table, keys):
        cfg = self.core.cfg
        out = []
        for s in table:
            if not keys or s.key in keys:
                out.append("%s=%s" % (s.key, s.show(getattr(cfg, s.key))))
        return " ".join(out)

    def cmd_get(self, args):
        if len(args) > 1:
            raise E.PenError(E.BAD_ARGUMENTS, "usage: get [KEY]")
        if args:
            L.find(L.WORKING, args[0])
        return self._pairs(L.WORKING, args)

    def cmd_set(self, args):
        if len(args) != 2:
            raise E.PenError(E.BAD_ARGUMENTS, "usage: set KEY VALUE")
        s = L.find(L.WORKING, args[0])
        value = s.parse(args[1])
        L.check_working(s, value, self.core.cfg)
        if s is L.DEPTH and self.core.running:
            raise E.PenError(E.NOT_WHILE_RUNNING, "depth cannot change while the needles run")
        setattr(self.core.cfg, s.key, value)
        self.core.config_changed()
        return "%s=%s" % (s.key, s.show(value))

    def cmd_limits(self, args):
        if args:
            raise E.PenError(E.AUTH_REQUIRED, "changing clinic limits needs an authenticated technician")
        return self._pairs(L.CLINIC, None)

    def cmd_stop(self, args):
        self.core.request_stop()
        return ""

    def cmd_clear_fault(self, args):
        self._no_args(args)
        if not self.core.clear_fault():
            raise E.PenError(E.FAULT_STILL_PRESENT, "the fault's cause is still present")
        return ""

    def cmd_help(self, args):
        return "commands=" + ",".join(sorted(self.commands))

    def _no_args(self, args):
        if args:
            raise E.PenError(E.BAD_ARGUMENTS, "this command takes no arguments")
