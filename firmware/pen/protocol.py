# The serial line protocol (docs/protocol.md has the grammar, the command
# list and the published error table).
#
# Host -> pen, one line each (LF or CR ends a line):
#   status                      typed by a person: no id, no check
#   @7 set depth 1.5*3A0F       a host: request id, then *CRC-16 (pen.frame)
#                               over everything before the '*'
# A line that starts with '@' must carry a check; a bad check is answered
# with err 22 and never acted on. Real-time bytes act before line parsing:
#   '!' (and Ctrl-C)  immediate STOP, always allowed, no reply
#   '?'               one status line right away
# Pen -> host:
#   [@ID ]ok [key=value ...][*CRC]       success
#   [@ID ]err CODE NAME: text[*CRC]      refusal, nothing changed
#   ! EVENT ...*CRC                      unprompted event
#   ~SEQ f1 f2 ...*CRC                   telemetry frame
#   ? key=value ...*CRC                  answer to the real-time '?'
# A reply carries the request's id, and a check when the request had one.
#
# Each module registers its own commands, next to their handlers, with
# register(); a handler takes the list of argument words and returns the
# text after "ok" (or "") or raises PenError. Declared extension points for
# other modules (set by them at boot, never by replacing a function here):
#   is_authorized() / require(what)   the technician session (pen.auth)
#   audit(event, **fields)            the security event log (pen.auth)
#   on_heartbeat()                    host activity (pen.auth)
#   on_reject(code)                   a line refused at the byte level
#   on_config(actor, force) -> 0|1    persist a change before its reply
#                                     (pen.persist; 1: on flash, 0: later)
#   on_handshake()                    `id`: a new host connection (pen.auth)
#   status_puts                       callables (buf, i) -> index: a module's
#                                     words of status written at buf[i:]
#                                     (pen.frame put_*; no heap, at most
#                                     STATUS_PART_MAX bytes)
#   info_parts                        callables adding words to info
#   pause()                           called between the parts of a long
#                                     request or reply: the loop's SR1 tilt
#                                     watch and dead-man beat on the RP2040
#   defer                             1: a request that comes in while the
#                                     needles run is served over loop passes,
#                                     one part per pass (step(); the RP2040)
import sys

from pen import core as C
from pen import errors as E
from pen import faults as F
from pen import limits as L
from pen import tilt as T
from pen.compat import const, micropython, ticks_add, ticks_diff
from pen.frame import (
    CRC_INIT,
    crc16,
    crc16_span,
    hex4,
    parse_hex4,
    put_check,
    put_int,
    put_ints,
    put_str,
    put_text,
    seal,
)
from pen.version import CODE_SOURCE, FIRMWARE_VERSION, IMAGE_VERSION, PROTOCOL_VERSION

MAX_LINE = const(160)
MAX_ID = const(8)
RT_STOP = const(0x21)  # '!': immediate STOP, always allowed, no reply
RT_STOP_CTRL_C = const(0x03)  # Ctrl-C from a terminal also means STOP
RT_STATUS = const(0x3F)  # '?': one-line status right away
RT_STATUS_MS = const(20)  # ... at most one answer per 20 ms
LINE_TIMEOUT_MS = const(10000)  # a partial line older than this is dropped
ERR_BUDGET = const(20)  # error replies per window; the rest are counted
ERR_WINDOW_MS = const(100)
CAPS = "crc,rid,rt,events,tel100,hb,config,dict"
TEL_MAX_HZ = const(100)
HB_MIN_MS = const(100)
HB_MAX_MS = const(5000)
ECHO = bytes(range(0x20, 0x7F))  # a typed byte is echoed as its slice of this
TEL_FIELDS = "seq,state,fault,rate_set_mhz,rate_mhz,depth_um,tilt_cdeg,current_ma,battery_mv"
TEL_N = const(9)  # the fields above
# an unprompted line (telemetry, an event) is built in place in a buffer of
# this size, its check and LF included; a longer one (the '?' status) is a str
OUT_MAX = const(128)
# The replies a running pen must give, `hb`, `ping`, `status` and the
# real-time `?`, are built in place in rbuf (REPLY_MAX bytes) from the line's
# bytes, without a str: served while the needles run they allocate nothing,
# so they can be polled for a whole treatment (penctl remote: `hb` and
# `status` every 0.1 s). Every other request still makes garbage (`get`,
# `info`, an error reply: ~1.5-5 KB each on the unix port), and no
# collection may run while the needles run: one takes ~12 ms on the chip's
# 190 KB heap and trips the 6 ms dead-man (docs/performance.md). A run serves
# at most RUN_REQUESTS of those; after that such a request is refused, with
# no heap used, until the drive stops (the runtime then collects and resets
# the count). STOP always acts and telemetry (penctl monitor) allocates
# nothing. 20: a `get` served in steps makes ~1.9 KB of garbage on the chip
# (its generators), and 24 of them left 149,920 B free, under DESIGN §7's
# 150 KB (tests/chip test_chip_design7_a_run_serves_its_request_budget...)
RUN_REQUESTS = const(20)
# the refusal, after '@ID ' (one string, made once)
RUN_BUDGET_TEXT = "err %d %s: this run's request budget is spent; ask after the drive stops" % (
    E.NOT_WHILE_RUNNING,
    E.NAMES[E.NOT_WHILE_RUNNING],
)
# an allocation-free reply: the longest `status` (every block, the longest
# id, extreme readings: 432 bytes; every module's part at STATUS_PART_MAX: 547)
# (tests/firmware/test_protocol_reply_alloc.py); it is written OUT_MAX bytes
# at a time (the board's write would split a longer one through a new
# memoryview, boards/stdio_serial.py), the last piece through obuf
REPLY_MAX = const(640)
CRC_SPAN = const(256)  # bytes of a reply's check a step (_put_ok)
STATUS_PART_MAX = const(64)  # what one of status_puts may write
# what an allocation-free reply answers (Protocol.fast_kind)
FAST_PING = const(1)
FAST_STATUS = const(2)
FAST_HB = const(3)
FAST_RT = const(4)  # the real-time '?'
# its steps (Protocol.fast): the check, the core's words in four parts,
# the modules' parts, the seal, the write
F_CHECK = const(1)
F_CORE = const(2)  # .. F_CORE + 3
F_PARTS = const(6)
F_SEAL = const(7)
F_WRITE = const(8)
F_KEEP = const(9)  # the replay cache
F_WRITING = const(10)  # its pieces (Protocol.wr_n)
_SCALE = (1, 10, 100, 1000)


def _nothing(*args, **fields):
    pass


def _none():
    pass  # (no *args: a call with them makes a tuple on the heap)


def _never():
    return False


def _drain(steps):
    """A generator of steps run to its end at once; its value."""
    try:
        while True:
            next(steps)
    except StopIteration as e:
        return e.value


class _Values:
    """Attribute bag for validating a whole configuration before applying it."""


_plain_copy = None  # CPython (the simulator): feed() a byte at a time
if sys.implementation.name == "micropython":
    # the plain bytes of a line copied in machine code (viper): ~1 us a
    # byte on the chip instead of a feed() call each (~50 us); stops at
    # anything feed() must see (real-time, control and end-of-line bytes)

    @micropython.viper  # type: ignore[name-defined]  # noqa: F821
    def _plain_copy_viper(src, i: int, n: int, dst, j: int) -> int:
        s = ptr8(src)  # type: ignore[name-defined]  # noqa: F821
        d = ptr8(dst)  # type: ignore[name-defined]  # noqa: F821
        k = 0
        while i + k < n and j + k < MAX_LINE:
            b = s[i + k]
            if b < 0x20 or b > 0x7E or b == RT_STOP or b == RT_STATUS:
                break
            d[j + k] = b
            k += 1
        return k

    _plain_copy = _plain_copy_viper


