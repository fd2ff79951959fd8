"""Service-mode remote start (docs/security.md roles, SR8 host
heartbeat): an
authenticated technician starts the drive without a hand on the trigger,
only under a host heartbeat (dead-man). On the full virtual pen, both
runtimes, in stepped simulated time: every reaction is counted in ms of
simulated time, never wall-clock."""

from __future__ import annotations

import select
from collections.abc import Iterator
from pathlib import Path

import pytest

from host import auth as host_auth
from host.link import Link, PenRefused, parse_pairs
from sim import SimulatedPen

KEY = bytes(range(32))
HB_MS = 300


@pytest.fixture
def pen(runtime: str) -> Iterator[SimulatedPen]:
    with SimulatedPen(runtime=runtime, speed=0) as sim:
        yield sim


def drive_on(t: dict[str, object]) -> bool:
    return float(t["motor_duty"]) > 0.0 or not t["brake"]  # type: ignore[arg-type]


def wait_ready(sim: SimulatedPen, link: Link) -> None:
    for _ in range(60):
        if parse_pairs(link.request("status"))["state"] == "ready":
            return
        sim.advance(50)
    raise AssertionError(link.request("status"))


class Stepped:
    """Lines typed on the pen's serial port while time is stepped: each
    request is answered within a few ms of simulated time."""

    def __init__(self, sim: SimulatedPen, link: Link) -> None:
        self.sim = sim
        self.ser = link.ser
        self.buf = b""
        self.events: list[str] = []
        sim.set_speed(None)

    def _lines(self) -> list[str]:
        n = self.ser.in_waiting
        if n:
            self.buf += self.ser.read(n)
        out = []
        while b"\n" in self.buf:
            line, self.buf = self.buf.split(b"\n", 1)
            text = line.decode(errors="replace").split("*")[0].strip()
            if text.startswith("!"):
                self.events.append(text)
            elif text:
                out.append(text)
        return out

    def request(self, text: str, limit_ms: int = 50) -> tuple[str, int]:
        """Sends one line; returns the reply and the ms of simulated time
        until it was seen."""
        self._lines()
        self.ser.write(text.encode() + b"\n")
        # the runner polls the pty every 8 ticks when time is stepped; a
        # speed command makes it read at the next tick, so the line is
        # served in the first ms below (exact timing of the heartbeat)
        self.sim.set_speed(None)
        for ms in range(1, limit_ms + 1):
            self.sim.advance(1)
            for line in self._lines():
                if line.startswith(("ok", "err")):
                    return line, ms
            # a pty hands bytes over in a kernel worker: on a loaded machine
            # the line may not have reached the other end yet, so give it a
            # moment of wall time before the next simulated ms (the figure
            # stays simulated time; this only removes a wall-clock race)
            select.select([self.ser.fileno()], [], [], 0.02)
        raise AssertionError(f"no reply to '{text}' within {limit_ms} ms")

    def ms_until_off(self, limit_ms: int, duty_only: bool = False) -> int:
        for ms in range(1, limit_ms + 1):
            self.sim.advance(1)
            t = self.sim.truth()
            if (float(t["motor_duty"]) == 0.0) if duty_only else not drive_on(t):
                return ms
        raise AssertionError(f"drive still on after {limit_ms} ms")

    def heartbeats(self, n: int, every_ms: int = 100) -> None:
        for _ in range(n):
            assert self.request("hb")[0].startswith("ok timeout_ms=")
            self.sim.advance(every_ms)

    def status(self) -> dict[str, str]:
        reply = self.request("status")[0]
        assert reply.startswith("ok "), reply
        return parse_pairs(reply[3:])

    def done(self) -> None:
        self.sim.set_speed(0)


def technician(sim: SimulatedPen) -> Link:
    link = Link(sim.port)
    link.request("key provision " + KEY.hex())
    host_auth.authenticate(link, KEY)
    link.request("set depth 1.0")
    wait_ready(sim, link)
    return link


def test_sr6_remote_start_needs_a_technician(pen: SimulatedPen) -> None:
    link = Link(pen.port)
    link.request("key provision " + KEY.hex())
    wait_ready(pen, link)
    before = parse_pairs(link.request("status"))
    for line in ("remote start 500", "remote start"):
        with pytest.raises(PenRefused) as e:
            link.request(line)
        assert e.value.name == "auth_required", line
    link.request("hb 500")  # a heartbeat alone gives no rights either
    with pytest.raises(PenRefused) as e:
        link.request("remote start")
    assert e.value.name == "auth_required"
    link.request("hb 0")
    pen.advance(500)
    assert not drive_on(pen.truth()) and pen.truth()["running"] is False
    after = parse_pairs(link.request("status"))
    assert (after["state"], after["stop"], after["block"]) == (before["state"], before["stop"], before["block"])
    link.request("ping")  # events come before the reply that follows them
    assert len([u for u in link.unprompted if u.startswith("! log denied action=remote_start")]) == 3
    # anyone may stop: `remote stop` is always served
    assert link.request("remote stop") == "remote=off"
    # a technician without a heartbeat is refused too
    host_auth.authenticate(link, KEY)
    with pytest.raises(PenRefused) as e:
        link.request("remote start")
    assert e.value.name == "not_allowed_in_state" and "heartbeat" in e.value.text
    pen.advance(300)
    assert pen.truth()["running"] is False
    link.close()


