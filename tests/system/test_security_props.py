"""Properties of the security layer under arbitrary input (SEC1, SEC3, SR9):
whatever bytes arrive without the key, no clinic limit, key, tilt reference
or mode changes, no session opens, the failure count never goes down and
nothing escapes the protocol as an exception."""

from __future__ import annotations

from hypothesis import given
from hypothesis import strategies as st
from pen import auth as A
from pen.core import Config, Core
from pen.protocol import Protocol

KEY = bytes(range(32))
WORDS = [
    b"auth",
    b"auth ",
    b"key provision ",
    b"key rotate ",
    b"limits set max_depth ",
    b"limits set max_tilt ",
    b"tilt-ref capture",
    b"maintenance",
    b"log-clear",
    b"logout",
    b"security",
    b"\x03",
    b"\x01",
    b"\x04",
    b"\x05A\x01",
    b"\n",
    b"\r",
    b"0" * 64,
    b"f" * 130,
]


class Clock:
    def __init__(self) -> None:
        self.ms = (1 << 30) - 100

    def __call__(self) -> int:
        return self.ms


def make() -> tuple[Protocol, Core, A.Auth, Clock, list[bytes]]:
    store = A.MemStore()
    log = A.MemLog()
    clock = Clock()
    auth = A.Auth(store, log, "SIM00001", clock)
    auth.provision(KEY.hex())
    out: list[bytes] = []
    core = Core(Config())
    p = Protocol(core, out.append, "test", "SIM00001")
    A.register(p, auth, log, "ok", log.clear)
    return p, core, auth, clock, out


def guarded(core: Core, auth: A.Auth) -> tuple[object, ...]:
    c = core.cfg
    return (c.max_depth, c.max_rate, c.max_tilt, c.max_session_min, c.ref_x, c.ref_y, c.ref_z, auth.key(), auth.mode)


@given(st.lists(st.one_of(st.sampled_from(WORDS), st.binary(max_size=80)), max_size=40), st.integers(0, 5000))
def test_sec1_no_input_without_the_key_changes_a_guarded_value(chunks: list[bytes], step_ms: int) -> None:
    p, core, auth, clock, out = make()
    before = guarded(core, auth)
    fails = 0
    for chunk in chunks:
        for b in chunk:
            p.feed(b)
        clock.ms = (clock.ms + step_ms) & ((1 << 30) - 1)
        assert not auth.technician()
        assert auth.fails() >= fails
        fails = auth.fails()
    p.feed(0x0A)
    assert guarded(core, auth) == before
    assert not core.safe_mode
    text = b"".join(out)
    assert b"err 90" not in text  # no handler crashed
    assert b"ok role=technician" not in text