@micropython.native
def _fast_kind(buf, start, end):
    """What the body buf[start:end] asks, if it is a request answered
    without heap: FAST_PING (`ping` and any words: it takes none),
    FAST_STATUS (`status` alone), FAST_HB + 4 * (TIMEOUT_MS + 1) (`hb`
    alone: TIMEOUT_MS -1, or with a valid timeout); 0 for any other line,
    which the str path serves (and refuses where it must). Command names in
    any case, words split by spaces, as Protocol._handle reads them."""
    i = start
    while i < end:
        if buf[i] == 0x2A:  # '*': a malformed check
            return 0
        i += 1
    i = start
    while i < end and buf[i] == 0x20:
        i += 1
    w = i
    while i < end and buf[i] != 0x20:
        i += 1
    k = i - w
    rest = i
    while rest < end and buf[rest] == 0x20:
        rest += 1
    if k == 4:
        if (buf[w] | 0x20) == 0x70 and (buf[w + 1] | 0x20) == 0x69 and (buf[w + 2] | 0x20) == 0x6E:
            if (buf[w + 3] | 0x20) == 0x67:
                return FAST_PING
        return 0
    if k == 6:
        if rest == end and (buf[w] | 0x20) == 0x73 and (buf[w + 1] | 0x20) == 0x74 and (buf[w + 2] | 0x20) == 0x61:
            if (buf[w + 3] | 0x20) == 0x74 and (buf[w + 4] | 0x20) == 0x75 and (buf[w + 5] | 0x20) == 0x73:
                return FAST_STATUS
        return 0
    if k != 2 or (buf[w] | 0x20) != 0x68 or (buf[w + 1] | 0x20) != 0x62:
        return 0
    if rest == end:
        return FAST_HB  # no timeout: 4 * (-1 + 1)
    v = 0
    i = rest
    while i < end and buf[i] != 0x20:
        b = buf[i]
        if b < 0x30 or b > 0x39 or i - rest >= 5:
            return 0  # refused by cmd_hb, with the reason
        v = v * 10 + b - 0x30
        i += 1
    while i < end:
        if buf[i] != 0x20:
            return 0  # a second argument
        i += 1
    if v and (v < HB_MIN_MS or v > HB_MAX_MS):
        return 0
    return FAST_HB + 4 * (v + 1)


def _copy(dst, i, src, start, n):
    """src[start:start+n] into dst at i (no slice objects); returns i + n."""
    dst[i : i + n] = src[start : start + n]
    return i + n


def _same(a, start, b, n):
    """a[start:start+n] == b[:n]."""
    return a[start : start + n] == b[:n]


if sys.implementation.name == "micropython":
    # byte loops in machine code (viper): a 300-byte reply copied in a few
    # microseconds on the chip, no slice objects

    @micropython.viper  # type: ignore[name-defined]  # noqa: F821
    def _copy_viper(dst, i: int, src, start: int, n: int) -> int:
        d = ptr8(dst)  # type: ignore[name-defined]  # noqa: F821
        s = ptr8(src)  # type: ignore[name-defined]  # noqa: F821
        for k in range(n):
            d[i + k] = s[start + k]
        return i + n

    @micropython.viper  # type: ignore[name-defined]  # noqa: F821
    def _same_viper(a, start: int, b, n: int) -> bool:
        x = ptr8(a)  # type: ignore[name-defined]  # noqa: F821
        y = ptr8(b)  # type: ignore[name-defined]  # noqa: F821
        for k in range(n):
            if x[start + k] != y[k]:
                return False
        return True

    _copy = _copy_viper
    _same = _same_viper


