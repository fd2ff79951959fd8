# The seldom used half of pen.auth (docs/security.md): HMAC-SHA256,
# challenge-response, key provisioning and rotation, the in-memory store and
# log, the maintenance gesture and the technician commands. Imported for one
# call and dropped after (pen.compat.lazy); pen.auth re-exports every name
# here, so `from pen.auth import hmac_sha256` keeps working.
from pen import errors as E
from pen import limits as L
from pen.auth import (
    CHALLENGE_MS,
    FREE_FAILS,
    IDLE_MS,
    K_FAILS,
    K_KEY,
    KEY_LEN,
    MODE_MAINTENANCE,
    NONCE_LEN,
    backoff_ms,
    hexs,
    unhex,
)
from pen.compat import ticks_diff
from pen.protocol import HB_MAX_MS, HB_MIN_MS
from pen.sha import equal, hmac_sha256


def challenge_message(serial, nonce):
    return b"pen-auth-v1|" + serial.encode() + b"|" + nonce


def response_for(key, serial, nonce):
    """What the host sends back: HMAC(key, 'pen-auth-v1|SERIAL|NONCE')."""
    return hmac_sha256(key, challenge_message(serial, nonce))


def wrap_pad(old_key, nonce):
    return hmac_sha256(old_key, b"pen-rotate-v1|" + nonce)


def rotate_check(new_key, nonce):
    return hmac_sha256(new_key, b"pen-rotate-check-v1|" + nonce)[:8]


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


# --- Auth, the seldom used steps (the state is pen.auth.Auth) ---
def locked_ms(a):
    """Remaining lock-out in ms (0: not locked). After a reboot the
    lock-out starts again in full: a reboot never shortens it."""
    b = backoff_ms(a.fails())
    if not b:
        return 0
    now = a.clock()
    if a.lock_start is None:
        a.lock_start = now
    left = b - ticks_diff(now, a.lock_start)
    return left if left > 0 else 0


def require(a, what):
    if not a.technician():
        a.log("denied", action=what.replace(" ", "_"), reason="no_session")
        raise E.PenError(E.AUTH_REQUIRED, "%s needs an authenticated technician (penctl auth)" % what)


