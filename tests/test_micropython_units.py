"""Runs the firmware unit tests (tests/fw) under the real MicroPython
interpreter, one pytest case per module."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest

from sim.pen import micropython_command

TESTS = Path(__file__).resolve().parent
FW_TESTS = sorted((TESTS / "fw").glob("test_*.py"))


@pytest.mark.parametrize("module", FW_TESTS, ids=lambda p: p.name)
def test_firmware_units_under_micropython(module: Path) -> None:
    r = subprocess.run(
        [*micropython_command(), str(TESTS / "mprun.py"), str(module)],
        capture_output=True,
        text=True,
        timeout=300,
    )
    sys.stdout.write(r.stdout)
    assert r.returncode == 0, r.stdout + r.stderr
    assert " passed, 0 failed" in r.stdout
