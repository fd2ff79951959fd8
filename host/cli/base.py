"""The subcommand table, output helpers and opening the pen, shared by the
subcommand modules (everyday, technician, tooling)."""

from __future__ import annotations

import argparse
import contextlib
import json
from collections.abc import Callable
from dataclasses import dataclass

from host.api import Pen
from host.cli.errors import EXIT_FILE, CliError, missing_extra
from host.settings import DECIMALS, UNITS

# the audiences, in the order --help lists them
GROUPS = {
    "everyday": "everyday commands (anyone connected)",
    "technician": "technician commands (authenticate with --key-file when the pen asks)",
    "tooling": "tooling",
}


@dataclass
class Subcommand:
    name: str
    help: str
    run: Callable[[argparse.Namespace], int]
    group: str
    setup: Callable[[argparse.ArgumentParser], None] | None = None
    description: str | None = None
    in_shell: bool = True  # offered inside `penctl shell`


SUBCOMMANDS: dict[str, Subcommand] = {}


def subcommand(
    name: str,
    help: str,
    group: str,
    setup: Callable[[argparse.ArgumentParser], None] | None = None,
    description: str | None = None,
    in_shell: bool = True,
) -> Callable[[Callable[[argparse.Namespace], int]], Callable[[argparse.Namespace], int]]:
    if group not in GROUPS:
        raise ValueError(f"unknown group {group!r}")

    def deco(fn: Callable[[argparse.Namespace], int]) -> Callable[[argparse.Namespace], int]:
        SUBCOMMANDS[name] = Subcommand(name, help, fn, group, setup, description, in_shell)
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


def done(args: argparse.Namespace, text: str, **data: object) -> int:
    """A command that changes something and has nothing to read back:
    its line, or {"ok": true, ...} with --json."""
    if args.json:
        print(json.dumps({"ok": True, **data}, sort_keys=True))
    else:
        print(text)
    return 0


# --- the pen ---
def open_pen(args: argparse.Namespace, identify: bool = True) -> contextlib.AbstractContextManager[Pen]:
    """The pen of this command: a new connection, closed (and logged out)
    at the end of the `with`; inside `penctl shell`, the shell's one
    connection, kept open."""
    shared: Pen | None = getattr(args, "shared_pen", None)
    if shared is not None:
        return contextlib.nullcontext(shared)
    return Pen(args.port, timeout=args.timeout, identify=identify, key_file=getattr(args, "key_file", None))


def show(args: argparse.Namespace, read: Callable[[Pen], dict[str, object]], units: bool = True) -> int:
    """A command that reads one table from the pen and prints it."""
    with open_pen(args) as pen:
        emit(read(pen), args.json, units=units)
    return 0


def need(module: str, what: str, extra: str) -> None:
    """Fails with one line naming the extra when `module` is not installed."""
    import importlib.util

    try:
        found = importlib.util.find_spec(module) is not None
    except (ImportError, ValueError):
        found = False
    if not found:
        raise missing_extra(what, module, extra)


def check_writable(path: str | None, what: str) -> None:
    """Checks before a long run that `path` can be written (its folder
    exists and is writable), so a monitor does not fail at the end."""
    import os

    if path:
        folder = os.path.dirname(os.path.abspath(path))
        if not os.path.isdir(folder):
            raise CliError(f"cannot write {what} {path}: no such folder {folder}", EXIT_FILE)
        if not os.access(folder, os.W_OK):
            raise CliError(f"cannot write {what} {path}: folder {folder} is not writable", EXIT_FILE)


def positive(text: str) -> float:
    """argparse type: a number of seconds > 0."""
    try:
        v = float(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"not a number: {text!r}") from None
    if not v > 0 or v != v:
        raise argparse.ArgumentTypeError(f"must be more than 0 s, not {text}")
    return v


def non_negative(text: str) -> float:
    """argparse type: a number of seconds >= 0 (0: no limit)."""
    try:
        v = float(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"not a number: {text!r}") from None
    if not v >= 0:
        raise argparse.ArgumentTypeError(f"must not be negative: {text}")
    return v
