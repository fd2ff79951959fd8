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


def test_mpy_names_its_source_by_the_path_on_the_board(tmp_path: Path) -> None:
    """A traceback names pen/errors.py, and the .mpy total does not depend
    on where the repository is checked out."""
    src = compile_firmware.FIRMWARE / "pen" / "errors.py"
    assert compile_firmware.compile_one(src, tmp_path / "errors.mpy") is None
    data = (tmp_path / "errors.mpy").read_bytes()
    assert b"pen/errors.py" in data
    assert str(ROOT).encode() not in data
