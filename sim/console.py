"""The world console of a virtual pen: one text command per line, as
typed at `pensim serve` and used by scenario files (docs/simulator.md)."""

from __future__ import annotations

import json

from sim.simulated_pen import CATALOGUE, FAULTS, SimulatedPen

HELP = """world commands:
  tilt DEG [AXIS_DEG]   tilt the pen from vertical (towards azimuth AXIS_DEG)
  sweep DEG_S [TO_DEG]  tilt at DEG_S degrees per second (until TO_DEG)
  trigger on|off        press / release the trigger
  cartridge on|off      insert / pull the needle cartridge
  contact on|off        needles on / off the skin
  load SCALE            skin load factor (1.0 = nominal, 0 = none)
  battery SOC           battery state of charge 0..1 (1 = 8.4 V full)
  inject FAULT          one of: {faults}
  clear FAULT
  faults                the fault catalogue with what each one does
  speed X|stepped|max   time speed (X times real time)
  advance MS            let MS of simulated time pass (the way time moves when stepped)
  trace CSV [MS]|off    record the world and firmware outputs every MS ms
  plot PNG              render the trace so far to a PNG (ends the trace)
  truth                 the world's ground truth as JSON
  quit""".format(faults=", ".join(FAULTS))

FAULT_HELP = {row[0]: row[1] for row in CATALOGUE}  # sim/device/faults.py


def fault_table_markdown() -> str:
    """The fault catalogue as the table docs/simulator.md prints (a test
    keeps the two equal)."""
    lines = [
        "| fault | what the world does | what the firmware is expected to do |",
        "| --- | --- | --- |",
    ]
    lines += [f"| `{name}` | {world} | {firmware} |" for name, world, firmware in CATALOGUE]
    return "\n".join(lines)


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
    if cmd == "faults":
        return "\n".join(f"  {k:17s} {v}" for k, v in FAULT_HELP.items())
    if cmd == "tilt":
        if not 1 <= len(args) <= 2:
            return "usage: tilt DEG [AXIS_DEG]   (tilt from vertical, degrees)"
        pen.set_tilt(float(args[0]), float(args[1]) if len(args) > 1 else 0.0)
    elif cmd == "sweep":
        pen.sweep_tilt(float(args[0]), float(args[1]) if len(args) > 1 else None)
    elif cmd == "battery":
        pen.set_battery(float(args[0]))
    elif cmd == "trace":
        if args[0] == "off":
            pen.stop_trace()
        else:
            pen.start_trace(args[0], int(args[1]) if len(args) > 1 else 10)
    elif cmd == "plot":
        return f"plot written to {pen.plot(args[0])}"
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
