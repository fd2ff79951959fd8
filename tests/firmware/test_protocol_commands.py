# The command registry with every module's commands (protocol, persistence,
# security): each answers ok or a numbered refusal, never an internal error;
# while the needles run the cheap ones are served and the ones that touch
# the flash are refused. Plain asserts: runs under pytest (CPython) and
# under MicroPython (tests/firmware/mprun.py).
from flash import MemFileOps
from pen import auth as A
from pen import errors as E
from pen.core import Config, Core
from pen.persist import AuthLog, AuthStore, Persistence
from pen.persist import register as persist_register
from pen.protocol import Protocol

KEY_HEX = "00" * 32
COMMANDS = (
    "id",
    "dict",
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
)


def pen_with_modules():
    """A Protocol with the persistence and security modules registered (their
    commands and status parts), its output lines in `out`."""
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


def test_every_registered_command_answers():
    proto, out = pen_with_modules()
    for line in COMMANDS:
        r = _reply(proto, out, line)
        assert r.startswith("ok") or r.startswith("err "), (line, r)
        assert "internal" not in r, (line, r)


def test_while_running_cheap_commands_are_served_flash_readers_refused():
    proto, out = pen_with_modules()
    proto.core.running = 1
    for line in ("help", "config", "storage", "security", "limits", "info", "status", "dict"):
        assert _reply(proto, out, line).startswith("ok"), line
    for line in ("log", "sessions"):
        r = _reply(proto, out, line)
        assert r.startswith("err %d " % E.NOT_WHILE_RUNNING), (line, r)


def test_status_and_info_carry_each_modules_part_once():
    proto, out = pen_with_modules()
    status = _reply(proto, out, "status")
    info = _reply(proto, out, "info")
    for words in (status, info):
        assert words.count(" store=") == 1 and words.count(" integrity=ok") == 1, words
    assert " mode=production" in info
