"""penctl subcommands of the persistence module (docs/persistence.md):
``log``, ``sessions`` and ``storage``. Registered on host.cli's table when
host.cli imports this module (host.cli.EXTENSIONS); the reading, dating,
CSV and plots are in host/records.py."""

from __future__ import annotations

import argparse
import json
import sys

from host.cli import EXIT_OK, emit, open_pen, subcommand


def _setup_log(p: argparse.ArgumentParser) -> None:
    p.add_argument("--since", type=int, default=0, metavar="SEQ", help="entries from this sequence number on")


@subcommand(
    "log",
    "the pen's event log (boot counter + ms since boot; wall time estimated for the current boot)",
    read=True,
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
    p.add_argument("--plot", metavar="DIR", help="write one PNG per session into DIR")
    p.add_argument("--end", action="store_true", help="close the open session first (drive must be off)")


@subcommand(
    "sessions",
    "treatment records, one per session; --csv FILE, --plot DIR, --end closes the open one",
    read=True,
    setup=_setup_sessions,
)
def cmd_sessions(args: argparse.Namespace) -> int:
    from host.records import plot_sessions, write_csv

    with open_pen(args) as pen:
        if args.end:
            pen.session_end()
        rows = pen.sessions(args.since)
    if args.csv:
        write_csv(rows, args.csv)
    if args.plot:
        for path in plot_sessions(rows, args.plot):
            print(f"plot: {path}", file=sys.stderr)
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


@subcommand("storage", "configuration store state, flash write count, boot counter", read=True)
def cmd_storage(args: argparse.Namespace) -> int:
    with open_pen(args) as pen:
        emit(pen.storage(), args.json, units=False)
    return EXIT_OK
