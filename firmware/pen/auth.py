# Technician authentication (docs/security.md): roles, HMAC-SHA256
# challenge-response on MicroPython's hashlib (there is no hmac module on the
# board), one-time provisioning, key rotation that needs the old key, attempt
# limiting with a growing back-off that survives a reboot, and maintenance
# mode. Also the protocol glue: register(proto, auth) adds the commands.
#
# Persistence goes through a small interface so that the flash store
# (pen/store.py) can be wired in by the runtime:
#   store.get(key, default) / store.put(key, value)    values: str or int
#   log(event, **fields)                               the event log
# MemStore and MemLog are the in-memory versions (tests, simulator).
#
# Only what the pen needs between commands stays on the heap: the state, the
# session checks and the glue. HMAC, challenge-response, keys, MemStore,
# MemLog, gesture_allowed and the commands' code live in pen.authx, imported
# for one call and dropped after (DESIGN §7 heap budget); their names are
# still reachable here (module __getattr__ below).
import binascii

from pen import errors as E
from pen import limits as L
from pen.compat import const, lazy, ticks_diff

try:
    from os import urandom as _urandom
except ImportError:  # pragma: no cover - every port we target has it
    _urandom = None

KEY_LEN = const(32)  # bytes of the device secret (256 bit)
NONCE_LEN = const(16)  # bytes of a challenge
FREE_FAILS = const(5)  # failed attempts before the first lock-out
BACKOFF_BASE_MS = const(30000)  # first lock-out; doubles with every further failure
BACKOFF_MAX_MS = const(3600000)  # never longer than an hour
CHALLENGE_MS = const(30000)  # a challenge must be answered within 30 s
IDLE_MS = const(120000)  # a technician session ends after 2 min without a command
REJECT_LOG_MS = const(1000)  # serial rejections are logged at most once a second

# store keys
K_KEY = "auth.key"  # hex of the device secret
K_FAILS = "auth.fails"  # consecutive failed attempts

MODE_PRODUCTION = "production"
MODE_MAINTENANCE = "maintenance"


def __getattr__(name):
    # hmac_sha256, equal, response_for, wrap_pad, rotate_check, MemStore,
    # MemLog, format_fields, gesture_allowed ...: from pen.authx
    if name[:2] == "__":
        raise AttributeError(name)
    import sys

    __import__("pen.authx")
    return getattr(sys.modules["pen.authx"], name)


def hexs(b):
    return binascii.hexlify(b).decode()


def unhex(text, n):
    """Exactly n bytes from 2n hex digits, else None."""
    if len(text) != 2 * n:
        return None
    for c in text:
        if c not in "0123456789abcdefABCDEF":
            return None
    return binascii.unhexlify(text)


def backoff_ms(fails):
    """Lock-out after `fails` consecutive failures: 0 below FREE_FAILS, then
    30 s, 60 s, 120 s ... at most an hour."""
    if fails < FREE_FAILS:
        return 0
    n = fails - FREE_FAILS
    if n >= 7:
        return BACKOFF_MAX_MS
    ms = BACKOFF_BASE_MS << n
    return ms if ms < BACKOFF_MAX_MS else BACKOFF_MAX_MS


class Auth:
    """Roles and the authentication state machine. `clock()` returns the
    core's time in ms ticks (the firmware never reads a clock here);
    `rng(n)` returns n random bytes."""

    def __init__(self, store, log, serial, clock, rng=None):
        self.store = store
        self.log = log
        self.serial = serial
        self.clock = clock
        self.rng = rng or _urandom
        self.nonce = None  # the outstanding challenge, used at most once
        self.nonce_ms = 0
        self.session = 0  # 1: technician
        self.on_session_end = None  # hook: a remote run ends with the session
        self.session_nonce = None
        self.last_ms = 0
        self.lock_start = None  # set when a lock-out starts (or at first use after boot)
        self.mode = MODE_PRODUCTION
        self.leave_requested = 0

    # --- state ---
    def key(self):
        h = self.store.get(K_KEY)
        return unhex(h, KEY_LEN) if h else None

    def provisioned(self):
        return self.key() is not None

    def fails(self):
        return self.store.get(K_FAILS, 0) or 0

    def locked_ms(self):
        """Remaining lock-out in ms (0: not locked). After a reboot the
        lock-out starts again in full: a reboot never shortens it."""
        return lazy("authx", "locked_ms", self)

    def technician(self):
        """True while a technician session is open; ends on idle timeout."""
        if not self.session:
            return False
        now = self.clock()
        if ticks_diff(now, self.last_ms) > IDLE_MS:
            self.end_session("idle")
            return False
        self.last_ms = now
        return True

    def require(self, what):
        lazy("authx", "require", self, what)

    def end_session(self, why):
        if self.session:
            self.session = 0
            self.session_nonce = None
            self.log("session_end", reason=why)
            if self.on_session_end is not None:
                self.on_session_end()

    def touch(self):
        """Host activity that keeps an open technician session alive (the
        heartbeat of a remote run)."""
        if self.session:
            self.last_ms = self.clock()

    # --- challenge-response and keys (the code is in pen.authx) ---
    def challenge(self):
        return lazy("authx", "challenge", self)

    def respond(self, text):
        return lazy("authx", "respond", self, text)

    def provision(self, text):
        return lazy("authx", "provision", self, text)

    def rotate(self, wrapped_hex, check_hex):
        """New key = wrapped XOR HMAC(old, rotate|session nonce); the check
        proves the sender knew the new key too. Needs a session (the old key)."""
        return lazy("authx", "rotate", self, wrapped_hex, check_hex)


