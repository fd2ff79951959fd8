"""`make bench` rows measured on the virtual Pico (the UF2 on rp2040js at
125 MHz, interrupts on, USB connected): the full loop pass and the control
tick in emulated µs, and the image size. docs/performance.md says how
emulated time differs from silicon.

The image is not changed to measure it: sim/rp2040/chip.js times the loop
from what the firmware does anyway ($PENSIM_RP2040_PROBE): a pass is the
time between two watchdog feeds (one per pass), the tick is bounded by the
battery ADC read (the last input) and the motor PWM write (the first
output) of a pass.

    python -m bench.chip [SECONDS [RATE_HZ ...]]   per-stage table, JSON
    python -m bench.chip requests [RATE_HZ]        only the requests while running
"""

from __future__ import annotations

import contextlib
import json
import os
import sys
import tempfile
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any, Protocol

RUN_S = 2.0  # emulated seconds of running at 100 Hz on the skin (~20 s wall)
LOOP_PERIOD_US = 5000  # the loop period on the RP2040 (boards/pico.py LOOP_US)
_cache: dict[str, Any] = {}


def stats(xs: list[float]) -> dict[str, float]:
    s = sorted(xs)
    if not s:
        return {"n": 0, "mean": 0.0, "p99": 0.0, "max": 0.0}
    return {
        "n": len(s),
        "mean": round(sum(s) / len(s), 1),
        "p99": round(s[min(len(s) - 1, int(len(s) * 0.99))], 1),
        "max": round(s[-1], 1),
    }


STAGES = (
    # (name, mark at its start, mark at its end): firmware/pen/runtime.py MARK
    ("inputs", 1, 2),
    ("tick", 2, 3),
    ("apply+wdt", 3, 4),
    ("persist", 4, 5),
    ("serial", 5, 6),
    ("proto+sec", 6, 7),
    ("busy", 1, 7),
)


def parse_marks(lines: list[str]) -> dict[str, list[float]]:
    """Stage durations (µs) from the probe's `mark N T` lines: a pass runs
    from mark 1 to mark 7; a pass cut by a reset is dropped."""
    out: dict[str, list[float]] = {name: [] for name, _, _ in STAGES}
    at: dict[int, float] = {}
    for x in lines:
        if not x.startswith("mark "):
            continue
        _, n, t = x.split()
        k = int(n)
        if k == 1:
            at = {}
        at[k] = float(t)
        if k == 7 and 1 in at:
            for name, a, b in STAGES:
                if a in at and b in at:
                    out[name].append(at[b] - at[a])
    return out


def flash_with_drive_on(lines: list[str]) -> int:
    """Flash erase/program stalls that happened with the drive on."""
    return sum(1 for x in lines if x.startswith("flash ") and int(x.split()[2]) > 0)


@contextlib.contextmanager
def booted_chip() -> Iterator[tuple[Any, Path, Path]]:
    """A virtual Pico booted from the image of `make firmware`, with its
    loop probe (chip.js writes the stage marks there) and a temporary
    folder: (pen, probe file, folder), after 1.9 s of emulated boot,
    homing and tilt hold time."""
    from sim import SimulatedPen

    with tempfile.TemporaryDirectory() as tmp:
        probe = Path(tmp) / "probe.txt"
        os.environ["PENSIM_RP2040_PROBE"] = str(probe)
        try:
            with SimulatedPen(runtime="rp2040", speed=0) as pen:
                _advance(pen, 1900)  # boot, homing, tilt hold time
                yield pen, probe, Path(tmp)
        finally:
            del os.environ["PENSIM_RP2040_PROBE"]


