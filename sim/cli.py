"""pensim: run a virtual pen.

  pensim serve [--runtime micropython|cpython] [--speed 1.0]

prints ``PORT <path>`` as its first line, then reads world commands from
stdin (one per line, ``help`` lists them) until ``quit`` or end of input.
"""

from __future__ import annotations

import argparse
import json
import signal
import sys

from sim.pen import FAULTS, SimError, SimulatedPen

HELP = """world commands:
  tilt DEG [AXIS_DEG]   tilt the pen from vertical
  trigger on|off        press / release the trigger
  cartridge on|off      insert / pull the needle cartridge
  contact on|off        needles on / off the skin
  load SCALE            skin load factor (1.0 = nominal)
  inject FAULT          one of: {faults}
  clear FAULT
  speed X|stepped|max   time speed
  advance MS            (stepped time) let MS of simulated time pass
  truth                 the world's ground truth as JSON
  quit""".format(faults=", ".join(FAULTS))


def _onoff(word: str) -> bool:
    if word in ("on", "1", "yes", "true"):
        return True
    if word in ("off", "0", "no", "false"):
        return False
    raise ValueError(f"expected on or off, not {word!r}")


def console_command(pen: SimulatedPen, line: str) -> str | None:
    """Run one console line; return the text to print, None to quit."""
    words = line.split()
    if not words:
        return ""
    cmd, args = words[0], words[1:]
    if cmd in ("quit", "exit"):
        return None
    if cmd == "help":
        return HELP
    if cmd == "tilt":
        pen.set_tilt(float(args[0]), float(args[1]) if len(args) > 1 else 0.0)
    elif cmd == "trigger":
        (pen.press_trigger if _onoff(args[0]) else pen.release_trigger)()
    elif cmd == "cartridge":
        pen.set_cartridge(_onoff(args[0]))
    elif cmd == "contact":
        pen.set_contact(_onoff(args[0]))
    elif cmd == "load":
        pen.set_load(float(args[0]))
    elif cmd == "inject":
        pen.inject(args[0])
    elif cmd == "clear":
        pen.clear(args[0])
    elif cmd == "speed":
        pen.set_speed(None if args[0] == "stepped" else 0 if args[0] == "max" else float(args[0]))
    elif cmd == "advance":
        return f"t={pen.advance(int(args[0]))} ms"
    elif cmd == "truth":
        return json.dumps(pen.truth(), sort_keys=True)
    else:
        return f"unknown command {cmd!r}; type help"
    return "ok"


def serve(args: argparse.Namespace) -> int:
    speed = None if args.speed == "stepped" else 0.0 if args.speed == "max" else float(args.speed)
    with SimulatedPen(runtime=args.runtime, speed=speed, seed=args.seed) as pen:
        print(f"PORT {pen.port}", flush=True)
        print("type help for world commands", file=sys.stderr, flush=True)
        signal.signal(signal.SIGTERM, lambda _sig, _frame: sys.exit(0))
        for line in sys.stdin:
            try:
                out = console_command(pen, line)
            except (ValueError, IndexError, SimError) as e:
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


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(prog="pensim", description="Run a virtual needle pen.")
    sub = p.add_subparsers(dest="command", metavar="COMMAND")
    sub.required = True
    s = sub.add_parser("serve", help="run a virtual pen; prints PORT <path> first")
    s.add_argument("--runtime", choices=("micropython", "cpython"), default="micropython")
    s.add_argument("--speed", default="1.0", help="time factor, 'max' or 'stepped' (default 1.0: real time)")
    s.add_argument("--seed", type=int, default=1)
    args = p.parse_args(argv)
    try:
        return serve(args)
    except (SimError, KeyboardInterrupt) as e:
        if isinstance(e, SimError):
            print(f"pensim: {e}", file=sys.stderr)
            return 3
        return 0


if __name__ == "__main__":
    sys.exit(main())
