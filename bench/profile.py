"""Where a loop pass's cycles go on the virtual Pico: a cycle profile of
the image of `make firmware`, by function. sim/rp2040/chip.js sums the
cycles of every instruction executed in the chosen stages of the loop
($PENSIM_RP2040_PROFILE, docs/simulator.md); this names each address by
the image's ELF: a C function of MicroPython or the SDK, or the frozen
machine code of a native or viper Python function (`pen.core Core.tick`).
Bytecode runs in the VM, so a bytecode function's time shows as
`mp_execute_bytecode` and the runtime functions it calls.

    python -m bench.profile [SECONDS [RATE_HZ]] [--stages 2,3] [--top N]
    python -m bench.profile requests [RATE_HZ] [--top N]

The first form runs `bench.chip`'s measurement (telemetry at 100 Hz, the
needles on the skin); the second its requests while running (`status`,
`ping`). --stages takes the stage marks of firmware/pen/runtime.py (1
inputs, 2 tick, 3 apply, 4 persistence, 5 serial, 6 protocol; default all
six). The profile covers the whole session in those stages (boot and the
soft start included), so read it as shares. docs/performance.md says what
it found.
"""

from __future__ import annotations

import bisect
import os
import sys
import tempfile
from pathlib import Path

CYCLES_PER_US = 125  # the emulated RP2040's clock (sim/rp2040/chip.js)
TOP = 25


def read_profile(path: Path) -> dict[int, int]:
    """chip.js's 'ADDRESS CYCLES' lines -> {address: cycles}."""
    hist: dict[int, int] = {}
    for line in path.read_text().splitlines():
        parts = line.split()
        if len(parts) == 2:
            hist[int(parts[0], 16)] = hist.get(int(parts[0], 16), 0) + int(parts[1])
    return hist


def symbol_name(name: str) -> str:
    """A frozen Python function's machine code (`fun_data_pen_core_Core_tick`)
    as `pen_core_Core_tick [py]`; C names stay as they are."""
    return name[len("fun_data_") :] + " [py]" if name.startswith("fun_data_") else name


def by_function(hist: dict[int, int], symbols: list[tuple[int, str, str]]) -> list[tuple[str, int]]:
    """Cycles per function: each address goes to the last code symbol at or
    below it (symbols: (address, nm type, name) by address); addresses
    below every symbol are `?`. Largest first."""
    code = [(a, n) for a, t, n in symbols if t in "tTwW"]
    addrs = [a for a, _ in code]
    out: dict[str, int] = {}
    for pc, n in hist.items():
        k = bisect.bisect_right(addrs, pc) - 1
        name = symbol_name(code[k][1]) if k >= 0 else "?"
        out[name] = out.get(name, 0) + n
    return sorted(out.items(), key=lambda x: -x[1])


def report(rows: list[tuple[str, int]], top: int = TOP) -> str:
    total = sum(n for _, n in rows) or 1
    lines = [f"{total / CYCLES_PER_US / 1000:.1f} ms emulated in the profiled stages"]
    for name, n in rows[:top]:
        lines.append(f"  {100 * n / total:5.1f} %  {n / CYCLES_PER_US / 1000:8.2f} ms  {name}")
    return "\n".join(lines)


def profiled(run: object, stages: str) -> dict[int, int]:
    """Runs `run()` (a bench.chip measurement) with the profile on."""
    with tempfile.TemporaryDirectory() as tmp:
        path = Path(tmp) / "profile.txt"
        os.environ["PENSIM_RP2040_PROFILE"] = str(path)
        os.environ["PENSIM_RP2040_PROFILE_MARKS"] = stages
        try:
            run()  # type: ignore[operator]
        finally:
            del os.environ["PENSIM_RP2040_PROFILE"]
            del os.environ["PENSIM_RP2040_PROFILE_MARKS"]
        if not path.exists():
            raise SystemExit("no profile written: is sim/rp2040/chip.js the one with $PENSIM_RP2040_PROFILE?")
        return read_profile(path)


def main(argv: list[str]) -> int:
    from bench import chip
    from sim.rp2040 import elf_symbols

    args = list(argv)
    top = TOP
    stages = "1,2,3,4,5,6"
    if "--top" in args:
        i = args.index("--top")
        top = int(args[i + 1])
        del args[i : i + 2]
    if "--stages" in args:
        i = args.index("--stages")
        stages = args[i + 1]
        del args[i : i + 2]
    symbols = elf_symbols()
    if not symbols:
        print("bench.profile: no symbols (build/needle-pen.elf and arm-none-eabi-nm: make firmware)", file=sys.stderr)
        return 1
    if args[:1] == ["requests"]:
        rate = int(args[1]) if len(args) > 1 else 100
        hist = profiled(lambda: chip.measure_requests(rate), stages)
        what = f"requests while running at {rate} Hz"
    else:
        run_s = float(args[0]) if args else 0.3
        rate = int(args[1]) if len(args) > 1 else 100
        hist = profiled(lambda: chip.measure(run_s, rate), stages)
        what = f"{rate} Hz, telemetry 100 Hz, {run_s} s"
    print(f"cycle profile, stages {stages}, {what}")
    print(report(by_function(hist, symbols), top))
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
