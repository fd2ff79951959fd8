"""Module allow-list for the code that runs under MicroPython (DESIGN §6).

pyright with the MicroPython stdlib stubs still accepts `typing`, `enum`,
`abc` (and the stubs know modules the board lacks), so this is the check that
firmware/ imports only modules the RP2040 build of MicroPython has, plus the
project's own packages; and that sim/device/ (the device side of the
simulator, which runs in the MicroPython unix port) imports only those plus
the unix port's extras. Every import statement counts, also one inside a
function or an `except ImportError:` branch: a CPython fallback that must
stay needs an entry in EXCEPTIONS with its reason.

  check_imports.py            check the tree, list offending imports, exit 1 on any
  check_imports.py FILE...    check these files as firmware files
"""

from __future__ import annotations

import ast
import sys
from dataclasses import dataclass
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
FIRMWARE = ROOT / "firmware"
SIM_DEVICE = ROOT / "sim" / "device"

# modules of MicroPython 1.2x on the Raspberry Pi Pico that the firmware may use
BOARD_MODULES = frozenset(
    {
        "micropython",
        "machine",
        "rp2",
        "time",
        "sys",
        "select",
        "struct",
        "hashlib",
        "binascii",
        "os",
        "vfs",
        "gc",
        "array",
        "math",
        "json",
        "errno",
        "io",
        "random",
    }
)
# the project's own firmware packages (and the top-level boot guard module)
FIRMWARE_PACKAGES = frozenset({"pen", "boards", "bootguard"})
# generated into the frozen image only (tools/build_image.py): pen.version
# reads the image's version from it, with a fallback when running from files
GENERATED_MODULES = frozenset({"pen_image"})
# extra modules the MicroPython unix port has and the simulator's device side
# needs (the runner's loopback control channel)
UNIX_PORT_MODULES = frozenset({"socket"})

# (file relative to the repository, module): why this CPython-only import may stay
EXCEPTIONS: dict[tuple[str, str], str] = {
    ("firmware/boards/pico.py", "penusb"): "optional native helper of the image (USB CDC DTR); absent: ImportError",
    ("firmware/boards/stdio_serial.py", "penusb"): "optional native helper (read_into); absent: ImportError",
    ("sim/device/runner.py", "traceback"): "CPython fallback when sys.print_exception is missing",
    ("sim/device/flash.py", "atexit"): "CPython only (no littlefs there): removes the stand-in flash directory",
    ("sim/device/flash.py", "shutil"): "CPython only (no littlefs there): removes the stand-in flash directory",
    ("sim/device/flash.py", "tempfile"): "CPython only (no littlefs there): makes the stand-in flash directory",
}


@dataclass(frozen=True)
class Offence:
    path: Path
    line: int
    module: str

    def __str__(self) -> str:
        try:
            shown = self.path.relative_to(ROOT)
        except ValueError:
            shown = self.path
        return f"{shown}:{self.line}: import of '{self.module}', which is not on the board's module allow-list"


def imported_modules(source: str, filename: str = "<source>") -> list[tuple[int, str]]:
    """(line, top-level module) of every absolute import in the source, at any depth."""
    found: list[tuple[int, str]] = []
    for node in ast.walk(ast.parse(source, filename)):
        if isinstance(node, ast.Import):
            found.extend((node.lineno, alias.name.split(".")[0]) for alias in node.names)
        elif isinstance(node, ast.ImportFrom) and node.level == 0 and node.module:
            found.append((node.lineno, node.module.split(".")[0]))
    return sorted(found)


def sim_device_modules() -> frozenset[str]:
    return frozenset(p.stem for p in SIM_DEVICE.glob("*.py"))


def allowed_for(path: Path) -> frozenset[str]:
    allowed = BOARD_MODULES | FIRMWARE_PACKAGES | GENERATED_MODULES
    if path.resolve().is_relative_to(SIM_DEVICE):
        allowed = allowed | UNIX_PORT_MODULES | sim_device_modules()
    return allowed


def check_file(path: Path) -> list[Offence]:
    allowed = allowed_for(path)
    try:
        rel = path.resolve().relative_to(ROOT).as_posix()
    except ValueError:
        rel = ""
    return [
        Offence(path, line, module)
        for line, module in imported_modules(path.read_text(), str(path))
        if module not in allowed and (rel, module) not in EXCEPTIONS
    ]


def micropython_files() -> list[Path]:
    files = list(FIRMWARE.rglob("*.py")) + list(SIM_DEVICE.rglob("*.py"))
    return sorted(p for p in files if "__pycache__" not in p.parts)


def main(argv: list[str]) -> int:
    files = [Path(a) for a in argv] or micropython_files()
    offences = [o for f in files for o in check_file(f)]
    for o in offences:
        print(o, file=sys.stderr)
    print(f"module allow-list: {len(files)} files, {len(offences)} disallowed imports")
    return 1 if offences else 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
