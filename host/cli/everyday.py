"""Everyday penctl commands: anyone connected to the pen may use them.
info, status, get, set, stop, monitor, log, sessions, storage, loop."""

from __future__ import annotations

import argparse
import json
import sys

from host.api import Pen
from host.cli.base import check_writable, done, emit, need, non_negative, open_pen, show, subcommand
from host.cli.errors import EXIT_OK, EXIT_USAGE, CliError, file_error
from host.settings import DECIMALS, WORKING, help_table

GROUP = "everyday"


@subcommand(
    "info",
    "identify the pen: firmware, protocol, board, serial number, and the label's declared parameters (SR10)",
    GROUP,
)
def cmd_info(args: argparse.Namespace) -> int:
    return show(args, Pen.info, units=False)


@subcommand("status", "state, faults, why the drive may not run, measured rate, depth, tilt, battery", GROUP)
def cmd_status(args: argparse.Namespace) -> int:
    return show(args, Pen.status)


def _setup_get(p: argparse.ArgumentParser) -> None:
    p.add_argument("key", nargs="?", choices=[s.key for s in WORKING], help="one setting (default: all)")


GET_HELP = "working settings:\n" + help_table(WORKING)


@subcommand("get", "read working settings (depth mm, rate Hz)", GROUP, setup=_setup_get, description=GET_HELP)
def cmd_get(args: argparse.Namespace) -> int:
    with open_pen(args) as pen:
        values = pen.get(args.key)
        if args.json:
            emit(values, True)
            return EXIT_OK
        caps = pen.limits()
    for s in WORKING:
        if s.key in values:
            d = DECIMALS.get(s.key, 1)
            v, c = values[s.key], caps.get(s.cap or "", "?")
            vs = f"{v:.{d}f}" if isinstance(v, float) else str(v)
            cs = f"{c:.{d}f}" if isinstance(c, float) else str(c)
            print(f"{s.key:<6} {vs} {s.unit}   (hardware {s.range_text()}; clinic limit {s.cap} {cs} {s.unit})")
    return EXIT_OK


def _setup_set(p: argparse.ArgumentParser) -> None:
    p.add_argument("key", choices=[s.key for s in WORKING])
    p.add_argument("value", help="a decimal number in the setting's unit")


@subcommand("set", "change a working setting within the clinic limits", GROUP, setup=_setup_set, description=GET_HELP)
def cmd_set(args: argparse.Namespace) -> int:
    with open_pen(args) as pen:
        emit(pen.set(args.key, args.value), args.json)
    return EXIT_OK


@subcommand("stop", "stop the drive at once (real-time byte, then a confirmed request)", GROUP)
def cmd_stop(args: argparse.Namespace) -> int:
    with open_pen(args, identify=False) as pen:
        pen.stop()
    return done(args, "stopped")


def _setup_monitor(p: argparse.ArgumentParser) -> None:
    p.add_argument("--rate", type=int, default=10, help="frames per second, 1-100 (default 10)")
    p.add_argument("--duration", type=non_negative, default=0.0, help="seconds to run (default 0: until Ctrl-C)")
    p.add_argument("--count", type=int, default=0, help="stop after this many frames")
    p.add_argument("--csv", metavar="FILE", help="write every frame to a CSV file")
    p.add_argument("--plot", metavar="FILE.png", help="plot rate, depth, tilt and current at the end (needs [plot])")
    p.add_argument("--no-reconnect", action="store_true", help="give up when the pen disappears")
    p.add_argument("--reconnect-timeout", type=non_negative, default=15.0, help="seconds to wait for the pen to return")


@subcommand(
    "monitor",
    "live telemetry and events: a refreshing table, --json lines, --csv FILE, --plot FILE.png; reports lost frames",
    GROUP,
    setup=_setup_monitor,
)
def cmd_monitor(args: argparse.Namespace) -> int:
    if not 1 <= args.rate <= 100:
        raise CliError("--rate must be 1-100 frames per second", EXIT_USAGE)
    if args.plot:
        need("matplotlib", "penctl monitor --plot", "plot")
        check_writable(args.plot, "the plot")
    from host.cli.monitor import run_monitor

    return run_monitor(args)


