# Persistence glue (docs/persistence.md): loads the configuration at boot,
# saves it when it changed and the drive is off, writes the event log and
# keeps the treatment record of the session, all outside the control tick.
# register() adds the protocol commands `log`, `sessions`, `storage` and
# `session-end` to a Protocol's command table, and extends info/status.
#
# For other modules (security): persist.store.kv_get/kv_set(name, value)
# keep short secrets and counters in the configuration record (written by the
# rate-limited service, or at once with persist.save_now()); persist.event
# (kind, text) logs; persist.log.listeners gets every event; persist.actor
# names who changes limits (default "host"), e.g. "tech" once authenticated.
from pen import core as C
from pen import eventlog as EL
from pen import faults as F
from pen import limits as L
from pen import sessions as S
from pen import store as ST
from pen.compat import const, lazy, ticks_diff

CHECK_MS = const(50)  # how often the configuration is compared for changes
PAGE = const(8)
RETRY_MS = const(5000)
MAX_GAP_MS = const(
    60000
)  # longest believable pause between two passes (flash stalls)  # back-off after a storage error  # records per `log`/`sessions` reply
_LIMIT_KEYS = ("max_depth", "max_rate", "max_tilt", "max_session_min")


def _show(key, value):
    for s in L.CLINIC + L.WORKING:
        if s.key == key:
            return s.show(value)
    return str(value)


class Persistence:
    def __init__(self, core, ops, feed=None):
        self.core = core
        self.ops = ops
        self.feed = feed  # watchdog feed between flash operations
        self.store = ST.Store(ops)
        self.log = EL.EventLog(EL.Ring(ops, "log", EL.EV_BODY, 0xE5))
        self.sessions = S.SessionStore(ops)
        self.boot_no = 0
        self.ms = 0  # monotonic ms since boot
        self.last_now = 0
        self.started = 0
        self.actor = "host"
        self.errors = 0
        self.snap = [0] * len(ST.FIELDS)
        self.next_check = 0
        self.fault_seen = 0
        self.was_running = 0
        self.cur = None  # open session
        self.cur_dirty = 0
        self.idle_ms = 0
        self.run0 = 0
        self.strokes0 = 0
        self.retry_ms = 0  # after a storage error, no flash writes before this

    # --- boot (the code is in pen.pboot, dropped after boot) ---
    def boot(self, cause):
        lazy("pboot", "boot", self, cause)

    def event(self, kind, text):
        self.log.add(self.boot_no, self.ms, kind, text)

    def _guard(self, fn):
        """Runs a flash operation; a storage error is counted and logged,
        never raised into the control loop."""
        try:
            fn()
            return True
        except (OSError, ValueError) as e:
            self.errors += 1
            self.retry_ms = self.ms + RETRY_MS
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
        if self.started:
            dt = ticks_diff(now, self.last_now)
            if dt < 0 or dt > MAX_GAP_MS:
                dt = 0  # a clock glitch never fakes elapsed time
        else:
            dt = 0
            self.started = 1
        self.last_now = now
        self.ms += dt
        core = self.core
        running = core.running
        if running != self.was_running:
            if running:
                self._burst_start()
            else:
                self._burst_end()
            self.was_running = running
        cur = self.cur
        if cur is not None:
            if core.trig and not core.in_cone:
                cur.tilt_out_ms += dt
            if not running:
                self.idle_ms += dt
                if self.idle_ms >= S.IDLE_END_MS:
                    self.end_session(S.END_IDLE)
        elif core.block & C.BLK_SESSION:
            # the last session ran out of time: after the idle period the
            # next patient's session may start (as an idle end would allow)
            self.idle_ms += dt
            if self.idle_ms >= S.IDLE_END_MS:
                self.idle_ms = 0
                core.new_session()
        if core.fault != self.fault_seen:
            if core.fault:
                self.event(EL.EV_FAULT, "code=%d,%s" % (core.fault, F.FAULT_NAMES[core.fault]))
            self.fault_seen = core.fault
        if self.ms >= self.next_check:
            self.next_check = self.ms + CHECK_MS
            self._check_config()
        # flash writes stall the CPU: only with the drive off
        if not running and core.out.duty == 0:
            if (self.log.queue or self.cur_dirty or self.store.due(self.ms)) and self.ms >= self.retry_ms:
                self._guard(self._flush_all)

    def _check_config(self):
        cfg = self.core.cfg
        snap = self.snap
        for i in range(len(ST.FIELDS)):
            k = ST.FIELDS[i]
            v = getattr(cfg, k)
            if v != snap[i]:
                kind = EL.EV_LIMIT if k in _LIMIT_KEYS else EL.EV_SETTING
                self.event(kind, "%s:%s->%s,by=%s" % (k, _show(k, snap[i]), _show(k, v), self.actor))
                snap[i] = v
                self.store.set(k, v)

    def _burst_start(self):
        core = self.core
        if self.cur is None:
            self.cur = S.Session(self.boot_no, self.ms)
            self.event(EL.EV_SESSION, "start")
        self.cur.bursts += 1
        self.cur.used(core.cfg.depth, core.cfg.rate)
        self.idle_ms = 0
        self.run0 = core.run_ms
        self.strokes0 = core.strokes

    def _burst_end(self):
        core = self.core
        cur = self.cur
        if cur is None:
            return
        cur.run_ms += core.run_ms - self.run0
        cur.strokes += core.strokes - self.strokes0
        cur.last_stop = core.stop_reason
        cur.end_ms = self.ms
        self.cur_dirty = 1
        if core.stop_reason == C.STOP_SESSION:
            self.end_session(S.END_SESSION_TIME)

    def end_session(self, reason):
        """Closes the open session (drive off): writes its record. The code
        is in pen.persistx (loaded per call)."""
        return lazy("persistx", "end_session", self, reason)

    def save_now(self):
        """Write the configuration at once, past the rate limit (for values
        that must not be lost to a quick power cycle, e.g. an auth failure
        counter). Still never while the drive runs: returns False then."""
        if self.core.running or self.store.status == "error":
            return False
        self.store.dirty = True
        return self._guard(self._save_now)

    def _save_now(self):
        self.store.save(self.ms)
        self.log.flush()

    def status_words(self):
        return "store=%s cfg_writes=%d boot=%d" % (self.store.status, self.store.values["writes"], self.boot_no)


