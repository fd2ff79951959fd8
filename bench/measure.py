"""The measurements behind `make bench`, one function per figure of DESIGN §7.

Every function returns a dict of plain numbers (JSON-ready). Simulated-time
figures use SimulatedPen in stepped mode, so they do not depend on the
machine; wall-clock figures are reported with the machine they ran on.
"""

from __future__ import annotations

import json
import os
import platform
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from sim import SimulatedPen

ROOT = Path(__file__).resolve().parent.parent
FWPROBE = ROOT / "bench" / "fwprobe.py"
INSIM = ROOT / "bench" / "insim.py"

# Assumed slow-down of the RP2040 (Cortex-M0+ @ 125 MHz, MicroPython rp2
# port) against the unix port on the bench machine; docs/performance.md
# explains where it comes from. An estimate, not a measurement.
RP2040_FACTOR = 60
RP2040_FACTOR_RANGE = (40, 100)
TICK_BUDGET_US = 1000


def machine() -> str:
    cpu = platform.processor() or platform.machine()
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                cpu = line.split(":", 1)[1].strip()
                break
    except OSError:
        pass
    return f"{cpu}, {os.cpu_count()} cpus, {platform.system()} {platform.release()}, Python {platform.python_version()}"


# The probes run with a small heap (the rp2 port has ~190 KB free after
# start-up on a Pico); gc.mem_alloc() walks the whole heap, so a small heap
# also keeps 20 000 calls of it quick. The full sim needs room for the world.
PROBE_HEAP = {FWPROBE: "512K", INSIM: "1M"}
SIM_HEAP = "8M"  # what SimulatedPen gives the runner (sim.simulated_pen.MICROPYTHON_HEAP)


def micropython_cmd(heap: str | None = None) -> list[str]:
    from sim.simulated_pen import micropython_command

    cmd = micropython_command()
    if heap:
        cmd = [c if not c.startswith("heapsize=") else "heapsize=" + heap for c in cmd]
    return cmd


def run_probe(
    *args: str, runtime: str = "micropython", timeout: float = 120, script: Path = FWPROBE, heap: str | None = None
) -> dict[str, Any]:
    cmd = micropython_cmd(heap or PROBE_HEAP.get(script)) if runtime == "micropython" else [sys.executable]
    r = subprocess.run([*cmd, str(script), *args], capture_output=True, text=True, timeout=timeout, cwd=str(ROOT))
    lines = [ln for ln in r.stdout.splitlines() if ln.startswith("{")]
    if r.returncode != 0 or not lines:
        text = (r.stderr or r.stdout).strip()
        last = text.splitlines()[-1] if text else "probe failed"
        return {"error": last, "output": text[-800:]}
    return json.loads(lines[-1])


# --- firmware figures (MicroPython) ---
def alloc_per_tick(ticks: int = 10000) -> dict[str, Any]:
    return run_probe("alloc", str(ticks))


def tick_time(ticks: int = 10000, repeats: int = 5, native: bool = False) -> dict[str, Any]:
    """Best of `repeats` runs (the least disturbed by other processes)."""
    best: dict[str, Any] = {}
    for _ in range(repeats):
        # native code (machine code for every method) needs more heap
        r = run_probe("time", str(ticks), *(["native"] if native else []), heap="2M" if native else None)
        if "error" in r:
            return r
        if not best or r["batch_mean_us"] < best["batch_mean_us"]:
            best = r
    return best


def alloc_per_tick_full_sim(ms: int = 5000) -> dict[str, Any]:
    """Heap bytes in core.tick with the whole sim board feeding it (world
    physics, real drivers over simulated peripherals), in one process."""
    return run_probe("alloc", str(ms), script=INSIM)


def alloc_per_pass_full_sim(ms: int = 3000) -> dict[str, Any]:
    """Whole loop passes (Firmware.step) under heap_lock while the pen runs
    on the skin with the sim flash, a technician and telemetry at 100 Hz;
    only the world's physics runs unlocked (bench/insim.py pass)."""
    return run_probe("pass", str(ms), script=INSIM)


def sim_split(runtime: str, ms: int = 5000, repeats: int = 3) -> dict[str, Any]:
    """Where a simulated millisecond goes (world / board+loop / core tick),
    in-process without the pty and socket, with the heap SimulatedPen
    gives MicroPython; best of `repeats`."""
    try:
        import sim.simulated_pen as simpen

        heap = getattr(simpen, "MICROPYTHON_HEAP", SIM_HEAP)
    except ImportError:
        heap = SIM_HEAP
    best: dict[str, Any] = {}
    for _ in range(repeats):
        r = run_probe("split", str(ms), runtime=runtime, script=INSIM, heap=heap)
        if "error" in r:
            return r
        if not best or r["total_us_per_ms"] < best["total_us_per_ms"]:
            best = r
    best["heap"] = heap if runtime == "micropython" else None
    return best


