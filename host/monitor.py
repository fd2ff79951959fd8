"""penctl monitor: live telemetry with lost-frame counting and reconnect."""

from __future__ import annotations

import argparse
import csv
import json
import sys
import time
from typing import IO

from host.discover import port_of_serial
from host.link import LinkError
from host.pen import Pen

COLUMNS = (
    ("seq", ""),
    ("state", ""),
    ("fault", ""),
    ("rate_set", "Hz"),
    ("rate", "Hz"),
    ("depth", "mm"),
    ("tilt", "deg"),
    ("current", "mA"),
    ("battery", "mV"),
)


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


def _open(port: str | None, timeout: float) -> Pen:
    return Pen(port, timeout=timeout)


def _reconnect(port: str, serial_no: str, timeout: float, wait_s: float) -> Pen:
    end = time.monotonic() + wait_s
    last_err: Exception | None = None
    while time.monotonic() < end:
        candidate = port_of_serial(serial_no) or port
        try:
            pen = _open(candidate, timeout)
        except LinkError as e:  # includes a pen still booting that answers oddly
            last_err = e
            time.sleep(0.2)
            continue
        if str(pen.identity.get("serial")) != serial_no:
            pen.close()
            raise LinkError(f"a different pen (serial {pen.identity.get('serial')}) appeared on {candidate}")
        return pen
    raise LinkError(f"the pen (serial {serial_no}) did not come back within {wait_s:g} s: {last_err}")


def _table(frame: dict[str, object], counter: Counter, hz: int) -> list[str]:
    lines = [f"pen telemetry at {hz} Hz   frames {counter.frames}   lost {counter.lost}"]
    for key, unit in COLUMNS:
        lines.append(f"  {key:<9} {frame[key]!s:>10} {unit}")
    return lines


def run_monitor(args: argparse.Namespace) -> int:
    from host.cli import EXIT_OK, EXIT_USAGE, CliError

    if not 1 <= args.rate <= 100:
        raise CliError("--rate must be 1-100 frames per second", EXIT_USAGE)
    as_json = bool(args.json)
    tty = sys.stdout.isatty() and not as_json
    csv_file: IO[str] | None = None
    writer = None
    if args.csv:
        try:
            csv_file = open(args.csv, "w", newline="")  # noqa: SIM115 - closed below
        except OSError as e:
            from host.cli import EXIT_FILE

            raise CliError(f"cannot write {args.csv}: {e.strerror or e}", EXIT_FILE) from None
        writer = csv.writer(csv_file)
        writer.writerow(["t_s"] + [f"{k}_{u}" if u else k for k, u in COLUMNS])
    counter = Counter()
    reconnects = 0
    restarts = 0
    rows: list[tuple[float, dict[str, object]]] = []
    pen = _open(args.port, args.timeout)
    port = pen.link.port
    serial_no = str(pen.identity.get("serial"))
    t0 = time.monotonic()
    end = t0 + args.duration if args.duration > 0 else None
    shown = 0
    last_draw = 0.0
    try:
        pen.telemetry(args.rate)
        while True:
            try:
                for frame in pen.frames(None if end is None else max(0.0, end - time.monotonic()), events=True):
                    if "event" in frame:
                        if str(frame["event"]).startswith("boot"):
                            # the pen reset in place (watchdog, brown-out):
                            # its telemetry is off and its numbering restarts
                            restarts += 1
                            counter.restart()
                            pen.telemetry(args.rate)
                            print(f"penctl: the pen restarted ({frame['event']}); telemetry resumed", file=sys.stderr)
                        continue
                    t = time.monotonic() - t0
                    counter.add(int(frame["seq"]))  # type: ignore[call-overload]
                    if writer is not None:
                        writer.writerow([f"{t:.3f}"] + [frame[k] for k, _ in COLUMNS])
                    if args.plot:
                        rows.append((t, frame))
                    if as_json:
                        print(json.dumps({"t": round(t, 3), **frame}), flush=True)
                    elif tty:
                        if time.monotonic() - last_draw >= 0.1:
                            last_draw = time.monotonic()
                            lines = _table(frame, counter, args.rate)
                            up = f"\x1b[{shown}A" if shown else ""
                            sys.stdout.write(up + "".join(line + "\x1b[K\n" for line in lines))
                            sys.stdout.flush()
                            shown = len(lines)
                    else:
                        print(" ".join(f"{k}={frame[k]}" for k, _ in COLUMNS), flush=True)
                    if args.count and counter.frames >= args.count:
                        break
                    if end is not None and time.monotonic() >= end:
                        break
                break
            except LinkError as e:
                if args.no_reconnect:
                    raise
                print(f"penctl: pen lost ({e}); waiting up to {args.reconnect_timeout:g} s for it", file=sys.stderr)
                pen.close()
                pen = _reconnect(port, serial_no, args.timeout, args.reconnect_timeout)
                reconnects += 1
                counter.restart()
                pen.telemetry(args.rate)
                print(f"penctl: reconnected to {pen.link.port}", file=sys.stderr)
    except KeyboardInterrupt:
        pass
    finally:
        try:
            pen.telemetry(0)
        except (LinkError, Exception):  # noqa: BLE001 - best effort on the way out
            pass
        pen.close()
        if csv_file is not None:
            csv_file.close()
    pct = 100.0 * counter.lost / max(1, counter.frames + counter.lost)
    summary = f"frames={counter.frames} lost={counter.lost} ({pct:.2f}%) reconnects={reconnects} restarts={restarts}"
    print(f"penctl: {summary}", file=sys.stderr)
    if args.plot:
        plot(rows, args.plot)
        print(f"penctl: plot written to {args.plot}", file=sys.stderr)
    return EXIT_OK


def plot(rows: list[tuple[float, dict[str, object]]], path: str) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    t = [r[0] for r in rows]
    fig, axes = plt.subplots(4, 1, sharex=True, figsize=(8, 8))
    series = (("rate", "rate_set", "stroke rate (Hz)"), ("depth", None, "depth (mm)"), ("tilt", None, "tilt (deg)"))
    for ax, (key, ref, label) in zip(axes, series, strict=False):
        ax.plot(t, [r[1][key] for r in rows], label=key)
        if ref:
            ax.plot(t, [r[1][ref] for r in rows], "--", label=ref)
            ax.legend(loc="upper right")
        ax.set_ylabel(label)
    axes[3].plot(t, [r[1]["current"] for r in rows])
    axes[3].set_ylabel("current (mA)")
    axes[3].set_xlabel("time (s)")
    fig.tight_layout()
    try:
        fig.savefig(path)  # pyright: ignore[reportUnknownMemberType]  # matplotlib stub: **kwargs untyped
    finally:
        plt.close(fig)
