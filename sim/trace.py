"""Traces of a simulated pen: load the CSV a run recorded and plot it.

A trace row holds, every N ms of simulated time, the world's ground truth
and the firmware's outputs (columns in docs/simulator.md)::

    from sim import SimulatedPen, trace
    with SimulatedPen(trace="run.csv") as pen:
        ...
    trace.plot("run.csv", "run.png")
"""

from __future__ import annotations

import csv
import os
from pathlib import Path
from typing import Any

# columns that are text; every other column is a number
TEXT_COLUMNS = ("state", "fault")
STATES = ("boot", "homing", "idle", "ready", "running", "fault", "safe")


def load(path: str | os.PathLike[str]) -> dict[str, list[Any]]:
    """The trace as columns: {name: [value per row]}; numbers as float."""
    with open(path, newline="") as f:
        rows = list(csv.DictReader(f))
    if not rows:
        raise ValueError(f"{path}: the trace has no rows")
    cols: dict[str, list[Any]] = {k: [] for k in rows[0]}
    for r in rows:
        for k, v in r.items():
            cols[k].append(v if k in TEXT_COLUMNS else float(v))
    return cols


# per-column tolerance when two traces of the same scenario are compared
# (e.g. MicroPython vs CPython): both runtimes use IEEE doubles, but the
# firmware reacts to quantised sensor values, so a value close to a
# threshold may flip one tick earlier on one of them
TOLERANCE = {
    "rate_set_hz": 0.0,
    "rate_cmd_hz": 0.5,
    "rate_meas_hz": 0.5,
    "stroke_hz": 0.5,
    "depth_set_mm": 0.0,
    "depth_mm": 0.0025,
    "tilt_deg": 0.001,
    "tilt_fw_deg": 0.2,
    "duty": 0.01,
    "current_ma": 20.0,
    "battery_mv": 5.0,
    "trigger": 0.0,
    "contact": 0.0,
    "strokes": 2.0,
    "resets": 0.0,
}


def compare(a: str | os.PathLike[str], b: str | os.PathLike[str], max_text_mismatch: int = 0) -> list[str]:
    """Differences between two traces beyond TOLERANCE: a list of
    human-readable lines, empty when they agree. Times must match row by
    row; `state`/`fault` may differ in at most max_text_mismatch rows."""
    ta, tb = load(a), load(b)
    out: list[str] = []
    if ta["t_ms"] != tb["t_ms"]:
        return [f"time columns differ ({len(ta['t_ms'])} vs {len(tb['t_ms'])} rows)"]
    for col, tol in TOLERANCE.items():
        if col not in ta or col not in tb:
            continue
        worst = 0.0
        where = 0
        for k, (x, y) in enumerate(zip(ta[col], tb[col], strict=True)):
            d = abs(float(x) - float(y))
            if d > worst:
                worst, where = d, k
        if worst > tol:
            out.append(f"{col}: differs by {worst:g} (> {tol:g}) at t={ta['t_ms'][where]:g} ms")
    for col in TEXT_COLUMNS:
        bad = [k for k, (x, y) in enumerate(zip(ta[col], tb[col], strict=True)) if x != y]
        if len(bad) > max_text_mismatch:
            k = bad[0]
            out.append(f"{col}: {len(bad)} rows differ, first at t={ta['t_ms'][k]:g} ms ({ta[col][k]} vs {tb[col][k]})")
    return out


def plot(csv_path: str | os.PathLike[str], png_path: str | os.PathLike[str], title: str | None = None) -> str:
    """Render a trace to a PNG (stroke rate, depth, tilt, drive, state);
    returns the PNG path."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    c = load(csv_path)
    t = [float(x) / 1000.0 for x in c["t_ms"]]
    fig, ax = plt.subplots(5, 1, sharex=True, figsize=(11, 11), constrained_layout=True)
    a = ax[0]
    a.plot(t, c["rate_set_hz"], "k--", lw=1, label="set")
    a.plot(t, c["rate_cmd_hz"], color="tab:orange", lw=1, label="commanded (ramp)")
    a.plot(t, c["rate_meas_hz"], color="tab:blue", lw=1, label="measured by firmware")
    a.plot(t, c["stroke_hz"], color="tab:green", lw=1, alpha=0.7, label="true (world)")
    a.set_ylabel("stroke rate [Hz]")
    a.legend(loc="upper left", fontsize=8)
    a = ax[1]
    a.plot(t, c["depth_set_mm"], "k--", lw=1, label="set")
    a.plot(t, c["depth_mm"], color="tab:purple", lw=1.2, label="needle stop (world)")
    a.set_ylabel("depth [mm]")
    a.legend(loc="upper left", fontsize=8)
    a = ax[2]
    a.plot(t, c["tilt_deg"], color="tab:red", lw=1, label="true tilt")
    a.plot(t, c["tilt_fw_deg"], color="tab:gray", lw=1, alpha=0.8, label="firmware's tilt")
    a.set_ylabel("tilt [deg]")
    a.legend(loc="upper left", fontsize=8)
    a = ax[3]
    a.plot(t, [100.0 * float(x) for x in c["duty"]], color="tab:blue", lw=1, label="PWM duty [%]")
    a2 = a.twinx()
    a2.plot(t, c["current_ma"], color="tab:orange", lw=1, label="motor current [mA]")
    a2.plot(t, [float(x) / 10.0 for x in c["battery_mv"]], color="tab:olive", lw=1, label="battery [mV/10]")
    a.set_ylabel("duty [%]")
    a2.set_ylabel("mA, mV/10")
    lines = a.get_lines() + a2.get_lines()
    a.legend(lines, [str(x.get_label()) for x in lines], loc="upper left", fontsize=8)
    a = ax[4]
    names: list[str] = list(STATES)
    for s in c["state"]:
        if s not in names:
            names.append(str(s))
    a.step(t, [names.index(str(s)) for s in c["state"]], where="post", color="k", lw=1.2)
    a.set_yticks(range(len(names)), names)
    faults = [(x, f) for x, f in zip(t, c["fault"], strict=True) if f not in ("none", "")]
    if faults:
        a.scatter([x for x, _ in faults], [names.index("fault")] * len(faults), s=4, color="tab:red", label="fault")
        a.legend(loc="upper left", fontsize=8)
    a.set_ylabel("firmware state")
    a.set_xlabel("simulated time [s]")
    # matplotlib's stubs leave **kwargs untyped on these two
    fig.suptitle(title or f"simulated pen: {Path(csv_path).name}")  # pyright: ignore[reportUnknownMemberType]
    fig.savefig(png_path, dpi=90)  # pyright: ignore[reportUnknownMemberType]
    plt.close(fig)
    return str(png_path)
