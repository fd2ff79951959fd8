"""Every firmware file (and the simulator's device side, which runs inside
MicroPython) compiles with mpy-cross for the RP2040."""

from __future__ import annotations

import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]
sys.path.insert(0, str(ROOT / "tools"))
import compile_firmware  # noqa: E402

FILES = compile_firmware.sources(compile_firmware.FIRMWARE) + compile_firmware.sources(compile_firmware.SIM_DEVICE)


@pytest.mark.parametrize("src", FILES, ids=lambda p: str(p.relative_to(ROOT)))
def test_compiles_with_mpy_cross(src: Path, tmp_path: Path) -> None:
    err = compile_firmware.compile_one(src, tmp_path / "out.mpy")
    assert err is None, err
