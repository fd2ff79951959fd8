"""penctl shell: one connection, many commands. The commands are penctl's
subcommands, parsed by the same parsers and run by the same functions
(host/cli/main.py add_subcommands); only the pen is shared, so a technician
session opened by one command stays open for the next. History (readline,
$XDG_STATE_HOME/penctl/history) and completion of command names, choices
and options on a terminal. The session is logged out when the shell ends,
by `quit`, Ctrl-D, end of input or a signal."""

from __future__ import annotations

import argparse
import cmd
import os
import shlex
import sys
from pathlib import Path

from host.api import Pen
from host.cli.base import SUBCOMMANDS, open_pen
from host.cli.errors import EXIT_OK, classify


def history_file() -> Path:
    base = os.environ.get("XDG_STATE_HOME") or str(Path.home() / ".local" / "state")
    return Path(base) / "penctl" / "history"


class ShellParser(argparse.ArgumentParser):
    """Usage errors become an exception instead of exiting the shell."""

    def error(self, message: str) -> None:  # type: ignore[override]  # argparse's NoReturn
        raise ShellUsage(f"{self.prog}: {message}")


class ShellUsage(Exception):
    pass


def shell_parser() -> tuple[argparse.ArgumentParser, dict[str, argparse.ArgumentParser]]:
    from host.cli.main import add_subcommands

    p = ShellParser(prog="penctl", add_help=False, exit_on_error=False)
    return p, add_subcommands(p, in_shell=True)


def choices(subparsers: dict[str, argparse.ArgumentParser], words: list[str]) -> list[str]:
    """What may follow `words` (subcommand name first) on the line."""
    if not words:
        return sorted(subparsers)
    sp = subparsers.get(words[0])
    if sp is None:
        return []
    out: list[str] = ["--json"]
    given = len([w for w in words[1:] if not w.startswith("-")])
    positional = 0
    actions: list[argparse.Action] = sp._actions  # pyright: ignore[reportPrivateUsage]  # argparse has no public list
    for a in actions:
        if a.option_strings:
            out += [o for o in a.option_strings if o.startswith("--")]
            continue
        if positional == given and a.choices is not None:
            out += [str(c) for c in a.choices]
        positional += 1
    return out


class PenShell(cmd.Cmd):
    intro = ""

    def __init__(self, pen: Pen, base: argparse.Namespace, interactive: bool) -> None:
        super().__init__()
        self.pen = pen
        self.base = base
        self.parser, self.subparsers = shell_parser()
        self.done = False
        self.interactive = interactive
        self.prompt = "pen> " if interactive else ""
        self.last_code = EXIT_OK
        self.worst = EXIT_OK  # the exit code of a script: its first failure

    def emptyline(self) -> bool:
        return False

    def postcmd(self, stop: bool, line: str) -> bool:
        if self.last_code and not self.worst:
            self.worst = self.last_code
        return stop or self.done

    def default(self, line: str) -> None:
        self.run_line(line)

    def run_line(self, line: str) -> None:
        self.last_code = EXIT_OK
        from host.cli.main import split_json

        try:
            words, as_json = split_json(shlex.split(line))
        except ValueError as e:
            print(f"penctl: {e}", file=sys.stderr)
            self.last_code = 2
            return
        if not words:
            return
        if words[0] in ("quit", "exit"):
            self.done = True
            return
        if words[0] == "help":
            self.show_help(words[1:])
            return
        if words[0] in SUBCOMMANDS and not SUBCOMMANDS[words[0]].in_shell:
            print(f"penctl: '{words[0]}' runs on its own connection: quit the shell first", file=sys.stderr)
            self.last_code = 2
            return
        try:
            args = self.parser.parse_args(words)
        except (ShellUsage, argparse.ArgumentError) as e:
            print(str(e), file=sys.stderr)
            self.last_code = 2
            return
        except SystemExit:  # --help printed
            return
        for k, v in vars(self.base).items():
            if not hasattr(args, k):
                setattr(args, k, v)
        args.json = as_json
        args.shared_pen = self.pen
        try:
            self.last_code = SUBCOMMANDS[args.command].run(args)
        except Exception as e:  # noqa: BLE001 - one line, and the shell goes on
            self.last_code, text = classify(e)
            print(f"penctl: {text}", file=sys.stderr)
        sys.stdout.flush()
        return

    def do_help(self, arg: str) -> bool | None:
        self.show_help(arg.split())
        return None

    def show_help(self, words: list[str]) -> None:
        from host.cli.main import command_list

        if words and words[0] in SUBCOMMANDS:
            try:
                self.parser.parse_args([words[0], "--help"])
            except SystemExit:
                pass
            return
        names = [s.name for s in SUBCOMMANDS.values() if s.in_shell]
        print(command_list(names) + "quit (or Ctrl-D) ends the shell; 'help COMMAND' shows its arguments")

    def do_EOF(self, _arg: str) -> bool:
        if self.interactive:
            print()
        return True

    def completenames(self, text: str, *ignored: object) -> list[str]:
        return [n for n in [*choices(self.subparsers, []), "help", "quit"] if n.startswith(text)]

    def completedefault(self, *ignored: object) -> list[str]:
        text, line, begidx = str(ignored[0]), str(ignored[1]), int(str(ignored[2]))
        try:
            words = shlex.split(line[:begidx])
        except ValueError:
            return []
        return [c for c in choices(self.subparsers, words) if c.startswith(text)]


def run_shell(args: argparse.Namespace) -> int:
    interactive = sys.stdin.isatty()
    hist = history_file()
    rl = None
    if interactive:
        try:
            import readline

            rl = readline
            rl.parse_and_bind("tab: complete")
            hist.parent.mkdir(parents=True, exist_ok=True)
            if hist.exists():
                rl.read_history_file(str(hist))
        except (ImportError, OSError):
            rl = None
    with open_pen(args) as pen:
        sh = PenShell(pen, args, interactive)
        if interactive:
            print(f"penctl shell: pen {pen.identity.get('serial')} on {pen.link.port}; 'help' lists the commands")
        try:
            sh.cmdloop()
        finally:
            if rl is not None:
                try:
                    rl.set_history_length(1000)
                    rl.write_history_file(str(hist))
                except OSError:
                    pass
    return sh.worst if not interactive else EXIT_OK
