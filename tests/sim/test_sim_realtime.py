"""Real-time pacing of the device runner (docs/simulator.md, "Real time"):
the simulated clock follows an absolute wall-clock target, so it keeps
within 1 % of the wall clock when the machine keeps up; behind, it catches
up in bounded bursts and reports its lag (`lag_ms` in truth()). Checked
against a fake wall clock that wraps at 2**30 us like MicroPython's
ticks_us (no real waiting, no wall-clock timing in the verdict)."""

from __future__ import annotations

import runner as R
from pen.compat import ticks_diff

MASK = (1 << 30) - 1


class FakeWall:
    """A MicroPython-like ticks_us (wraps at 2**30), and a poll() that
    sleeps on it with the kernel's overshoot."""

    def __init__(self, start: int, overshoot_us: int = 80) -> None:
        self.t = start
        self.overshoot = overshoot_us
        self.sleeps = 0

    def us(self) -> int:
        return self.t & MASK

    def poll(self, ms: int) -> list[object]:
        self.sleeps += 1
        self.t += ms * 1000 + self.overshoot
        return []


def paced_sim(wall: FakeWall, monkeypatch: object, speed: float = 1.0) -> R.Sim:
    mp = monkeypatch  # pytest.MonkeyPatch
    mp.setattr(R, "wall_us", wall.us)  # type: ignore[attr-defined]
    mp.setattr(R, "wall_diff", ticks_diff)  # type: ignore[attr-defined]
    sim = R.Sim.__new__(R.Sim)  # no sockets, no pty: only the pacing state
    sim.clock = R.Clock()
    sim.poll_any = wall  # type: ignore[assignment]
    sim.set_speed(speed)
    return sim


def run(sim: R.Sim, wall: FakeWall, ticks: int, cost_us: int) -> None:
    """`ticks` loop passes, each costing `cost_us` of wall time."""
    for _ in range(ticks):
        while sim._pace():
            pass
        sim.clock.us += 1000
        sim.clock.ms += 1
        wall.t += cost_us


def test_sim_real_time_keeps_within_1_percent_over_ten_minutes_across_the_tick_wrap(monkeypatch: object) -> None:
    wall = FakeWall(start=MASK - 5_000_000)  # wraps 5 s in, and the 2**29 half range later
    sim = paced_sim(wall, monkeypatch)
    start = wall.t
    run(sim, wall, 620_000, cost_us=30)  # > 10 min; a cheap tick
    elapsed = wall.t - start
    assert abs(sim.clock.us - elapsed) <= 0.01 * elapsed
    assert abs(sim.clock.us - elapsed) <= 2000  # in fact within 2 ms: no drift accumulates
    assert sim.lag_ms() < 1.0 and sim.slip_us == 0  # at most a sleep overshoot behind
    assert wall.sleeps > 100_000  # it slept, it did not spin


def test_sim_real_time_n_times_faster(monkeypatch: object) -> None:
    wall = FakeWall(start=1000)
    sim = paced_sim(wall, monkeypatch, speed=4.0)
    start = wall.t
    run(sim, wall, 40_000, cost_us=30)
    elapsed = wall.t - start
    assert abs(sim.clock.us / 4.0 - elapsed) <= 0.01 * elapsed


def test_sim_real_time_reports_its_lag_when_the_machine_cannot_keep_up(monkeypatch: object) -> None:
    wall = FakeWall(start=MASK - 1000)
    sim = paced_sim(wall, monkeypatch)
    start = wall.t
    run(sim, wall, 20_000, cost_us=1100)  # each simulated ms costs 1.1 ms
    behind_us = (wall.t - start) - sim.clock.us
    assert behind_us > R.CATCHUP_MAX_US + 900_000
    # caught up at most CATCHUP_MAX_US in a burst; the rest is reported
    assert sim.lag_us == R.CATCHUP_MAX_US
    assert abs(sim.lag_ms() * 1000 - behind_us) <= 1100


def test_sim_real_time_catches_up_a_short_stall_in_one_bounded_burst(monkeypatch: object) -> None:
    wall = FakeWall(start=0)
    sim = paced_sim(wall, monkeypatch)
    run(sim, wall, 1000, cost_us=30)
    wall.t += 150_000  # a 150 ms stall (a GC pause, another process)
    sleeps = wall.sleeps
    run(sim, wall, 140, cost_us=30)
    assert wall.sleeps == sleeps  # back to back: catching up
    assert sim.lag_us > 0 and sim.slip_us == 0
    run(sim, wall, 100, cost_us=30)
    assert sim.lag_ms() == 0.0  # caught up: nothing given up
    wall.t += R.CATCHUP_MAX_US + 500_000  # a stall longer than the catch-up bound
    run(sim, wall, 1, cost_us=30)
    assert sim.slip_us > 490_000  # given up, and reported
    assert sim.lag_ms() * 1000 >= R.CATCHUP_MAX_US + 495_000