def measure(run_s: float = RUN_S, rate_hz: int = 100, tel_hz: int = 100) -> dict[str, Any]:
    """Boots the image, homes, connects a technician who streams telemetry
    at tel_hz, runs at rate_hz on the skin for run_s of emulated time and
    returns the loop figures."""
    key = f"loop{rate_hz}/{tel_hz}/{run_s}"
    if key in _cache:
        return _cache[key]
    import threading

    from host import Pen
    from sim.rp2040 import uf2_path

    with booted_chip() as (pen, probe, tmp):
        with Pen(pen.port, timeout=60.0, key_file=tmp / "tech.key") as host:
            # homed and ready (boot to ready ~2.7 s): a trigger
            # pressed while the stage still moves never starts it
            for _ in range(40):
                if host.status()["state"] == "ready":
                    break
                _advance(pen, 100)
            heap_boot = free_heap(pen)
            if tel_hz:
                host.provision()
                host.auth()
            host.set("rate", str(rate_hz))
            if tel_hz:
                host.telemetry(tel_hz)
            stop = threading.Event()

            def drain() -> None:  # the technician's screen reads every frame
                while not stop.is_set():
                    host.link.ser.read(4096)

            reader = threading.Thread(target=drain, daemon=True)
            reader.start()
            try:
                pen.set_contact(True)
                pen.press_trigger()
                _advance(pen, 300)  # soft start
                start = heap_state(pen)
                skip = len(probe.read_text().splitlines())
                _advance(pen, int(run_s * 1000))
                end = heap_state(pen)
                truth = pen.truth()
                lines = probe.read_text().splitlines()[skip:]
            finally:
                stop.set()
                reader.join()
    passes = [float(x.split()[1]) for x in lines if x.startswith("pass ")]
    ticks = [float(x.split()[1]) for x in lines if x.startswith("tick ")]
    stages = parse_marks(lines)
    r = {
        "image": str(uf2_path()),
        "run_s": run_s,
        "rate_hz": rate_hz,
        "tel_hz": tel_hz,
        "pass_us": stats(passes),
        "busy_us": stats(stages["busy"]),
        "stages_us": {name: stats(v) for name, v in stages.items()},
        "tick_us": stats(ticks),
        "flash_with_drive_on": flash_with_drive_on(lines),
        "stroke_hz": round(truth["stroke_hz"], 2),
        "resets": truth["resets"],
        "heap_free_boot": heap_boot,
        "heap_free_start": start["free"],  # running, after the soft start
        "heap_free_run": end["free"],
        # every gc_alloc over the run (also blocks freed again at once)
        "heap_alloc_blocks_run": end["allocs"] - start["allocs"],
        "gc_threshold_run": end["threshold"],
        "speed_ratio": round(truth["speed_ratio"], 3),
    }
    _cache[key] = r
    return r


# a host request served while the needles run (DESIGN §7), and none (the
# same windows of running without one): the replies built without heap
# (`status`, `ping`) and from str (`get`, `loop`, `info`: at most
# pen/protocol.py RUN_REQUESTS of those a run)
REQUESTS = ("none", "status", "ping", "get", "loop", "info")