def _setup_log(p: argparse.ArgumentParser) -> None:
    p.add_argument("--since", type=int, default=0, metavar="SEQ", help="entries from this sequence number on")


@subcommand(
    "log",
    "the pen's event log (boot counter + ms since boot; wall time estimated for the current boot)",
    GROUP,
    setup=_setup_log,
)
def cmd_log(args: argparse.Namespace) -> int:
    with open_pen(args) as pen:
        rows = pen.log(args.since)
    if args.json:
        print(json.dumps(rows, sort_keys=True))
        return EXIT_OK
    for r in rows:
        when = r["wall_time"] or f"boot {r['boot']} +{r['ms'] / 1000:.3f} s"
        print(f"{r['seq']:>6}  {when:<25}  {r['kind']:<9}  {r['text']}")
    return EXIT_OK


def _setup_sessions(p: argparse.ArgumentParser) -> None:
    p.add_argument("--since", type=int, default=0, metavar="SEQ", help="records from this sequence number on")
    p.add_argument("--csv", metavar="FILE", help="write the records as CSV for the clinic's files")
    p.add_argument("--plot", metavar="DIR", help="write one PNG per session into DIR (needs [plot])")
    p.add_argument("--end", action="store_true", help="close the open session first (drive must be off)")


@subcommand(
    "sessions",
    "treatment records, one per session; --csv FILE, --plot DIR, --end closes the open one",
    GROUP,
    setup=_setup_sessions,
)
def cmd_sessions(args: argparse.Namespace) -> int:
    from host.records import plot_sessions, write_csv

    if args.plot:
        need("matplotlib", "penctl sessions --plot", "plot")
    if args.csv:
        check_writable(args.csv, "the CSV file")
    with open_pen(args) as pen:
        if args.end:
            pen.session_end()
        rows = pen.sessions(args.since)
    try:
        if args.csv:
            write_csv(rows, args.csv)
        if args.plot:
            for path in plot_sessions(rows, args.plot):
                print(f"plot: {path}", file=sys.stderr)
    except OSError as e:
        raise file_error(e) from None
    if args.json:
        print(json.dumps(rows, sort_keys=True))
        return EXIT_OK
    for r in rows:
        when = r["start_wall"] or f"boot {r['boot']} +{r['start_ms'] / 1000:.0f} s"
        print(
            f"{r['seq']:>6}  {when:<25}  depth {r['depth_lo_mm']:.2f}-{r['depth_hi_mm']:.2f} mm  "
            f"rate {r['rate_lo_hz']:.1f}-{r['rate_hi_hz']:.1f} Hz  run {r['run_s']:.0f} s  "
            f"strokes {r['strokes']}  tilted {r['tilt_out_s']:.1f} s  end {r['end_reason']}"
        )
    return EXIT_OK


@subcommand("storage", "configuration store state, flash write count, boot counter", GROUP)
def cmd_storage(args: argparse.Namespace) -> int:
    return show(args, Pen.storage, units=False)


def _setup_loop(p: argparse.ArgumentParser) -> None:
    p.add_argument("action", nargs="?", choices=["reset"], help="start the figures again")


@subcommand(
    "loop",
    "the control loop's timing measured by the pen itself: busy part of a pass and the tick, mean and max",
    GROUP,
    setup=_setup_loop,
    description="Measured with the pen's own microsecond clock since boot or the last 'loop reset': on a "
    "real Pico these are the silicon's figures (docs/performance.md). The busy part of a pass must stay "
    "within half the period (DESIGN section 7).",
)
def cmd_loop(args: argparse.Namespace) -> int:
    return show(args, lambda pen: pen.loop(reset=args.action == "reset"), units=False)
