# Unit tests of pen.auth (docs/security.md, SEC1-SEC3, SEC6). Plain asserts:
# they run under pytest (CPython) and under MicroPython (tests/firmware/mprun.py).
import binascii

from pen import auth as A
from pen import errors as E
from pen.core import Config, Core
from pen.protocol import Protocol

KEY = bytes(range(32))
OTHER = bytes(range(1, 33))
SERIAL = "SIM00001"


def _h(s):
    return binascii.unhexlify(s)


# RFC 4231 test cases 1-4, 6, 7 (5 is a truncated output)
RFC4231 = (
    (b"\x0b" * 20, b"Hi There", "b0344c61d8db38535ca8afceaf0bf12b881dc200c9833da726e9376c2e32cff7"),
    (b"Jefe", b"what do ya want for nothing?", "5bdcc146bf60754e6a042426089575c75a003f089d2739839dec58b964ec3843"),
    (b"\xaa" * 20, b"\xdd" * 50, "773ea91e36800e46854db8ebd09181a72959098b3ef8c122d9635514ced565fe"),
    (bytes(range(1, 26)), b"\xcd" * 50, "82558a389a443c0ea4cc819899f2083a85f0faa3e578f8077a2e3ff46729665b"),
    (
        b"\xaa" * 131,
        b"Test Using Larger Than Block-Size Key - Hash Key First",
        "60e431591ee0b67f0d8a26aacbf5b77f8e0bc6213728c5140546040f0ee37f54",
    ),
    (
        b"\xaa" * 131,
        b"This is a test using a larger than block-size key and a larger than block-size data. "
        b"The key needs to be hashed before being used by the HMAC algorithm.",
        "9b09ffa71b942fcb27635fbcd5b0e944bfdc63644f0713938a7f51535c3a35e2",
    ),
)


class Clock:
    def __init__(self):
        self.ms = (1 << 30) - 5000  # close to the RP2040 ticks wrap

    def __call__(self):
        return self.ms

    def advance(self, ms):
        self.ms = (self.ms + ms) & ((1 << 30) - 1)


def refused(fn, *args):
    """Runs fn(*args); returns the PenError code it raised (fails if none)."""
    try:
        fn(*args)
    except E.PenError as e:
        return e.code
    raise AssertionError("not refused: %r" % (args,))


def make(store=None, clock=None):
    store = store if store is not None else A.MemStore()
    log = A.MemLog()
    clock = clock or Clock()
    return A.Auth(store, log, SERIAL, clock), store, log, clock


def provisioned(clock=None):
    a, store, log, clock = make(clock=clock)
    a.provision(A.hexs(KEY))
    return a, store, log, clock


def answer(a, key=KEY):
    nonce = _h(a.challenge())
    return A.hexs(A.response_for(key, SERIAL, nonce))


def test_sec2_hmac_sha256_matches_rfc4231_vectors():
    for key, msg, want in RFC4231:
        assert A.hexs(A.hmac_sha256(key, msg)) == want


def test_sec2_right_key_opens_a_technician_session():
    a, store, log, clock = provisioned()
    assert not a.technician()
    assert a.respond(answer(a)).startswith("role=technician")
    assert a.technician()
    assert log.count("auth_ok") == 1


def test_sec2_wrong_key_refused_and_logged():
    a, store, log, clock = provisioned()
    assert refused(a.respond, answer(a, OTHER)) == E.AUTH_FAILED
    assert not a.technician()
    assert a.fails() == 1
    assert log.entries[-1][1] == "auth_fail" and log.entries[-1][2]["reason"] == "wrong_response"


def test_sec2_fresh_nonce_per_challenge_and_replay_refused():
    a, store, log, clock = provisioned()
    nonces = set()
    for _ in range(20):
        nonces.add(a.challenge())
    assert len(nonces) == 20
    recorded = answer(a)
    a.respond(recorded)
    a.end_session("logout")
    # the same answer again: once with no challenge out, once to a new one
    assert refused(a.respond, recorded) == E.AUTH_FAILED
    a.challenge()
    assert refused(a.respond, recorded) == E.AUTH_FAILED
    assert not a.technician()
    reasons = [e[2].get("reason") for e in log.entries if e[1] == "auth_fail"]
    assert reasons == ["no_challenge", "wrong_response"]


