"""penctl monitor: live telemetry and events, lost-frame counting,
reconnect. Whatever ends the run (count, duration, Ctrl-C, the pen lost for
good), the summary and the plot are written; the plot path was checked
before the run (host/cli/everyday.py)."""

from __future__ import annotations

import argparse
import csv
import json
import sys
import time
from typing import IO, Any

from host.api import Pen
from host.cli.base import open_pen
from host.cli.errors import EXIT_OK, file_error
from host.link import LinkError, PenRefused
from host.monitor import Counter, plot, reconnect, table


class Run:
    """One monitor run: the frames, events and counters it has seen."""

    def __init__(self, args: argparse.Namespace) -> None:
        self.args = args
        self.counter = Counter()
        self.reconnects = 0
        self.restarts = 0
        self.rows: list[tuple[float, dict[str, object]]] = []
        self.t0 = time.monotonic()
        self.shown = 0
        self.last_draw = 0.0
        self.last_event = "-"
        self.reasons: dict[str, object] = {"stop": "-", "block": "-"}
        self.tty = sys.stdout.isatty() and not args.json
        self.csv_file: IO[str] | None = None
        self.writer: Any = None

    def open_csv(self, columns: tuple[tuple[str, str], ...]) -> None:
        if not self.args.csv:
            return
        try:
            self.csv_file = open(self.args.csv, "w", newline="")  # noqa: SIM115 - closed in close()
        except OSError as e:
            raise file_error(e) from None
        self.writer = csv.writer(self.csv_file)
        self.writer.writerow(["t_s"] + [f"{k}_{u}" if u else k for k, u in columns])

    def event(self, pen: Pen, text: str) -> None:
        """An event line from the pen: shown, and on a state change or a
        stop the pen's block and stop reasons with it."""
        self.last_event = text
        line = f"penctl: event: {text}"
        if text.startswith(("state", "stop", "fault", "session_end", "heartbeat_lost")):
            try:
                st = pen.status()
                self.reasons = {"stop": st.get("stop", "-"), "block": st.get("block", "-")}
                line += f" (stop={self.reasons['stop']} block={self.reasons['block']})"
            except (LinkError, PenRefused):
                pass
        if not self.tty:
            print(line, file=sys.stderr, flush=True)

    def frame(self, pen: Pen, frame: dict[str, object]) -> None:
        columns = pen.names.columns
        t = time.monotonic() - self.t0
        self.counter.add(int(str(frame["seq"])))
        if self.writer is not None:
            self.writer.writerow([f"{t:.3f}"] + [frame.get(k) for k, _ in columns])
        if self.args.plot:
            self.rows.append((t, frame))
        if self.args.json:
            print(json.dumps({"t": round(t, 3), **frame}), flush=True)
        elif self.tty:
            if time.monotonic() - self.last_draw >= 0.1:
                self.last_draw = time.monotonic()
                lines = table(frame, columns, self.counter, self.args.rate)
                lines += [f"  {'stop':<9} {self.reasons['stop']!s:>10}", f"  {'block':<9} {self.reasons['block']!s}"]
                lines.append(f"  last event: {self.last_event}")
                up = f"\x1b[{self.shown}A" if self.shown else ""
                sys.stdout.write(up + "".join(line + "\x1b[K\n" for line in lines))
                sys.stdout.flush()
                self.shown = len(lines)
        else:
            print(" ".join(f"{k}={frame.get(k)}" for k, _ in columns), flush=True)

    def finish(self) -> None:
        """Summary and plot: on every way out."""
        if self.csv_file is not None:
            self.csv_file.close()
        c = self.counter
        pct = 100.0 * c.lost / max(1, c.frames + c.lost)
        summary = f"frames={c.frames} lost={c.lost} ({pct:.2f}%) reconnects={self.reconnects} restarts={self.restarts}"
        print(f"penctl: {summary}", file=sys.stderr)
        if self.args.plot and self.rows:
            try:
                plot(self.rows, self.args.plot)
            except OSError as e:
                raise file_error(e) from None
            print(f"penctl: plot written to {self.args.plot}", file=sys.stderr)


def _stream(run: Run, pen: Pen, end: float | None) -> bool:
    """Frames until the count or the time is reached; True when done."""
    args = run.args
    for frame in pen.frames(None if end is None else max(0.0, end - time.monotonic()), events=True):
        if "event" in frame:
            text = str(frame["event"])
            if text.startswith("boot"):
                # the pen reset in place (watchdog, brown-out): its
                # telemetry is off and its numbering restarts
                run.restarts += 1
                run.counter.restart()
                pen.telemetry(args.rate)
                print(f"penctl: the pen restarted ({text}); telemetry resumed", file=sys.stderr)
            run.event(pen, text)
            continue
        run.frame(pen, frame)
        if args.count and run.counter.frames >= args.count:
            return True
        if end is not None and time.monotonic() >= end:
            return True
    return True


def run_monitor(args: argparse.Namespace) -> int:
    run = Run(args)
    shared = getattr(args, "shared_pen", None) is not None
    with open_pen(args) as first:
        pen = first
        port = pen.link.port
        serial_no = str(pen.identity.get("serial"))
        end = run.t0 + args.duration if args.duration > 0 else None
        try:
            run.open_csv(pen.names.columns)
            pen.telemetry(args.rate)
            while True:
                try:
                    if _stream(run, pen, end):
                        break
                except LinkError as e:
                    if args.no_reconnect or shared:
                        raise
                    print(f"penctl: pen lost ({e}); waiting up to {args.reconnect_timeout:g} s for it", file=sys.stderr)
                    if pen is not first:
                        pen.close()
                    pen = reconnect(port, serial_no, args.timeout, args.reconnect_timeout)
                    run.reconnects += 1
                    run.counter.restart()
                    pen.telemetry(args.rate)
                    print(f"penctl: reconnected to {pen.link.port}", file=sys.stderr)
        except KeyboardInterrupt:
            pass  # Ctrl-C ends a monitor normally: summary, plot, exit 0
        finally:
            try:
                pen.telemetry(0)
            except (LinkError, PenRefused):
                pass
            if pen is not first:
                pen.close()
            run.finish()
    return EXIT_OK
