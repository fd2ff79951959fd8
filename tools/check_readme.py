"""The commands in the README's code blocks, and how tests/test_readme.py
covers each one (DESIGN §5 `make test` from a fresh clone: every command in the README is run by a test).

Shell blocks (```sh, bash, shell, console) are read line by line: `$ `
prompts and `# comments` are dropped, `\\` continues a line, and a comment
that says `exit N` declares the exit code the command must end with (for a
refusal shown on purpose). Python blocks (```python, py) are run as a whole.

  check_readme.py [README]    list every command and its coverage; exit 1
                              when one has no way of being tested
"""

from __future__ import annotations

import re
import shlex
import sys
from dataclasses import dataclass, field
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
README = ROOT / "README.md"

SHELL_LANGS = frozenset({"sh", "bash", "shell", "console"})
PYTHON_LANGS = frozenset({"python", "py", "python3"})
FENCE = re.compile(r"^(```+|~~~+)\s*([\w+-]*)")
EXIT_NOTE = re.compile(r"\bexit(?: code)?\s+(\d+)\b")
ENV_ASSIGN = re.compile(r"^[A-Za-z_][A-Za-z0-9_]*=")

# how each `make TARGET` in the README is covered:
#   run     - run for real (cheap and side-effect free)
#   recipe  - run the command(s) the target calls (`make -n`), not make itself
#   dry     - only checked: the target exists and what it calls exists
#             (make test runs this very test; make clean would delete .venv;
#             make flash needs a board; make bench has tests of its own)
MAKE_TARGETS = {
    "venv": "run",
    "mpstubs": "run",
    "check": "run",
    "demo": "recipe",
    "test": "dry",
    "test-deep": "dry",
    "clean": "dry",
    "flash": "dry",
    "bench": "dry",
}
# commands that only prepare a shell; the test runs in the clone with the
# venv's tools on PATH already
SETUP = {"cd", "git", "source", ".", "export"}


@dataclass
class Command:
    line: int  # 1-based line in the README
    text: str  # the command as typed, without prompt and comment
    expect_exit: int = 0

    @property
    def argv(self) -> list[str]:
        return shlex.split(self.text, comments=False)

    @property
    def words(self) -> list[str]:
        """argv without the leading VAR=value environment assignments"""
        argv = self.argv
        i = 0
        while i < len(argv) and ENV_ASSIGN.match(argv[i]):
            i += 1
        return argv[i:]

    @property
    def program(self) -> str:
        words = self.words
        return Path(words[0]).name if words else ""

    @property
    def kind(self) -> str:
        """make | penctl | pensim | pytest | setup | unknown"""
        prog = self.program
        words = self.words
        if prog == "make":
            targets = [w for w in words[1:] if not w.startswith("-") and "=" not in w] or ["all"]
            return "make" if all(t in MAKE_TARGETS for t in targets) else "unknown"
        if prog in ("penctl", "pensim"):
            return prog
        if prog in ("pytest", "py.test") or (prog.startswith("python") and words[1:3] == ["-m", "pytest"]):
            return "pytest"
        if prog in SETUP:
            return "setup"
        if not words and ENV_ASSIGN.match(self.text):
            return "setup"
        return "unknown"


@dataclass
class Block:
    line: int  # line of the opening fence
    lang: str
    body: str
    commands: list[Command] = field(default_factory=lambda: list[Command]())

    @property
    def name(self) -> str:
        return f"L{self.line}-{self.lang}"


def _split_comment(line: str) -> tuple[str, str]:
    """(code, comment): a `#` outside quotes, at the start or after a blank, starts the comment."""
    quote = ""
    for i, ch in enumerate(line):
        if quote:
            quote = "" if ch == quote else quote
        elif ch in "'\"":
            quote = ch
        elif ch == "#" and (i == 0 or line[i - 1].isspace()):
            return line[:i].rstrip(), line[i:]
    return line, ""


def _commands(body: str, first_line: int) -> list[Command]:
    out: list[Command] = []
    pending = ""
    start = 0
    for i, raw in enumerate(body.splitlines()):
        line = raw.strip()
        if line.startswith("$ "):
            line = line[2:]
        code, comment = _split_comment(line)
        if not pending and not code:
            continue
        if not pending:
            start = first_line + 1 + i
        if code.endswith("\\"):
            pending += code[:-1].strip() + " "
            continue
        text = (pending + code).strip()
        pending = ""
        m = EXIT_NOTE.search(comment)
        out.append(Command(start, text, int(m.group(1)) if m else 0))
    return out


def readme_blocks(path: Path = README) -> list[Block]:
    blocks: list[Block] = []
    lines = path.read_text().splitlines()
    i = 0
    while i < len(lines):
        m = FENCE.match(lines[i].strip())
        if not m:
            i += 1
            continue
        fence, lang = m.group(1), m.group(2).lower()
        j = i + 1
        while j < len(lines) and not lines[j].strip().startswith(fence):
            j += 1
        body = "\n".join(lines[i + 1 : j])
        block = Block(i + 1, lang, body)
        if lang in SHELL_LANGS:
            block.commands = _commands(body, i + 1)
        if lang in SHELL_LANGS or lang in PYTHON_LANGS:
            blocks.append(block)
        i = j + 1
    return blocks


def main(argv: list[str]) -> int:
    path = Path(argv[0]) if argv else README
    unknown = 0
    for block in readme_blocks(path):
        if block.lang in PYTHON_LANGS:
            print(f"{path.name}:{block.line}: python block: run as a script, its test_* functions called")
            continue
        for c in block.commands:
            unknown += c.kind == "unknown"
            note = f" (expects exit {c.expect_exit})" if c.expect_exit else ""
            print(f"{path.name}:{c.line}: {c.kind:<8} {c.text}{note}")
    if unknown:
        print(f"{unknown} README command(s) that tests/test_readme.py cannot run: extend it", file=sys.stderr)
    return 1 if unknown else 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
