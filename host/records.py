"""Reading the pen's event log and treatment records (docs/persistence.md).

The pen has no real-time clock. Every record carries the pen's boot counter
and the milliseconds since that boot. When the host reads records it asks the
pen for its current boot number and uptime (``storage``) and stamps each
record of the *current* boot with an estimated wall-clock time:
``read_time - (now_ms - record_ms)``. Records of earlier boots cannot be dated
by the pen; they keep ``wall_time`` empty (``None``), and the host's own
first-read time is the best bound the clinic has.
"""

from __future__ import annotations

import csv
import datetime as dt
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from host.link import Link, parse_pairs

SESSION_FIELDS = (
    "seq",
    "boot",
    "start_ms",
    "end_ms",
    "depth_lo_mm",
    "depth_hi_mm",
    "rate_lo_hz",
    "rate_hi_hz",
    "strokes",
    "run_s",
    "tilt_out_s",
    "bursts",
    "last_stop",
    "end_reason",
)
CSV_FIELDS = ("seq", "boot", "start_wall", "end_wall", *SESSION_FIELDS[2:], "read_at")


@dataclass
class Clock:
    """The pen's time base at the moment of reading."""

    boot: int
    now_ms: int
    read_at: dt.datetime

    def wall(self, boot: int, ms: int) -> str | None:
        if boot != self.boot:
            return None
        t = self.read_at - dt.timedelta(milliseconds=self.now_ms - ms)
        return t.isoformat(timespec="seconds")


def _pages(link: Link, command: str, since: int) -> tuple[list[str], Clock]:
    words: list[str] = []
    clock: Clock | None = None
    while True:
        reply = link.request(f"{command} {since}")
        head = parse_pairs(reply)
        if clock is None:
            clock = Clock(int(head["boot"]), int(head["now_ms"]), dt.datetime.now().astimezone())
        body = [w for w in reply.split() if w.startswith(("e=", "s=", "o="))]
        words += body
        n = int(head["n"])
        nxt = int(head["next"])
        if n == 0 or nxt <= since:
            break
        since = nxt
    return words, clock


def read_log(link: Link, since: int = 0) -> list[dict[str, Any]]:
    words, clock = _pages(link, "log", since)
    out: list[dict[str, Any]] = []
    for w in words:
        if not w.startswith("e="):
            continue
        seq, boot, ms, kind, text = w[2:].split(":", 4)
        out.append(
            {
                "seq": int(seq),
                "boot": int(boot),
                "ms": int(ms),
                "wall_time": clock.wall(int(boot), int(ms)),
                "kind": kind,
                "text": text,
            }
        )
    return out


def _session(token: str, clock: Clock) -> dict[str, Any]:
    p = token.split(":")
    if len(p) != 14:
        raise ValueError(f"bad session record from the pen: {token!r}")
    boot, start, end = int(p[1]), int(p[2]), int(p[3])
    return {
        "seq": p[0],
        "boot": boot,
        "start_ms": start,
        "end_ms": end,
        "start_wall": clock.wall(boot, start),
        "end_wall": clock.wall(boot, end),
        "depth_lo_mm": int(p[4]) / 1000,
        "depth_hi_mm": int(p[5]) / 1000,
        "rate_lo_hz": int(p[6]) / 1000,
        "rate_hi_hz": int(p[7]) / 1000,
        "strokes": int(p[8]),
        "run_s": int(p[9]) / 1000,
        "tilt_out_s": int(p[10]) / 1000,
        "bursts": int(p[11]),
        "last_stop": p[12],
        "end_reason": p[13],
        "read_at": clock.read_at.isoformat(timespec="seconds"),
    }


def read_sessions(link: Link, since: int = 0) -> list[dict[str, Any]]:
    words, clock = _pages(link, "sessions", since)
    out: list[dict[str, Any]] = []
    for w in words:
        if w.startswith("s="):
            out.append(_session(w[2:], clock))
    # the open session comes with every short page: the last one is current
    opened = [w for w in words if w.startswith("o=")]
    if opened:
        out.append(_session(opened[-1][2:], clock))
    return out


def write_csv(sessions: list[dict[str, Any]], path: str | Path) -> None:
    with open(path, "w", newline="") as f:
        w = csv.DictWriter(f, fieldnames=list(CSV_FIELDS), extrasaction="ignore")
        w.writeheader()
        for s in sessions:
            w.writerow({k: ("" if s.get(k) is None else s.get(k)) for k in CSV_FIELDS})


def plot_sessions(sessions: list[dict[str, Any]], directory: str | Path) -> list[Path]:
    """One PNG per session: where its time went (needles running, pen
    tilted out of the cone with the trigger held, rest) and what was used."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    out_dir = Path(directory)
    out_dir.mkdir(parents=True, exist_ok=True)
    paths: list[Path] = []
    for s in sessions:
        span = max(0.0, (s["end_ms"] - s["start_ms"]) / 1000)
        run = s["run_s"]
        tilt = s["tilt_out_s"]
        rest = max(0.0, span - run - tilt)
        fig, ax = plt.subplots(figsize=(7, 2.6))
        left = 0.0
        for value, label, color in (
            (run, "needles running", "tab:green"),
            (tilt, "outside tilt cone", "tab:red"),
            (rest, "other", "0.8"),
        ):
            ax.barh([0], [value / 60], left=[left / 60], color=color, label=f"{label}: {value / 60:.1f} min")  # pyright: ignore[reportUnknownMemberType]  # matplotlib stub: **kwargs untyped
            left += value
        ax.set_yticks([])  # pyright: ignore[reportUnknownMemberType]  # matplotlib stub: **kwargs untyped
        ax.set_xlabel("minutes since session start")  # pyright: ignore[reportUnknownMemberType]  # matplotlib stub: **kwargs untyped
        when = s["start_wall"] or f"boot {s['boot']} + {s['start_ms'] / 1000:.0f} s"
        ax.set_title(  # pyright: ignore[reportUnknownMemberType]  # matplotlib stub: **kwargs untyped
            f"session {s['seq']} ({when}): depth {s['depth_lo_mm']:.2f}-{s['depth_hi_mm']:.2f} mm, "
            f"rate {s['rate_lo_hz']:.0f}-{s['rate_hi_hz']:.0f} Hz, {s['strokes']} strokes, ended: {s['end_reason']}",
            fontsize=8,
        )
        ax.legend(loc="upper center", bbox_to_anchor=(0.5, -0.35), ncol=3, fontsize=8)  # pyright: ignore[reportUnknownMemberType]  # matplotlib stub: **kwargs untyped
        fig.tight_layout()
        path = out_dir / f"session-{s['boot']}-{s['seq']}.png"
        fig.savefig(path, dpi=100)  # pyright: ignore[reportUnknownMemberType]  # matplotlib stub: **kwargs untyped
        plt.close(fig)
        paths.append(path)
    return paths
