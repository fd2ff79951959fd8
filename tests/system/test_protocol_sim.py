"""The serial protocol over the pty against the simulated pen, on both
runtimes: every command, events, real-time bytes, heartbeat, telemetry
frame counting at 100 Hz (stepped time, so the count is exact)."""

from __future__ import annotations

import time

import pytest

from host import Pen, PenRefused
from host.api import parse_frame
from host.link import Link, frame, unframe
from sim import SimulatedPen


def wait_ready(sim: SimulatedPen) -> None:
    sim.advance(1500)


def collect(pen: Pen, seconds: float, until: str | None = None) -> list[str]:
    got: list[str] = list(pen.link.unprompted)  # those that came with replies
    pen.link.unprompted.clear()
    pen.link.on_unprompted = got.append
    end = time.monotonic() + seconds
    try:
        while time.monotonic() < end:
            pen.link.poll(0.05)
            if until and any(x.startswith(until) for x in got):
                break
    finally:
        pen.link.on_unprompted = None
    return got


def test_every_command_answers_over_the_pty(fast_pen: SimulatedPen) -> None:
    with Pen(fast_pen.port) as pen:
        ident = pen.identity
        assert ident["proto"] == 1 and ident["serial"] == "SIM00001"
        assert {"crc", "rid", "rt", "tel100", "hb"} <= set(str(ident["caps"]).split(","))
        assert pen.status()["state"] in ("boot", "homing", "idle", "ready")
        r = pen.set("depth", "1.25")  # an ok is durable: on flash before the reply
        assert r["depth"] == 1.25 and str(r["stored"]) == "1"
        assert pen.get("depth") == {"depth": 1.25}
        assert pen.get() == {"depth": 1.25, "rate": 100.0}
        assert pen.limits() == {"max_depth": 1.5, "max_rate": 150.0, "max_tilt": 15.0, "max_session_min": 25}
        with pytest.raises(PenRefused) as e:
            pen.set_limit("max_depth", "2.0")
        assert e.value.code == 40
        cfg = pen.config()
        assert cfg["depth"] == 1.25 and cfg["hash"] == pen.info()["cfg"]
        assert pen.import_config({"depth": 1.0, "rate": 110})["applied"] == 2
        assert pen.get() == {"depth": 1.0, "rate": 110.0}
        assert pen.telemetry(0)["hz"] == 0
        assert pen.heartbeat(0) == {"timeout_ms": 0}
        pen.ping()
        assert "commands=" in pen.link.request("help")
        pen.clear_fault()
        pen.stop()


def test_sr9_refusals_carry_published_codes(fast_pen: SimulatedPen) -> None:
    with Pen(fast_pen.port) as pen:
        for body, code in (
            ("frobnicate", 1),
            ("get depth rate", 2),
            ("set depth x", 3),
            ("set speed 1", 4),
            ("set depth 2.6", 10),
            ("set depth 2.0", 11),
            ("set depth 1.01", 12),
            ("limits set max_rate 100", 40),
            ("x" * 170, 20),
        ):
            with pytest.raises(PenRefused) as e:
                pen.link.request(body)
            assert e.value.code == code, body
        # a bad check is retried once by the link, then reported
        link = pen.link
        link.ser.write(b"\n@77 set depth 1.0*0000\n")
        reply = None
        end = time.monotonic() + 5
        while reply is None and time.monotonic() < end:
            raw = link._read_raw(end)
            text = unframe(raw) if raw is not None else None
            if text and text.startswith("@77 "):
                reply = text
        assert reply is not None and reply.startswith("@77 err 22 bad_check")
        assert pen.get("depth") == {"depth": 0.5}


