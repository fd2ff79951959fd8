"""penctl: configure and monitor a needle pen over USB serial.

Exit codes (docs/protocol.md):
  0  success
  1  the pen refused the request (nothing changed); the line names the limit
  2  usage error (bad command line)
  3  the pen could not be found, opened or did not answer
  4  the pen is incompatible with this penctl (protocol version, capabilities)
  5  a file could not be read or written, or its content is invalid
  6  deploy failed
"""

from __future__ import annotations

import argparse
import importlib
import json
import sys
from collections.abc import Callable
from dataclasses import dataclass

from host.auth import KeyFileError
from host.config_file import ConfigFileError
from host.discover import DiscoveryError
from host.link import LinkError, PenIncompatible, PenRefused
from host.pen import Pen
from host.settings import CLINIC, DECIMALS, UNITS, WORKING, help_table

EXIT_OK = 0
EXIT_REFUSED = 1
EXIT_USAGE = 2
EXIT_LINK = 3
EXIT_INCOMPATIBLE = 4
EXIT_FILE = 5
EXIT_DEPLOY = 6
# the technician's key file when --key-file is not given: host.auth.default_key_file()
DEFAULT_KEY_FILE = "$XDG_CONFIG_HOME/penctl/key (~/.config/penctl/key)"


class CliError(Exception):
    """A one-line failure with its exit code."""

    def __init__(self, text: str, code: int) -> None:
        super().__init__(text)
        self.code = code


@dataclass
class Subcommand:
    name: str
    help: str
    run: Callable[[argparse.Namespace], int]
    setup: Callable[[argparse.ArgumentParser], None] | None = None
    read: bool = False  # read commands accept --json
    description: str | None = None


SUBCOMMANDS: dict[str, Subcommand] = {}
# modules of other parts (auth, log, sessions) that add subcommands with
# @subcommand when they exist
EXTENSIONS = ("host.cli_security", "host.cli_persistence")


def subcommand(
    name: str,
    help: str,
    read: bool = False,
    setup: Callable[[argparse.ArgumentParser], None] | None = None,
    description: str | None = None,
) -> Callable[[Callable[[argparse.Namespace], int]], Callable[[argparse.Namespace], int]]:
    def deco(fn: Callable[[argparse.Namespace], int]) -> Callable[[argparse.Namespace], int]:
        SUBCOMMANDS[name] = Subcommand(name, help, fn, setup, read, description)
        return fn

    return deco


# --- output ---
def emit(data: dict[str, object], as_json: bool, units: bool = True) -> None:
    if as_json:
        print(json.dumps(data, sort_keys=True))
        return
    width = max((len(k) for k in data), default=0)
    for k, v in data.items():
        unit = UNITS.get(k, "") if units else ""
        if isinstance(v, float) and k in DECIMALS:
            v = f"{v:.{DECIMALS[k]}f}"
        print(f"{k:<{width}}  {v}{' ' + unit if unit else ''}".rstrip())


def open_pen(args: argparse.Namespace, identify: bool = True) -> Pen:
    return Pen(args.port, timeout=args.timeout, identify=identify, key_file=getattr(args, "key_file", None))


# --- subcommands ---
@subcommand("ports", "list serial ports with USB VID:PID and serial number, and which are pens", read=True)
def cmd_ports(args: argparse.Namespace) -> int:
    from host.discover import ports

    found = ports()
    if args.json:
        print(json.dumps([p.as_dict() for p in found]))
        return EXIT_OK
    if not found:
        print("no serial ports")
        return EXIT_OK
    print(f"{'port':<24} {'usb id':<10} {'serial':<18} pen  description")
    for p in found:
        pen = "yes" if p.is_pen else "no"
        print(f"{p.device:<24} {p.usb_id:<10} {(p.serial_number or '-'):<18} {pen:<4} {p.description}")
    return EXIT_OK


@subcommand("info", "identify the pen: firmware, protocol, capabilities, board, serial number, config hash", read=True)
def cmd_info(args: argparse.Namespace) -> int:
    with open_pen(args) as pen:
        emit(pen.identity, args.json, units=False)
    return EXIT_OK


