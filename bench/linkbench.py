"""Link figures against a real-time simulated pen (DESIGN §7):

  python -m bench.linkbench [--runtime micropython|cpython] [--n 500] [--seconds 60]

prints the median and 95th percentile command round trip (host -> pen ->
host over the pty, a checked `ping`) and the telemetry frames received and
lost at 100 Hz over the given time.
"""

from __future__ import annotations

import argparse
import statistics
import time

from host.api import Pen
from host.monitor import Counter


def round_trips(pen: Pen, n: int) -> list[float]:
    out: list[float] = []
    for _ in range(n):
        t = time.perf_counter()
        pen.ping()
        out.append((time.perf_counter() - t) * 1000.0)
    return out


def telemetry_loss(pen: Pen, seconds: float, hz: int = 100) -> tuple[int, int]:
    counter = Counter()
    pen.telemetry(hz)
    try:
        for f in pen.frames(seconds):
            counter.add(int(f["seq"]))  # type: ignore[call-overload]
    finally:
        pen.telemetry(0)
    return counter.frames, counter.lost


def main(argv: list[str] | None = None) -> int:
    from sim import SimulatedPen

    ap = argparse.ArgumentParser(prog="linkbench")
    ap.add_argument("--runtime", default="micropython", choices=["micropython", "cpython"])
    ap.add_argument("--n", type=int, default=500)
    ap.add_argument("--seconds", type=float, default=60.0)
    args = ap.parse_args(argv)
    with SimulatedPen(runtime=args.runtime, speed=1.0) as sim, Pen(sim.port) as pen:
        rt = sorted(round_trips(pen, args.n))
        frames, lost = telemetry_loss(pen, args.seconds)
    print(f"runtime                      {args.runtime}")
    print(f"round trip median            {statistics.median(rt):.3f} ms  (n={len(rt)})")
    print(f"round trip p95               {rt[int(len(rt) * 0.95) - 1]:.3f} ms")
    print(f"telemetry 100 Hz, {args.seconds:g} s     {frames} frames, {lost} lost")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