def test_sec2_a_challenge_is_answered_once_and_expires():
    a, store, log, clock = provisioned()
    nonce = _h(a.challenge())
    good = A.hexs(A.response_for(KEY, SERIAL, nonce))
    assert refused(a.respond, "00" * 32) == E.AUTH_FAILED
    assert refused(a.respond, good) == E.AUTH_FAILED  # the wrong try used the challenge up
    nonce = _h(a.challenge())
    clock.advance(A.CHALLENGE_MS + 1)
    assert refused(a.respond, A.hexs(A.response_for(KEY, SERIAL, nonce))) == E.AUTH_FAILED
    assert not a.technician()


def test_sec2_malformed_responses_count_as_failures():
    a, store, log, clock = provisioned()
    for bad in ("", "zz" * 32, "00" * 31, "00" * 33):
        a.challenge()
        code = refused(a.respond, bad)
        assert code in (E.AUTH_FAILED, E.AUTH_LOCKED)
    assert a.fails() == 4


def test_sec2_provisioning_once_rotation_needs_old_key():
    a, store, log, clock = make()
    assert refused(a.challenge) == E.AUTH_FAILED  # no key yet
    assert refused(a.provision, "xyz") == E.BAD_ARGUMENTS
    assert not a.provisioned()
    a.provision(A.hexs(KEY))
    assert refused(a.provision, A.hexs(OTHER)) == E.AUTH_FAILED
    assert a.key() == KEY
    # rotation without a session
    assert refused(a.rotate, "00" * 32, "00" * 8) == E.AUTH_REQUIRED
    a.respond(answer(a))
    nonce = a.session_nonce
    pad = A.wrap_pad(KEY, nonce)
    wrapped = bytes(bytearray(OTHER[i] ^ pad[i] for i in range(32)))
    # a wrong check value changes nothing
    assert refused(a.rotate, A.hexs(wrapped), "00" * 8) == E.AUTH_FAILED
    assert a.key() == KEY
    a.rotate(A.hexs(wrapped), A.hexs(A.rotate_check(OTHER, nonce)))
    assert a.key() == OTHER
    assert not a.technician()  # rotation ends the session
    assert refused(a.respond, answer(a, KEY)) == E.AUTH_FAILED
    a.respond(answer(a, OTHER))
    assert a.technician()
    assert log.count("key_rotated") == 1 and log.count("key_provisioned") == 1


def test_sec3_brute_force_locks_with_growing_backoff():
    a, store, log, clock = provisioned()
    for _ in range(A.FREE_FAILS - 1):
        assert refused(a.respond, answer(a, OTHER)) == E.AUTH_FAILED
    assert refused(a.respond, answer(a, OTHER)) == E.AUTH_LOCKED
    assert a.locked_ms() == A.BACKOFF_BASE_MS
    # while locked even the right key is refused, and that is logged too
    assert refused(a.challenge) == E.AUTH_LOCKED
    assert refused(a.respond, "00" * 32) == E.AUTH_LOCKED
    assert a.fails() == A.FREE_FAILS  # refusals while locked test no key
    assert log.count("auth_locked") == 2
    clock.advance(A.BACKOFF_BASE_MS - 1)
    assert refused(a.challenge) == E.AUTH_LOCKED
    clock.advance(1)
    assert a.locked_ms() == 0
    assert refused(a.respond, answer(a, OTHER)) == E.AUTH_LOCKED
    assert a.locked_ms() == 2 * A.BACKOFF_BASE_MS  # doubled
    clock.advance(2 * A.BACKOFF_BASE_MS)
    a.respond(answer(a))  # the right key after the wait
    assert a.fails() == 0 and a.locked_ms() == 0


def test_sec3_backoff_is_capped_and_never_negative():
    assert A.backoff_ms(0) == 0
    assert A.backoff_ms(A.FREE_FAILS - 1) == 0
    prev = 0
    for n in range(A.FREE_FAILS, A.FREE_FAILS + 40):
        b = A.backoff_ms(n)
        assert prev <= b <= A.BACKOFF_MAX_MS
        prev = b
    assert A.backoff_ms(10**6) == A.BACKOFF_MAX_MS


def test_sec3_lockout_survives_a_reboot():
    a, store, log, clock = provisioned()
    for _ in range(A.FREE_FAILS):
        refused(a.respond, answer(a, OTHER))
    clock.advance(A.BACKOFF_BASE_MS - 1000)
    # reboot: a new Auth on the same (persistent) store, RAM state lost
    b, _, log2, clock2 = make(store=store)
    assert b.fails() == A.FREE_FAILS
    assert b.locked_ms() == A.BACKOFF_BASE_MS  # the wait starts again in full
    assert refused(b.challenge) == E.AUTH_LOCKED
    assert log2.count("auth_locked") == 1


