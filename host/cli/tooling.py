"""Tooling: ports (what is plugged in) and shell (one connection, many
commands)."""

from __future__ import annotations

import argparse
import json

from host.cli.base import subcommand
from host.cli.errors import EXIT_OK

GROUP = "tooling"


@subcommand("ports", "list serial ports with USB VID:PID, product, serial number, and which are pens", GROUP)
def cmd_ports(args: argparse.Namespace) -> int:
    from host.discover import ports

    found = ports()
    if args.json:
        print(json.dumps([p.as_dict() for p in found]))
        return EXIT_OK
    if not found:
        print("no serial ports")
        return EXIT_OK
    print(f"{'port':<24} {'usb id':<10} {'serial':<18} {'pen':<4} description")
    for p in found:
        print(f"{p.device:<24} {p.usb_id:<10} {(p.serial_number or '-'):<18} {p.kind_short:<4} {p.description}")
    return EXIT_OK


@subcommand(
    "shell",
    "one connection for many commands (the technician session stays open): history, completion",
    GROUP,
    description="Type the subcommands as on the command line ('status', 'limits set max_depth 1.8', "
    "'get --json'); 'help' lists them, 'quit' or Ctrl-D ends the shell and logs out.",
    in_shell=False,
)
def cmd_shell(args: argparse.Namespace) -> int:
    from host.cli.shell import run_shell

    return run_shell(args)