def request_passes(lines: list[str]) -> dict[str, float]:
    """The worst busy pass, worst serial stage and worst pass (feed to feed)
    in probe lines that cover a request, and the periods missed (a pass of
    2 periods missed one)."""
    st = parse_marks(lines)
    passes = [float(x.split()[1]) for x in lines if x.startswith("pass ")]
    return {
        "busy_max": max(st["busy"], default=0.0),
        "serial_max": max(st["serial"], default=0.0),
        "proto_max": max(st["proto+sec"], default=0.0),
        "pass_max": max(passes, default=0.0),
        "missed": float(sum(int((p - LOOP_PERIOD_US // 10) // LOOP_PERIOD_US) for p in passes if p > LOOP_PERIOD_US)),
    }


def measure_requests(rate_hz: int = 100, n: int = 4, tel_hz: int = 100) -> dict[str, Any]:
    """Boots the image, connects a technician who streams telemetry at
    tel_hz (0: none), runs at rate_hz on the skin and sends each of
    REQUESTS n times, one at a time, while the needles run: per request
    the worst busy pass, serial stage and pass of the passes that served it
    (from the request's send to its reply, plus 20 ms)."""
    key = f"req{rate_hz}/{n}/{tel_hz}"
    if key in _cache:
        return _cache[key]
    from host import Pen

    out: dict[str, list[dict[str, float]]] = {r: [] for r in REQUESTS}
    with booted_chip() as (pen, probe, tmp):
        with Pen(pen.port, timeout=60.0, key_file=tmp / "tech.key") as host:
            if tel_hz:
                host.provision()
                host.auth()
                host.telemetry(tel_hz)
            host.set("rate", str(rate_hz))
            pen.set_contact(True)
            for _ in range(40):  # homed and the tilt hold time over: a fresh press starts it
                pen.release_trigger()
                pen.advance(50)
                pen.press_trigger()
                pen.advance(100)
                if pen.truth()["stroke_hz"] > 5.0:
                    break
            _advance(pen, 300)  # soft start
            for _ in range(n):
                for req in REQUESTS:
                    skip = len(probe.read_text().splitlines())
                    if req == "none":
                        pen.advance(60)  # the same running, no request
                    else:
                        getattr(host, req)()
                        pen.advance(20)
                    out[req].append(request_passes(probe.read_text().splitlines()[skip:]))
                    if pen.truth()["motor_duty"] <= 0:
                        raise RuntimeError(f"the drive is off after `{req}`: {pen.truth()}")
            truth = pen.truth()
    r: dict[str, Any] = {
        "rate_hz": rate_hz,
        "n": n,
        "tel_hz": tel_hz,
        "resets": truth["resets"],
        "running": truth["motor_duty"] > 0,
    }
    for req, xs in out.items():
        r[req] = {k: max(x[k] for x in xs) for k in xs[0]}
    _cache[key] = r
    return r


def request_table(r: dict[str, Any]) -> str:
    lines = [
        f"requests while running at {r['rate_hz']} Hz, telemetry {r['tel_hz']} Hz, {r['n']} each, resets {r['resets']}"
    ]
    for req in REQUESTS:
        x = r[req]
        lines.append(
            f"  {req:8s} busy max {x['busy_max']:7.1f}  serial max {x['serial_max']:7.1f}  "
            f"proto max {x['proto_max']:7.1f}  pass max {x['pass_max']:7.1f} us  missed periods {x['missed']:.0f}"
        )
    return "\n".join(lines)


def _advance(pen: Any, ms: int) -> None:
    """Emulated time in steps of 100 ms (each answered within the sim's
    wall-clock timeout on a loaded machine)."""
    while ms > 0:
        pen.advance(min(ms, 100))
        ms -= 100


def heap_state(pen: Any) -> dict[str, int]:
    """The GC heap read from the chip's RAM (chip.js heapFree) at the end of
    the next loop pass: free bytes, blocks allocated since the last
    collection (every allocation counted, also one freed at once) and the
    gc.threshold in force; up to 20 ms of emulated time pass."""
    pen._send("heap")  # pyright: ignore[reportPrivateUsage]  # a chip-only world command
    for _ in range(20):
        pen.advance(1)
        t = pen.truth()
        if int(t["heap_free"]) >= 0:
            return {"free": int(t["heap_free"]), "allocs": int(t["heap_allocs"]), "threshold": int(t["heap_threshold"])}
    raise RuntimeError("no loop pass ended within 20 ms: free heap not read")


def free_heap(pen: Any) -> int:
    """Free GC heap in bytes at the end of the next loop pass (heap_state)."""
    return heap_state(pen)["free"]


def image_size() -> dict[str, Any]:
    from sim.rp2040 import uf2_path

    data = uf2_path().read_bytes()
    payload = 0
    for off in range(0, len(data) - 511, 512):
        payload += int.from_bytes(data[off + 16 : off + 20], "little")
    return {"uf2_bytes": len(data), "flash_bytes": payload}


class RowLike(Protocol):
    value: float | None
    text: str
    note: str
    detail: dict[str, Any]


def spread_text(d: dict[str, Any]) -> str:
    return f"mean {d['mean']:.0f} / p99 {d['p99']:.0f} / max {d['max']:.0f} us"


def do_pass(row: RowLike) -> None:
    r = measure()
    p = r["busy_us"]
    row.detail = r
    row.value = p["max"]
    row.text = spread_text(p)
    row.note = (
        f"emulated, 100 Hz on the skin, telemetry {r['tel_hz']} Hz to a technician, {r['run_s']} s, "
        f"{p['n']} passes (stage marks 1..7: end of the wait to end of the work); "
        f"resets {r['resets']}; emulator at {r['speed_ratio']}x real time"
    )


def stage_row(name: str) -> Callable[[RowLike], None]:
    def do(row: RowLike) -> None:
        r = measure()
        st = r["stages_us"][name]
        row.detail = st
        row.value = st["max"]
        row.text = spread_text(st)
        row.note = "emulated, the pass's stage marks (pen/runtime.py MARK)"

    return do


def do_tick(row: RowLike) -> None:
    r = measure()
    t = r["tick_us"]
    row.detail = r
    row.value = t["mean"]
    row.text = spread_text(t)
    row.note = "emulated; battery ADC read to motor PWM write (Core.tick plus the ADC scaling and Motor.set call)"


def do_image(row: RowLike) -> None:
    r = image_size()
    row.detail = r
    row.value = round(r["flash_bytes"] / 1024, 1)
    row.text = f"{row.value} KB in flash ({r['uf2_bytes'] // 1024} KB UF2)"
    row.note = "build/needle-pen.uf2 (or $NEEDLE_PEN_UF2)"


def do_heap(row: RowLike) -> None:
    r = measure()
    row.detail = r
    boot = r["heap_free_boot"] / 1024
    run = r["heap_free_run"] / 1024
    row.value = round(min(boot, run), 1)
    row.text = (
        f"{boot:.1f} KB after boot, {r['heap_free_start'] / 1024:.1f} KB running, {run:.1f} KB {r['run_s']} s later"
    )
    row.note = (
        "GC allocation table read from the chip's RAM, garbage not yet collected counted as used; the pen "
        "collects only with the drive off (pen/runtime.py GC_IDLE_MS), so a fall while running is allocation; "
        f"{r['heap_free_run'] - r['heap_free_start']:+d} B over the run; emulator at {r['speed_ratio']}x"
    )


def rows(make: Callable[..., Any]) -> list[tuple[Any, Callable[[Any], None]]]:
    """The virtual-Pico rows, made with bench.__main__'s Row class."""
    half = LOOP_PERIOD_US // 2
    return [
        (
            make(
                "chip_pass",
                "full loop pass, emulated RP2040 125 MHz (worst)",
                f"<= 50 % of {LOOP_PERIOD_US // 1000} ms",
                "us",
                "low",
                half,
            ),
            do_pass,
        ),
        *[
            (make(f"chip_stage_{name}", f"  stage: {name}", "reported", "us", "low", None), stage_row(name))
            for name, _, _ in STAGES
            if name != "busy"
        ],
        (make("chip_tick", "  control tick on the emulated RP2040 (mean)", "reported", "us", "low", None), do_tick),
        (
            make("chip_heap", "free heap after boot / running, emulated RP2040", ">= 150 KB", "KB", "high", 150),
            do_heap,
        ),
        (make("chip_image", "firmware image (UF2 payload)", "reported", "KB", "low", None), do_image),
    ]


def table(r: dict[str, Any]) -> str:
    """mean / p99 / max per stage, one line each."""
    lines = [
        f"{r['rate_hz']} Hz, telemetry {r['tel_hz']} Hz, {r['run_s']} s emulated, resets {r['resets']}, "
        f"strokes at the end {r['stroke_hz']} Hz (0: the pen did not run)"
    ]
    for name, st in [("pass (feed to feed)", r["pass_us"]), *r["stages_us"].items()]:
        lines.append(
            f"  {name:20s} n {st['n']:5d}  mean {st['mean']:7.1f}  p99 {st['p99']:7.1f}  max {st['max']:7.1f} us"
        )
    lines.append(
        f"  free heap: {r['heap_free_boot']} B after boot, {r['heap_free_start']} B running, "
        f"{r['heap_free_run']} B after {r['run_s']} s; {r['heap_alloc_blocks_run']} blocks allocated over the run "
        f"(gc.threshold {r['gc_threshold_run']:#x})"
    )
    return "\n".join(lines)


if __name__ == "__main__":
    if sys.argv[1:2] == ["requests"]:  # only the request rows
        req = measure_requests(int(sys.argv[2]) if len(sys.argv) > 2 else 100)
        print(request_table(req), file=sys.stderr)
        print(json.dumps({"requests": req}, indent=1))
        sys.exit(0)
    run_s = float(sys.argv[1]) if len(sys.argv) > 1 else RUN_S
    rates = [int(x) for x in sys.argv[2:]] or [100]
    results = [measure(run_s, hz) for hz in rates]
    for res in results:
        print(table(res), file=sys.stderr)
    req = measure_requests(rates[0])
    print(request_table(req), file=sys.stderr)
    print(json.dumps({"loop": results, "requests": req, "image": image_size()}, indent=1))
