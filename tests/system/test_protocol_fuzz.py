"""SR9 fuzz: arbitrary bytes, over-long lines and corrupted checks fed to
the protocol. The pen answers only errors (or the real-time status), never
changes a setting, never crashes, and its memory stays bounded. In-process
(fast, many examples) and through the pty of the simulated pen."""

from __future__ import annotations

import binascii
import time
import tracemalloc

from hypothesis import given, settings
from hypothesis import strategies as st
from pen.core import Config, Core
from pen.protocol import MAX_LINE, Protocol

from host import Pen
from sim import SimulatedPen


def checked(rid: str, body: str) -> bytes:
    head = f"@{rid} {body}".encode()
    return head + b"*%04X\n" % binascii.crc_hqx(head, 0xFFFF)


def corrupt(line: bytes, pos: int, bit: int) -> bytes:
    pos %= len(line) - 1  # keep the line end
    b = bytearray(line)
    b[pos] ^= 1 << bit
    if pos > line.rindex(b"*") and bytes(b).lower() == line.lower():
        # the check's hex digits are read in either case (pen.frame,
        # docs/protocol.md): a flipped case bit is the same check, so flip
        # bit 0 too (found by the deep profile: '*929B' -> '*929b')
        b[pos] ^= 1
    return bytes(b)


setting_lines = st.sampled_from(
    [
        "set depth 1.0",
        "set rate 90",
        "set depth 0.05",
        "config import depth=1.0 rate=80",
        "limits set max_depth 2.0",
        "set rate 120.5",
    ]
)
# arbitrary bytes, bytes from the protocol's own alphabet, over-long lines,
# and host lines with a flipped bit (a corrupted check or body)
chunks = st.one_of(
    st.binary(max_size=200),
    st.text(alphabet="setdpthraconfigimportlms 0123456789.=@*\r\n\x00\x7f-", max_size=200).map(str.encode),
    st.integers(MAX_LINE + 1, 3 * MAX_LINE).map(lambda n: b"set depth " + b"9" * n + b"\n"),
    st.tuples(setting_lines, st.integers(0, 200), st.integers(0, 7)).map(
        lambda t: corrupt(checked("5", t[0]), t[1], t[2])
    ),
)


def _snapshot(cfg: Config) -> tuple[int, ...]:
    return (cfg.max_depth, cfg.max_rate, cfg.max_tilt, cfg.max_session_min, cfg.depth, cfg.rate)


@given(st.lists(chunks, max_size=20))
def test_sr9_fuzz_in_process_only_errors_nothing_changes(data: list[bytes]) -> None:
    out: list[bytes] = []
    core = Core(Config())
    core.request_stop = lambda: None  # type: ignore[method-assign]
    p = Protocol(core, out.append, "fuzz", "F1")
    before = _snapshot(core.cfg)
    now = 0
    for chunk in data:
        for b in chunk:
            p.feed(b)
        now += 1
        p.service(now)
        assert p.n <= MAX_LINE and len(p.buf) == MAX_LINE
    lines = b"".join(out).split(b"\n")
    for k, line in enumerate(lines):
        if not line or line.endswith(b"\r") or k == len(lines) - 1:
            continue  # a terminal's echo (a CR turned it on) ends with CR LF; the last is unfinished
        text = line.decode("ascii")  # the pen only ever sends ASCII
        if text.startswith(("! ", "? ", "~")):
            continue
        words = text.split()
        if words[0].startswith("@"):
            words = words[1:]
        if words[0] == "ok":
            continue  # only possible for a line that was a valid read command
        assert words[0] == "err", text
    assert _snapshot(core.cfg) == before


def test_sr9_fuzz_memory_stays_bounded_in_process() -> None:
    out_bytes = [0]

    def sink(b: bytes) -> None:
        out_bytes[0] += len(b)

    core = Core(Config())
    p = Protocol(core, sink, "fuzz", "F1")
    import random

    rng = random.Random(5)
    tracemalloc.start()
    try:
        for i in range(200):
            for b in rng.randbytes(500):
                p.feed(b)
            p.service(i)
            if i == 20:
                base = tracemalloc.get_traced_memory()[0]
        grown = tracemalloc.get_traced_memory()[0] - base
    finally:
        tracemalloc.stop()
    assert grown < 16384, grown
    assert out_bytes[0] > 0


@settings(max_examples=15)
@given(st.lists(chunks, min_size=1, max_size=8))
def _fuzz_simulated_pen(data: list[bytes]) -> None:
    pen = _SIMS.get()
    with Pen(pen.port, timeout=2.0) as host:
        before = host.request("config")
        before.pop("hash", None)
        for chunk in data:
            host.link.ser.write(chunk)
        host.link.ser.write(b"\n")
        time.sleep(0.02)
        host.link.poll(0.05)
        after = host.request("config")  # still answers: no crash, no hang
        after.pop("hash", None)
        assert after == before
        assert pen.truth()["resets"] == 0


class _SimPool:
    """One simulated pen per runtime, shared by the fuzz examples."""

    def __init__(self) -> None:
        self.pens: dict[str, SimulatedPen] = {}
        self.runtime = "micropython"

    def get(self) -> SimulatedPen:
        if self.runtime not in self.pens:
            sp = SimulatedPen(runtime=self.runtime, speed=0)
            sp.start()
            self.pens[self.runtime] = sp
        return self.pens[self.runtime]

    def close(self) -> None:
        for sp in self.pens.values():
            sp.close()
        self.pens.clear()


_SIMS = _SimPool()


def test_sr9_fuzz_simulated_pen_both_runtimes(runtime: str) -> None:
    _SIMS.runtime = runtime
    try:
        _fuzz_simulated_pen()
    finally:
        _SIMS.close()