def _check_lock(a):
    left = locked_ms(a)
    if left:
        a.nonce = None
        a.log("auth_locked", fails=a.fails(), left_s=(left + 999) // 1000)
        raise E.PenError(
            E.AUTH_LOCKED,
            "authentication locked for %d s after %d failed attempts" % ((left + 999) // 1000, a.fails()),
        )


def challenge(a):
    _check_lock(a)
    if not a.provisioned():
        a.log("auth_fail", reason="no_key")
        raise E.PenError(E.AUTH_FAILED, "no technician key provisioned (factory step: penctl auth --provision)")
    a.nonce = a.rng(NONCE_LEN)
    a.nonce_ms = a.clock()
    return hexs(a.nonce)


def respond(a, text):
    _check_lock(a)
    nonce = a.nonce
    a.nonce = None  # one answer per challenge, right or wrong
    key = a.key()
    if nonce is None or key is None:
        _fail(a, "no_challenge")
    if ticks_diff(a.clock(), a.nonce_ms) > CHALLENGE_MS:
        _fail(a, "challenge_expired")
    got = unhex(text, 32)
    if got is None:
        _fail(a, "malformed")
    if not equal(got, response_for(key, a.serial, nonce)):
        _fail(a, "wrong_response")
    if a.fails():
        a.store.put(K_FAILS, 0)
    a.lock_start = None
    a.session = 1
    a.session_nonce = nonce
    a.last_ms = a.clock()
    a.log("auth_ok")
    return "role=technician idle_s=%d" % (IDLE_MS // 1000)


def _fail(a, reason):
    n = a.fails() + 1
    a.store.put(K_FAILS, n)  # persisted before the answer goes out
    b = backoff_ms(n)
    if b:
        a.lock_start = a.clock()
    a.end_session("auth_fail")
    a.log("auth_fail", reason=reason, fails=n, lock_s=b // 1000)
    if b:
        raise E.PenError(E.AUTH_LOCKED, "authentication failed (%s); locked for %d s" % (reason, b // 1000))
    raise E.PenError(
        E.AUTH_FAILED, "authentication failed (%s); %d of %d attempts left" % (reason, FREE_FAILS - n, FREE_FAILS)
    )


def provision(a, text):
    if a.provisioned():
        a.log("provision_refused")
        raise E.PenError(E.AUTH_FAILED, "a key is already provisioned; replacing it needs the old key (key rotate)")
    key = unhex(text, KEY_LEN)
    if key is None:
        raise E.PenError(E.BAD_ARGUMENTS, "key: %d hex digits expected" % (2 * KEY_LEN))
    a.store.put(K_KEY, hexs(key))
    a.store.put(K_FAILS, 0)
    a.log("key_provisioned")
    return "key=set"


def rotate(a, wrapped_hex, check_hex):
    """New key = wrapped XOR HMAC(old, rotate|session nonce); the check
    proves the sender knew the new key too. Needs a session (the old key)."""
    require(a, "key rotation")
    old = a.key()
    wrapped = unhex(wrapped_hex, KEY_LEN)
    check = unhex(check_hex, 8)
    if wrapped is None or check is None:
        raise E.PenError(E.BAD_ARGUMENTS, "usage: key rotate WRAPPED(64 hex) CHECK(16 hex)")
    pad = wrap_pad(old, a.session_nonce)
    new = bytearray(KEY_LEN)
    for i in range(KEY_LEN):
        new[i] = wrapped[i] ^ pad[i]
    new = bytes(new)
    if not equal(check, rotate_check(new, a.session_nonce)):
        a.log("key_rotate_refused", reason="bad_check")
        raise E.PenError(E.AUTH_FAILED, "key rotation refused: check value does not match")
    a.store.put(K_KEY, hexs(new))
    a.log("key_rotated")
    a.end_session("key_rotated")
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


# --- technician commands: each takes pen.auth._Glue and the argument words ---
def _not_running(g, what):
    if g.core.running:
        g.log("denied", action=what.replace(" ", "_"), reason="running")
        raise E.PenError(E.NOT_WHILE_RUNNING, "%s is not allowed while the needles run" % what)


def cmd_auth(g, args):
    if len(args) > 1:
        raise E.PenError(E.BAD_ARGUMENTS, "usage: auth [RESPONSE]")
    _not_running(g, "authentication")
    if not args:
        return "nonce=%s serial=%s" % (challenge(g.auth), g.auth.serial)
    return respond(g.auth, args[0])


def cmd_security(g, args):
    a = g.auth
    return "key=%s session=%s fails=%d locked_s=%d integrity=%s mode=%s events=%d" % (
        "set" if a.provisioned() else "none",
        "technician" if a.technician() else "none",
        a.fails(),
        (locked_ms(a) + 999) // 1000,
        g.integrity,
        a.mode,
        getattr(g.log, "seq", 0),
    )


def cmd_key(g, args):
    if len(args) == 2 and args[0] == "provision":
        _not_running(g, "key provisioning")
        return provision(g.auth, args[1])
    if len(args) == 3 and args[0] == "rotate":
        _not_running(g, "key rotation")
        return rotate(g.auth, args[1], args[2])
    raise E.PenError(E.BAD_ARGUMENTS, "usage: key provision HEX | key rotate WRAPPED CHECK")


def cmd_limits(g, args):
    if not args:
        return g.proto.run(g.read_limits, args) if g.read_limits else ""
    if args[0] != "set" or len(args) != 3:
        raise E.PenError(E.BAD_ARGUMENTS, "usage: limits | limits set KEY VALUE")
    require(g.auth, "changing clinic limits")
    _not_running(g, "changing clinic limits")
    s = L.find(L.CLINIC, args[1])
    value = s.parse(args[2])
    s.check_hw(value)
    cfg = g.core.cfg
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
    g.log("limit_change", key=s.key, old=s.show(old), new=s.show(value))
    return "%s=%s" % (s.key, s.show(value))


def cmd_tilt_ref(g, args):
    if len(args) != 1 or args[0] not in ("capture", "reset"):
        raise E.PenError(E.BAD_ARGUMENTS, "usage: tilt-ref capture | tilt-ref reset")
    require(g.auth, "capturing the tilt reference")
    _not_running(g, "capturing the tilt reference")
    # the core owns the reference: it uses its filtered accelerometer
    # vector, refuses a moving pen and restarts the tilt hold (SR1)
    cfg = g.core.cfg
    old = (cfg.ref_x, cfg.ref_y, cfg.ref_z)
    if args[0] == "reset":
        g.core.reset_tilt_ref()
    else:
        g.core.capture_tilt_ref()
    x, y, z = cfg.ref_x, cfg.ref_y, cfg.ref_z
    g.log("tilt_ref", old="%d,%d,%d" % old, new="%d,%d,%d" % (x, y, z))
    return "ref=%d,%d,%d" % (x, y, z)


def cmd_maintenance(g, args):
    require(g.auth, "maintenance")
    _not_running(g, "maintenance")
    a = g.auth
    a.mode = MODE_MAINTENANCE
    g.core.safe_mode = 1  # drive locked off from now on
    g.core.request_stop()
    a.leave_requested = 1
    g.log("maintenance_entered", via="command")
    return "mode=maintenance drive=locked"


def cmd_log_clear(g, args):
    require(g.auth, "clearing the event log")
    _not_running(g, "clearing the event log")
    g.log_clear()
    g.log("log_cleared")
    return ""


def cmd_remote(g, args):
    """`remote start [HB_MS]`: service mode, the drive starts without a hand
    on the trigger, only for a technician and only under a host heartbeat
    (dead-man: the pen stops when it stops). Every other condition of the
    rule still applies (docs/safety.md). `remote stop` is resident (pen.auth)."""
    p = g.proto
    if not args or args[0] != "start" or len(args) > 2:
        raise E.PenError(E.BAD_ARGUMENTS, "usage: remote start [HB_MS] | remote stop")
    require(g.auth, "remote start")
    _not_running(g, "remote start")
    ms = p.hb_timeout
    if len(args) == 2:
        w = args[1]
        if not w.isdigit() or len(w) > 5 or not HB_MIN_MS <= int(w) <= HB_MAX_MS:
            raise E.PenError(E.BAD_ARGUMENTS, "heartbeat timeout '%s' not %d..%d ms" % (w[:8], HB_MIN_MS, HB_MAX_MS))
        ms = int(w)
    if not ms:
        g.log("denied", action="remote_start", reason="no_heartbeat")
        raise E.PenError(
            E.NOT_ALLOWED_IN_STATE, "remote start needs a host heartbeat: 'remote start HB_MS' or 'hb MS' first"
        )
    try:
        g.core.remote_start()
    except E.PenError:
        g.log("denied", action="remote_start", reason="not_ready")
        raise
    p.arm_heartbeat(ms)  # before the next tick starts the drive
    g.log("remote_start", hb_ms=ms)
    return "remote=on hb_ms=%d" % ms