def test_sr6_remote_start_runs_until_heartbeat_stops(pen: SimulatedPen) -> None:
    link = technician(pen)
    line = Stepped(pen, link)
    try:
        assert line.request(f"remote start {HB_MS}")[0] == f"ok remote=on hb_ms={HB_MS}"
        for _ in range(10):  # 1 s of heartbeats: the drive runs with no trigger
            line.heartbeats(1)
            t = pen.truth()
            assert drive_on(t) and t["running"] is True
        assert line.status()["state"] == "running"
        # the last heartbeat: the drive stops within HB_MS + 2 ticks of it
        # (served in the tick of `seen`; `off` counts the ticks after it)
        # (the runner reads the pty at least every 8 ticks; on a loaded
        # machine the pty may hand the line over a tick late, which moves
        # `seen` and `off` together)
        _, seen = line.request("hb")
        assert seen <= 8
        # the drive (PWM duty) within HB_MS + 2 ticks; the brake one tick
        # after the duty, so drive and brake FETs never overlap (docs/hardware.md)
        off = line.ms_until_off(HB_MS + 50, duty_only=True)
        assert HB_MS <= off <= HB_MS + 2, off
        assert line.ms_until_off(2) <= 1
        line.sim.advance(20)
        st = line.status()
        assert st["state"] == "ready" and st["stop"] == "host_stop", st
        assert any(e.startswith("! heartbeat_lost") for e in line.events), line.events
        # heartbeats resume: nothing restarts by itself
        line.heartbeats(5)
        assert not drive_on(pen.truth()) and pen.truth()["running"] is False
        # switching the dead-man off during a remote run stops it too
        assert line.request(f"remote start {HB_MS}")[0].startswith("ok remote=on")
        line.heartbeats(2)
        assert drive_on(pen.truth())
        assert line.request("hb 0")[0] == "ok timeout_ms=0"
        assert line.ms_until_off(5) <= 2
        line.sim.advance(500)
        assert pen.truth()["running"] is False
        # `remote stop` while running (resident, served during a treatment)
        assert line.request(f"remote start {HB_MS}")[0].startswith("ok remote=on")
        line.heartbeats(2)
        assert line.request("remote stop")[0] == "ok remote=off"
        assert line.ms_until_off(5) <= 2
        line.heartbeats(3)
        assert pen.truth()["running"] is False
    finally:
        line.done()
    link.close()


def test_sr1_remote_start_still_stops_on_tilt(pen: SimulatedPen) -> None:
    link = technician(pen)
    line = Stepped(pen, link)
    try:
        assert line.request("remote start 500")[0] == "ok remote=on hb_ms=500"
        line.heartbeats(3)
        assert drive_on(pen.truth())
        pen.set_tilt(16.0, 30.0)  # clinic limit 15 deg
        assert line.ms_until_off(10) <= 2
        pen.set_tilt(0.0)
        line.heartbeats(8)  # back upright and held, heartbeats on: stays off
        assert not drive_on(pen.truth()) and pen.truth()["running"] is False
        st = line.status()
        assert st["stop"] == "tilt" and st["state"] == "ready", st
    finally:
        line.done()
    link.close()


def test_sec1_remote_run_ends_with_the_technician_session(pen: SimulatedPen) -> None:
    link = technician(pen)
    line = Stepped(pen, link)
    try:
        assert line.request(f"remote start {HB_MS}")[0].startswith("ok remote=on")
        # heartbeats alone for longer than the 120 s idle limit would allow
        # are the technician's activity: the run goes on
        line.heartbeats(3)
        assert drive_on(pen.truth())
        assert line.request("logout")[0].startswith("ok")
        assert line.ms_until_off(5) <= 2
        line.heartbeats(3)  # heartbeats go on: the run does not come back
        assert not drive_on(pen.truth()) and pen.truth()["running"] is False
        assert line.status()["stop"] == "host_stop"
    finally:
        line.done()
    link.close()


def test_sec1_penctl_remote_runs_under_a_heartbeat_then_stops(
    runtime: str, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    from host import Pen
    from host.cli import main

    key_file = str(tmp_path / "tech.key")
    # real-time pacing so penctl's heartbeats keep up; a generous timeout:
    # pass/fail is the pen's state, not a wall-clock measurement
    with SimulatedPen(runtime=runtime, speed=1.0) as sim:
        with Pen(sim.port, key_file=key_file) as host:
            host.provision()
            host.set("depth", "1.0")
        sim.advance(1500)
        # no key file: exit 2 as everywhere, and nothing sent (no 'denied' audit entry)
        assert main(["--port", sim.port, "remote", "--seconds", "0.5"]) == 2
        assert "no key file" in capsys.readouterr().err
        assert sim.truth()["running"] is False
        args = ["--port", sim.port, "--key-file", key_file, "remote", "--seconds", "0.5", "--hb-ms", "2000"]
        assert main(args) == 0
        out = capsys.readouterr().out
        assert "state=running" in out and "host_stop" in out, out
        with Pen(sim.port) as host:
            st = host.status()
            assert st["state"] == "ready" and st["stop"] == "host_stop", st
        sim.advance(200)  # the rotor coasts to a stop
        assert not drive_on(sim.truth()) and sim.truth()["running"] is False