def heap_after_boot() -> dict[str, Any]:
    """Heap in use after boot with the firmware imported from .mpy files (as
    deployed by tools/compile_firmware.py --out), and from source."""
    with tempfile.TemporaryDirectory(prefix="bench-boot-") as d:
        # compiled for this machine: viper/native code only loads on its own arch
        c = subprocess.run(
            [sys.executable, str(ROOT / "tools" / "compile_firmware.py"), "--out", d, "--host-arch"],
            capture_output=True,
            text=True,
            timeout=120,
        )
        if c.returncode != 0:
            return {"error": (c.stderr or c.stdout).strip()[-800:]}
        r = run_probe("boot", d)
    src = run_probe("boot")
    if "error" not in r and "error" not in src:
        r["heap_after_boot_from_source_bytes"] = src["heap_after_boot_bytes"]
    return r


def mpy_size() -> dict[str, Any]:
    with tempfile.TemporaryDirectory(prefix="bench-mpy-") as d:
        r = subprocess.run(
            [sys.executable, str(ROOT / "tools" / "compile_firmware.py"), "--out", d],
            capture_output=True,
            text=True,
            timeout=120,
        )
        if r.returncode != 0:
            return {"error": (r.stderr or r.stdout).strip()[-800:]}
        files = {str(p.relative_to(d)): p.stat().st_size for p in Path(d).rglob("*") if p.is_file()}
    biggest = sorted(files.items(), key=lambda kv: -kv[1])[:5]
    return {"total_bytes": sum(files.values()), "files": len(files), "biggest": dict(biggest)}


# --- simulated-time figures ---
def _truth(pen: SimulatedPen) -> dict[str, Any]:
    """The world's ground truth, as plain JSON values."""
    return dict(pen.truth())


def _ready_running(pen: SimulatedPen, settle_ms: int = 1500) -> dict[str, Any]:
    """Home, wait in the cone, press the trigger and let the rate settle."""
    pen.advance(1000)
    pen.press_trigger()
    pen.advance(settle_ms)
    return _truth(pen)


def reaction(runtime: str = "micropython") -> dict[str, Any]:
    """tilt violation -> drive off, and drive off -> last needle stroke and
    cam standstill, in simulated ms (1 ms resolution, stepped time)."""
    from sim import SimulatedPen

    res: dict[str, Any] = {"runtime": runtime}
    with SimulatedPen(runtime=runtime, speed=None) as pen:
        t = _ready_running(pen)
        res["rate_before_hz"] = t["stroke_hz"]
        if not (t["motor_duty"] > 0 and t["stroke_hz"] > 20):
            res["error"] = f"the pen did not start: {json.dumps(t)}"
            return res
        t0 = int(t["time_ms"])
        pen.set_tilt(25.0)
        off = None
        for _ in range(100):
            pen.advance(1)
            t = _truth(pen)
            if t["motor_duty"] == 0 and t["brake"]:
                off = int(t["time_ms"])
                break
        if off is None:
            res["error"] = "drive still on 100 ms after the tilt"
            return res
        res["tilt_to_off_ms"] = off - t0
        strokes = strokes_at_off = t["strokes"]
        last_stroke = off
        stopped = None
        for _ in range(1000):
            pen.advance(1)
            t = _truth(pen)
            if t["strokes"] != strokes:
                strokes = t["strokes"]
                last_stroke = int(t["time_ms"])
            if t["stroke_hz"] < 1.0:
                stopped = int(t["time_ms"])
                break
        res["off_to_last_stroke_ms"] = last_stroke - off
        res["off_to_standstill_ms"] = (stopped - off) if stopped is not None else None
        res["strokes_after_off"] = t["strokes"] - strokes_at_off
    return res


def _set(pen: SimulatedPen, key: str, value: object) -> None:
    """A working setting through penctl's own code path (host.Pen): the
    simulator runs free for the exchange, then is stepped again."""
    from host import Pen

    pen.set_speed(0)
    try:
        with Pen(pen.port, timeout=5.0) as p:
            p.set(key, value)
    finally:
        pen.set_speed(None)