def test_sec1_session_ends_on_idle_timeout():
    a, store, log, clock = provisioned()
    a.respond(answer(a))
    clock.advance(A.IDLE_MS - 1)
    assert a.technician()  # activity restarts the idle timer
    clock.advance(A.IDLE_MS + 1)
    assert not a.technician()
    assert refused(a.require, "x") == E.AUTH_REQUIRED
    assert log.entries[-1][1] == "denied"
    assert log.count("session_end") == 1


def _technician(p, out, a):
    nonce = _h(_line(p, out, "auth").split("nonce=")[1].split()[0])
    assert _line(p, out, "auth " + A.hexs(A.response_for(KEY, SERIAL, nonce))).startswith("ok role=technician")
    assert a.technician()


def test_sec1_a_new_handshake_ends_the_last_connections_session():
    # a program that authenticated and died leaves no session for the next
    # one on the port: every host starts with `id`
    a, store, log, clock = provisioned()
    p, core, out = _proto(a, log)
    _technician(p, out, a)
    assert _line(p, out, "info").startswith("ok fw=")  # info is not a handshake
    assert a.technician()
    assert _line(p, out, "id").startswith("ok fw=")
    assert not a.session
    assert log.entries[-1][1:] == ("session_end", {"reason": "handshake"})
    assert _line(p, out, "limits set max_depth 2.0").startswith("err 40")


def test_sec1_session_ends_when_the_host_closes_the_port():
    a, store, log, clock = provisioned()
    p, core, out = _proto(a, log)
    _technician(p, out, a)
    p.sec.host_link(1)
    assert a.technician()
    p.sec.host_link(0)  # USB CDC DTR dropped / pty hung up
    assert not a.session
    assert ("session_end", {"reason": "disconnect"}) in [e[1:] for e in log.entries]


def test_sec1_idle_session_ends_without_a_command():
    a, store, log, clock = provisioned()
    p, core, out = _proto(a, log)
    _technician(p, out, a)
    clock.advance(A.IDLE_MS - 1)
    p.sec.service(clock())
    assert a.session
    clock.advance(2)
    p.sec.service(clock())  # nobody asked: the runtime's pass ends it
    assert not a.session
    assert log.entries[-1][1:] == ("session_end", {"reason": "idle"})


def _proto(auth_obj, log):
    out = []
    core = Core(Config())
    p = Protocol(core, out.append, "test", SERIAL)
    sec = A.register(p, auth_obj, log, "ok", log.clear)
    p.sec = sec
    return p, core, out


def _line(p, out, text):
    del out[:]
    for b in text.encode():
        p.feed(b)
    p.feed(0x0A)
    # unprompted event lines ("! ...") are not the reply
    return "".join(x for x in b"".join(out).decode().splitlines(True) if not x.startswith("!"))


def test_sec1_clinic_limits_need_a_technician():
    a, store, log, clock = provisioned()
    p, core, out = _proto(a, log)
    before = (core.cfg.max_depth, core.cfg.max_rate, core.cfg.max_tilt, core.cfg.max_session_min)
    for cmd in (
        "limits set max_depth 1.0",
        "limits set max_rate 100",
        "limits set max_tilt 10",
        "limits set max_session_min 20",
        "tilt-ref capture",
        "maintenance",
        "log-clear",
    ):
        assert _line(p, out, cmd).startswith("err 40 auth_required"), cmd
    assert (core.cfg.max_depth, core.cfg.max_rate, core.cfg.max_tilt, core.cfg.max_session_min) == before
    assert log.count("denied") == 7
    assert a.mode == A.MODE_PRODUCTION and not core.safe_mode
    # anyone: working settings within the clinic limits, status, STOP
    assert _line(p, out, "set depth 1.0") == "ok depth=1.00\n"
    assert _line(p, out, "set depth 2.0").startswith("err 11 clinic_limit")
    assert _line(p, out, "limits").startswith("ok max_depth=1.50")


