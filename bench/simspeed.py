"""Simulator speed: simulated seconds per second, per runtime (DESIGN §7).

  python -m bench.simspeed [--seconds 20] [--session]      (also: pensim bench from a checkout)

For each runtime it prints
- tickbench: one simulated ms in-process (bench/tickbench.py), split
  into firmware + sim board and world physics, best of 3;
- end to end: a SimulatedPen as fast as it goes, pen running at 100 Hz on
  the skin, simulated s per wall s and per CPU s of the device process
  (the CPU figure is robust when other jobs share the machine);
- with --session: a whole 25-minute treatment session (pen running at
  100 Hz on the skin throughout), wall and CPU seconds.
"""

from __future__ import annotations

import argparse
import subprocess
import sys
import time
from pathlib import Path

from sim.simulated_pen import RUNTIMES, SimulatedPen, micropython_command

HERE = Path(__file__).resolve().parent


def tickbench(runtime: str, ticks: int = 5000) -> str:
    cmd = micropython_command() if runtime == "micropython" else [sys.executable]
    r = subprocess.run(
        [*cmd, str(HERE / "tickbench.py"), str(ticks)],
        cwd=HERE,
        capture_output=True,
        text=True,
        timeout=300,
        stdin=subprocess.DEVNULL,
    )
    lines = [x for x in r.stdout.splitlines() if x.startswith("tickbench")]
    return lines[0] if lines else f"tickbench failed: {r.stderr.strip()[-300:]}"


def _running(pen: SimulatedPen) -> None:
    pen.advance(1500)  # homing and tilt hold
    pen.set_contact(True)
    pen.press_trigger()
    pen.advance(500)


def speed_ratio(runtime: str, seconds: float) -> tuple[float, float]:
    """(simulated s per wall s, simulated s per CPU s), drive running."""
    with SimulatedPen(runtime=runtime, speed=None) as pen:
        _running(pen)
        c0 = pen.cpu_seconds()
        t0 = time.perf_counter()
        pen.advance(int(seconds * 1000))
        wall = time.perf_counter() - t0
        cpu = pen.cpu_seconds() - c0
        assert pen.truth()["running"], "the pen stopped during the benchmark"
    return seconds / wall, seconds / max(cpu, 1e-3)


def session(runtime: str, minutes: float = 25.0) -> tuple[float, float, bool]:
    """(wall s, CPU s, ran throughout) for a whole session."""
    with SimulatedPen(runtime=runtime, speed=None) as pen:
        _running(pen)
        s0 = int(pen.truth()["strokes"])
        c0 = pen.cpu_seconds()
        t0 = time.perf_counter()
        pen.advance(int(minutes * 60000) - 2000)
        wall = time.perf_counter() - t0
        cpu = pen.cpu_seconds() - c0
        strokes = int(pen.truth()["strokes"]) - s0
    return wall, cpu, strokes > (minutes * 60 - 3) * 99


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(prog="python -m bench.simspeed")
    p.add_argument("--seconds", type=float, default=20.0)
    p.add_argument("--runtime", choices=RUNTIMES, action="append")
    p.add_argument("--session", action="store_true", help="also time a 25-minute session")
    a = p.parse_args(argv)
    for rt in a.runtime or RUNTIMES:
        print(f"{rt:11s} {tickbench(rt)}", flush=True)
        wall, cpu = speed_ratio(rt, a.seconds)
        print(
            f"{rt:11s} end to end: {wall:6.1f}x wall, {cpu:6.1f}x CPU ({a.seconds:g} s simulated, drive running)",
            flush=True,
        )
        if a.session:
            w, c, ran = session(rt)
            print(
                f"{rt:11s} 25-min session: {w:6.1f} s wall, {c:6.1f} s CPU ({'ran' if ran else 'did NOT run'} throughout)",
                flush=True,
            )
    return 0


if __name__ == "__main__":
    sys.exit(main())
