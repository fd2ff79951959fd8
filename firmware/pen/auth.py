# Technician authentication (docs/security.md): roles, HMAC-SHA256
# challenge-response on MicroPython's hashlib (there is no hmac module on the
# board), one-time provisioning, key rotation that needs the old key, attempt
# limiting with a growing back-off that survives a reboot, and maintenance
# mode. register(proto, auth, ...) adds the technician commands, next to
# their handlers (class Commands), and this module's part of status/info.
#
# Persistence goes through a small interface so that the flash store
# (pen/store.py) can be wired in by the runtime:
#   store.get(key, default) / store.put(key, value)    values: str or int
#   log(event, **fields)                               the event log
# MemStore and MemLog are the in-memory versions (tests, simulator).
import binascii

from pen import errors as E
from pen.compat import const, ticks_diff
from pen.frame import put_text
from pen.protocol import HB_MAX_MS, HB_MIN_MS
from pen.sha import equal, hmac_sha256

try:
    from os import urandom as _urandom
except ImportError:  # pragma: no cover - every port we target has it
    _urandom = None

KEY_LEN = const(32)  # bytes of the device secret (256 bit)
_NONCE_LEN = const(16)  # bytes of a challenge
FREE_FAILS = const(5)  # failed attempts before the first lock-out
BACKOFF_BASE_MS = const(30000)  # first lock-out; doubles with every further failure
BACKOFF_MAX_MS = const(3600000)  # never longer than an hour
CHALLENGE_MS = const(30000)  # a challenge must be answered within 30 s
IDLE_MS = const(120000)  # a technician session ends after 2 min without a command
REJECT_LOG_MS = const(1000)  # serial rejections are logged at most once a second

# store keys
_K_KEY = const("auth.key")  # hex of the device secret
_K_FAILS = const("auth.fails")  # consecutive failed attempts

MODE_PRODUCTION = "production"
MODE_MAINTENANCE = "maintenance"


def hexs(b):
    return binascii.hexlify(b).decode()


def unhex(text, n):
    """Exactly n bytes from 2n hex digits, else None."""
    if len(text) == 2 * n:
        try:
            return binascii.unhexlify(text)
        except ValueError:
            pass
    return None


def backoff_ms(fails):
    """Lock-out after `fails` consecutive failures: 0 below FREE_FAILS, then
    30 s, 60 s, 120 s ... at most an hour."""
    if fails < FREE_FAILS:
        return 0
    return min(BACKOFF_BASE_MS << min(fails - FREE_FAILS, 7), BACKOFF_MAX_MS)


def response_for(key, serial, nonce):
    """What the host sends back: HMAC(key, 'pen-auth-v1|SERIAL|NONCE')."""
    return hmac_sha256(key, b"pen-auth-v1|" + serial.encode() + b"|" + nonce)


def wrap_pad(old_key, nonce):
    return hmac_sha256(old_key, b"pen-rotate-v1|" + nonce)


def rotate_check(new_key, nonce):
    return hmac_sha256(new_key, b"pen-rotate-check-v1|" + nonce)[:8]


def _err(code, text):
    raise E.PenError(code, text)


def _denied(log, what, reason):
    log("denied", action=what.replace(" ", "_"), reason=reason)


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
        if self.echo:
            self.echo("log %s %s" % (event, " ".join("%s=%s" % (k, fields[k]) for k in sorted(fields))))

    def clear(self):
        self.entries = []

    def count(self, event):
        n = 0
        for e in self.entries:
            if e[1] == event:
                n += 1
        return n