# --- protocol glue: registers commands in the protocol's registry ---
def register(proto, auth, log, integrity_state="not_checked", log_clear=None):
    core = proto.core
    cmds = proto.commands
    sec = _Glue(proto, auth, log, integrity_state, log_clear)
    for name in ("info",):  # `id` stays the short handshake (docs/protocol.md)
        if name in cmds:
            proto.register(name, sec.wrap_info(cmds[name][0]), usage=cmds[name][2])
    if "status" in cmds:
        proto.register("status", sec.wrap_status(cmds["status"][0]), usage="status")
    sec.read_limits = cmds["limits"][0] if "limits" in cmds else None
    proto.register("auth", ("authx", "cmd_auth", sec), usage="auth [RESPONSE_HEX]")

    def logout(args):
        # resident: a host closing its connection during a treatment logs out
        auth.end_session("logout")
        return ""

    proto.register("logout", logout, usage="logout")
    proto.register("security", ("authx", "cmd_security", sec), usage="security")
    proto.register("key", ("authx", "cmd_key", sec), usage="key provision HEX | key rotate WRAPPED CHECK")
    lazy_limits = ("authx", "cmd_limits", sec)

    def limits(args):
        # reading the clinic limits is resident (a technician may look during
        # a treatment); `limits set` is loaded per call and refused then
        if not args:
            return proto._pairs(L.CLINIC, None)
        return proto.run(lazy_limits, args)

    proto.register("limits", limits, usage="limits [set KEY VALUE]")
    proto.register("tilt-ref", ("authx", "cmd_tilt_ref", sec), usage="tilt-ref capture|reset")
    proto.register("maintenance", ("authx", "cmd_maintenance", sec), usage="maintenance")
    lazy_remote = ("authx", "cmd_remote", sec)

    def remote(args):
        # service-mode remote start (technician, host heartbeat) is loaded
        # per call; `remote stop` is resident: anyone may stop, also while
        # the needles run
        if len(args) == 1 and args[0] == "stop":
            if core.remote or core.running:
                core.remote_stop()
                log("remote_stop", running=core.running)
            proto.arm_heartbeat(0)
            return "remote=off"
        return proto.run(lazy_remote, args)

    proto.register("remote", remote, usage="remote start [HB_MS] | remote stop")
    if log_clear is not None:
        proto.register("log-clear", ("authx", "cmd_log_clear", sec), usage="log-clear")
    # the protocol's own technician-only paths (needs_auth commands, clinic
    # keys in `config import`) ask the same session
    proto.is_authorized = auth.technician

    # a remote run belongs to the technician session that started it: it
    # ends with the session (logout, idle, a failed attempt, key rotation);
    # its heartbeats count as the technician's activity
    def session_ended():
        if core.remote:
            core.remote_stop()

    auth.on_session_end = session_ended
    proto.on_heartbeat = auth.touch
    # refusals at the byte level (over-long lines, control bytes) are logged,
    # coalesced to one entry a second so a flood cannot wear the flash
    orig_err = proto._err

    def err(code, text, rid=None, checked=False):
        if code in (E.LINE_TOO_LONG, E.BAD_BYTES, E.UNKNOWN_COMMAND):
            sec.reject(code)
        return orig_err(code, text, rid, checked)

    proto._err = err
    if integrity_state not in ("ok", "unverified"):
        core.safe_mode = 1  # drive disabled, state=safe in status
    return sec


class _Glue:
    def __init__(self, proto, auth, log, integrity_state, log_clear):
        self.proto = proto
        self.core = proto.core
        self.auth = auth
        self.log = log
        self.integrity = integrity_state
        self.log_clear = log_clear
        self.read_limits = None
        self.rejects = 0
        self.reject_code = 0
        self.reject_ms = None
        self.ignored_seen = 0

    def reject(self, code):
        self.rejects += 1
        self.reject_code = code
        self.service(self.auth.clock())

    def service(self, now):
        """Called by the runtime between ticks: logs serial rejections and
        ignored control bytes, at most once a second. Allocates nothing
        when there is nothing to log."""
        ign = self.proto.ignored
        if not self.rejects and ign == self.ignored_seen:
            return
        if self.reject_ms is not None and ticks_diff(now, self.reject_ms) < REJECT_LOG_MS:
            return
        self.reject_ms = now
        self.log(
            "serial_reject",
            refused=self.rejects,
            last_code=self.reject_code,
            control_bytes=ign - self.ignored_seen,
        )
        self.rejects = 0
        self.ignored_seen = ign

    def wrap_info(self, fn):
        def info(args):
            return self.proto.run(fn, args) + " integrity=%s mode=%s" % (self.integrity, self.auth.mode)

        return info

    def wrap_status(self, fn):
        def status(args):
            return self.proto.run(fn, args) + " integrity=%s" % self.integrity

        return status
