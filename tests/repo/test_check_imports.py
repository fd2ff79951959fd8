"""DESIGN §6: the module allow-list of the MicroPython code
(tools/check_imports.py, run by `make check`)."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]
sys.path.insert(0, str(ROOT / "tools"))

import check_imports as ci  # noqa: E402

from sim.simulated_pen import micropython_command  # noqa: E402

RP2_STUBS = ROOT / ".venv" / "mpstubs" / "rp2" / "lib" / "site-packages"
CPYTHON_ONLY = ["dataclasses", "threading", "typing", "enum", "abc", "traceback", "asyncio"]


def write(tmp_path: Path, source: str) -> Path:
    p = tmp_path / "fw_module.py"
    p.write_text(source)
    return p


def test_allow_list_firmware_and_sim_device_tree_pass() -> None:
    files = ci.micropython_files()
    assert any(p.is_relative_to(ci.FIRMWARE) for p in files)
    assert any(p.is_relative_to(ci.SIM_DEVICE) for p in files)
    offences = [str(o) for f in files for o in ci.check_file(f)]
    assert offences == []


@pytest.mark.parametrize("module", CPYTHON_ONLY)
def test_allow_list_rejects_cpython_only_import(tmp_path: Path, module: str) -> None:
    p = write(tmp_path, f"import machine\nimport {module}\n")
    assert [(o.line, o.module) for o in ci.check_file(p)] == [(2, module)]
    r = subprocess.run(
        [sys.executable, str(ROOT / "tools" / "check_imports.py"), str(p)], capture_output=True, text=True
    )
    assert r.returncode == 1
    assert f"import of '{module}'" in r.stderr


def test_allow_list_sees_nested_from_and_fallback_imports(tmp_path: Path) -> None:
    src = (
        "from pen.compat import const\n"
        "from typing import TYPE_CHECKING\n"
        "try:\n"
        "    import time\n"
        "except ImportError:\n"
        "    import threading\n"
        "def f():\n"
        "    from collections.abc import Callable\n"
        "    return Callable\n"
        "from . import sibling\n"
    )
    got = [(o.line, o.module) for o in ci.check_file(write(tmp_path, src))]
    assert got == [(2, "typing"), (6, "threading"), (8, "collections")]


def test_allow_list_unix_port_extras_only_for_sim_device() -> None:
    fw = ci.allowed_for(ci.FIRMWARE / "pen" / "core.py")
    dev = ci.allowed_for(ci.SIM_DEVICE / "runner.py")
    assert "socket" not in fw and "socket" in dev
    assert "world" not in fw and {"world", "periph", "simboard"} <= dev
    assert ci.BOARD_MODULES | ci.FIRMWARE_PACKAGES <= fw


def test_allow_list_exceptions_are_not_stale() -> None:
    for (rel, module), reason in ci.EXCEPTIONS.items():
        assert reason
        path = ROOT / rel
        assert module in [m for _, m in ci.imported_modules(path.read_text())], (rel, module)


def _stub_exists(name: str) -> bool:
    return any(
        p.exists()
        for base in (RP2_STUBS, RP2_STUBS / "stdlib")
        for p in (base / (name + ".pyi"), base / name / "__init__.pyi")
    )


def test_allow_list_modules_exist_in_the_rp2_stubs() -> None:
    if not RP2_STUBS.is_dir():
        pytest.fail("MicroPython stubs missing: run `make mpstubs` (make check does)")
    missing = sorted(m for m in ci.BOARD_MODULES if not _stub_exists(m))
    assert missing == []
    # and the stubs do not know the CPython-only modules the list keeps out
    assert not _stub_exists("dataclasses") and not _stub_exists("threading")


def test_allow_list_modules_import_under_micropython_and_cpython_only_ones_do_not() -> None:
    # rp2 is the one board module the unix port lacks
    on_unix = sorted(ci.BOARD_MODULES - {"rp2"} | ci.UNIX_PORT_MODULES)
    code = "import " + ", ".join(on_unix) + "\nprint('ok')\n"
    r = subprocess.run([*micropython_command(), "-c", code], capture_output=True, text=True, timeout=30)
    assert r.stdout.strip() == "ok", r.stderr
    for module in ("dataclasses", "threading", "typing", "enum", "abc"):
        r = subprocess.run([*micropython_command(), "-c", "import " + module], capture_output=True, text=True)
        assert r.returncode != 0 and "ImportError" in r.stdout + r.stderr, module
