"""penctl: configure and monitor a needle pen over USB serial.

Exit codes: 0 success, 1 the pen refused the request, 2 usage error,
3 the pen could not be reached or did not answer.
"""

from __future__ import annotations

import argparse
import json
import sys
from collections.abc import Callable

from host.auth import KeyFileError
from host.link import LinkError, PenRefused
from host.pen import Pen

EXIT_OK = 0
EXIT_REFUSED = 1
EXIT_USAGE = 2
EXIT_LINK = 3


def _print(data: dict[str, object], as_json: bool) -> None:
    if as_json:
        print(json.dumps(data, sort_keys=True))
        return
    width = max((len(k) for k in data), default=0)
    for k, v in data.items():
        print(f"{k:<{width}}  {v}")


def build_parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(prog="penctl", description="Configure and monitor a needle pen over USB serial.")
    p.add_argument("--port", help="serial port or pyserial URL (default: $PENCTL_PORT)")
    p.add_argument("--json", action="store_true", help="machine-readable output")
    p.add_argument("--timeout", type=float, default=2.0, help="seconds to wait for each answer")
    p.add_argument("--key-file", help="technician key, mode 0600 (default: ~/.config/penctl/key)")
    sub = p.add_subparsers(dest="command", metavar="COMMAND")
    sub.required = True
    sub.add_parser("info", help="identify the pen: firmware, protocol, board, serial number")
    sub.add_parser("status", help="state, faults, measured rate, depth, tilt, battery")
    g = sub.add_parser("get", help="read working settings (depth mm, rate Hz)")
    g.add_argument("key", nargs="?", help="depth | rate")
    s = sub.add_parser("set", help="change a working setting within the clinic limits")
    s.add_argument("key", help="depth (mm, 0.00-2.50 in 0.05 steps) | rate (Hz, 25-150)")
    s.add_argument("value")
    lim = sub.add_parser("limits", help="read the clinic limits; 'limits set KEY VALUE' (technician)")
    lim_sub = lim.add_subparsers(dest="limits_command", metavar="set")
    ls = lim_sub.add_parser("set", help="change a clinic limit (authenticates with the key file)")
    ls.add_argument("key", help="max_depth (mm) | max_rate (Hz) | max_tilt (deg) | max_session_min (min)")
    ls.add_argument("value")
    a = sub.add_parser("auth", help="authenticate as technician; --provision / --rotate NEW_KEY_FILE")
    a.add_argument(
        "--provision", action="store_true", help="factory step: create the key file and give it to a new pen"
    )
    a.add_argument("--rotate", metavar="NEW_KEY_FILE", help="replace the pen's key (needs the current one)")
    sub.add_parser("clear-fault", help="clear a latched fault once its cause is gone")
    sub.add_parser("stop", help="stop the drive at once")
    # stored records (host/records.py)
    lg = sub.add_parser("log", help="the pen's event log (boot counter + ms since boot; wall time estimated)")
    lg.add_argument("--since", type=int, default=0, metavar="SEQ", help="entries from this sequence number on")
    se = sub.add_parser("sessions", help="treatment records, one per session")
    se.add_argument("--since", type=int, default=0, metavar="SEQ", help="records from this sequence number on")
    se.add_argument("--csv", metavar="FILE", help="write the records as CSV for the clinic's files")
    se.add_argument("--plot", metavar="DIR", help="write one PNG per session into DIR")
    se.add_argument("--end", action="store_true", help="close the open session first (drive must be off)")
    sub.add_parser("storage", help="configuration store state, flash write count, boot counter")
    return p


def _records(pen: Pen, args: argparse.Namespace) -> None:
    from host.records import plot_sessions, write_csv

    if args.command == "sessions" and args.end:
        pen.session_end()
    rows = pen.log(args.since) if args.command == "log" else pen.sessions(args.since)
    if args.command == "sessions" and args.csv:
        write_csv(rows, args.csv)
    if args.command == "sessions" and args.plot:
        for path in plot_sessions(rows, args.plot):
            print(f"plot: {path}", file=sys.stderr)
    if args.json:
        print(json.dumps(rows, sort_keys=True))
        return
    for r in rows:
        if args.command == "log":
            when = r["wall_time"] or f"boot {r['boot']} +{r['ms'] / 1000:.3f} s"
            print(f"{r['seq']:>6}  {when:<25}  {r['kind']:<9}  {r['text']}")
        else:
            when = r["start_wall"] or f"boot {r['boot']} +{r['start_ms'] / 1000:.0f} s"
            print(
                f"{r['seq']:>6}  {when:<25}  depth {r['depth_lo_mm']:.2f}-{r['depth_hi_mm']:.2f} mm  "
                f"rate {r['rate_lo_hz']:.1f}-{r['rate_hi_hz']:.1f} Hz  run {r['run_s']:.0f} s  "
                f"strokes {r['strokes']}  tilted {r['tilt_out_s']:.1f} s  end {r['end_reason']}"
            )


def run(args: argparse.Namespace) -> int:
    with Pen(args.port, timeout=args.timeout, key_file=args.key_file) as pen:
        actions: dict[str, Callable[[], dict[str, object] | None]] = {
            "info": pen.info,
            "status": pen.status,
            "get": lambda: pen.get(args.key),
            "set": lambda: pen.set(args.key, args.value),
            "limits": lambda: pen.limits_set(args.key, args.value) if args.limits_command == "set" else pen.limits(),
            "auth": lambda: _auth_command(pen, args),
            "clear-fault": pen.clear_fault,
            "stop": pen.stop,
            "storage": pen.storage,
        }
        if args.command in ("log", "sessions"):
            _records(pen, args)
            return EXIT_OK
        result = actions[args.command]()
        if result is not None:
            _print(result, args.json)
    return EXIT_OK


def _auth_command(pen: Pen, args: argparse.Namespace) -> dict[str, object]:
    if args.provision:
        pen.provision()
    if args.rotate:
        pen.rotate(args.rotate)
        pen.key_file = args.rotate
    return pen.auth()


def main(argv: list[str] | None = None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
    try:
        return run(args)
    except PenRefused as e:
        print(f"penctl: {e}", file=sys.stderr)
        return EXIT_REFUSED
    except LinkError as e:
        print(f"penctl: {e}", file=sys.stderr)
        return EXIT_LINK
    except KeyFileError as e:
        print(f"penctl: {e}", file=sys.stderr)
        return EXIT_USAGE
    except KeyboardInterrupt:
        print("penctl: interrupted", file=sys.stderr)
        return EXIT_LINK


if __name__ == "__main__":
    sys.exit(main())