def rate_under_load(
    runtime: str = "cpython",
    rates: tuple[float, ...] = (100.0, 150.0),
    loads: tuple[float, ...] = (1.0, 2.0, 0.5, 1.5),
) -> dict[str, Any]:
    """Steady-state stroke-rate error with the needles in skin (world
    `contact`) while the load changes: for each rate and load, settle 1 s,
    then average the true cam speed over 1 s (20 samples) and count strokes
    over 2 s. Error = worst |mean - set| / set."""
    from sim import SimulatedPen

    res: dict[str, Any] = {"runtime": runtime, "points": []}
    worst = 0.0
    with SimulatedPen(runtime=runtime, speed=None) as pen:
        pen.advance(1000)
        for rate in rates:
            pen.release_trigger()
            pen.advance(50)
            _set(pen, "rate", rate)
            pen.press_trigger()
            pen.set_contact(True)
            pen.advance(1000)
            for load in loads:
                pen.set_load(load)
                # the transient: worst deviation and the last time outside 1 %
                worst_dev = 0.0
                settle_ms = 0
                for k in range(50):
                    pen.advance(20)
                    dev = abs(_truth(pen)["stroke_hz"] - rate) / rate
                    worst_dev = max(worst_dev, dev)
                    if dev > 0.01:
                        settle_ms = (k + 1) * 20
                samples: list[float] = []
                s0 = _truth(pen)["strokes"]
                for _ in range(20):
                    pen.advance(50)
                    samples.append(_truth(pen)["stroke_hz"])
                pen.advance(1000)
                t = _truth(pen)
                by_count = (t["strokes"] - s0) / 2.0
                mean = statistics.fmean(samples)
                err = abs(mean - rate) / rate
                worst = max(worst, err)
                res["points"].append(
                    {
                        "rate": rate,
                        "load": load,
                        "mean_hz": round(mean, 3),
                        "count_hz": by_count,
                        "err": err,
                        "transient_max_dev": worst_dev,
                        "settled_within_1pct_ms": settle_ms,
                    }
                )
        pen.set_contact(False)
    res["worst_err"] = worst
    res["worst_transient_dev"] = max(p["transient_max_dev"] for p in res["points"])
    res["worst_settle_ms"] = max(p["settled_within_1pct_ms"] for p in res["points"])
    return res


def depth_error(runtime: str = "cpython", depths: tuple[float, ...] = (0.25, 1.0, 1.5, 0.5, 0.05)) -> dict[str, Any]:
    """Needle depth (world truth) against the commanded depth after each
    move, in mm."""
    from sim import SimulatedPen

    res: dict[str, Any] = {"runtime": runtime, "points": []}
    worst = 0.0
    with SimulatedPen(runtime=runtime, speed=None) as pen:
        pen.advance(1000)
        for d in depths:
            _set(pen, "depth", d)
            pen.advance(1000)
            got = _truth(pen)["needle_depth_mm"]
            err = abs(got - d)
            worst = max(worst, err)
            res["points"].append({"depth": d, "measured": got, "err": err})
    res["worst_err_mm"] = worst
    return res


def sim_speed(runtime: str, sim_s: float, repeats: int = 3) -> dict[str, Any]:
    """Simulated seconds per wall second while a session runs (drive on at
    100 Hz, needles in skin), SimulatedPen at full speed; `repeats` stretches
    of `sim_s`, the best one counts (the least disturbed by other load)."""
    from sim import SimulatedPen

    walls: list[float] = []
    with SimulatedPen(runtime=runtime, speed=0) as pen:
        pen.advance(1000)
        pen.press_trigger()
        pen.set_contact(True)
        pen.advance(1000)
        for _ in range(repeats):
            t0 = time.perf_counter()
            pen.advance(int(sim_s * 1000))
            walls.append(time.perf_counter() - t0)
        t = _truth(pen)
    wall = min(walls)
    return {
        "runtime": runtime,
        "sim_s": sim_s,
        "wall_s": wall,
        "walls": walls,
        "ratio": sim_s / wall,
        "running_at_end": t["running"],
    }


def sim_speed_with_heap(heap: str, sim_s: float = 3.0) -> dict[str, Any]:
    """Experiment: the MicroPython simulator's speed with another heap size
    (SimulatedPen starts `micropython -X heapsize=...`; a smaller heap makes
    every garbage collection cheaper, and the world allocates a float box
    per float operation on the unix port)."""
    import sim.simulated_pen as simpen

    old = getattr(simpen, "MICROPYTHON_HEAP", None)
    if old is None:
        return {"error": "sim.simulated_pen has no MICROPYTHON_HEAP to vary"}
    simpen.MICROPYTHON_HEAP = heap
    try:
        r = sim_speed("micropython", sim_s)
    finally:
        simpen.MICROPYTHON_HEAP = old
    r["heap"] = heap
    r["default_heap"] = old
    return r


