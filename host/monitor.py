"""Telemetry monitoring, the library part: lost-frame counting, finding
the same pen again after it vanished, the table and the plot. The command
(`penctl monitor`) is host/cli/monitor.py; the column names come from the
pen (host/names.py)."""

from __future__ import annotations

import time

from host.api import Pen
from host.discover import port_of_serial
from host.link import LinkError

PLOT_SERIES = (("rate", "rate_set", "stroke rate (Hz)"), ("depth", None, "depth (mm)"), ("tilt", None, "tilt (deg)"))


class Counter:
    """Counts frames and the gaps in their 16-bit sequence numbers."""

    def __init__(self) -> None:
        self.frames = 0
        self.lost = 0
        self.last: int | None = None

    def add(self, seq: int) -> int:
        gap = 0
        if self.last is not None:
            gap = (seq - self.last - 1) & 0xFFFF
            if gap > 0x8000:  # a duplicate or an old frame: not a loss
                gap = 0
        self.lost += gap
        self.last = seq
        self.frames += 1
        return gap

    def restart(self) -> None:
        self.last = None  # the pen rebooted: its numbering starts again


def reconnect(port: str, serial_no: str, timeout: float, wait_s: float) -> Pen:
    """The same pen (by serial number) back on its port or found by its USB
    serial number, within wait_s; LinkError in one line otherwise."""
    end = time.monotonic() + wait_s
    last_err: Exception | None = None
    while time.monotonic() < end:
        candidate = port_of_serial(serial_no) or port
        try:
            pen = Pen(candidate, timeout=timeout)
        except LinkError as e:  # includes a pen still booting that answers oddly
            last_err = e
            time.sleep(0.2)
            continue
        if str(pen.identity.get("serial")) != serial_no:
            pen.close()
            raise LinkError(f"a different pen (serial {pen.identity.get('serial')}) appeared on {candidate}")
        return pen
    why = str(last_err).splitlines()[0] if last_err else "nothing answered"
    raise LinkError(f"the pen (serial {serial_no}) did not come back within {wait_s:g} s ({why})")


def table(frame: dict[str, object], columns: tuple[tuple[str, str], ...], counter: Counter, hz: int) -> list[str]:
    lines = [f"pen telemetry at {hz} Hz   frames {counter.frames}   lost {counter.lost}"]
    for key, unit in columns:
        lines.append(f"  {key:<9} {frame.get(key)!s:>10} {unit}")
    return lines


def plot(rows: list[tuple[float, dict[str, object]]], path: str) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    t = [r[0] for r in rows]
    fig, axes = plt.subplots(4, 1, sharex=True, figsize=(8, 8))
    for ax, (key, ref, label) in zip(axes, PLOT_SERIES, strict=False):
        ax.plot(t, [r[1].get(key) for r in rows], label=key)
        if ref:
            ax.plot(t, [r[1].get(ref) for r in rows], "--", label=ref)
            ax.legend(loc="upper right")
        ax.set_ylabel(label)
    axes[3].plot(t, [r[1].get("current") for r in rows])
    axes[3].set_ylabel("current (mA)")
    axes[3].set_xlabel("time (s)")
    fig.tight_layout()
    try:
        fig.savefig(path)  # pyright: ignore[reportUnknownMemberType]  # matplotlib stub: **kwargs untyped
    finally:
        plt.close(fig)