def test_events_for_state_changes_and_faults(fast_pen: SimulatedPen) -> None:
    with Pen(fast_pen.port) as pen:
        wait_ready(fast_pen)
        collect(pen, 0.2)
        fast_pen.set_tilt(30.0)
        got = collect(pen, 5.0, until="! state idle")
        assert "! state idle" in got
        fast_pen.inject("imu_lost")
        got = collect(pen, 5.0, until="! fault imu_lost")
        assert "! fault imu_lost" in got and "! state fault" in got
        # the host never confuses an event with a reply
        assert pen.status()["fault"] == "imu_lost"


def test_rt_stop_byte_stops_the_running_drive(fast_pen: SimulatedPen) -> None:
    with Pen(fast_pen.port) as pen:
        wait_ready(fast_pen)
        fast_pen.press_trigger()
        fast_pen.advance(500)
        assert fast_pen.truth()["running"] is True
        pen.link.send_byte(b"!")
        fast_pen.advance(60)
        assert fast_pen.truth()["motor_duty"] == 0.0
        assert pen.status()["stop"] == "host_stop"
        got = collect(pen, 2.0, until="! stop")
        assert any(x.startswith("! stop reason=host_stop") for x in got)
        pen.link.send_byte(b"?")
        got = collect(pen, 2.0, until="? ")
        assert any(x.startswith("? state=") for x in got)


def test_heartbeat_dead_man_stops_the_drive(fast_pen: SimulatedPen) -> None:
    with Pen(fast_pen.port) as pen:
        wait_ready(fast_pen)
        fast_pen.press_trigger()
        fast_pen.advance(300)
        assert fast_pen.truth()["running"] is True
        pen.heartbeat(200)
        fast_pen.advance(400)  # no heartbeat for 400 ms of pen time
        got = collect(pen, 2.0, until="! heartbeat_lost")
        assert "! heartbeat_lost" in got
        assert fast_pen.truth()["running"] is False


class SteppedHost:
    """Talks to a pen in stepped time: every request needs time to pass."""

    def __init__(self, sim: SimulatedPen) -> None:
        self.sim = sim
        self.link = Link(sim.port, timeout=1.0)
        self.frames: list[str] = []
        self.other: list[str] = []
        self.link.on_unprompted = self._unprompted

    def _unprompted(self, text: str) -> None:
        (self.frames if text.startswith("~") else self.other).append(text)

    def request(self, body: str, rid: str = "1") -> str:
        self.link.ser.write(b"\n" + frame(rid, body))
        # stepped and max-speed sims read the serial line every 8 simulated ms
        self.sim.advance(20)
        end = time.monotonic() + 5
        while time.monotonic() < end:
            raw = self.link._read_raw(end)
            text = unframe(raw) if raw is not None else None
            if text is None:
                continue
            if text.startswith(f"@{rid} "):
                return text.split(" ", 1)[1]
            self._unprompted(text)
        raise AssertionError(f"no reply to {body}")

    def pump(self, ms: int) -> None:
        self.sim.advance(ms)
        self.link.poll(0.2)


def test_telemetry_at_100hz_every_frame_numbered_and_counted(runtime: str) -> None:
    with SimulatedPen(runtime=runtime, speed=None) as sim:
        host = SteppedHost(sim)
        sim.advance(1500)
        host.link.poll(0.2)
        assert host.request("tel 100").startswith("ok hz=100 period_ms=10")
        host.frames.clear()
        host.pump(1)  # the first frame is due one period after the request
        host.frames.clear()
        for _ in range(30):
            host.pump(100)
        frames = [parse_frame(f) for f in host.frames]
        assert all(f is not None for f in frames)
        seqs = [int(f["seq"]) for f in frames if f is not None]  # type: ignore[call-overload]
        assert len(seqs) == 300, len(seqs)
        assert seqs == list(range(seqs[0], seqs[0] + 300))
        assert frames[-1] is not None and frames[-1]["state"] == "ready"
        assert host.request("tel 0", rid="2").startswith("ok hz=0")
        host.frames.clear()
        host.pump(200)
        assert host.frames == []
        host.link.close()