@subcommand("status", "state, faults, why the drive may not run, measured rate, depth, tilt, battery", read=True)
def cmd_status(args: argparse.Namespace) -> int:
    with open_pen(args) as pen:
        emit(pen.status(), args.json)
    return EXIT_OK


def _setup_get(p: argparse.ArgumentParser) -> None:
    p.add_argument("key", nargs="?", choices=[s.key for s in WORKING], help="one setting (default: all)")


GET_HELP = "working settings:\n" + help_table(WORKING)


@subcommand("get", "read working settings (depth mm, rate Hz)", read=True, setup=_setup_get, description=GET_HELP)
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


@subcommand("set", "change a working setting within the clinic limits", setup=_setup_set, description=GET_HELP)
def cmd_set(args: argparse.Namespace) -> int:
    with open_pen(args) as pen:
        emit(pen.set(args.key, args.value), args.json)
    return EXIT_OK


def _setup_limits(p: argparse.ArgumentParser) -> None:
    p.add_argument("action", nargs="?", choices=["set"], help="'set KEY VALUE' changes a limit (technician only)")
    p.add_argument("key", nargs="?", choices=[s.key for s in CLINIC])
    p.add_argument("value", nargs="?")


@subcommand(
    "limits",
    "read the clinic limits; 'limits set KEY VALUE' changes one (technician: authenticates with --key-file)",
    read=True,
    setup=_setup_limits,
    description="clinic limits:\n" + help_table(CLINIC),
)
def cmd_limits(args: argparse.Namespace) -> int:
    if args.action == "set" and (args.key is None or args.value is None):
        raise CliError("usage: penctl limits set KEY VALUE", EXIT_USAGE)
    with open_pen(args) as pen:
        if args.action == "set":
            emit(pen.set_limit(args.key, args.value), args.json)
        else:
            emit(pen.limits(), args.json)
    return EXIT_OK


def _setup_config(p: argparse.ArgumentParser) -> None:
    p.add_argument("action", choices=["export", "import"])
    p.add_argument("file", help="JSON file ('-' = stdout for export)")


CONFIG_FORMAT = "needle-pen-config"


@subcommand(
    "config",
    "export the pen's configuration to a JSON file, or import one (validated by the pen, all or nothing)",
    setup=_setup_config,
)
def cmd_config(args: argparse.Namespace) -> int:
    from host.config_file import read_config, write_config

    if args.action == "export":
        with open_pen(args) as pen:
            values = pen.config()
            ident = pen.identity
        write_config(args.file, values, ident)
        if args.file != "-":
            print(f"exported {len(values) - 1} values to {args.file} (hash {values.get('hash')})", file=sys.stderr)
        return EXIT_OK
    values = read_config(args.file)
    with open_pen(args) as pen:
        r = pen.import_config(values)
    emit(r, args.json, units=False)
    return EXIT_OK


@subcommand("clear-fault", "clear a latched fault once its cause is gone")
def cmd_clear_fault(args: argparse.Namespace) -> int:
    with open_pen(args) as pen:
        pen.clear_fault()
    print("fault cleared")
    return EXIT_OK


@subcommand("stop", "stop the drive at once (real-time byte, then a confirmed request)")
def cmd_stop(args: argparse.Namespace) -> int:
    with open_pen(args, identify=False) as pen:
        pen.stop()
    print("stopped")
    return EXIT_OK


def _setup_monitor(p: argparse.ArgumentParser) -> None:
    p.add_argument("--rate", type=int, default=10, help="frames per second, 1-100 (default 10)")
    p.add_argument("--duration", type=float, default=0.0, help="seconds to run (default: until Ctrl-C)")
    p.add_argument("--count", type=int, default=0, help="stop after this many frames")
    p.add_argument("--csv", metavar="FILE", help="write every frame to a CSV file")
    p.add_argument("--plot", metavar="FILE.png", help="plot rate, depth, tilt and current at the end")
    p.add_argument("--no-reconnect", action="store_true", help="give up when the pen disappears")
    p.add_argument("--reconnect-timeout", type=float, default=15.0, help="seconds to wait for the pen to return")


