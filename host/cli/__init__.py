"""penctl: configure and monitor a needle pen over USB serial.

One package: errors.py (exit codes, the one-line failures), base.py (the
subcommand table, output, opening the pen), the subcommands by audience
(everyday.py, technician.py, tooling.py), monitor.py and shell.py (the
long-running ones) and main.py (parser, signals, entry point).
``penctl = host.cli:main``; ``python -m host.cli`` runs the same."""

from host.cli.base import SUBCOMMANDS, emit, open_pen, subcommand
from host.cli.errors import (
    EXIT_DEPLOY,
    EXIT_FILE,
    EXIT_INCOMPATIBLE,
    EXIT_INTERNAL,
    EXIT_LINK,
    EXIT_OK,
    EXIT_REFUSED,
    EXIT_USAGE,
    CliError,
)
from host.cli.main import build_parser, main

__all__ = [
    "EXIT_DEPLOY",
    "EXIT_FILE",
    "EXIT_INCOMPATIBLE",
    "EXIT_INTERNAL",
    "EXIT_LINK",
    "EXIT_OK",
    "EXIT_REFUSED",
    "EXIT_USAGE",
    "SUBCOMMANDS",
    "CliError",
    "build_parser",
    "emit",
    "main",
    "open_pen",
    "subcommand",
]