def session(runtime: str, sim_s: float | None = None) -> dict[str, Any]:
    """A 25-minute treatment session: homing, trigger, needles in skin until
    the firmware ends the session at max_session_min. With `sim_s` only
    that much is run and the wall time is extrapolated to 25 minutes."""
    from sim import SimulatedPen

    full_s = 25 * 60
    run_s = full_s if sim_s is None else sim_s
    t0 = time.perf_counter()
    with SimulatedPen(runtime=runtime, speed=0) as pen:
        pen.advance(1000)
        pen.press_trigger()
        pen.set_contact(True)
        pen.advance(int(run_s * 1000) + (2000 if sim_s is None else 0))
        t = _truth(pen)
    wall = time.perf_counter() - t0
    res = {"runtime": runtime, "simulated_s": run_s, "wall_s": wall, "extrapolated": sim_s is not None}
    res["wall_25min_s"] = wall * full_s / run_s
    if sim_s is None:
        res["stopped_by_session_limit"] = not t["running"]
    return res


def round_trip(n: int = 300, runtime: str = "micropython") -> dict[str, Any]:
    """Median host -> pen -> host time of `status` through host.link.Link
    (penctl's code path) against a real-time SimulatedPen over the pty."""
    from host.link import Link
    from sim import SimulatedPen

    with SimulatedPen(runtime=runtime, speed=1.0) as pen:
        link = Link(pen.port, timeout=2.0)
        try:
            for _ in range(10):
                link.request("status")
            times: list[float] = []
            for _ in range(n):
                t0 = time.perf_counter()
                link.request("status")
                times.append((time.perf_counter() - t0) * 1000.0)
        finally:
            link.close()
    times.sort()
    return {
        "runtime": runtime,
        "n": n,
        "median_ms": statistics.median(times),
        "p90_ms": times[int(n * 0.9)],
        "max_ms": times[-1],
    }


TELEMETRY_COMMANDS = ("tel 100", "telemetry 100", "stream 100")
TELEMETRY_STOP = ("tel 0", "telemetry 0", "stream 0")


def telemetry(seconds: float = 60.0, runtime: str = "micropython") -> dict[str, Any]:
    """Start the 100 Hz stream through host.link.Link against a real-time
    SimulatedPen, collect the `~` frames for `seconds`, and count the gaps
    in their sequence numbers (a `seq=N` field or the first integer of the
    frame; 1..65535 wrapping, as docs/protocol.md specifies). Frames whose
    check fails in host.api.parse_frame (where it exists) count as bad."""
    from host.link import Link, PenRefused
    from sim import SimulatedPen

    with SimulatedPen(runtime=runtime, speed=1.0) as pen:
        link = Link(pen.port, timeout=2.0)
        try:
            started = None
            refusals: list[str] = []
            for cmd in TELEMETRY_COMMANDS:
                try:
                    link.request(cmd)
                    started = cmd
                    break
                except PenRefused as e:
                    refusals.append(f"'{cmd}': {e.name}")
            if started is None:
                return {
                    "measurable": False,
                    "reason": "no telemetry command on this firmware (" + "; ".join(refusals) + ")",
                }
            frames = _collect_frames(link, seconds)
            for stop in TELEMETRY_STOP:
                try:
                    link.request(stop)
                    break
                except PenRefused:
                    continue
        finally:
            link.close()
    seqs = [q for q in (_seq(f) for f in frames) if q is not None]
    lost = 0
    for a, b in zip(seqs, seqs[1:], strict=False):
        gap = b - a if b > a else b + 65535 - a  # 65535 -> 1 is no gap
        if gap > 1:
            lost += gap - 1
    bad = None
    try:
        from host.api import parse_frame  # type: ignore[attr-defined]

        bad = sum(1 for f in frames if parse_frame(f) is None)
    except ImportError:
        pass
    expected = int(seconds * 100)
    return {
        "measurable": True,
        "command": started,
        "frames": len(frames),
        "expected": expected,
        "lost_by_seq": lost if seqs else None,
        "bad_frames": bad,
        "short_by_count": max(0, expected - len(frames)),
    }


def _collect_frames(link: Any, seconds: float) -> list[str]:
    """Every `~` line for `seconds`: through Link.poll and its unprompted
    hook where the link has them, else by reading lines directly."""
    frames: list[str] = []
    end = time.monotonic() + seconds
    if hasattr(link, "poll") and hasattr(link, "on_unprompted"):
        got: list[str] = []
        link.on_unprompted = got.append
        try:
            while time.monotonic() < end:
                link.poll(0.05)
                frames.extend(t for t in got if t.startswith("~"))
                got.clear()
        finally:
            link.on_unprompted = None
        return frames
    link.unprompted.clear()
    while time.monotonic() < end:
        line = link._readline(  # the skeleton's Link has no public line reader
            min(end, time.monotonic() + 0.2)
        )
        if line is not None and line.startswith("~"):
            frames.append(line)
    return frames


def _seq(frame: str) -> int | None:
    for word in frame[1:].split("*")[0].split():
        if word.startswith("seq="):
            word = word[4:]
        if word.isdigit():
            return int(word)
    return None
