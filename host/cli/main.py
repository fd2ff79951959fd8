"""penctl's entry point: the parser (subcommands grouped by audience), the
signal handlers that log out before exiting, and the mapping of every
failure to one line and an exit code (host/cli/errors.py)."""

from __future__ import annotations

import argparse
import os
import signal
import sys
from collections.abc import Callable, Generator
from contextlib import contextmanager
from types import FrameType

# the subcommand modules register themselves on host.cli.base.SUBCOMMANDS
from host.cli import everyday as _everyday
from host.cli import technician as _technician
from host.cli import tooling as _tooling
from host.cli.base import GROUPS, SUBCOMMANDS, positive
from host.cli.errors import EPILOG, Interrupted, classify
from host.resources import version_line

assert _everyday and _technician and _tooling  # imported for their @subcommand tables

# the technician's key file when --key-file is not given: host.auth.default_key_file()
DEFAULT_KEY_FILE = "$XDG_CONFIG_HOME/penctl/key (~/.config/penctl/key)"
SIGNALS = (signal.SIGTERM, signal.SIGHUP)


def command_list(names: list[str] | None = None) -> str:
    """The subcommands by audience, for --help and the shell's help."""
    lines: list[str] = []
    for group, title in GROUPS.items():
        cmds = [s for s in SUBCOMMANDS.values() if s.group == group and (names is None or s.name in names)]
        if not cmds:
            continue
        lines.append(f"{title}:")
        lines += [f"  {s.name:<12} {s.help}" for s in cmds]
        lines.append("")
    return "\n".join(lines)


def add_subcommands(p: argparse.ArgumentParser, in_shell: bool = False) -> dict[str, argparse.ArgumentParser]:
    """The subcommands' parsers on p (also the shell's parser); returns them by name."""
    out: dict[str, argparse.ArgumentParser] = {}
    sub = p.add_subparsers(dest="command", metavar="COMMAND")
    sub.required = True
    for sc in SUBCOMMANDS.values():
        if in_shell and not sc.in_shell:
            continue
        # no help=: the grouped list in the description replaces argparse's flat one
        sp = sub.add_parser(
            sc.name,
            description=(sc.help + "\n\n" + sc.description) if sc.description else sc.help,
            formatter_class=argparse.RawDescriptionHelpFormatter,
            epilog="--json (anywhere on the line): machine-readable output",
        )
        if sc.setup:
            sc.setup(sp)
        out[sc.name] = sp
    return out


def build_parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(
        prog="penctl",
        description="Configure and monitor a needle pen over USB serial.\n\n" + command_list(),
        epilog=EPILOG,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    p.add_argument("--version", action="version", version=version_line("penctl"))
    p.add_argument(
        "--port",
        help="serial port path or pyserial URL (default: $PENCTL_PORT, else the one pen found by USB id and product)",
    )
    p.add_argument(
        "--key-file",
        default=None,
        help=f"the technician's secret, mode 0600 (default: {DEFAULT_KEY_FILE}); "
        "technician commands authenticate with it when no session is open",
    )
    p.add_argument("--json", action="store_true", help="machine-readable output (anywhere on the line)")
    p.add_argument("--timeout", type=positive, default=2.0, help="seconds to wait for each answer (default 2)")
    add_subcommands(p)
    return p


def split_json(argv: list[str]) -> tuple[list[str], bool]:
    """--json is accepted anywhere before a '--'."""
    out: list[str] = []
    found = False
    for i, a in enumerate(argv):
        if a == "--":
            out += argv[i:]
            break
        if a == "--json":
            found = True
        else:
            out.append(a)
    return out, found


def parse(parser: argparse.ArgumentParser, argv: list[str]) -> argparse.Namespace:
    rest, as_json = split_json(argv)
    args = parser.parse_args(rest)
    args.json = as_json
    return args


def _raise_interrupted(signum: int, _frame: FrameType | None) -> None:
    raise Interrupted(signum)


@contextmanager
def signals_log_out() -> Generator[None]:
    """SIGTERM and SIGHUP unwind like Ctrl-C, so every open Pen logs out."""
    import threading

    if threading.current_thread() is not threading.main_thread():
        yield
        return
    old: dict[int, Callable[[int, FrameType | None], object] | int | None] = {}
    for s in SIGNALS:
        old[s] = signal.signal(s, _raise_interrupted)
    try:
        yield
    finally:
        for s, h in old.items():
            signal.signal(s, h if h is not None else signal.SIG_DFL)


def _quiet_stdout() -> None:
    """After stdout failed (closed pipe, full disk): send what is left to
    /dev/null so the interpreter's last flush does not fail again."""
    try:
        fd = os.open(os.devnull, os.O_WRONLY)
        os.dup2(fd, sys.stdout.fileno())
        os.close(fd)
    except (OSError, ValueError, AttributeError):
        pass


def report(e: BaseException) -> int:
    code, line = classify(e)
    if code == 5 and isinstance(e, OSError) and e.filename is None:
        _quiet_stdout()
    try:
        print(f"penctl: {line}", file=sys.stderr, flush=True)
    except OSError:
        pass
    return code


def run(args: argparse.Namespace) -> int:
    code = SUBCOMMANDS[args.command].run(args)
    sys.stdout.flush()  # a full disk or a closed pipe shows here, not at exit
    return code


def main(argv: list[str] | None = None) -> int:
    parser = build_parser()
    args = parse(parser, list(sys.argv[1:] if argv is None else argv))
    try:
        with signals_log_out():
            return run(args)
    except BaseException as e:  # noqa: BLE001 - one line and an exit code, never a traceback
        if isinstance(e, SystemExit):
            raise
        return report(e)