@subcommand(
    "monitor",
    "live telemetry: a refreshing table, --json lines, --csv FILE, --plot FILE.png; reports lost frames",
    read=True,
    setup=_setup_monitor,
)
def cmd_monitor(args: argparse.Namespace) -> int:
    from host.monitor import run_monitor

    return run_monitor(args)


def _setup_deploy(p: argparse.ArgumentParser) -> None:
    p.add_argument("--force", action="store_true", help="copy every file, even unchanged ones")
    p.add_argument("--no-verify", action="store_true", help="do not reboot and check the firmware version")


@subcommand(
    "deploy",
    "compile the firmware with mpy-cross and copy it to a board with mpremote, then verify",
    setup=_setup_deploy,
)
def cmd_deploy(args: argparse.Namespace) -> int:
    from host.deploy import DeployError, deploy

    try:
        deploy(args.port, force=args.force, verify=not args.no_verify, timeout=args.timeout, key_file=args.key_file)
    except DeployError as e:
        raise CliError(str(e), EXIT_DEPLOY) from None
    return EXIT_OK


def _load_extensions() -> None:
    for name in EXTENSIONS:
        try:
            importlib.import_module(name)
        except ModuleNotFoundError as e:
            if e.name != name:
                raise


def build_parser() -> argparse.ArgumentParser:
    _load_extensions()
    p = argparse.ArgumentParser(
        prog="penctl",
        description="Configure and monitor a needle pen over USB serial.",
        epilog="exit codes:\n  0 ok\n  1 refused by the pen (nothing changed)\n  2 usage error\n"
        "  3 pen not found, not reachable or not answering\n  4 incompatible pen\n  5 file error\n"
        "  6 deploy failed\n\nThe technician's key file, log, sessions and auth commands come with the "
        "security and persistence modules.",
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    p.add_argument(
        "--port",
        help="serial port path or pyserial URL (default: $PENCTL_PORT, else the one pen found by USB VID:PID)",
    )
    p.add_argument(
        "--key-file",
        default=None,
        help=f"the technician's secret, mode 0600 (default: {DEFAULT_KEY_FILE}); "
        "technician commands authenticate with it when the pen asks",
    )
    p.add_argument("--json", action="store_true", help="machine-readable output of read commands")
    p.add_argument("--timeout", type=float, default=2.0, help="seconds to wait for each answer (default 2)")
    sub = p.add_subparsers(dest="command", metavar="COMMAND")
    sub.required = True
    for sc in SUBCOMMANDS.values():
        sp = sub.add_parser(
            sc.name,
            help=sc.help,
            description=(sc.help + "\n\n" + sc.description) if sc.description else sc.help,
            formatter_class=argparse.RawDescriptionHelpFormatter,
        )
        if sc.read:
            sp.add_argument("--json", action="store_true", default=argparse.SUPPRESS, help="machine-readable output")
        if sc.setup:
            sc.setup(sp)
    return p


def main(argv: list[str] | None = None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
    try:
        return SUBCOMMANDS[args.command].run(args)
    except PenRefused as e:
        print(f"penctl: {e}", file=sys.stderr)
        return EXIT_REFUSED
    except PenIncompatible as e:
        print(f"penctl: {e}", file=sys.stderr)
        return EXIT_INCOMPATIBLE
    except (LinkError, DiscoveryError) as e:
        print(f"penctl: {e}", file=sys.stderr)
        return EXIT_LINK
    except CliError as e:
        print(f"penctl: {e}", file=sys.stderr)
        return e.code
    except ConfigFileError as e:
        print(f"penctl: {e}", file=sys.stderr)
        return EXIT_FILE
    except KeyFileError as e:  # missing, malformed or readable by others
        print(f"penctl: {e}", file=sys.stderr)
        return EXIT_USAGE
    except KeyboardInterrupt:
        print("penctl: interrupted", file=sys.stderr)
        return EXIT_LINK
    except Exception as e:  # noqa: BLE001 - one line, never a traceback
        print(f"penctl: internal error: {type(e).__name__}: {e}; please report it", file=sys.stderr)
        return 70


if __name__ == "__main__":
    # `python -m host.cli`: run the importable host.cli, the module the
    # extensions register their subcommands on (this file as __main__ is a
    # second copy with its own table)
    from host.cli import main as _main

    sys.exit(_main())
