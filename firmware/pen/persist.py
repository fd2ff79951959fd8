# Persistence glue (docs/persistence.md): loads the configuration at boot,
# saves it when it changed and the drive is off, writes the event log and
# keeps the treatment record of the session, all outside the control tick.
# register() adds this module's protocol commands (`log`, `sessions`,
# `storage`, `session-end`) and its part of `status` and `info`.
#
# For other modules (security): persist.store.kv_get/kv_set(name, value)
# keep short secrets and counters in the configuration record (written by the
# rate-limited service, or at once with persist.save_now()); persist.event
# (kind, text) logs; persist.log.listeners gets every event; persist.actor
# names who changes limits (default "host"), e.g. "tech" once authenticated.
from pen import core as C
from pen import errors as E
from pen import eventlog as EL
from pen import faults as F
from pen import limits as L
from pen import sessions as S
from pen import store as ST
from pen.compat import const, ticks_diff
from pen.frame import put_int, put_text
from pen.protocol import STATUS_PART_MAX

_PAGE = const(8)  # records per `log`/`sessions` reply
_RETRY_MS = const(5000)  # back-off after a storage error
_MAX_GAP_MS = const(60000)  # longest believable pause between two passes (flash stalls)
# An `ok` is durable (DESIGN §4): a change is written before its reply while
# this budget lasts (a burst of WT_BURST writes, one more every WT_REFILL_MS);
# beyond it (a flood from a script) or with the drive on the reply says
# stored=0 and the record follows within MIN_WRITE_INTERVAL_MS of the last
# write (drive off), or at once on `sync`.
WT_BURST = const(8)
WT_REFILL_MS = const(2000)
_LIMIT_KEYS = tuple(s.key for s in L.CLINIC)  # the clinic limits: logged as "limit"


def _show(key, value):
    for s in L.CLINIC + L.WORKING:
        if s.key == key:
            return s.show(value)
    return str(value)


