# DESIGN §7 heap budget: seldom used code (technician, key, config, log and
# session commands, boot-only steps) is imported for one call and dropped
# after (pen.compat.lazy). Plain asserts: runs under pytest (CPython) and
# under MicroPython (tests/firmware/mprun.py).
import sys

from flash import MemFileOps
from pen import auth as A
from pen.core import Config, Core
from pen.persist import AuthLog, AuthStore, Persistence
from pen.persist import register as persist_register
from pen.protocol import Protocol

LAZY = (
    "pen.corex",
    "pen.pcmds",
    "pen.authx",
    "pen.persistx",
    "pen.pboot",
    "pen.storex",
    "pen.ringx",
    "pen.sha",
    "pen.integrity",
)
KEY_HEX = "00" * 32


def _loaded():
    return [m for m in LAZY if m in sys.modules]


def _pen():
    out = []
    core = Core(Config())
    proto = Protocol(core, out.append, "test", "SIM00001")
    p = Persistence(core, MemFileOps())
    p.boot("test")
    persist_register(proto, p)
    log = AuthLog(p, proto.event)
    auth = A.Auth(AuthStore(p), log, "SIM00001", lambda: 0)
    A.register(proto, auth, log, "ok", log.clear)
    return proto, out


def _reply(proto, out, line):
    del out[:]
    proto.handle(line)
    return b"".join(x for x in out if not x.startswith(b"!")).decode()


def test_lazy_modules_are_dropped_after_boot_and_after_each_command():
    import pen

    proto, out = _pen()
    assert _loaded() == [], _loaded()
    for line in (
        "id",
        "info",
        "help",
        "help set",
        "limits",
        "config",
        "tel",
        "clear-fault",
        "log",
        "sessions",
        "storage",
        "session-end",
        "security",
        "auth",
        "key provision " + KEY_HEX,
        "auth",
        "logout",
        "maintenance",
    ):
        r = _reply(proto, out, line)
        assert r.startswith("ok") or r.startswith("err "), (line, r)
        assert "internal" not in r, (line, r)
        assert _loaded() == [], (line, _loaded())
        for m in LAZY:
            assert not hasattr(pen, m[4:]), (line, m)


def test_lazy_names_of_auth_and_store_stay_reachable():
    from pen import store as ST

    assert len(A.hmac_sha256(b"k", b"m")) == 32
    assert A.MemStore().get("x", 7) == 7
    assert ST.unframe(ST.frame(2, 1, b"a=1\n")) == (2, 1, b"a=1\n")
