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
# MemStore and MemLog below are the in-memory versions (tests, simulator).
import binascii
import hashlib

from pen import errors as E
from pen import limits as L
from pen.compat import const, ticks_diff

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

_BLOCK = const(64)  # SHA-256 block size


# --- HMAC-SHA256 (RFC 2104) on hashlib.sha256 ---
def hmac_sha256(key, msg):
    if len(key) > _BLOCK:
        key = hashlib.sha256(key).digest()
    k = bytearray(_BLOCK)
    k[: len(key)] = key
    ipad = bytearray(_BLOCK)
    opad = bytearray(_BLOCK)
    for i in range(_BLOCK):
        ipad[i] = k[i] ^ 0x36
        opad[i] = k[i] ^ 0x5C
    inner = hashlib.sha256(ipad)
    inner.update(msg)
    outer = hashlib.sha256(opad)
    outer.update(inner.digest())
    return outer.digest()


def equal(a, b):
    """Compare in time independent of where the first difference is."""
    if len(a) != len(b):
        return False
    d = 0
    for i in range(len(a)):
        d |= a[i] ^ b[i]
    return d == 0


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


def challenge_message(serial, nonce):
    return b"pen-auth-v1|" + serial.encode() + b"|" + nonce


def response_for(key, serial, nonce):
    """What the host sends back: HMAC(key, 'pen-auth-v1|SERIAL|NONCE')."""
    return hmac_sha256(key, challenge_message(serial, nonce))


def wrap_pad(old_key, nonce):
    return hmac_sha256(old_key, b"pen-rotate-v1|" + nonce)


def rotate_check(new_key, nonce):
    return hmac_sha256(new_key, b"pen-rotate-check-v1|" + nonce)[:8]


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


class MemStore:
    """In-memory stand-in for the flash store: same get/put interface."""

    def __init__(self):
        self.data = {}
        self.writes = 0

    def get(self, key, default=None):
        return self.data.get(key, default)

    def put(self, key, value):
        self.data[key] = value
        self.writes += 1


class MemLog:
    """In-memory event log: a bounded ring of (seq, event, fields). Also
    echoes each event to `echo(text)` (the protocol's '!' lines) if given."""

    def __init__(self, size=64, echo=None):
        self.size = size
        self.entries = []
        self.seq = 0
        self.echo = echo

    def __call__(self, event, **fields):
        self.seq += 1
        self.entries.append((self.seq, event, fields))
        if len(self.entries) > self.size:
            self.entries.pop(0)
        if self.echo is not None:
            self.echo("log %s %s" % (event, format_fields(fields)))

    def clear(self):
        self.entries = []

    def count(self, event):
        n = 0
        for e in self.entries:
            if e[1] == event:
                n += 1
        return n