class Persistence:
    def __init__(self, core, ops, feed=None):
        self.core = core
        self.store = ST.Store(ops)
        self.log = EL.EventLog(EL.Ring(ops, "log", EL.EV_BODY, 0xE5))
        self.sessions = S.SessionStore(ops)
        self.boot_no = 0
        self.ms = 0  # monotonic ms since boot
        self.last_now = None  # the previous pass's time (None: none yet)
        self.actor = "host"
        self.errors = 0
        self.snap = [0] * len(ST.FIELDS)
        self.cfg_gen = core.cfg_gen  # the core's configuration generation last seen
        self.fault_seen = 0
        self.was_running = 0
        self.cur = None  # open session
        self.spare = None  # the next session's record, made with the drive off
        self.cur_dirty = 0
        self.idle_ms = 0
        self.run0 = 0
        self.strokes0 = 0
        self.retry_ms = 0  # after a storage error, no flash writes before this
        self.wt_tokens = WT_BURST  # write-through budget (see WT_BURST)
        self.wt_ms = 0
        self.coalesced = 0  # changes answered stored=0 (written later)

    # --- boot: load the configuration, count the boot, scan the rings,
    # close a session a reset left open ---
    def boot(self, cause):
        problems = []
        try:
            values = self.store.load()
            problems = self.store.problems
        except Exception as e:  # noqa: BLE001 - the pen always boots
            self.store.status = "error"
            values = ST.defaults()
            self.store.values = values
            problems = ["load_failed:%s" % type(e).__name__]
        # the stored record (validated, migrated) takes the core's one road
        core = self.core
        new = {}
        for i, k in enumerate(ST.FIELDS):
            new[k] = self.snap[i] = values[k]
        try:
            core.configure(new)
        except E.PenError as e:  # store.validate holds the same rules: never expected
            self.event(EL.EV_INTEGRITY, "cfg_refused:%d" % e.code)
        self.cfg_gen = core.cfg_gen
        self.boot_no = values["boots"] + 1
        self.store.set("boots", self.boot_no)
        self.event(EL.EV_BOOT, "n=%d cause=%s cfg=%s" % (self.boot_no, cause, self.store.status))
        for problem in problems:
            self.event(EL.EV_INTEGRITY, problem)
        self._guard(self._boot_rings)
        self._guard(self._flush_all)

    def _boot_rings(self):
        for name, ring in (("log", self.log.ring), ("sessions", self.sessions.ring)):
            torn = ring.scan()
            if torn:
                self.event(EL.EV_INTEGRITY, "%s:%d_torn_records_skipped" % (name, torn))
        # SR7: a reset (watchdog, brown-out, power cycle) does not restart
        # the session timer: the open record (rewritten at every stop) goes
        # on, on top of the timer stored when the records before it closed
        base = self.sessions.load_timer()
        self.core.run_ms = base
        s = self.sessions.load_open()
        if s is not None:
            done = self.sessions.is_recorded(s)
            if s.end_reason == S.END_OPEN:
                if not done:
                    self.cur = s
                    self.core.run_ms = base + s.run_ms
                    self.event(EL.EV_SESSION, "restored:run_s=%d,boot=%d" % (self.core.run_ms // 1000, s.boot))
                    return
                s.end_reason = S.END_REBOOT
            if done:
                self.sessions.drop_open()
            else:
                self.event(EL.EV_SESSION, "closed_at_boot:seq=%d,boot=%d" % (self.sessions.finish(s), s.boot))

    def event(self, kind, text):
        self.log.add(self.boot_no, self.ms, kind, text)

    def _guard(self, fn, *args):
        """Runs a flash operation; a storage error is counted and logged,
        never raised into the control loop."""
        try:
            fn(*args)
            return True
        except (OSError, ValueError) as e:
            return self._failed(e)

    def _failed(self, e):
        self.errors += 1
        self.retry_ms = self.ms + _RETRY_MS
        self.event(EL.EV_STORAGE, "error:%s" % type(e).__name__)
        return False

    def _flush_all(self):
        if self.cur_dirty and self.cur is not None:
            self.sessions.save_open(self.cur)
            self.cur_dirty = 0
        if self.store.due(self.ms):
            self.store.save(self.ms)
        self.log.flush()

    # --- every loop pass, after the tick ---
    def service(self, now):
        dt = 0 if self.last_now is None else ticks_diff(now, self.last_now)
        if dt < 0 or dt > _MAX_GAP_MS:
            dt = 0  # a clock glitch never fakes elapsed time
        self.last_now = now
        self.ms += dt
        core = self.core
        running = core.running
        cur = self.cur
        if running != self.was_running:
            self.was_running = running
            if running:
                self._burst_start()
                cur = self.cur
            elif cur is not None:
                # the burst ends: its time and strokes go on the record
                cur.run_ms += core.run_ms - self.run0
                cur.strokes += core.strokes - self.strokes0
                cur.last_stop = core.stop_reason
                cur.end_ms = self.ms
                self.cur_dirty = 1
                if core.stop_reason == C.STOP_SESSION:
                    self.end_session(S.END_SESSION_TIME)
                    cur = None
        if cur is not None:
            if core.trig and not core.in_cone:
                cur.tilt_out_ms += dt
            if not running:
                self.idle_ms += dt
                if self.idle_ms >= S.IDLE_END_MS:
                    self.end_session(S.END_IDLE)
        # no record open: the timer stays as it is (SR7: a session that ran
        # out of time, or lay idle, is not restarted by a timer; a technician
        # starts the next one with session-end)
        if core.fault != self.fault_seen:
            if core.fault:
                text = "code=%d,%s" % (core.fault, F.FAULT_NAMES[core.fault])
                if core.fault == F.F_RATE_RUNAWAY:
                    text += ",by=" + F.RUNAWAY_BY[core.runaway_by]  # which of its three checks
                self.event(EL.EV_FAULT, text)
            self.fault_seen = core.fault
        self._check_config()
        if not running and cur is None and self.spare is None:
            self.spare = S.Session(self.boot_no, self.ms)
        # flash writes stall the CPU: only with the drive off
        if not running and core.out.duty == 0:
            if (self.log.queue or self.cur_dirty or self.store.due(self.ms)) and self.ms >= self.retry_ms:
                self._guard(self._flush_all)

    def commit(self, actor, force=False):
        """Called by the protocol right after a configuration change, before
        its reply: logs the change (once, with who made it) and writes the
        record while the drive is off and the write-through budget lasts
        (force: clinic limits and security state, always). Returns 1 when the
        change is on flash, 0 when the record is still to be written."""
        self.actor = actor
        self._check_config()
        if not self.store.dirty:
            return 1
        if not force:
            while self.wt_tokens < WT_BURST and self.ms - self.wt_ms >= WT_REFILL_MS:
                self.wt_tokens += 1
                self.wt_ms += WT_REFILL_MS
            if self.wt_tokens >= WT_BURST:
                self.wt_ms = self.ms
            if self.wt_tokens <= 0:
                self.coalesced += 1
                return 0
        if self.save_now():
            if self.wt_tokens > 0:
                self.wt_tokens -= 1
            return 1
        self.coalesced += 1
        return 0

    def stored(self):
        """1 when everything acknowledged is on flash."""
        return 0 if self.store.dirty else 1

    def _check_config(self):
        """Takes a changed configuration (the core's generation moved) into
        the record and the log."""
        core = self.core
        if core.cfg_gen == self.cfg_gen:
            return
        self.cfg_gen = core.cfg_gen
        cfg = core.cfg
        snap = self.snap
        for i in range(len(ST.FIELDS)):
            k = ST.FIELDS[i]
            v = getattr(cfg, k)
            if v != snap[i]:
                # a clinic limit's change is logged once, by the security
                # log's limit_change (who, old, new); settings here
                if k not in _LIMIT_KEYS:
                    self.event(EL.EV_SETTING, "%s:%s->%s,by=%s" % (k, _show(k, snap[i]), _show(k, v), self.actor))
                snap[i] = v
                self.store.set(k, v)
        self.actor = "host"

    def _burst_start(self):
        core = self.core
        if self.cur is None:
            # the record made while the drive was off (service): a new
            # object's attributes cost ~270 us on the chip in this pass
            cur = self.spare
            self.spare = None
            if cur is None:
                cur = S.Session(self.boot_no, self.ms)
            cur.start_ms = cur.end_ms = self.ms
            self.cur = cur
            self.event(EL.EV_SESSION, "start")
        self.cur.bursts += 1
        self.cur.used(core.cfg.depth, core.cfg.rate)
        self.idle_ms = 0
        self.run0 = core.run_ms
        self.strokes0 = core.strokes

    def end_session(self, reason):
        """Closes the open session (drive off): writes its record."""
        cur = self.cur
        if cur is None:
            return 0
        if self.core.running:
            _err(E.NOT_WHILE_RUNNING, "a session cannot end while the needles run")
        cur.end_reason = reason
        if reason == S.END_HOST:
            # a technician ends the session: the SR7 timer restarts
            self.core.new_session()
        # else (session time, idle) the record closes but the timer carries
        # on: the next start needs a technician's session-end (SR7). The
        # timer is written before the record closes: a cut between the two
        # counts the record twice (too much time, never too little)
        timer = self.core.run_ms
        ok = self._guard(self.sessions.save_timer, timer)
        if reason != S.END_IDLE:
            cur.end_ms = self.ms
        self.cur = None
        self.cur_dirty = 0
        ok = self._guard(self.sessions.finish, cur) and ok
        self.event(EL.EV_SESSION, "end:%s,run_s=%d" % (S.END_NAMES[reason], cur.run_ms // 1000))
        return ok

    def log_clear(self):
        self.log.queue = []
        self._guard(self.log.ring.clear)

    def save_now(self):
        """Write the configuration at once, past the rate limit (for values
        that must not be lost to a quick power cycle, e.g. an auth failure
        counter). Still never while the drive runs: returns False then."""
        if self.core.running or self.store.status == "error":
            return False
        self.store.dirty = True
        # the write inline, not through _guard: this is the deepest flash
        # write (a protocol request's commit), and every Python frame costs
        # the 8 KB C stack ~270 B that a hall IRQ landing in littlefs needs
        # (docs/performance.md "The C stack")
        try:
            self.store.save(self.ms)
            self.log.flush()
            return True
        except (OSError, ValueError) as e:
            return self._failed(e)

    def status_put(self, buf, i):
        """'store=... cfg_writes=N stored=N boot=N' written at buf[i:], no
        heap: status's part (pen.protocol status_puts)."""
        i = put_text(buf, put_text(buf, i, "store="), self.store.status)
        i = put_int(buf, put_text(buf, i, " cfg_writes="), self.store.values["writes"])
        i = put_int(buf, put_text(buf, i, " stored="), self.stored())
        return put_int(buf, put_text(buf, i, " boot="), self.boot_no)

    def status_words(self):
        """The same words as a str (info's part)."""
        b = bytearray(2 * STATUS_PART_MAX)
        return bytes(b[: self.status_put(b, 0)]).decode()

    # --- commands (registered by register() below) ---
    def _page(self, args, src):
        """One page of records from src (the event log or the sessions)
        with seq >= SINCE, and the reply's head words."""
        if len(args) > 1:
            _err(E.BAD_ARGUMENTS, "usage: log|sessions [SINCE_SEQ]")
        since = 0
        if args:
            a = args[0]
            if not a.isdigit() or len(a) > 9:
                _err(E.BAD_NUMBER, "since: '%s' is not a record number (0-999999999)" % a[:16])
            since = int(a)
        recs = src.read(since, _PAGE)
        nxt = recs[-1][0] + 1 if recs else max(since, src.ring.next_seq)
        return recs, ["n=%d next=%d boot=%d now_ms=%d" % (len(recs), nxt, self.boot_no, self.ms)]

    def cmd_log(self, args):
        recs, words = self._page(args, self.log)
        for r in recs:
            words.append("e=%d:%d:%d:%s:%s" % r)
        return " ".join(words)

    def cmd_sessions(self, args):
        recs, words = self._page(args, self.sessions)
        for seq, s in recs:
            words.append("s=" + _session_token(seq, s))
        cur = self.cur
        if len(recs) < _PAGE and cur is not None:
            if self.core.running:  # the burst in progress counts as far as it went
                run, strokes = cur.run_ms, cur.strokes
                cur.run_ms += self.core.run_ms - self.run0
                cur.strokes += self.core.strokes - self.strokes0
                words.append("o=" + _session_token("open", cur))
                cur.run_ms, cur.strokes = run, strokes
            else:
                words.append("o=" + _session_token("open", cur))
        return " ".join(words)

    def cmd_storage(self, args):
        _no_args(args)
        st = self.store
        return (
            "cfg=%s cfg_writes=%d cfg_seq=%d boot=%d now_ms=%d log_next=%d log_queued=%d log_dropped=%d"
            " sessions_next=%d errors=%d stored=%d coalesced=%d"
            % (
                st.status,
                st.values["writes"],
                st.seq,
                self.boot_no,
                self.ms,
                self.log.ring.next_seq,
                len(self.log.queue),
                self.log.dropped,
                self.sessions.ring.next_seq,
                self.errors,
                self.stored(),
                self.coalesced,
            )
        )

    def cmd_sync(self, args):
        """Writes whatever was acknowledged but not yet stored, now (drive
        off); answers stored=1 when it is on flash."""
        _no_args(args)
        if self.store.dirty or self.log.queue:
            if self.core.running:
                _err(
                    E.NOT_WHILE_RUNNING,
                    "flash is written only with the drive off: the record follows when the needles stop",
                )
            if not self.save_now():
                _err(E.STORAGE, "the configuration record could not be written")
        return "stored=%d cfg_writes=%d" % (self.stored(), self.store.values["writes"])

    def cmd_session_end(self, args):
        _no_args(args)
        core = self.core
        if self.cur is None:
            if core.run_ms > 0:
                # the record closed (session time or idle) but the timer
                # carries on: the technician starts the next session
                core.new_session()
                if not self._guard(self.sessions.save_timer, 0):
                    _err(E.STORAGE, "the session timer could not be written")
                self.event(EL.EV_SESSION, "new:by_technician")
                return ""
            _err(E.NOT_ALLOWED_IN_STATE, "no session is open")
        if not self.end_session(S.END_HOST):
            _err(E.STORAGE, "the session record could not be written")
        return ""


def _err(code, text):
    raise E.PenError(code, text)


def _no_args(args):
    if args:
        _err(E.BAD_ARGUMENTS, "this command takes no arguments")


def _session_token(seq, s):
    return "%s:%d:%d:%d:%d:%d:%d:%d:%d:%d:%d:%d:%s:%s" % (
        seq,
        s.boot,
        s.start_ms,
        s.end_ms,
        s.depth_lo if s.bursts else 0,
        s.depth_hi,
        s.rate_lo if s.bursts else 0,
        s.rate_hi,
        s.strokes,
        s.run_ms,
        s.tilt_out_ms,
        s.bursts,
        C.STOP_NAMES[s.last_stop] if s.last_stop < len(C.STOP_NAMES) else "?",
        S.END_NAMES[s.end_reason] if s.end_reason < len(S.END_NAMES) else "?",
    )


# --- protocol glue ---
def register(proto, p):
    """Registers the persistence commands and its part of status and info.
    Reading the flash rings is not done while the needles run."""
    proto.register("log", p.cmd_log, usage="log [SINCE]", idle_only=True)
    proto.register("sessions", p.cmd_sessions, usage="sessions [SINCE]", idle_only=True)
    proto.register("storage", p.cmd_storage, usage="storage")
    proto.register("session-end", p.cmd_session_end, needs_auth=True, usage="session-end")
    proto.register("sync", p.cmd_sync, usage="sync")
    proto.on_config = p.commit
    proto.status_puts.append(p.status_put)
    proto.info_parts.append(p.status_words)


class _FedOps:
    """Feeds the watchdog before every flash operation (a littlefs write can
    take tens of ms on the RP2040): at the look-up of the operation, which
    the caller makes right before calling it."""

    def __init__(self, ops, feed):
        self.o = ops
        self.feed = feed

    def __getattr__(self, name):
        self.feed()
        return getattr(self.o, name)


def attach(fw, board):
    """Called once by the runtime at boot. A board without storage
    (no fs_root) runs without persistence."""
    root = getattr(board, "fs_root", None)
    ops = getattr(board, "fs_ops", None)
    if ops is None:
        if root is None:
            return None
        ops = ST.FileOps(root)
    # a board whose watchdog needs a longer timeout for a flash write
    # (boards/pico.py feed_flash) gives it here
    feed = getattr(board, "feed_flash", None) or board.feed_watchdog
    p = Persistence(fw.core, _FedOps(ops, feed))
    p.boot(reset_cause_name(board))
    register(fw.proto, p)
    return p


class AuthStore:
    """pen.auth's store interface (get/put of short str/int values) on the
    persisted key/value entries of the configuration record. Secrets and
    failure counters are written at once (save_now), not when the rate
    limit next allows, so a quick power cycle cannot reset a lock-out."""

    def __init__(self, p):
        self.p = p

    def get(self, key, default=None):
        v = self.p.store.kv_get(key)
        if v is None:
            return default
        return int(v) if v.isdigit() else v

    def put(self, key, value):
        self.p.store.kv_set(key, value)
        self.p.save_now()


class AuthLog:
    """pen.auth's event-log interface, log(event, **fields), onto the flash
    event log; every entry is also echoed as a '! log ...' line."""

    def __init__(self, p, echo):
        self.p = p
        self.echo = echo

    def __call__(self, event, **fields):
        keys = sorted(fields)
        text = event
        for k in keys:
            text += " %s=%s" % (k, fields[k])
        if event == "limit_change" or event == "tilt_ref":
            kind = EL.EV_LIMIT
        elif event.startswith("integrity"):
            kind = EL.EV_INTEGRITY
        else:
            kind = EL.EV_AUTH
        self.p.event(kind, text)
        self.echo("log " + text)

    @property
    def seq(self):
        return self.p.log.ring.next_seq - 1 + len(self.p.log.queue)

    def clear(self):
        self.p.log_clear()


_CAUSES = (
    ("PWRON_RESET", "power_on"),
    ("WDT_RESET", "watchdog"),
    ("HARD_RESET", "hard_reset"),
    ("SOFT_RESET", "soft_reset"),
    ("DEEPSLEEP_RESET", "deepsleep"),
)


def reset_cause_name(board):
    rc = getattr(board, "reset_cause", None)
    if rc is None:
        return "unknown"
    if callable(rc):
        rc = rc()
    if isinstance(rc, str):
        return rc
    try:
        import machine  # type: ignore[import-not-found]

        for attr, name in _CAUSES:
            if getattr(machine, attr, None) == rc:
                return name
    except ImportError:
        pass
    return "code_%d" % rc
