"""Runs the firmware unit tests (tests/firmware) under the real MicroPython
interpreter, one pytest case per module."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest

from sim.simulated_pen import micropython_command

TESTS = Path(__file__).resolve().parent
# the CPython-only drivers of this folder (pytest, hypothesis) stay out
CPYTHON_ONLY = {"test_micropython_units.py", "test_core_stateful.py"}
FW_TESTS = sorted(p for p in TESTS.glob("test_*.py") if p.name not in CPYTHON_ONLY)


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