def test_sec1_technician_changes_limits_validated_and_logged():
    a, store, log, clock = provisioned()
    p, core, out = _proto(a, log)
    nonce = _h(_line(p, out, "auth").split("nonce=")[1].split()[0])
    assert _line(p, out, "auth " + A.hexs(A.response_for(KEY, SERIAL, nonce))).startswith("ok role=technician")
    assert _line(p, out, "limits set max_depth 2.0") == "ok max_depth=2.00\n"
    assert log.entries[-1][1] == "limit_change"
    assert log.entries[-1][2] == {"key": "max_depth", "old": "1.50", "new": "2.00", "by": "technician"}
    n = log.count("limit_change")
    assert _line(p, out, "limits set max_depth 2.0") == "ok max_depth=2.00\n"
    assert log.count("limit_change") == n  # the same value again is not a change
    assert _line(p, out, "limits set max_depth 2.6").startswith("err 10 hardware_limit")
    assert _line(p, out, "limits set max_depth 1.23").startswith("err 12 resolution")
    assert _line(p, out, "limits set max_tilt 25").startswith("err 10 hardware_limit")
    assert _line(p, out, "limits set nope 1").startswith("err 4 unknown_key")
    assert core.cfg.max_depth == 2000
    # lowering a clinic limit below a working setting: refused naming both
    assert _line(p, out, "set depth 1.5").startswith("ok")
    r = _line(p, out, "limits set max_depth 1.0")
    assert r.startswith("err 13 limit_order") and "max_depth 1.00 mm" in r and "depth 1.50 mm" in r
    assert core.cfg.max_depth == 2000 and core.cfg.depth == 1500
    assert _line(p, out, "logout") == "ok\n"
    assert _line(p, out, "limits set max_depth 1.5").startswith("err 40")


def test_sec1_maintenance_locks_the_drive_off():
    a, store, log, clock = provisioned()
    p, core, out = _proto(a, log)
    nonce = _h(_line(p, out, "auth").split("nonce=")[1].split()[0])
    _line(p, out, "auth " + A.hexs(A.response_for(KEY, SERIAL, nonce)))
    assert _line(p, out, "maintenance").startswith("ok mode=maintenance")
    assert core.safe_mode == 1 and a.leave_requested == 1
    assert "mode=maintenance" in _line(p, out, "info")
    assert log.count("maintenance_entered") == 1


def test_sec5_integrity_failure_means_safe_mode():
    a, store, log, clock = provisioned()
    out = []
    core = Core(Config())
    p = Protocol(core, out.append, "test", SERIAL)
    A.register(p, a, log, "modified:pen/tilt.py", log.clear)
    assert core.safe_mode == 1
    assert "integrity=modified:pen/tilt.py" in _line(p, out, "info")
    assert "integrity=modified:pen/tilt.py" in _line(p, out, "status")


def test_sr9_overlong_and_control_byte_lines_are_refused_and_logged():
    a, store, log, clock = provisioned()
    p, core, out = _proto(a, log)
    assert _line(p, out, "auth " + "a" * 200).startswith("err 20 line_too_long")
    assert a.fails() == 0
    assert log.entries[-1][1] == "serial_reject"
    assert _line(p, out, "auth \x01\x04" + "a" * 64).startswith("err 21 bad_bytes")
    clock.advance(A.REJECT_LOG_MS)
    p.feed(0x04)  # between lines: dropped, counted, logged by service()
    n = len(log.entries)
    p.sec.service(clock())
    assert len(log.entries) == n + 1
    assert log.entries[-1][1] == "serial_reject" and log.entries[-1][2]["control_bytes"] >= 1


def test_sr8_a_reject_while_running_on_the_chip_is_logged_when_the_drive_stops():
    # on a board that serves requests over passes (the RP2040) the reject
    # entry (its text, record and echo: ~4 ms of one pass) waits for the
    # drive to stop; the count goes on and the entry then says it all
    a, store, log, clock = provisioned()
    p, core, out = _proto(a, log)
    p.defer = 1
    core.running = 1
    n = len(log.entries)
    for b in b"bogus\nnope\n":
        p.feed(b)
        while p.busy():
            p.step()
    p.sec.service(clock())
    assert len(log.entries) == n and p.sec.rejects == 2, log.entries[n:]
    core.running = 0
    p.sec.service(clock())
    assert len(log.entries) == n + 1
    assert log.entries[-1][1] == "serial_reject" and log.entries[-1][2]["refused"] == 2


def test_sec6_service_allocates_nothing_when_idle():
    # the runtime calls service() every loop; with nothing to log it must
    # not touch the heap (MicroPython: heap_lock raises on any allocation)
    a, store, log, clock = provisioned()
    p, core, out = _proto(a, log)
    sec = p.sec
    sec.service(clock())
    try:
        import micropython

        lock = micropython.heap_lock
        unlock = micropython.heap_unlock
    except (ImportError, AttributeError):
        lock = unlock = None
    for technician in (False, True):
        if technician:
            _technician(p, out, a)  # an open session is checked for idle each pass
        n = len(log.entries)
        if lock is not None:
            lock()
        try:
            for _ in range(100):
                sec.service(clock())
        finally:
            if unlock is not None:
                unlock()
        assert len(log.entries) == n and a.session == technician
