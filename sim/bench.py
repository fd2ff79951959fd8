"""Simulator speed: simulated seconds per wall-clock second, per runtime.

  python -m sim.bench [--seconds 20] [--session]

prints one line per runtime; ``--session`` also simulates a full 25-minute
treatment session (pen running at 100 Hz on the skin) and prints its wall
time. Figures are ratios measured on this machine (DESIGN §7).
"""

from __future__ import annotations

import argparse
import sys
import time

from sim.pen import RUNTIMES, SimulatedPen


def speed_ratio(runtime: str, seconds: float, running: bool = True) -> float:
    """Simulated s per wall s at speed=max with the drive running."""
    with SimulatedPen(runtime=runtime, speed=None) as pen:
        pen.advance(1500)  # homing and tilt hold
        if running:
            pen.set_contact(True)
            pen.press_trigger()
            pen.advance(500)
        t0 = time.perf_counter()
        pen.advance(int(seconds * 1000))
        wall = time.perf_counter() - t0
    return seconds / wall


def session_wall_s(runtime: str, minutes: float = 25.0) -> tuple[float, bool]:
    """Wall seconds for a whole session; True if the pen ran all of it."""
    with SimulatedPen(runtime=runtime, speed=None) as pen:
        pen.advance(1500)
        pen.set_contact(True)
        pen.press_trigger()
        t0 = time.perf_counter()
        pen.advance(int(minutes * 60000))
        wall = time.perf_counter() - t0
        truth = pen.truth()
    strokes = int(truth["strokes"])  # type: ignore[arg-type]
    return wall, strokes > minutes * 60 * 90


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(prog="python -m sim.bench")
    p.add_argument("--seconds", type=float, default=20.0)
    p.add_argument("--runtime", choices=RUNTIMES, action="append")
    p.add_argument("--session", action="store_true", help="also time a 25-minute session")
    a = p.parse_args(argv)
    for rt in a.runtime or RUNTIMES:
        r = speed_ratio(rt, a.seconds)
        print(f"simulator speed {rt:11s} {r:8.1f}x real time (drive running, {a.seconds:g} s simulated)", flush=True)
        if a.session:
            wall, ran = session_wall_s(rt)
            print(f"25-min session  {rt:11s} {wall:8.1f} s wall ({'ran' if ran else 'did NOT run'} throughout)", flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
