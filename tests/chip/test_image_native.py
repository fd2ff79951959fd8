"""The image's frozen @micropython.native code (docs/performance.md, "What
each step bought"): armv6m machine code that loads 32-bit constants from
the word after an `ldr rX, [pc, #0]`, placed for a function that starts on a
4-byte boundary. tools/build_image.py makes mpy-tool.py align it so; a
function on a 2-byte boundary reads a wrong constant (the pen never left
'session_time' on the virtual Pico before the fix)."""

from __future__ import annotations

import shutil

import pytest

from sim.rp2040 import elf_symbols
from tests.chip.test_image import ELF, require_image


def native_functions() -> dict[str, int]:
    """Frozen native functions (code in .text, 't') and their addresses;
    bytecode stays in read-only data ('r')."""
    require_image()
    if shutil.which("arm-none-eabi-nm") is None:
        pytest.skip("arm-none-eabi-nm is not installed (make firmware installs the toolchain)")
    return {name: addr for addr, kind, name in elf_symbols(ELF) if kind == "t" and name.startswith("fun_data_")}


def test_image_native_code_is_frozen_for_the_hot_path() -> None:
    funcs = native_functions()
    assert "fun_data_pen_core_Core_tick" in funcs, sorted(funcs)


def test_image_native_code_starts_on_a_word_boundary() -> None:
    funcs = native_functions()
    misaligned = sorted(n for n, a in funcs.items() if a % 4)
    assert not misaligned, misaligned
