"""host/records.py against the firmware's own protocol handlers, in process:
paging through `log`/`sessions`, the open session, wall-clock stamping of
the current boot only, CSV export (docs/persistence.md)."""

from __future__ import annotations

import csv
import datetime as dt
from pathlib import Path

from flash import MemFileOps
from pen import eventlog as EL
from pen import sessions as S
from pen.core import Config, Core
from pen.persist import Persistence, register
from pen.protocol import Protocol

from host.link import PenRefused
from host.records import Clock, read_log, read_sessions, write_csv


class InProcessLink:
    """Link.request() served by pen.protocol + pen.persist directly."""

    def __init__(self, p: Persistence, proto: Protocol) -> None:
        self.p = p
        self.proto = proto
        self.out = b""
        proto.write = self._write

    def _write(self, data: bytes) -> None:
        self.out += data

    def request(self, line: str) -> str:
        self.out = b""
        self.proto.handle(line)
        reply = self.out.decode().strip()
        if reply.startswith("err "):
            code, _, rest = reply[4:].partition(" ")
            name, _, text = rest.partition(": ")
            raise PenRefused(int(code), name, text)
        return reply[3:]


def pen(files: MemFileOps | None = None) -> tuple[Persistence, InProcessLink]:
    core = Core(Config())
    p = Persistence(core, files or MemFileOps())
    p.boot("test")
    proto = Protocol(core, lambda b: None, "t", "s")
    register(proto, p)
    return p, InProcessLink(p, proto)


def test_sr_persist_log_pages_through_more_than_one_reply() -> None:
    p, link = pen()
    for i in range(30):
        p.event(EL.EV_OTHER, f"e{i}")
        p.log.flush()
    log = read_log(link)  # type: ignore[arg-type]
    assert [e["seq"] for e in log] == list(range(1, 32))
    assert [e["text"] for e in log[1:]] == [f"e{i}" for i in range(30)]
    assert [e["seq"] for e in read_log(link, 29)] == [29, 30, 31]  # type: ignore[arg-type]


def test_sr_persist_sessions_pages_and_one_open_session() -> None:
    files = MemFileOps()
    p, _ = pen(files)
    for i in range(10):  # ten sessions of an earlier boot
        s = S.Session(p.boot_no, 1000 * i)
        s.used(1500, 100000)
        s.end_reason = S.END_HOST
        p.sessions.finish(s)
    p, link = pen(files)  # reboot: boot 2
    p.ms = 50000
    p.cur = S.Session(p.boot_no, 20000)
    p.cur.used(1000, 90000)
    p.cur.bursts = 1
    got = read_sessions(link)  # type: ignore[arg-type]
    assert len(got) == 11
    assert [g["end_reason"] for g in got] == ["host_end"] * 10 + ["open"]
    assert all(g["start_wall"] is None for g in got[:10])  # earlier boot: no date
    assert got[10]["start_wall"] is not None and got[10]["depth_lo_mm"] == 1.0


def test_sr_persist_host_stamps_only_the_current_boot() -> None:
    read_at = dt.datetime(2026, 1, 2, 12, 0, 0, tzinfo=dt.UTC)
    c = Clock(boot=3, now_ms=600000, read_at=read_at)
    assert c.wall(3, 0) == "2026-01-02T11:50:00+00:00"
    assert c.wall(2, 0) is None


def test_sr_persist_sessions_csv_has_one_row_per_session(tmp_path: Path) -> None:
    p, link = pen()
    s = S.Session(p.boot_no, 0)
    s.used(1500, 100000)
    s.strokes = 1234
    s.bursts = 1
    s.run_ms = 61000
    s.end_reason = S.END_SESSION_TIME
    p.sessions.finish(s)
    out = tmp_path / "s.csv"
    write_csv(read_sessions(link), out)  # type: ignore[arg-type]
    rows = list(csv.DictReader(out.open()))
    assert len(rows) == 1
    assert (rows[0]["strokes"], rows[0]["run_s"], rows[0]["end_reason"]) == ("1234", "61.0", "session_time")
    assert rows[0]["depth_lo_mm"] == "1.5" and rows[0]["rate_hi_hz"] == "100.0"