def gesture_allowed(auth):
    """The physical maintenance gesture (trigger held 5 s at boot) opens the
    REPL only on a pen without a key: on a provisioned pen it would hand the
    key to anyone holding the pen (docs/security.md)."""
    if auth.provisioned():
        auth.log("maintenance_refused", via="gesture", reason="provisioned")
        return False
    auth.log("maintenance_entered", via="gesture")
    return True


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
        h = self.store.get(_K_KEY)
        return unhex(h, KEY_LEN) if h else None

    def provisioned(self):
        return self.key() is not None

    def fails(self):
        return self.store.get(_K_FAILS, 0) or 0

    def locked_ms(self):
        """Remaining lock-out in ms (0: not locked). After a reboot the
        lock-out starts again in full: a reboot never shortens it."""
        b = backoff_ms(self.fails())
        if not b:
            return 0
        now = self.clock()
        if self.lock_start is None:
            self.lock_start = now
        return max(b - ticks_diff(now, self.lock_start), 0)

    def technician(self):
        """True while a technician session is open; ends on idle timeout."""
        self.expire()
        if self.session:
            self.last_ms = self.clock()
        return self.session == 1

    def require(self, what):
        if not self.technician():
            _denied(self.log, what, "no_session")
            _err(E.AUTH_REQUIRED, "%s needs an authenticated technician (penctl auth)" % what)

    def end_session(self, why):
        if self.session:
            self.session = 0
            self.session_nonce = None
            self.log("session_end", reason=why)
            if self.on_session_end:
                self.on_session_end()

    def expire(self):
        """Ends a session idle past IDLE_MS even when nobody asks (the
        runtime calls this between ticks)."""
        if self.session and ticks_diff(self.clock(), self.last_ms) > IDLE_MS:
            self.end_session("idle")

    def touch(self):
        """Host activity that keeps an open technician session alive (the
        heartbeat of a remote run)."""
        if self.session:
            self.last_ms = self.clock()

    # --- challenge-response and keys ---
    def _check_lock(self):
        left = (self.locked_ms() + 999) // 1000
        if left:
            self.nonce = None
            n = self.fails()
            self.log("auth_locked", fails=n, left_s=left)
            _err(E.AUTH_LOCKED, "authentication locked for %d s after %d failed attempts" % (left, n))

    def challenge(self):
        self._check_lock()
        if not self.provisioned():
            self.log("auth_fail", reason="no_key")
            _err(E.AUTH_FAILED, "no technician key provisioned (factory step: penctl auth --provision)")
        self.nonce = self.rng(_NONCE_LEN)  # pyright: ignore[reportOptionalCall]  # urandom: on every port we target
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
            self.store.put(_K_FAILS, 0)
        self.lock_start = None
        self.session = 1
        self.session_nonce = nonce
        self.last_ms = self.clock()
        self.log("auth_ok")
        return "role=technician idle_s=%d" % (IDLE_MS // 1000)

    def _fail(self, reason):
        n = self.fails() + 1
        self.store.put(_K_FAILS, n)  # persisted before the answer goes out
        b = backoff_ms(n) // 1000
        if b:
            self.lock_start = self.clock()
        self.end_session("auth_fail")
        self.log("auth_fail", reason=reason, fails=n, lock_s=b)
        if b:
            _err(E.AUTH_LOCKED, "authentication failed (%s); locked for %d s" % (reason, b))
        _err(E.AUTH_FAILED, "authentication failed (%s); %d of %d attempts left" % (reason, FREE_FAILS - n, FREE_FAILS))

    def provision(self, text):
        if self.provisioned():
            self.log("provision_refused")
            _err(E.AUTH_FAILED, "a key is already provisioned; replacing it needs the old key (key rotate)")
        key = unhex(text, KEY_LEN)
        if key is None:
            _err(E.BAD_ARGUMENTS, "key: %d hex digits expected" % (2 * KEY_LEN))
        self.store.put(_K_KEY, hexs(key))
        self.store.put(_K_FAILS, 0)
        self.log("key_provisioned")
        return "key=set"

    def rotate(self, wrapped_hex, check_hex):
        """New key = wrapped XOR HMAC(old, rotate|session nonce); the check
        proves the sender knew the new key too. Needs a session (the old key)."""
        self.require("key rotation")
        wrapped = unhex(wrapped_hex, KEY_LEN)
        check = unhex(check_hex, 8)
        if wrapped is None or check is None:
            raise E.PenError(E.BAD_ARGUMENTS, "usage: key rotate WRAPPED(64 hex) CHECK(16 hex)")
        pad = wrap_pad(self.key(), self.session_nonce)
        new = bytes(wrapped[i] ^ pad[i] for i in range(KEY_LEN))
        if not equal(check, rotate_check(new, self.session_nonce)):
            self.log("key_rotate_refused", reason="bad_check")
            _err(E.AUTH_FAILED, "key rotation refused: check value does not match")
        self.store.put(_K_KEY, hexs(new))
        self.log("key_rotated")
        self.end_session("key_rotated")
        return "key=rotated"


# --- protocol glue: this module's commands, next to their handlers ---
def register(proto, auth, log, integrity_state="not_checked", log_clear=None):
    core = proto.core
    cmd = Commands(proto, auth, log, integrity_state, log_clear)
    # each command's usage starts with its name; its handler is cmd_NAME
    for u in (
        "auth [RESPONSE_HEX]",
        "logout",
        "security",
        "key provision HEX | key rotate WRAPPED CHECK",
        "tilt-ref capture|reset",
        "maintenance",
        "remote start [HB_MS] | remote stop",
        "log-clear",
    ):
        n = u.split()[0]
        if n != "log-clear" or log_clear:
            proto.register(n, getattr(cmd, "cmd_" + n.replace("-", "_")), usage=u)
    # the protocol's declared extension points: its technician-only paths
    # (needs_auth commands, clinic limits, clinic keys in `config import`)
    # ask this session; its audit events go to the security log; refusals
    # at the byte level are logged; status and info carry the integrity
    proto.is_authorized = auth.technician
    proto.require = auth.require
    proto.audit = log
    proto.on_heartbeat = auth.touch
    proto.on_reject = cmd.reject
    # a technician session belongs to one connection: a new handshake
    # (`id`, what every host sends first) ends the previous one
    proto.on_handshake = cmd.handshake
    proto.status_puts.append(cmd.status_put)
    proto.info_parts.append(cmd.info_words)

    # a remote run belongs to the technician session that started it: it
    # ends with the session (logout, idle, a failed attempt, key rotation);
    # its heartbeats count as the technician's activity
    def session_ended():
        if core.remote:
            core.remote_stop()

    auth.on_session_end = session_ended
    if integrity_state not in ("ok", "unverified"):
        core.safe_mode = 1  # drive disabled, state=safe in status
    return cmd


class Commands:
    def __init__(self, proto, auth, log, integrity_state, log_clear):
        self.proto = proto
        self.core = proto.core
        self.auth = auth
        self.log = log
        self.integrity = integrity_state
        self.log_clear = log_clear
        self.rejects = 0
        self.reject_code = 0
        self.reject_ms = None
        self.ignored_seen = 0

    def handshake(self):
        self.auth.end_session("handshake")

    def host_link(self, connected):
        """The board saw the host open or close the port (USB CDC DTR, a pty
        hang-up in the simulator): a closed port ends the session."""
        if not connected:
            self.auth.end_session("disconnect")

    def reject(self, code):
        # refusals at the byte level (over-long lines, control bytes,
        # unknown commands): logged, coalesced to one entry a second so a
        # flood cannot wear the flash
        self.rejects += 1
        self.reject_code = code
        if not self._deferred():
            self.service(self.auth.clock())

    def _deferred(self):
        """While the needles run on a board that serves requests over
        passes (the RP2040), the reject entry waits for the drive to stop:
        its text, its record and its '! log' echo took ~4 ms of one loop
        pass on the chip (an unknown command made a 5.95 ms pass, at the
        6 ms dead-man). The count goes on; nothing is lost (the log reaches
        the flash only with the drive off anyway)."""
        p = self.proto
        return p.defer and p.core.running

    def service(self, now):
        """Called by the runtime between ticks: logs serial rejections and
        ignored control bytes, at most once a second. Allocates nothing
        when there is nothing to log."""
        self.auth.expire()
        ign = self.proto.ignored
        if not self.rejects and ign == self.ignored_seen:
            return
        if self._deferred():
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

    def status_put(self, buf, i):
        """status's words, written at buf[i:] (no heap: pen.protocol status_puts)."""
        return put_text(buf, put_text(buf, i, "integrity="), self.integrity)

    def info_words(self):
        return "integrity=%s mode=%s" % (self.integrity, self.auth.mode)

    def _usage(self, name):
        _err(E.BAD_ARGUMENTS, "usage: " + self.proto.commands[name][2])

    def _not_running(self, what, tech=False):
        """Refuses `what` while the needles run; tech: also (first) without
        a technician session."""
        if tech:
            self.auth.require(what)
        if self.core.running:
            _denied(self.log, what, "running")
            _err(E.NOT_WHILE_RUNNING, "%s is not allowed while the needles run" % what)

    def cmd_logout(self, args):
        # a host closing its connection during a treatment logs out
        self.auth.end_session("logout")
        return ""

    def cmd_auth(self, args):
        if len(args) > 1:
            self._usage("auth")
        self._not_running("authentication")
        if not args:
            return "nonce=%s serial=%s" % (self.auth.challenge(), self.auth.serial)
        return self.auth.respond(args[0])

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
        n = len(args)
        if n == 2 and args[0] == "provision":
            self._not_running("key provisioning")
            return self.auth.provision(args[1])
        if n == 3 and args[0] == "rotate":
            self._not_running("key rotation")
            return self.auth.rotate(args[1], args[2])
        self._usage("key")

    def cmd_tilt_ref(self, args):
        if len(args) != 1 or args[0] not in ("capture", "reset"):
            self._usage("tilt-ref")
        self._not_running("capturing the tilt reference", True)
        # the core owns the reference: it uses its filtered accelerometer
        # vector, refuses a moving pen and restarts the tilt hold (SR1)
        core = self.core
        cfg = core.cfg
        old = (cfg.ref_x, cfg.ref_y, cfg.ref_z)
        if args[0] == "reset":
            core.reset_tilt_ref()
        else:
            core.capture_tilt_ref()
        new = (cfg.ref_x, cfg.ref_y, cfg.ref_z)
        self.log("tilt_ref", old="%d,%d,%d" % old, new="%d,%d,%d" % new)
        return "ref=%d,%d,%d%s" % (new + (self.proto.commit(True),))

    def cmd_maintenance(self, args):
        self._not_running("maintenance", True)
        a = self.auth
        a.mode = MODE_MAINTENANCE
        self.core.safe_mode = 1  # drive locked off from now on
        self.core.request_stop()
        a.leave_requested = 1
        self.log("maintenance_entered", via="command")
        return "mode=maintenance drive=locked"

    def cmd_log_clear(self, args):
        self._not_running("clearing the event log", True)
        self.log_clear()
        self.log("log_cleared")
        return ""

    def cmd_remote(self, args):
        """`remote start [HB_MS]`: service mode, the drive starts without a hand
        on the trigger, only for a technician and only under a host heartbeat
        (dead-man: the pen stops when it stops). Every other condition of the
        rule still applies (docs/safety.md). `remote stop`: anyone, also while the needles run."""
        p = self.proto
        core = self.core
        if len(args) == 1 and args[0] == "stop":
            if core.remote or core.running:
                core.remote_stop()
                self.log("remote_stop", running=core.running)
            p.arm_heartbeat(0)
            return "remote=off"
        if not args or args[0] != "start" or len(args) > 2:
            self._usage("remote")
        what = "remote start"
        self._not_running(what, True)
        ms = p.hb_timeout
        if len(args) == 2:
            w = args[1]
            if not w.isdigit() or len(w) > 5 or not HB_MIN_MS <= int(w) <= HB_MAX_MS:
                _err(E.BAD_ARGUMENTS, "heartbeat timeout '%s' not %d..%d ms" % (w[:8], HB_MIN_MS, HB_MAX_MS))
            ms = int(w)
        if not ms:
            _denied(self.log, what, "no_heartbeat")
            _err(E.NOT_ALLOWED_IN_STATE, "remote start needs a host heartbeat: 'remote start HB_MS' or 'hb MS' first")
        try:
            core.remote_start()
        except E.PenError:
            _denied(self.log, what, "not_ready")
            raise
        p.arm_heartbeat(ms)  # before the next tick starts the drive
        self.log("remote_start", hb_ms=ms)
        return "remote=on hb_ms=%d" % ms
