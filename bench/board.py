"""`make bench PORT=...`: the loop-pass measurement on a connected pen.

  python -m bench.board --port /dev/ttyACM0 [--key-file FILE] [--seconds 10]

The pen times its own loop passes with its microsecond clock
(pen/looptime.py, `penctl loop`): on a real Pico, time.ticks_us on the
silicon, the one figure the virtual Pico can only bound from below
(docs/performance.md, "How emulated timing differs from silicon"). This
script sets up what DESIGN §7 asks the worst-case pass to include, a
technician connected and telemetry streaming at 100 Hz, and prints the
figures:

1. idle: the pen on the bench, telemetry streaming;
2. running (needs the technician's key and a pen that is `ready`: upright,
   cartridge in, homed): the needles run in service mode (`remote start`,
   docs/security.md) at the pen's set rate for --seconds, with heartbeats,
   telemetry streaming; the figures are read while the needles still run,
   then `remote stop`.

The busy part of a pass must stay within half the period. The same script
runs against `pensim serve` (any runtime; with `--runtime rp2040` the
figures are the emulated chip's), which is how tests/chip checks it.
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from typing import Any

from host.api import Pen

TELEMETRY_HZ = 100  # DESIGN §7: a technician streaming telemetry
HB_MS = 2000  # the remote run's heartbeat timeout; a heartbeat every third of it
READY_WAIT_S = 5.0  # wall time for the needles to start after `remote start`


def _drain(pen: Pen, seconds: float, seen: dict[str, Any]) -> None:
    """Reads telemetry frames for `seconds` (the pen's output must flow, as
    with a technician's monitor); keeps the count and the last state."""
    for f in pen.frames(seconds):
        seen["frames"] = seen.get("frames", 0) + 1
        seen["state"] = f.get("state")


def measure(pen: Pen, seconds: float = 10.0, idle_s: float = 2.0, no_run: str | None = None) -> dict[str, Any]:
    """The pen's loop figures idle and, unless `no_run` says why not, with
    the needles running (if the pen is ready); {"idle": {...}, "running":
    {...} or None, "why_not_running": text or None, "frames": N}."""
    seen: dict[str, Any] = {}
    out: dict[str, Any] = {"board": pen.identity.get("board"), "fw": pen.identity.get("fw")}
    pen.telemetry(TELEMETRY_HZ)
    try:
        pen.loop(reset=True)
        _drain(pen, idle_s, seen)
        out["idle"] = pen.loop()
        out["running"] = None
        out["why_not_running"] = no_run
        if no_run is None:
            st = pen.status()
            if st.get("state") != "ready":
                out["why_not_running"] = (
                    f"the pen is {st.get('state')} (block={st.get('block')}, fault={st.get('fault')}): "
                    "hold it upright with a cartridge in (penctl status)"
                )
            else:
                out["running"], out["why_not_running"] = _running(pen, seconds, seen)
    finally:
        pen.telemetry(0)
    out["frames"] = seen.get("frames", 0)
    return out


def _running(pen: Pen, seconds: float, seen: dict[str, Any]) -> tuple[dict[str, object] | None, str | None]:
    pen.remote_start(HB_MS)
    try:
        end = time.monotonic() + READY_WAIT_S
        while seen.get("state") != "running":
            if time.monotonic() >= end:
                return None, f"the needles did not start (state {seen.get('state')})"
            _drain(pen, 0.1, seen)
        # the passes of the run only: not the start, not the stop's collection
        pen.loop(reset=True)
        end = time.monotonic() + seconds
        while time.monotonic() < end:
            _drain(pen, min(HB_MS / 3000.0, max(0.0, end - time.monotonic())), seen)
            if seen.get("state") != "running":
                return None, f"the pen stopped the needles (state {seen.get('state')}): penctl status, penctl log"
            pen.heartbeat()
        return pen.loop(), None  # read while the needles still run
    finally:
        pen.remote_stop()


def report(res: dict[str, Any]) -> str:
    lines = [f"pen: board {res.get('board')}, firmware {res.get('fw')}; telemetry frames read: {res['frames']}"]
    for name in ("idle", "running"):
        f = res.get(name)
        if not f:
            lines.append(f"{name:<8} -- {res.get('why_not_running')}")
            continue
        period = int(f["period_us"]) or 1
        pct = 100 * int(f["busy_max_us"]) // period
        if name == "running":
            verdict = f"target <= 50 %: {'met' if pct <= 50 else 'NOT met'}"
        else:
            # with the drive off a request is served in one pass (and the
            # heap collected at GC_IDLE_BYTES): no deadline holds then
            verdict = "drive off: requests served whole, no deadline"
        lines.append(
            f"{name:<8} period {period} us, {f['passes']} passes: busy mean {f['busy_mean_us']} us, "
            f"max {f['busy_max_us']} us ({pct} % of the period, {verdict}); tick mean {f['tick_mean_us']} us, "
            f"max {f['tick_max_us']} us; passes over the period {f['overruns']}"
        )
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(prog="python -m bench.board", description=__doc__.split("\n\n")[0])
    ap.add_argument("--port", required=True, help="the pen's serial port (penctl ports)")
    ap.add_argument("--key-file", help="the technician's key (needed for the running figures)")
    ap.add_argument("--seconds", type=float, default=10.0, help="running time (default 10)")
    ap.add_argument("--idle-only", action="store_true", help="do not run the needles")
    ap.add_argument("--json", action="store_true", help="print the figures as JSON")
    a = ap.parse_args(argv)
    no_run = None
    if a.idle_only:
        no_run = "not asked (--idle-only)"
    elif a.key_file is None:
        no_run = "no --key-file (KEY_FILE=...): the needles run only for a technician"
    with Pen(a.port, key_file=a.key_file) as pen:
        res = measure(pen, a.seconds, no_run=no_run)
    print(json.dumps(res) if a.json else report(res))
    return 0


if __name__ == "__main__":
    sys.exit(main())