def put_fixed(buf, i, value, decimals):
    """limits.fmt_fixed(value, decimals) written at buf[i:] (decimals <= 3)."""
    if value < 0:
        buf[i] = 0x2D
        i += 1
        value = -value
    scale = _SCALE[decimals]
    i = put_int(buf, i, value // scale)
    if decimals:
        buf[i] = 0x2E
        i += 1
        frac = value % scale
        while scale > 1:
            scale //= 10
            buf[i] = 0x30 + frac // scale
            frac %= scale
            i += 1
    return i


def _fits(n):
    """A reply of n bytes in rbuf leaves room for its seal; one that
    reached the end (pen.frame wrote no further) is refused, not cut."""
    if n > REPLY_MAX - 6:
        raise E.PenError(E.INTERNAL, "reply longer than %d bytes" % (REPLY_MAX - 6))


def _id_char(b):
    return 0x30 <= b <= 0x39 or 0x41 <= b <= 0x5A or 0x61 <= b <= 0x7A or b == 0x2D


class Protocol:
    def __init__(self, core, write, board_name, serial_number):
        self.core = core
        self.write = write  # callable taking bytes
        self.board_name = board_name
        self.serial_number = serial_number
        self.buf = bytearray(MAX_LINE)
        self.held = bytearray(MAX_LINE)  # the line of the request being served over passes
        self.pending_n = 0  # a line put aside in held while running, for the next step()
        self.n = 0
        self.partial = 0  # a line has started (even if voided)
        self.term = 0  # a plain terminal is typing (its last line ended with CR)
        self.echo = 0  # the line being typed is echoed (and Backspace edits it)
        self.line_ms = 0
        self.overflow = 0
        self.bad_byte = 0
        self.ignored = 0  # control/non-ASCII bytes seen
        self.bad_checks = 0
        self.now = 0
        self.rt_sent = 0  # a '?' was answered (at rt_ms)
        self.rt_ms = 0
        self.rt_skipped = 0  # '?' not answered: within RT_STATUS_MS of the last
        # replay cache: a retried request (same id, same line) gets the same
        # answer without being executed twice. The key is the line's bytes
        # after the '@' up to its check ('ID BODY'); the answer is bytes
        # (last_reply) or, for an allocation-free reply, last_out[:last_n]
        self.last_key = bytearray(MAX_LINE)
        self.last_key_n = -1
        self.last_reply = None
        self.last_out = bytearray(REPLY_MAX)
        self.last_n = 0
        # error-reply budget against floods
        self.err_budget = ERR_BUDGET
        self.err_suppressed = 0
        self.win_ms = 0
        # telemetry
        self.tel_period = 0
        self.tel_next = 0
        self.tel_seq = 0
        self.tel_vals = [0] * TEL_N
        # unprompted lines are built in obuf without a str (pen.frame), so a
        # pass that sends telemetry allocates nothing (DESIGN §6); oviews[n]
        # is obuf's first n bytes. write_now: `write` sends (or drops) the
        # bytes before it returns (the board's serial driver: pen.runtime
        # sets it), so the buffer itself is written; else (a caller that
        # keeps what it is given) each line is handed over as a copy.
        self.obuf = bytearray(OUT_MAX)
        mv = memoryview(self.obuf)
        self.oviews = tuple([mv[:k] for k in range(OUT_MAX + 1)])
        self.write_now = 0
        # the allocation-free replies (hb, ping, status, '?') are built in
        # rbuf and written in pieces of 2 * OUT_MAX and OUT_MAX bytes (r2[k],
        # r1[k]: from k * OUT_MAX), the rest through obuf: at most 256 bytes a
        # write, which the board's serial write takes whole (TX_ROOM)
        self.rbuf = bytearray(REPLY_MAX)
        rv = memoryview(self.rbuf)
        self.r1 = tuple([rv[k * OUT_MAX : (k + 1) * OUT_MAX] for k in range(REPLY_MAX // OUT_MAX)])
        self.r2 = tuple([rv[k * OUT_MAX : (k + 2) * OUT_MAX] for k in range(REPLY_MAX // OUT_MAX - 1)])
        # While the needles run a reply in rbuf is written in pieces of at
        # most 2 * OUT_MAX bytes, one per pass of the telemetry frame
        # (service_telemetry: the frame waits for the reply's end): on the
        # chip a write costs ~1-2 us a byte of the pass (TinyUSB's FIFO and
        # its interrupts; a 560-byte `info` took 1.06 ms at once, 0.20-0.27
        # ms a piece), and the frame's pass has ~0.2 ms less to do than the
        # pass that serves a request's steps. wr_n: the reply's length, wr_k: the bytes written
        # (wr_n 0: none). Any other line first writes the rest (_send,
        # _reply, _finish): a line is never cut by another. The last piece
        # goes through obuf (_send keeps its line in tbuf meanwhile).
        self.wr_n = 0
        self.wr_k = 0
        self.flushing = 0  # _finish: replies are written whole
        # 1 (the runtime): the pieces are written by service_telemetry();
        # 0: by step() (a caller that only steps)
        self.tel_writes = 0
        self.tbuf = bytearray(OUT_MAX)
        # the one being served (steps F_*; fast 0: none)
        self.fast = 0
        self.fast_kind = 0
        self.fast_arg = -1  # hb's timeout, -1: none given
        self.fast_buf = self.buf  # its line ...
        self.fast_n = 0
        self.fast_rid = -1  # ... the index of the space after its id (-1: no id)
        self.fast_end = 0  # ... where its body ends (before '*CRC')
        self.fast_i = 0  # the length of the reply in rbuf so far
        self.fast_part = 0  # the next of status_puts
        # host heartbeat dead-man (armed for remote drive)
        self.hb_timeout = 0
        self.hb_last = 0
        # change detection for events (done in service(), never in the tick)
        self.booted = 0
        self.last_state = -1
        self.last_fault = 0
        # declared extension points (see the head of this file)
        self.is_authorized = _never
        self.require = self._require
        self.audit = _nothing
        self.on_heartbeat = _none
        self.on_reject = _nothing
        self.on_config = None
        self.on_handshake = _nothing
        self.status_puts = []
        self.info_parts = []
        # the words of `id` and `info` that never change, made at boot: on
        # the chip each %-format or fmt_fixed costs ~0.1 ms of a loop pass
        # when they are asked for while the needles run
        self.id_words = (
            "fw=%s proto=%d board=%s serial=%s caps=%s cfg="
            % (FIRMWARE_VERSION, PROTOCOL_VERSION, board_name, serial_number, CAPS),
            " max_line=%d image=%s code=%s" % (MAX_LINE, IMAGE_VERSION, CODE_SOURCE),
        )
        self.label_words = (
            "needles=%d needle_length_mm=%s max_depth_mm=%s depth_step_mm=%s depth_accuracy_mm=%s"
            " rate_min_hz=%s rate_max_hz=%s rate_accuracy_pct=%s"
            % (
                L.NEEDLE_COUNT,
                L.fmt_fixed(L.NEEDLE_LENGTH_UM // 10, 2),
                L.fmt_fixed(L.HW_DEPTH_MAX_UM // 10, 2),
                L.fmt_fixed(L.DEPTH_STEP_UM // 10, 2),
                L.fmt_fixed(L.DEPTH_ACCURACY_UM // 10, 2),
                L.fmt_fixed(L.HW_RATE_MIN_MHZ // 100, 1),
                L.fmt_fixed(L.HW_RATE_MAX_MHZ // 100, 1),
                L.fmt_fixed(L.RATE_ACCURACY_PERMILLE, 1),
            )
        )
        self.pause = _nothing
        self.defer = 0
        # 1 (the runtime): a line ended with the drive off is held (held_line)
        # and served by serve_held() from the loop pass itself, not from
        # inside feed_from: four Python frames less under a request's flash
        # write (the C stack, docs/performance.md)
        self.hold = 0
        self.held_line = 0
        self.job = None  # the request being served over passes (a generator: step())
        self.run_served = 0  # requests with a str reply served in this run (RUN_REQUESTS)
        self.commands = {}
        self.register("id", self.cmd_id, usage="id")
        self.register("dict", self.cmd_dict, usage="dict [TABLE]")
        self.register("info", self.cmd_info, usage="info")
        self.register("status", self.cmd_status, usage="status")
        self.register("get", self.cmd_get, usage="get [KEY]")
        self.register("set", self.cmd_set, usage="set KEY VALUE")
        self.register("limits", self.cmd_limits, usage="limits [set KEY VALUE]")
        self.register("config", self.cmd_config, usage="config [import KEY=VALUE ...]")
        self.register("stop", self.cmd_stop, usage="stop")
        self.register("clear-fault", self.cmd_clear_fault, usage="clear-fault")
        self.register("tel", self.cmd_tel, usage="tel [HZ]")
        self.register("hb", self.cmd_hb, usage="hb [TIMEOUT_MS]")
        self.register("ping", self.cmd_ping, usage="ping")
        self.register("help", self.cmd_help, usage="help [COMMAND]")

    def register(self, name, handler, needs_auth=False, usage="", idle_only=False):
        """Add a command: handler(args) -> reply text, or raises PenError.
        idle_only: not served while the needles run (it reads or writes
        flash, which stalls the loop on the RP2040)."""
        self.commands[name] = (handler, needs_auth, usage or name, idle_only)

    def _require(self, what):
        if not self.is_authorized():
            raise E.PenError(E.AUTH_REQUIRED, "%s needs an authenticated technician" % what)

    # --- byte level ---
    def feed_from(self, data, n, i=0):
        """feed() for the bytes data[i:n]; the plain bytes of a line are
        copied in one go. Returns where it stopped: n, or just after a line
        held for serve_held() (hold)."""
        copy = _plain_copy
        while i < n:
            if copy is not None and self.partial and not self.echo:
                k = copy(data, i, n, self.buf, self.n)
                if k:
                    self.n += k
                    i += k
                    continue
            self.feed(data[i])
            i += 1
            if self.held_line:
                return i
        return n

    def feed(self, b):
        if b == RT_STOP or b == RT_STOP_CTRL_C:
            self.core.request_stop()
            return
        if b == RT_STATUS:
            # rate-limited: a flood of '?' gets one answer per RT_STATUS_MS
            # (the rest are counted, rt_skipped in status), so it can
            # neither fill the USB link nor take the loop's time
            if self.rt_sent and 0 <= ticks_diff(self.now, self.rt_ms) < RT_STATUS_MS:
                self.rt_skipped += 1
                return
            self.rt_sent = 1
            self.rt_ms = self.now
            self._finish()
            self.fast_kind = FAST_RT
            self.fast_rid = -1
            self.fast_i = put_text(self.rbuf, 0, "? ")
            self._start_fast(F_CORE)  # over passes while running, as a request
            return
        if b == 0x0A or b == 0x0D:
            # a plain terminal ends a line with CR (Enter): from then on its
            # lines are echoed and edited; a framed line ('@') ends that
            if self.n and self.buf[0] == 0x40:
                self.term = 0
            elif b == 0x0D:
                if not self.echo and self.n and not self.overflow:
                    # the first line typed at a terminal: the pen learns it
                    # is one only at its Enter, so it shows the line then
                    self.echo = 1
                    self.write(bytes(self.buf[: self.n]))
                self.term = 1
            if self.echo:
                self.echo = 0
                self.write(b"\r\n")
            self._end_line()
            return
        if (b == 0x08 or b == 0x7F) and self.echo:
            # Backspace (Ctrl-H or DEL) in a line typed at a terminal
            if self.n and not self.overflow:
                self.n -= 1
                self.write(b"\b \b")
            return
        if b < 0x20 or b > 0x7E:
            # NUL, other control bytes (Ctrl-A/B/D/E of the raw REPL) and
            # non-ASCII never enter a command; inside a line they void it,
            # between lines they are dropped
            if self.n:
                self.bad_byte = 1
            self.ignored += 1
            return
        if not self.partial:
            self.partial = 1
            self.line_ms = self.now
            # echo per line, by its first byte: never for a framed line
            self.echo = 1 if self.term and b != 0x40 else 0
        if self.n >= MAX_LINE:
            self.overflow = 1
            return
        self.buf[self.n] = b
        self.n += 1
        if self.echo:
            self.write(ECHO[b - 0x20 : b - 0x1F])

    def _end_line(self):
        n = self.n
        self.n = 0
        self.partial = 0
        if self.overflow or self.bad_byte:
            # answered with the request id when one can be read, so a host
            # gets its refusal at once instead of a timeout
            rid = self._peek_rid(n)
            if self.overflow:
                self._err(E.LINE_TOO_LONG, "line longer than %d bytes ignored" % MAX_LINE, rid, rid is not None)
            else:
                self._err(E.BAD_BYTES, "line with control or non-ASCII bytes ignored", rid, rid is not None)
            self.overflow = 0
            self.bad_byte = 0
            return
        if n:
            if self.defer and self.core.running and not self.busy():
                # while the needles run the line is only put aside here
                # (the next one is read into the other buffer); the next
                # step() classifies it and starts serving it: done here,
                # that work made the pass that read the line's end the
                # longest of a request (~0.65 ms on the chip)
                line = self.buf
                self.buf = self.held
                self.held = line
                self.pending_n = n
                return
            self._finish()  # a request still being served is answered first
            self._take(n, 0)

    def _take(self, n, pending):
        """Classifies the line of n bytes and starts serving it: in buf, or
        in held where _end_line put it aside (pending)."""
        line = self.held if pending else self.buf
        fast = self._classify(line, n)
        over = self.defer and self.core.running
        if over and not fast:
            if self.run_served >= RUN_REQUESTS and not self.core.host_stop:
                # (a line after a STOP byte, penctl stop's confirmation, is served)
                self._refuse_over_budget(line, n)
                return
            self.run_served += 1
        if over and not pending:
            # served over the next passes (step()): the line is kept
            # aside, the next one is read into the other buffer
            self.buf = self.held
            self.held = line
        if fast:
            self.fast_buf = line
            self.fast_n = n
            self._start_fast(F_CHECK)
        elif over:
            self.job = self._serve(line, n)
        elif self.hold:
            self.job = self._serve(line, n)
            self.held_line = 1
        else:
            self._run(self._serve(line, n))

    def _take_pending(self):
        n = self.pending_n
        self.pending_n = 0
        self._take(n, 1)

    def _classify(self, buf, n):
        """1 if the line buf[:n] is answered without heap (_fast_kind; its
        parts noted in fast_*), else 0. Its check is verified later (F_CHECK)."""
        start = 0
        rid = -1
        if buf[0] == 0x40:
            rid = self._rid_end(buf, n)
            if rid < 0:
                return 0
            start = rid + 1
        end = n
        if n - start >= 5 and buf[n - 5] == 0x2A:
            end = n - 5
        elif rid >= 0:
            return 0  # an id without a check: refused by _serve
        k = _fast_kind(buf, start, end)
        if not k:
            return 0
        self.fast_kind = k & 3
        self.fast_arg = (k >> 2) - 1
        self.fast_rid = rid
        self.fast_end = end
        return 1

    def _start_fast(self, stage):
        """Serves the allocation-free reply set up in fast_*: over the next
        passes while the needles run (step()), else at once."""
        self.fast = stage
        if not (self.defer and self.core.running):
            self._finish()

    def busy(self):
        """A request is being served over passes (or waits for step())."""
        return self.fast != 0 or self.job is not None or self.pending_n != 0 or self.wr_n != 0

    def step(self):
        """Once per loop pass: the next part of a request served over passes."""
        if self.wr_n and not self.tel_writes:
            self._write_piece()
            return
        if self.pending_n:
            self._take_pending()  # the line put aside at its end: its first part
            return
        if self.fast:
            self._fast_step()
            return
        if self.held_line:
            self.serve_held()  # a line fed by feed() outside the runtime's pass
            return
        job = self.job
        if job is not None:
            try:
                next(job)
            except StopIteration:
                self.job = None

    def serve_held(self):
        """The line held by feed_from (hold), served to its end here, with
        pause() between its parts (as _run, one frame less)."""
        self.held_line = 0
        job = self.job
        self.job = None
        if job is None:
            return
        try:
            while True:
                next(job)
                self.pause()
        except StopIteration:
            pass

    def _finish(self):
        """The request being served, if any, to its end (pause() between
        its parts)."""
        self._flush_reply()
        self.flushing = 1
        try:
            self._finish_parts()
        finally:
            self.flushing = 0

    def _finish_parts(self):
        if self.pending_n:
            self._take_pending()
        while self.fast:
            self._fast_step()
            if self.fast:
                self.pause()
        job = self.job
        if job is not None:
            self.job = None
            self._run(job)

    # --- a reply written in pieces while the needles run ---
    def _start_write(self, n):
        """Writes rbuf[:n]: while the needles run (defer) in pieces, one
        per service_telemetry(), else at once."""
        self.wr_n = n
        self.wr_k = 0
        if not self.defer or not self.core.running or self.flushing:
            self._flush_reply()

    def _write_piece(self):
        """The reply's next 2 * OUT_MAX bytes at most (no new object)."""
        n = self.wr_n
        k = self.wr_k
        if not self.write_now:
            # a caller that keeps what it is given: the rest at once, a copy
            self.write(bytes(self.rbuf[k:n]))
            k = n
        elif n - k >= 2 * OUT_MAX:
            self.write(self.r2[k // OUT_MAX])
            k += 2 * OUT_MAX
        elif n - k >= OUT_MAX:
            self.write(self.r1[k // OUT_MAX])
            k += OUT_MAX
        else:
            self.write(self.oviews[_copy(self.obuf, 0, self.rbuf, k, n - k)])
            k = n
        if k >= n:
            self.wr_n = 0
            k = 0
        self.wr_k = k

    def _flush_reply(self):
        """The rest of a reply being written, now (before another line)."""
        while self.wr_n:
            self._write_piece()

    # --- the allocation-free replies: a step per call, no str, no heap ---
    def _fast_step(self):
        st = self.fast
        try:
            if st == F_CHECK:
                self.fast = self._fast_check()
            elif st < F_PARTS:
                self.fast_i = self._core_words(st - F_CORE, self.rbuf, self.fast_i)
                if st < F_CORE + 3:
                    self.fast = st + 1
                elif self.fast_kind == FAST_STATUS and self.status_puts:
                    self.fast_part = 0
                    self.fast = F_PARTS
                else:
                    self.fast = F_SEAL
            elif st == F_PARTS:
                k = self.fast_part
                self.fast_i = self._put_part(k, self.fast_i)
                self.fast_part = k + 1
                if k + 1 >= len(self.status_puts):
                    self.fast = F_SEAL
            elif st == F_SEAL:
                _fits(self.fast_i)
                if self.fast_kind == FAST_RT or self.fast_end < self.fast_n:
                    self.fast_i = seal(self.rbuf, self.fast_i)
                else:
                    self.rbuf[self.fast_i] = 0x0A
                    self.fast_i += 1
                self.fast = F_WRITE
            elif st == F_WRITE:
                self.fast = F_WRITING if self._fast_write() else 0
            elif st == F_WRITING:  # (its pieces: service_telemetry)
                if not self.wr_n:
                    self.fast = F_KEEP if self.fast_rid > 0 else 0
            else:
                self.fast = 0
                self._keep_fast()
        except Exception as e:  # noqa: BLE001 - no input may crash the pen (SR9)
            self.fast = 0
            rid, checked = self._fast_rid_checked()
            code = e.code if isinstance(e, E.PenError) else E.INTERNAL
            text = e.text if isinstance(e, E.PenError) else "command failed: %s" % type(e).__name__
            self._keep_key(self._err(code, text, rid, checked))

    def _fast_rid_checked(self):
        """The id (a str) and whether it was checked, of the line being
        served (for a reply built from str: an error)."""
        r = self.fast_rid
        rid = bytes(self.fast_buf[1:r]).decode() if r > 0 else None
        return rid, self.fast_end < self.fast_n

    def _fast_check(self):
        """The line's check and the replay cache, then the head of the
        reply and what the request does; returns the next step."""
        buf = self.fast_buf
        n = self.fast_n
        end = self.fast_end
        if end < n:
            want = parse_hex4(buf, n - 4)
            if want < 0 or crc16(buf, end) != want:
                # refused by the str path, with its reason (the next step);
                # while running it counts in the run's budget
                if self.defer and self.core.running:
                    self.run_served += 1
                self.job = self._serve(buf, n)
                return 0
        r = self.fast_rid
        if r > 0 and self.last_key_n == end - 1 and _same(buf, 1, self.last_key, end - 1):
            self._write_cached()  # a retry: same answer, not run twice
            return 0
        b = self.rbuf
        i = _copy(b, 0, buf, 0, r + 1) if r > 0 else 0  # '@ID '
        i = put_text(b, i, "ok")
        kind = self.fast_kind
        if kind == FAST_STATUS:
            b[i] = 0x20
            self.fast_i = i + 1
            return F_CORE
        if kind == FAST_HB:
            self._heartbeat(self.fast_arg)
            i = put_int(b, put_text(b, i, " timeout_ms="), self.hb_timeout)
        self.fast_i = i
        return F_SEAL

    def _fast_write(self):
        """Writes the reply, or starts to (1: its pieces follow, F_WRITING)."""
        n = self.fast_i
        if self.fast_kind == FAST_RT:
            self._send(n, None, 1)
            return 0
        self._start_write(n)
        return 1

    def _keep_fast(self):
        """The replay cache: the line's 'ID BODY' and the reply in rbuf."""
        self.last_key_n = _copy(self.last_key, 0, self.fast_buf, 1, self.fast_end - 1)
        self.last_n = _copy(self.last_out, 0, self.rbuf, 0, self.fast_i)
        self.last_reply = None

    def _write_reply(self, n):
        """Writes rbuf[:n] with no new object: whole OUT_MAX pieces as they
        are, the rest copied to obuf (a caller that keeps what it is given
        gets one copy)."""
        if not self.write_now:
            self.write(bytes(self.rbuf[:n]))
            return
        k = 0
        while n - k > 2 * OUT_MAX:
            self.write(self.r2[k // OUT_MAX])
            k += 2 * OUT_MAX
        if n - k > OUT_MAX:
            self.write(self.r1[k // OUT_MAX])
            k += OUT_MAX
        self.write(self.oviews[_copy(self.obuf, 0, self.rbuf, k, n - k)])

    def _write_cached(self):
        if self.last_reply is not None:
            self.write(self.last_reply)
        else:
            self._write_reply(_copy(self.rbuf, 0, self.last_out, 0, self.last_n))

    def _keep_key(self, data):
        """After a reply from str to the line being served allocation-free
        (an error): the replay cache as _handle keeps it."""
        r = self.fast_rid
        if r > 0 and data is not None:
            self.last_key_n = _copy(self.last_key, 0, self.fast_buf, 1, self.fast_end - 1)
            self.last_reply = data

    def _core_words(self, part, b, i):
        """The core's words of status, in four parts (each ~0.3-0.7 ms on
        the chip in bytecode: a step of a request served over passes)."""
        c = self.core
        if part == 0:
            i = put_text(b, put_text(b, i, "state="), C.STATE_NAMES[c.state])
            i = put_text(b, put_text(b, i, " fault="), F.FAULT_NAMES[c.fault])
            i = put_int(b, put_text(b, i, " fault_code="), c.fault)
            i = put_text(b, i, " block=")
            k0 = i
            blocks = c.block
            for k in range(len(C.BLOCK_NAMES)):
                if blocks & (1 << k):
                    if i > k0:
                        b[i] = 0x2C
                        i += 1
                    i = put_text(b, i, C.BLOCK_NAMES[k])
            if i == k0:
                i = put_text(b, i, "none")
            return put_text(b, put_text(b, i, " stop="), C.STOP_NAMES[c.stop_reason])
        if part == 1:
            i = put_fixed(b, put_text(b, i, " depth="), c.depth_pos_um() // 10, 2)
            return put_fixed(b, put_text(b, i, " depth_target="), c.depth_target_um() // 10, 2)
        if part == 2:
            i = put_fixed(b, put_text(b, i, " rate_set="), c.cfg.rate // 100, 1)
            i = put_fixed(b, put_text(b, i, " rate="), c.meas_mhz // 100, 1)
            return put_fixed(b, put_text(b, i, " tilt="), c.tilt_cdeg // 10, 1)
        i = put_fixed(b, put_text(b, i, " tilt_ref="), T.ref_angle_cdeg(c.cfg) // 10, 1)
        i = put_fixed(b, put_text(b, i, " duty="), c.out.duty // 10, 1)
        i = put_int(b, put_text(b, i, " current="), c.inp.motor_ma)
        i = put_int(b, put_text(b, i, " battery="), c.inp.battery_mv)
        i = put_int(b, put_text(b, i, " run_s="), c.run_ms // 1000)
        return put_int(b, put_text(b, i, " strokes="), c.strokes)

    def _run(self, steps):
        """Runs a generator of steps to its end, pause() between the steps;
        returns its value."""
        try:
            while True:
                next(steps)
                self.pause()
        except StopIteration as e:
            return e.value

    def _refuse_over_budget(self, buf, n):
        """RUN_BUDGET_TEXT for the line buf[:n], built in obuf: no heap.
        A line with a request id is answered with it and a check."""
        b = self.obuf
        k = 0
        i = self._rid_end(buf, n)
        if i > 0:
            while k <= i:  # '@ID '
                b[k] = buf[k]
                k += 1
        k = put_text(b, k, RUN_BUDGET_TEXT)
        if i > 0:
            k = seal(b, k)
        else:
            b[k] = 0x0A
            k += 1
        v = self.oviews[k]
        self.write(v if self.write_now else bytes(v))

    def _rid_end(self, buf, n):
        """Index of the space after '@ID', or -1 if the line has no valid id."""
        if n < 3 or buf[0] != 0x40:
            return -1
        i = 1
        while i < n and i <= MAX_ID and _id_char(buf[i]):
            i += 1
        if i == 1 or i >= n or buf[i] != 0x20:
            return -1
        return i

    def _peek_rid(self, n):
        i = self._rid_end(self.buf, n)
        return bytes(self.buf[1:i]).decode() if i > 0 else None

    def _serve(self, buf, n):
        """A whole line checked and served, as steps (a generator: each
        yield is a pause point, or the end of a loop pass's part)."""
        rid = None
        start = 0
        end = n
        checked = False
        if buf[0] == 0x40:  # '@' request id
            i = self._rid_end(buf, n)
            if i < 0:
                self.bad_checks += 1
                self._err(E.BAD_CHECK, "malformed request id; line ignored")
                return
            rid = bytes(buf[1:i]).decode()
            start = i + 1
        if n - start >= 5 and buf[n - 5] == 0x2A:  # '*' + 4 hex digits
            want = parse_hex4(buf, n - 4)
            if want < 0 or crc16(buf, n - 5) != want:
                self.bad_checks += 1
                self._err(E.BAD_CHECK, "check mismatch; line ignored, nothing changed", rid, True)
                return
            end = n - 5
            checked = True
        elif rid is not None:
            self.bad_checks += 1
            self._err(E.BAD_CHECK, "a line with a request id must end with *CRC; line ignored", rid, True)
            return
        yield  # (the line is kept aside while it is served: _take)
        body = bytes(buf[start:end]).decode()
        if "*" in body:
            self.bad_checks += 1
            self._err(E.BAD_CHECK, "malformed check; line ignored", rid, checked)
            return
        if rid is not None and self.last_key_n == end - 1 and _same(buf, 1, self.last_key, end - 1):
            self._write_cached()  # a retry: same answer, not run twice
            return
        yield
        yield from self._handle(body, rid, checked)

    # --- line level ---
    def handle(self, line, rid=None, checked=False):
        self._run(self._handle(line, rid, checked))

    def _handle(self, line, rid, checked):
        words = line.split()
        if not words:
            return
        if not checked:
            # typed by a person: case does not matter (key names, hex, words)
            words = line.lower().split()
        entry = self.commands.get(words[0]) or self.commands.get(words[0].lower())
        err = None
        text = ""
        if entry is None:
            err = (E.UNKNOWN_COMMAND, "unknown command '%s'; try 'help'" % words[0][:24])
        else:
            try:
                if entry[1] and not self.is_authorized():
                    raise E.PenError(E.AUTH_REQUIRED, "'%s' needs an authenticated technician" % words[0])
                if entry[3] and self.core.running:
                    raise E.PenError(
                        E.NOT_WHILE_RUNNING, "'%s' reads the flash: not served while the needles run" % words[0]
                    )
                # a step for each part: while the needles run each is
                # served in a loop pass of its own (step()); on the chip
                # none takes more than ~0.6 ms (docs/performance.md, "A
                # request answered from str while running")
                yield
                text = entry[0](words[1:])
                if not isinstance(text, str):
                    text = yield from text  # a reply built in steps (status, get, info)
            except E.PenError as e:
                err = (e.code, e.text)
            except Exception as e:  # noqa: BLE001 - no input may crash the pen (SR9)
                err = (E.INTERNAL, "command failed: %s" % type(e).__name__)
        head = "ok"
        if err is not None:
            # an error reply is framed and written in steps too (_err's
            # rules: rejects logged, a flood counted instead of answered)
            code = err[0]
            if code == E.UNKNOWN_COMMAND:
                self.on_reject(code)
            if self.err_budget <= 0:
                self.err_suppressed += 1
                return
            self.err_budget -= 1
            head = "err %d %s:" % (code, E.NAMES.get(code, "error"))
            text = err[1]
        yield
        try:
            yield from self._reply_steps(head, text, rid, checked, line)
        except Exception:  # noqa: BLE001 - no input may crash the pen (SR9)
            self.wr_n = 0

    def _reply_steps(self, head, text, rid, checked, line):
        """'HEAD TEXT' framed and written, in steps; the replay cache kept."""
        n = yield from self._put_ok(head, text, rid, checked)
        data = None
        if n < 0:  # longer than rbuf: framed on the heap
            data = yield from self._frame_steps(head + " " + text if text else head, rid, checked)
            yield
            self.write(data)
        else:
            yield
            self._start_write(n)
            while self.wr_n:  # its pieces: service_telemetry
                yield
        if rid is not None:
            self._keep(rid, line, data, n)

    def _keep(self, rid, line, data, n=0):
        """The replay cache: 'ID BODY' and the answer to it (data, or
        rbuf[:n] when data is None)."""
        k = len(rid) + 1 + len(line)
        if k > MAX_LINE:
            self.last_key_n = -1  # (only handle() takes such a line)
            return
        key = self.last_key
        i = put_text(key, 0, rid)
        key[i] = 0x20
        self.last_key_n = put_text(key, i + 1, line)
        self.last_reply = data
        if data is None:
            self.last_n = _copy(self.last_out, 0, self.rbuf, 0, n)

    def _put_ok(self, head, text, rid, checked):
        """'[@ID ]HEAD TEXT' (HEAD: ok, or err CODE NAME:) framed in rbuf (with its check if checked), in
        steps: the reply's length, or -1 if it does not fit. No frame is
        made on the heap (three copies of the text: 0.5-0.6 ms a step on
        the chip for `info`); the text goes in with one copy (put_str) and
        the check is computed CRC_SPAN bytes a step (~0.8 us a byte)."""
        if len(head) + len(text) + (len(rid) if rid is not None else 0) + 9 > REPLY_MAX:
            return -1
        b = self.rbuf
        i = 0
        if rid is not None:
            b[0] = 0x40
            i = put_text(b, 1, rid)
            b[i] = 0x20
            i += 1
        i = put_text(b, i, head)
        if text:
            b[i] = 0x20
            i = put_str(b, i + 1, text)
        if not checked:
            b[i] = 0x0A
            return i + 1
        crc = CRC_INIT
        k = 0
        while k < i:
            e = k + CRC_SPAN if i - k > CRC_SPAN else i
            yield
            crc = crc16_span(b, k, e, crc)
            k = e
        return put_check(b, i, crc)

    def _frame(self, text, rid, checked):
        if rid is not None:
            text = "@" + rid + " " + text
        data = text.encode()
        if checked:
            data += b"*" + hex4(crc16(data)).encode()
        return data + b"\n"

    def _frame_steps(self, text, rid, checked):
        """_frame, its check in a step of its own."""
        if rid is not None:
            text = "@" + rid + " " + text
        data = text.encode()
        if checked:
            yield
            data += b"*" + hex4(crc16(data)).encode()
        return data + b"\n"

    def _reply(self, text, rid=None, checked=False):
        data = self._frame(text, rid, checked)
        self._flush_reply()
        self.write(data)
        return data

    def _err(self, code, text, rid=None, checked=False):
        if code == E.LINE_TOO_LONG or code == E.BAD_BYTES or code == E.UNKNOWN_COMMAND:
            self.on_reject(code)
        if self.err_budget <= 0:
            self.err_suppressed += 1  # a flood: counted, reported by an event
            return None
        self.err_budget -= 1
        return self._reply("err %d %s: %s" % (code, E.NAMES.get(code, "error"), text), rid, checked)

    def unprompted(self, text):
        """Events, telemetry and real-time answers: always checked."""
        if len(text) <= OUT_MAX - 6:
            self._send(put_text(self.obuf, 0, text))
        else:
            self._send(0, self._frame(text, None, True))

    def _send(self, n, data=None, built=0):
        """Writes obuf[:n] sealed with its check (or data, a framed line;
        built: rbuf[:n], sealed already) as an unprompted line. A line a
        person is typing is broken off for it and shown again after it."""
        if self.wr_n:
            # a reply being written: its end first (through obuf: this
            # line waits in tbuf meanwhile)
            if data is None and not built:
                _copy(self.tbuf, 0, self.obuf, 0, n)
                self._flush_reply()
                _copy(self.obuf, 0, self.tbuf, 0, n)
            else:
                self._flush_reply()
        if data is None and not built:
            v = self.oviews[seal(self.obuf, n)]
            data = v if self.write_now else bytes(v)
        if self.echo:
            self.write(b"\r\n")
        if built:
            self._write_reply(n)
        else:
            self.write(data)
        if self.echo and self.n:
            self.write(bytes(self.buf[: self.n]))

    def event(self, text):
        """An unprompted event line: '! NAME key=value ...'."""
        if len(text) <= OUT_MAX - 8:
            self._send(put_text(self.obuf, put_text(self.obuf, 0, "! "), text))
        else:
            self.unprompted("! " + text)

    def _named(self, head, name):
        """'! ' head name, in obuf (no str built): returns its length."""
        b = self.obuf
        return put_text(b, put_text(b, 0, head), name)

    def _run_words(self, n):
        """' run_s=N strokes=N' of the last run after obuf[:n]."""
        b = self.obuf
        c = self.core
        n = put_int(b, put_text(b, n, " run_s="), c.run_ms // 1000)
        return put_int(b, put_text(b, n, " strokes="), c.strokes)

    # --- the service step: once per loop pass, outside the control tick ---
    def service(self, now):
        """The periodic work of a pass: events and timeouts, then a
        telemetry frame when one is due. A board that spreads its periodic
        work over two passes (pen/runtime.py) calls the two halves in
        different passes."""
        self.service_events(now)
        self.service_telemetry(now)

    def service_events(self, now):
        """State and fault events, the error window, the line and
        heartbeat timeouts."""
        self.now = now
        c = self.core
        if not self.booted:
            self.booted = 1
            self.win_ms = now
            self.event("boot fw=%s proto=%d" % (FIRMWARE_VERSION, PROTOCOL_VERSION))
        st = c.state
        if st != self.last_state:
            # the events of a state change are built in place (no str):
            # the drive starts and stops in a running pass
            if self.last_state == C.ST_RUNNING:
                self._send(self._run_words(self._named("! stop reason=", C.STOP_NAMES[c.stop_reason])))
                if c.stop_reason == C.STOP_SESSION:
                    self._send(self._run_words(put_text(self.obuf, 0, "! session_end")))
            self.last_state = st
            self._send(self._named("! state ", C.STATE_NAMES[st]))
        if c.fault != self.last_fault:
            self.last_fault = c.fault
            if c.fault:
                self._send(self._named("! fault ", F.FAULT_NAMES[c.fault]))
            else:
                self.event("fault_cleared")
        if ticks_diff(now, self.win_ms) >= ERR_WINDOW_MS:
            self.win_ms = now
            self.err_budget = ERR_BUDGET
            if self.err_suppressed:
                n = put_text(self.obuf, 0, "! flood suppressed_errors=")
                self._send(put_int(self.obuf, n, self.err_suppressed))
                self.err_suppressed = 0
        if self.partial and ticks_diff(now, self.line_ms) > LINE_TIMEOUT_MS:
            self.n = 0
            self.partial = 0
            self.overflow = 0
            self.bad_byte = 0
            if self.echo:
                self.echo = 0
                self.write(b"\r\n")  # an echoed line always ends with CR LF
            self._err(E.LINE_TIMEOUT, "partial line without end of line dropped after %d ms" % LINE_TIMEOUT_MS)
        if self.hb_timeout and ticks_diff(now, self.hb_last) > self.hb_timeout:
            self.hb_timeout = 0
            c.request_stop()
            self.event("heartbeat_lost")

    def service_telemetry(self, now):
        """A telemetry frame when one is due (never a burst after a gap).
        While a reply is being written its next piece goes instead: the
        frame waits for the reply's end (at most three of these passes)."""
        if self.wr_n:
            self._write_piece()
            return
        if self.tel_period and ticks_diff(now, self.tel_next) >= 0:
            nxt = ticks_add(self.tel_next, self.tel_period)
            if ticks_diff(now, nxt) >= 0:
                nxt = ticks_add(now, self.tel_period)  # fell behind: no burst
            self.tel_next = nxt
            self._telemetry()

    @micropython.native
    def _telemetry(self):
        """'~SEQ f1 f2 ...' (TEL_FIELDS), built in obuf: no allocation."""
        c = self.core
        seq = (self.tel_seq + 1) & 0xFFFF
        self.tel_seq = seq
        f = self.tel_vals
        f[0] = seq
        f[1] = c.state
        f[2] = c.fault
        f[3] = c.cfg.rate
        f[4] = c.meas_mhz
        f[5] = c.depth_pos_um()
        f[6] = c.tilt_cdeg
        f[7] = c.inp.motor_ma
        f[8] = c.inp.battery_mv
        b = self.obuf
        b[0] = 0x7E  # '~'
        self._send(put_ints(b, 1, f, TEL_N))

    def arm_heartbeat(self, timeout_ms):
        """Dead-man for remote drive: the drive stops unless the host sends
        'hb' at least every timeout_ms. 0 disarms."""
        self.hb_timeout = timeout_ms
        self.hb_last = self.now

    # --- commands: each returns the text after "ok" or raises PenError ---
    def config_hash(self):
        """The configuration's check (id's cfg=, config's hash=)."""
        return _drain(self._config_hash())

    def _config_hash(self):
        # a step per setting: `id` is served while the needles run
        cfg = self.core.cfg
        vals = [getattr(cfg, s.key) for s in L.CLINIC + L.WORKING]
        vals.extend((cfg.ref_x, cfg.ref_y, cfg.ref_z))
        parts = []
        for s in L.CLINIC + L.WORKING:
            yield
            parts.append("%s=%d" % (s.key, vals[len(parts)]))
        parts.append("ref=%d,%d,%d" % (vals[-3], vals[-2], vals[-1]))
        yield
        return hex4(crc16(";".join(parts).encode()))

    def _config_text(self):
        text = yield from self._pairs(L.CLINIC + L.WORKING, None)
        h = yield from self._config_hash()
        return text + " hash=" + h

    def cmd_status(self, args):
        # a line that is `status` alone is answered without heap (_fast_kind);
        # this is handle()'s road (and `status ARGS`, refused here)
        self._no_args(args)
        return self._status_text()

    def _status_text(self):
        """status's words, built as the allocation-free reply builds them, a
        part per step; returned as a str."""
        b = self.rbuf
        i = 0
        for part in range(4):
            i = self._core_words(part, b, i)
            yield
        for k in range(len(self.status_puts)):
            i = self._put_part(k, i)
            yield
        _fits(i)
        return bytes(b[:i]).decode()

    def _put_part(self, k, i):
        """' ' and the k-th of status_puts after rbuf[:i] (pen.frame
        writes never pass rbuf's end: a reply that reaches it is refused at
        its seal, never cut short)."""
        if i >= REPLY_MAX:
            return i
        self.rbuf[i] = 0x20
        return self.status_puts[k](self.rbuf, i + 1)

    def _with_parts(self, words, parts):
        # a step per part; the words joined once
        for fn in parts:
            yield
            words.append(fn())
        return " ".join(words)

    def _pairs(self, table, keys):
        """'KEY=VALUE ...' of table's settings (all, or those in keys): a
        step per setting (the values are read at once, one configuration)."""
        cfg = self.core.cfg
        vals = [(s, getattr(cfg, s.key)) for s in table if not keys or s.key in keys]
        out = []
        for s, v in vals:
            yield
            out.append("%s=%s" % (s.key, s.show(v)))
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
        return self._set_steps(s, value)

    def _set_steps(self, s, value):
        # in steps: `set depth` is served while the needles run (4.1 ms
        # of one pass on the chip at once). Core.configure validates
        # (layers, depth while running) and applies
        yield from self._configure_steps({s.key: value})
        yield
        stored = self.commit()
        yield
        return "%s=%s%s" % (s.key, s.show(value), stored)

    def configure(self, values):
        """Commands of every module change the configuration through here:
        the core's one road (Core.configure), then one event for the host.
        The caller then answers with commit()'s word (an `ok` is durable)."""
        _drain(self._configure_steps(values))

    def _configure_steps(self, values):
        if self.core.configure(values):
            h = yield from self._config_hash()
            yield
            self.event("config hash=%s" % h)

    def commit(self, force=False):
        """Persists a change before its reply (docs/persistence.md):
        ' stored=1' when it is on flash, ' stored=0' when the record follows
        (drive on, or a flood being coalesced; `sync` writes it). force:
        clinic limits and security state, written whenever the drive is off."""
        if self.on_config is None:
            return ""
        return " stored=%d" % self.on_config("technician" if self.is_authorized() else "host", force)

    def cmd_limits(self, args):
        # reading: anyone, also during a treatment; setting: a technician with
        # the drive off (audited)
        if not args:
            return self._pairs(L.CLINIC, None)
        if args[0] != "set" or len(args) != 3:
            raise E.PenError(E.BAD_ARGUMENTS, "usage: limits [set KEY VALUE]")
        self.require("changing clinic limits")
        if self.core.running:
            self.audit("denied", action="changing_clinic_limits", reason="running")
            raise E.PenError(E.NOT_WHILE_RUNNING, "changing clinic limits is not allowed while the needles run")
        s = L.find(L.CLINIC, args[1])
        value = s.parse(args[2])
        s.check_hw(value)
        self._check_order(s, value, self.core.cfg)
        old = getattr(self.core.cfg, s.key)
        self.configure({s.key: value})
        if value != old:  # the log records changes, not a value set again
            self.audit("limit_change", key=s.key, old=s.show(old), new=s.show(value), by="technician")
        return "%s=%s%s" % (s.key, s.show(value), self.commit(True))

    @staticmethod
    def _check_order(clinic_setting, cap, values):
        # a clinic limit may not fall below a working setting it caps: the
        # technician lowers the working setting first (never a silent change
        # of what the operator set)
        for w in L.WORKING:
            if w.clinic_key == clinic_setting.key and getattr(values, w.key) > cap:
                raise E.PenError(
                    E.LIMIT_ORDER,
                    "%s %s %s below working %s %s %s; lower %s first"
                    % (
                        clinic_setting.key,
                        clinic_setting.show(cap),
                        clinic_setting.unit,
                        w.key,
                        w.show(getattr(values, w.key)),
                        w.unit,
                        w.key,
                    ),
                )

    def cmd_config(self, args):
        if not args:
            return self._config_text()
        if args[0] != "import" or len(args) < 2:
            raise E.PenError(E.BAD_ARGUMENTS, "usage: config [import KEY=VALUE ...]")
        cfg = self.core.cfg
        new = {}
        for word in args[1:]:
            eq = word.find("=")
            if eq <= 0:
                raise E.PenError(E.BAD_ARGUMENTS, "expected KEY=VALUE, got '%s'" % word[:24])
            key = word[:eq]
            if key in new:
                raise E.PenError(E.BAD_ARGUMENTS, "key '%s' given twice" % key[:24])
            s = L.find(L.CLINIC + L.WORKING, key)
            value = s.parse(word[eq + 1 :])
            s.check_hw(value)
            new[key] = value
        merged = _Values()
        for s in L.CLINIC + L.WORKING:
            setattr(merged, s.key, new[s.key] if s.key in new else getattr(cfg, s.key))
        for s in L.WORKING:
            L.check_working(s, getattr(merged, s.key), merged)
        clinic_changes = 0
        for s in L.CLINIC:
            if getattr(merged, s.key) != getattr(cfg, s.key):
                clinic_changes += 1
        if clinic_changes and not self.is_authorized():
            raise E.PenError(E.AUTH_REQUIRED, "importing changed clinic limits needs an authenticated technician")
        old = _Values()
        for s in L.CLINIC:
            setattr(old, s.key, getattr(cfg, s.key))
        self.configure(new)
        for s in L.CLINIC:
            if getattr(cfg, s.key) != getattr(old, s.key):
                self.audit(
                    "limit_change",
                    key=s.key,
                    old=s.show(getattr(old, s.key)),
                    new=s.show(getattr(cfg, s.key)),
                    by="technician",
                )
        return "applied=%d hash=%s%s" % (len(new), self.config_hash(), self.commit(clinic_changes > 0))

    def cmd_clear_fault(self, args):
        self._no_args(args)
        c = self.core
        name = F.FAULT_NAMES[c.fault]
        if not c.fault:
            return "fault=none cleared=0 (there was no fault to clear)"
        if not c.clear_fault(self.is_authorized()):
            raise E.PenError(
                E.FAULT_STILL_PRESENT,
                "fault %s not cleared: its cause is still present (%s)" % (name, _CAUSES.get(name, "see status")),
            )
        return "fault=%s cleared=1" % name

    def cmd_help(self, args):
        if args:
            entry = self.commands.get(args[0])
            if entry is None:
                raise E.PenError(E.UNKNOWN_COMMAND, "unknown command '%s'" % args[0][:24])
            return "usage: " + entry[2]
        return self._help_text()

    def _help_text(self):
        names = sorted(self.commands)
        yield  # (1.1 ms of a pass on the chip at once)
        return "commands=" + ",".join(names) + " ('help COMMAND' shows its arguments)"

    def cmd_stop(self, args):
        self.core.request_stop()
        return ""

    def cmd_id(self, args):
        # the handshake: resident, so a host can connect while the pen runs;
        # a new connection ends the technician session of the last one
        self._no_args(args)
        self.on_handshake()
        return self._ident()

    def _ident(self):
        """id's words, in steps (served while the needles run)."""
        h = yield from self._config_hash()
        return self.id_words[0] + h + self.id_words[1]

    def cmd_dict(self, args):
        """The data dictionary (Klipper style): the pen's own name tables, so
        a host never types a name twice. `dict` lists the tables; `dict
        TABLE` answers TABLE=... (docs/protocol.md has the format)."""
        if not args:
            return "tables=" + ",".join(DICT_TABLES)
        if len(args) != 1:
            raise E.PenError(E.BAD_ARGUMENTS, "usage: dict [TABLE]")
        if args[0] not in DICT_TABLES:
            raise E.PenError(E.UNKNOWN_KEY, "unknown table '%s'; 'dict' lists them" % args[0][:24])
        return self._dict_text(args[0])

    def _dict_text(self, name):
        # an item a step: served while the needles run (the whole
        # dictionary at once was 8 ms of a pass on the chip)
        out = []
        for item in _dict_items(name):
            yield
            out.append(item)
        return name + "=" + ",".join(out)

    def cmd_info(self, args):
        """id plus what the device label declares (SR10, 21 CFR 878.4430):
        taken from the constants that enforce the limits, never typed twice."""
        self._no_args(args)
        return self._info()

    def _info(self):
        # a step per part (served while the needles run)
        words = [(yield from self._ident()), self.label_words]
        return (yield from self._with_parts(words, self.info_parts))

    def cmd_tel(self, args):
        # resident: the monitor starts telemetry during a treatment
        if len(args) > 1:
            raise E.PenError(E.BAD_ARGUMENTS, "usage: tel [HZ]")
        if args:
            w = args[0]
            if not w.isdigit() or len(w) > 4 or int(w) > TEL_MAX_HZ:
                raise E.PenError(E.BAD_ARGUMENTS, "telemetry rate '%s' not in 0..%d Hz" % (w[:8], TEL_MAX_HZ))
            hz = int(w)
            self.tel_period = 1000 // hz if hz else 0
            self.tel_next = ticks_add(self.now, self.tel_period)
        hz = 1000 // self.tel_period if self.tel_period else 0
        return "hz=%d period_ms=%d seq=%d fields=%s" % (hz, self.tel_period, self.tel_seq, TEL_FIELDS)

    def cmd_hb(self, args):
        if len(args) > 1:
            raise E.PenError(E.BAD_ARGUMENTS, "usage: hb [TIMEOUT_MS]")
        if args:
            w = args[0]
            if not w.isdigit() or len(w) > 5 or (int(w) and not HB_MIN_MS <= int(w) <= HB_MAX_MS):
                raise E.PenError(
                    E.BAD_ARGUMENTS, "heartbeat timeout '%s' not 0 or %d..%d ms" % (w[:8], HB_MIN_MS, HB_MAX_MS)
                )
        self._heartbeat(int(args[0]) if args else -1)
        return "timeout_ms=%d" % self.hb_timeout

    def _heartbeat(self, timeout_ms):
        """hb's action; timeout_ms -1: none given (a valid one otherwise)."""
        if timeout_ms >= 0:
            if not timeout_ms and self.core.remote:
                self.core.remote_stop()  # the dead-man of a remote run is never just switched off
            self.arm_heartbeat(timeout_ms)
        self.hb_last = self.now
        self.on_heartbeat()

    def cmd_ping(self, args):
        return ""

    def _no_args(self, args):
        if args:
            raise E.PenError(E.BAD_ARGUMENTS, "this command takes no arguments")


# what keeps a latched fault from clearing (pen.faults.cause_present)
_CAUSES = {
    "imu_lost": "the accelerometer does not answer or reads implausibly",
    "imu_frozen": "the accelerometer reading is frozen",
    "overcurrent": "motor current above the limit",
    "rate_runaway": "the motor is still turning",
}


def _setting(s):
    # key:unit:decimals shown:hardware min:hardware max:step:clinic key
    return "%s:%s:%d:%s:%s:%s:%s" % (
        s.key,
        s.unit,
        s.shown,
        s.show(s.hw_min),
        s.show(s.hw_max),
        s.show(s.step),
        s.clinic_key or "-",
    )


DICT_TABLES = ("states", "faults", "stops", "blocks", "tel", "errors", "settings", "limits")


def _dict_items(name):
    """The items of `dict` table NAME, made one at a time."""
    if name == "states":
        return C.STATE_NAMES
    if name == "faults":
        return F.FAULT_NAMES
    if name == "stops":
        return C.STOP_NAMES
    if name == "blocks":
        return C.BLOCK_NAMES
    if name == "tel":
        return (TEL_FIELDS,)
    if name == "errors":
        return ("%d:%s" % (c, E.NAMES[c]) for c in sorted(E.NAMES))
    return (_setting(s) for s in (L.WORKING if name == "settings" else L.CLINIC))


def dictionary():
    """(table, text) for `dict`; a name's position is its number on the
    wire, except `errors` (CODE:NAME pairs) and the settings tables."""
    return tuple((name, ",".join(_dict_items(name))) for name in DICT_TABLES)
