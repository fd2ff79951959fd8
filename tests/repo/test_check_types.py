"""DESIGN §5–§6: `make check` types firmware/ against the
MicroPython rp2 stubs (and sim/device/ against the unix-port stubs) with no
fallback to the host's CPython stdlib, and host/ sim/ tools/ in strict mode.

Each test runs the real configuration (tools/pyright/*.json, pyproject's
[tool.basedpyright]) on small probe files, so a config change that reopens
the stdlib fallback or drops strict mode fails here."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]
BASEDPYRIGHT = Path(sys.executable).parent / "basedpyright"
FIRMWARE_CFG = ROOT / "tools" / "pyright" / "firmware.json"
SIM_DEVICE_CFG = ROOT / "tools" / "pyright" / "sim_device.json"
MPSTUBS = ROOT / ".venv" / "mpstubs"

CPYTHON_ONLY = "import dataclasses\nimport threading\n"
PORTABLE_CODE = """\
import micropython
import select
import sys
import time

micropython.kbd_intr(-1)
t0 = time.ticks_ms()
late = time.ticks_diff(time.ticks_add(t0, 5), t0) > 0
poll = select.poll()
poll.register(sys.stdin, select.POLLIN)
"""
RP2_CODE = """\
import machine

pin = machine.Pin(25, machine.Pin.OUT)
pin.value(1)
wdt = machine.WDT(timeout=8000)
wdt.feed()
"""


Diag = tuple[str, int, str]  # (file name, line, rule)


@pytest.fixture(scope="module", autouse=True)
def stubs_installed() -> None:
    if not (MPSTUBS / "rp2" / "lib" / "site-packages" / "machine.pyi").exists():
        pytest.fail("MicroPython stubs missing: run `make mpstubs` (make check does)")


def pyright(files: list[Path], config: Path | None = None) -> list[Diag]:
    """basedpyright's errors for these files under a project config (None: pyproject's)."""
    cmd = [str(BASEDPYRIGHT), "--outputjson"]
    if config is not None:
        cmd += ["-p", str(config)]
    r = subprocess.run(cmd + [str(f) for f in files], capture_output=True, text=True, cwd=ROOT, timeout=120)
    out = json.loads(r.stdout)
    diags: list[Diag] = [
        (Path(d["file"]).name, d["range"]["start"]["line"] + 1, d.get("rule", ""))
        for d in out["generalDiagnostics"]
        if d["severity"] == "error"
    ]
    assert (r.returncode != 0) == bool(diags), r.stdout[-2000:]
    return sorted(diags)


def probe(tmp_path: Path, name: str, source: str) -> Path:
    p = tmp_path / name
    p.write_text(source)
    return p


@pytest.mark.parametrize(
    ("config", "board_code"),
    [(FIRMWARE_CFG, PORTABLE_CODE + RP2_CODE), (SIM_DEVICE_CFG, PORTABLE_CODE + "import socket\n")],
    ids=["firmware-rp2", "sim_device-unix"],
)
def test_check_micropython_config_rejects_cpython_only_imports_and_accepts_board_code(
    tmp_path: Path, config: Path, board_code: str
) -> None:
    bad = probe(tmp_path, "uses_cpython.py", CPYTHON_ONLY)
    good = probe(tmp_path, "board_code.py", board_code)
    assert pyright([bad, good], config) == [
        ("uses_cpython.py", 1, "reportMissingImports"),
        ("uses_cpython.py", 2, "reportMissingImports"),
    ]


def test_check_host_config_resolves_cpython_stdlib(tmp_path: Path) -> None:
    # the pitfall the MicroPython configs close: with the host's stdlib on the
    # search path, the same imports resolve without complaint
    ok = probe(tmp_path, "host_code.py", CPYTHON_ONLY + "\nLOCK = threading.Lock()\nfield = dataclasses.field\n")
    assert pyright([ok]) == []


def test_check_firmware_is_typed_against_the_rp2_stubs(tmp_path: Path) -> None:
    src = (
        "import machine\n"
        "import time\n"
        "time.perf_counter_ns()\n"  # CPython's time only
        "machine.Pin(25).toggle_fast()\n"  # no such method on the rp2 Pin
        "time.ticks_ms() + 'ms'\n"  # ticks_ms is typed as int
        "machine.WDT(timeout=8000).feed()\n"
    )
    diags = pyright([probe(tmp_path, "rp2_probe.py", src)], FIRMWARE_CFG)
    assert [(line, rule) for _, line, rule in diags] == [
        (3, "reportAttributeAccessIssue"),
        (4, "reportAttributeAccessIssue"),
        (5, "reportOperatorIssue"),
    ]


def test_check_host_and_sim_are_strict(tmp_path: Path) -> None:
    src = "def untyped(x):\n    return x\n\n\ndef typed(x: int) -> int:\n    return x\n"
    rules = {rule for _, _, rule in pyright([probe(tmp_path, "loose.py", src)])}
    assert "reportMissingParameterType" in rules
    assert "reportUnknownParameterType" in rules


def test_check_make_check_runs_every_checker_and_make_test_runs_check() -> None:
    def dry(target: str) -> str:
        r = subprocess.run(
            ["make", "--no-print-directory", "-n", target], capture_output=True, text=True, cwd=ROOT, timeout=30
        )
        assert r.returncode == 0, r.stderr
        return r.stdout

    check = dry("check")
    for step in (
        "tools/compile_firmware.py --check",
        "ruff check host sim tests tools firmware",
        "ruff format --check host sim tests tools firmware",
        "basedpyright\n",
        "basedpyright -p tools/pyright/firmware.json",
        "basedpyright -p tools/pyright/sim_device.json",
        "tools/check_imports.py",
    ):
        assert step in check, step
    test = dry("test")
    assert check in test and "pytest" in test.split(check, 1)[1]
