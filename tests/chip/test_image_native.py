"""The image's frozen @micropython.native code (docs/performance.md, "What
each step bought"): armv6m machine code that loads 32-bit constants from
the word after an `ldr rX, [pc, #0]`, placed for a function that starts on a
4-byte boundary. tools/build_image.py makes mpy-tool.py align it so; a
function on a 2-byte boundary reads a wrong constant (the pen never left
'session_time' on the virtual Pico before the fix)."""

from __future__ import annotations

import shutil
import subprocess

import pytest

from tests.chip.test_image import ELF, require_image


def native_functions() -> dict[str, int]:
    """Frozen native functions (code in .text, 't') and their addresses;
    bytecode stays in read-only data ('r')."""
    require_image()
    nm = shutil.which("arm-none-eabi-nm")
    if nm is None:
        pytest.skip("arm-none-eabi-nm is not installed (make firmware installs the toolchain)")
    out = subprocess.run([nm, str(ELF)], capture_output=True, text=True, check=True).stdout
    funcs: dict[str, int] = {}
    for line in out.splitlines():
        parts = line.split()
        if len(parts) == 3 and parts[1] == "t" and parts[2].startswith("fun_data_"):
            funcs[parts[2]] = int(parts[0], 16)
    return funcs


def test_image_native_code_is_frozen_for_the_hot_path() -> None:
    funcs = native_functions()
    assert "fun_data_pen_core_Core_tick" in funcs, sorted(funcs)


def test_image_native_code_starts_on_a_word_boundary() -> None:
    funcs = native_functions()
    misaligned = sorted(n for n, a in funcs.items() if a % 4)
    assert not misaligned, misaligned