def format_fields(fields):
    keys = sorted(fields)
    return " ".join("%s=%s" % (k, fields[k]) for k in keys)


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
        b = backoff_ms(self.fails())
        if not b:
            return 0
        now = self.clock()
        if self.lock_start is None:
            self.lock_start = now
        left = b - ticks_diff(now, self.lock_start)
        return left if left > 0 else 0

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
        if not self.technician():
            self.log("denied", action=what.replace(" ", "_"), reason="no_session")
            raise E.PenError(E.AUTH_REQUIRED, "%s needs an authenticated technician (penctl auth)" % what)

    def end_session(self, why):
        if self.session:
            self.session = 0
            self.session_nonce = None
            self.log("session_end", reason=why)

    # --- challenge-response ---
    def _check_lock(self):
        left = self.locked_ms()
        if left:
            self.nonce = None
            self.log("auth_locked", fails=self.fails(), left_s=(left + 999) // 1000)
            raise E.PenError(
                E.AUTH_LOCKED,
                "authentication locked for %d s after %d failed attempts" % ((left + 999) // 1000, self.fails()),
            )

    def challenge(self):
        self._check_lock()
        if not self.provisioned():
            self.log("auth_fail", reason="no_key")
            raise E.PenError(E.AUTH_FAILED, "no technician key provisioned (factory step: penctl auth --provision)")
        self.nonce = self.rng(NONCE_LEN)
        self.nonce_ms = self.clock()
        return hexs(self.nonce)

    def respond(self, text):
        self._check_lock()
        nonce = self.nonce
        self.nonce = None  # one answer per challenge, right or wrong
        key = self.key()
        if nonce is None or key is None:
            self._fail("no_challenge")
        if ticks_diff(self.clock(), self.nonce_ms) > CHALLENGE_MS:
            self._fail("challenge_expired")
        got = unhex(text, 32)
        if got is None:
            self._fail("malformed")
        if not equal(got, response_for(key, self.serial, nonce)):
            self._fail("wrong_response")
        if self.fails():
            self.store.put(K_FAILS, 0)
        self.lock_start = None
        self.session = 1
        self.session_nonce = nonce
        self.last_ms = self.clock()
        self.log("auth_ok")
        return "role=technician idle_s=%d" % (IDLE_MS // 1000)

    def _fail(self, reason):
        n = self.fails() + 1
        self.store.put(K_FAILS, n)  # persisted before the answer goes out
        b = backoff_ms(n)
        if b:
            self.lock_start = self.clock()
        self.end_session("auth_fail")
        self.log("auth_fail", reason=reason, fails=n, lock_s=b // 1000)
        if b:
            raise E.PenError(E.AUTH_LOCKED, "authentication failed (%s); locked for %d s" % (reason, b // 1000))
        raise E.PenError(
            E.AUTH_FAILED, "authentication failed (%s); %d of %d attempts left" % (reason, FREE_FAILS - n, FREE_FAILS)
        )

    # --- keys ---
    def provision(self, text):
        if self.provisioned():
            self.log("provision_refused")
            raise E.PenError(E.AUTH_FAILED, "a key is already provisioned; replacing it needs the old key (key rotate)")
        key = unhex(text, KEY_LEN)
        if key is None:
            raise E.PenError(E.BAD_ARGUMENTS, "key: %d hex digits expected" % (2 * KEY_LEN))
        self.store.put(K_KEY, hexs(key))
        self.store.put(K_FAILS, 0)
        self.log("key_provisioned")
        return "key=set"

    def rotate(self, wrapped_hex, check_hex):
        """New key = wrapped XOR HMAC(old, rotate|session nonce); the check
        proves the sender knew the new key too. Needs a session (the old key)."""
        self.require("key rotation")
        old = self.key()
        wrapped = unhex(wrapped_hex, KEY_LEN)
        check = unhex(check_hex, 8)
        if wrapped is None or check is None:
            raise E.PenError(E.BAD_ARGUMENTS, "usage: key rotate WRAPPED(64 hex) CHECK(16 hex)")
        pad = wrap_pad(old, self.session_nonce)
        new = bytearray(KEY_LEN)
        for i in range(KEY_LEN):
            new[i] = wrapped[i] ^ pad[i]
        new = bytes(new)
        if not equal(check, rotate_check(new, self.session_nonce)):
            self.log("key_rotate_refused", reason="bad_check")
            raise E.PenError(E.AUTH_FAILED, "key rotation refused: check value does not match")
        self.store.put(K_KEY, hexs(new))
        self.log("key_rotated")
        self.end_session("key_rotated")
        return "key=rotated"


def gesture_allowed(auth):
    """The physical maintenance gesture (trigger held 5 s at boot) opens the
    REPL only on a pen without a key: on a provisioned pen it would hand the
    key to anyone holding the pen (docs/security.md)."""
    if auth.provisioned():
        auth.log("maintenance_refused", via="gesture", reason="provisioned")
        return False
    auth.log("maintenance_entered", via="gesture")
    return True


# --- protocol glue: registers commands in the protocol's registry ---
def register(proto, auth, log, integrity_state="not_checked", log_clear=None):
    core = proto.core
    cmds = proto.commands
    sec = _Glue(proto, auth, log, integrity_state, log_clear)
    for name in ("info", "id"):
        if name in cmds:
            proto.register(name, sec.wrap_info(cmds[name][0]), usage=cmds[name][2])
    if "status" in cmds:
        proto.register("status", sec.wrap_status(cmds["status"][0]), usage="status")
    sec.read_limits = cmds["limits"][0] if "limits" in cmds else None
    proto.register("auth", sec.cmd_auth, usage="auth [RESPONSE_HEX]")
    proto.register("logout", sec.cmd_logout, usage="logout")
    proto.register("security", sec.cmd_security, usage="security")
    proto.register("key", sec.cmd_key, usage="key provision HEX | key rotate WRAPPED CHECK")
    proto.register("limits", sec.cmd_limits, usage="limits [set KEY VALUE]")
    proto.register("tilt-ref", sec.cmd_tilt_ref, usage="tilt-ref capture|reset")
    proto.register("maintenance", sec.cmd_maintenance, usage="maintenance")
    if log_clear is not None:
        proto.register("log-clear", sec.cmd_log_clear, usage="log-clear")
    # the protocol's own technician-only paths (needs_auth commands, clinic
    # keys in `config import`) ask the same session
    proto.is_authorized = auth.technician
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
            return fn(args) + " integrity=%s mode=%s" % (self.integrity, self.auth.mode)

        return info

    def wrap_status(self, fn):
        def status(args):
            return fn(args) + " integrity=%s" % self.integrity

        return status

    def _not_running(self, what):
        if self.core.running:
            self.log("denied", action=what.replace(" ", "_"), reason="running")
            raise E.PenError(E.NOT_WHILE_RUNNING, "%s is not allowed while the needles run" % what)

    def cmd_auth(self, args):
        if len(args) > 1:
            raise E.PenError(E.BAD_ARGUMENTS, "usage: auth [RESPONSE]")
        self._not_running("authentication")
        if not args:
            return "nonce=%s serial=%s" % (self.auth.challenge(), self.auth.serial)
        return self.auth.respond(args[0])

    def cmd_logout(self, args):
        self.auth.end_session("logout")
        return ""

    def cmd_security(self, args):
        a = self.auth
        return "key=%s session=%s fails=%d locked_s=%d integrity=%s mode=%s events=%d" % (
            "set" if a.provisioned() else "none",
            "technician" if a.technician() else "none",
            a.fails(),
            (a.locked_ms() + 999) // 1000,
            self.integrity,
            a.mode,
            getattr(self.log, "seq", 0),
        )

    def cmd_key(self, args):
        if len(args) == 2 and args[0] == "provision":
            self._not_running("key provisioning")
            return self.auth.provision(args[1])
        if len(args) == 3 and args[0] == "rotate":
            self._not_running("key rotation")
            return self.auth.rotate(args[1], args[2])
        raise E.PenError(E.BAD_ARGUMENTS, "usage: key provision HEX | key rotate WRAPPED CHECK")

    def cmd_limits(self, args):
        if not args:
            return self.read_limits(args) if self.read_limits else ""
        if args[0] != "set" or len(args) != 3:
            raise E.PenError(E.BAD_ARGUMENTS, "usage: limits | limits set KEY VALUE")
        self.auth.require("changing clinic limits")
        self._not_running("changing clinic limits")
        s = L.find(L.CLINIC, args[1])
        value = s.parse(args[2])
        s.check_hw(value)
        cfg = self.core.cfg
        # lowering a clinic limit below a working setting is refused, naming
        # both: the technician lowers the working setting first (never a
        # silent change of what the operator set)
        for w in L.WORKING:
            if w.clinic_key == s.key and getattr(cfg, w.key) > value:
                raise E.PenError(
                    E.LIMIT_ORDER,
                    "%s %s %s below working %s %s %s; lower %s first"
                    % (s.key, s.show(value), s.unit, w.key, w.show(getattr(cfg, w.key)), w.unit, w.key),
                )
        old = getattr(cfg, s.key)
        setattr(cfg, s.key, value)
        self.log("limit_change", key=s.key, old=s.show(old), new=s.show(value))
        return "%s=%s" % (s.key, s.show(value))

    def cmd_tilt_ref(self, args):
        if len(args) != 1 or args[0] not in ("capture", "reset"):
            raise E.PenError(E.BAD_ARGUMENTS, "usage: tilt-ref capture | tilt-ref reset")
        self.auth.require("capturing the tilt reference")
        self._not_running("capturing the tilt reference")
        # the core owns the reference: it uses its filtered accelerometer
        # vector, refuses a moving pen and restarts the tilt hold (SR1)
        cfg = self.core.cfg
        old = (cfg.ref_x, cfg.ref_y, cfg.ref_z)
        if args[0] == "reset":
            self.core.reset_tilt_ref()
        else:
            self.core.capture_tilt_ref()
        x, y, z = cfg.ref_x, cfg.ref_y, cfg.ref_z
        self.log("tilt_ref", old="%d,%d,%d" % old, new="%d,%d,%d" % (x, y, z))
        return "ref=%d,%d,%d" % (x, y, z)

    def cmd_maintenance(self, args):
        self.auth.require("maintenance")
        self._not_running("maintenance")
        a = self.auth
        a.mode = MODE_MAINTENANCE
        self.core.safe_mode = 1  # drive locked off from now on
        self.core.request_stop()
        a.leave_requested = 1
        self.log("maintenance_entered", via="command")
        return "mode=maintenance drive=locked"

    def cmd_log_clear(self, args):
        self.auth.require("clearing the event log")
        self._not_running("clearing the event log")
        self.log_clear()
        self.log("log_cleared")
        return ""