# --- protocol glue (the commands are in pen.persistx, loaded per call) ---
def register(proto, p):
    """Registers the persistence commands in the protocol's registry."""
    cmds = proto.commands
    for name in ("status", "info"):  # not `id`: the short handshake
        if name in cmds:
            proto.register(name, _wrap(proto, p, cmds[name][0]), usage=cmds[name][2])
    proto.register("log", ("persistx", "cmd_log", p), usage="log [SINCE]")
    proto.register("sessions", ("persistx", "cmd_sessions", p), usage="sessions [SINCE]")
    proto.register("storage", ("persistx", "cmd_storage", p), usage="storage")
    proto.register("session-end", ("persistx", "cmd_session_end", p), usage="session-end")


def _wrap(proto, p, fn):
    def status(args):
        return proto.run(fn, args) + " " + p.status_words()

    return status


class _FedOps:
    """Feeds the watchdog before every flash operation (a littlefs write can
    take tens of ms on the RP2040)."""

    def __init__(self, ops, feed):
        self.o = ops
        self.feed = feed

    def read(self, name):
        self.feed()
        return self.o.read(name)

    def write(self, name, data):
        self.feed()
        self.o.write(name, data)

    def append(self, name, data):
        self.feed()
        self.o.append(name, data)

    def rename(self, a, b):
        self.feed()
        self.o.rename(a, b)

    def remove(self, name):
        self.feed()
        self.o.remove(name)

    def size(self, name):
        return self.o.size(name)


def attach(fw, board):
    """Called once by the runtime at boot. A board without storage
    (no fs_root) runs without persistence."""
    root = getattr(board, "fs_root", None)
    ops = getattr(board, "fs_ops", None)
    if ops is None:
        if root is None:
            return None
        ops = ST.FileOps(root)
    p = Persistence(fw.core, _FedOps(ops, board.feed_watchdog))
    p.boot(lazy("pboot", "reset_cause_name", board))
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
        lazy("persistx", "log_clear", self.p)
