"""firmware/main.py under the MicroPython interpreter with stand-ins for the
RP2040 (machine, boards.pico, pen.runtime): whatever happens, production
never falls through to the REPL; only the maintenance marker (written by
the authenticated `maintenance` command) opens it, with the drive off.
SEC4 in docs/security.md."""

from __future__ import annotations

import shutil
import subprocess
from pathlib import Path

import pytest

from sim.simulated_pen import micropython_command

ROOT = Path(__file__).resolve().parents[2]
SCRATCH0 = 0x4005800C
MAGIC = 0x4D4E5443

MACHINE = """
import stubcfg
class _Mem:
    def __init__(self):
        self.d = {SCRATCH0: stubcfg.SCRATCH}
    def __getitem__(self, a):
        return self.d.get(a, 0)
    def __setitem__(self, a, v):
        self.d[a] = v
        print("MEM32 %x=%x" % (a, v))
mem32 = _Mem()
def reset():
    print("RESET")
    raise SystemExit(7)
def WDT(timeout):
    print("WDT %d" % timeout)
class Pin:
    IN = 0
    OUT = 1
    PULL_UP = 2
    def __init__(self, n, mode=0, pull=None, value=None):
        self.n = n
        if value is not None:
            print("PIN %d=%d" % (n, value))
    def value(self):
        return 0 if stubcfg.TRIGGER_HELD else 1
""".replace("SCRATCH0", str(SCRATCH0))

PICO = """
import stubcfg
PINS = {"motor_pwm": 16, "motor_brake": 17, "trigger": 14}
class PicoBoard:
    def __init__(self):
        print("BOARD")
        if stubcfg.RUN == "kbd":
            raise KeyboardInterrupt
"""

RUNTIME = """
import stubcfg
class Firmware:
    def __init__(self, board):
        self.board = board
    def run(self, repl_exit=False, started=None):
        return run(self.board, repl_exit, started)
def run(board, repl_exit=False, started=None):
    print("RUN repl_exit=%s" % repl_exit)
    if started is not None and stubcfg.RUN.startswith("start:"):
        started(stubcfg.RUN[6:])  # the first pass, with this integrity result
        return None
    if stubcfg.RUN == "maintenance":
        return "maintenance"
    if stubcfg.RUN == "exit":
        raise SystemExit(0)
    if stubcfg.RUN == "error":
        raise ValueError("boom")
    return None
"""


def run_main(tmp_path: Path, scratch: int = 0, trigger_held: bool = False, run: str = "none") -> str:
    d = tmp_path / "board"
    (d / "boards").mkdir(parents=True, exist_ok=True)
    (d / "pen").mkdir(exist_ok=True)
    shutil.copy(ROOT / "firmware" / "main.py", d / "main.py")
    shutil.copy(ROOT / "firmware" / "bootguard.py", d / "bootguard.py")
    (d / "machine.py").write_text(MACHINE)
    (d / "boards" / "__init__.py").write_text("")
    (d / "boards" / "pico.py").write_text(PICO)
    (d / "pen" / "__init__.py").write_text("")
    (d / "pen" / "runtime.py").write_text(RUNTIME)
    (d / "stubcfg.py").write_text(f"SCRATCH = {scratch}\nTRIGGER_HELD = {trigger_held}\nRUN = {run!r}\n")
    r = subprocess.run(
        [*micropython_command(), "-c", "import sys; sys.path.insert(0, ''); import main; print('REPL')"],
        cwd=d,
        capture_output=True,
        text=True,
        timeout=60,
    )
    return r.stdout + r.stderr


@pytest.mark.parametrize("run", ["none", "kbd", "exit", "error"])
def test_sec4_production_never_falls_through_to_the_repl(tmp_path: Path, run: str) -> None:
    out = run_main(tmp_path, run=run)
    assert "RESET" in out and "REPL" not in out.replace("REPL open", "")
    assert "maintenance" not in out
    assert f"MEM32 {SCRATCH0:x}" not in out  # no marker: the next boot is production again


def test_sec4_maintenance_command_reboots_into_the_repl_once(tmp_path: Path) -> None:
    out = run_main(tmp_path, run="maintenance")
    assert "RUN repl_exit=True" in out
    assert f"MEM32 {SCRATCH0:x}={MAGIC:x}" in out and "RESET" in out
    # the next boot finds the marker: clears it, drive off, REPL open
    out = run_main(tmp_path, scratch=MAGIC)
    assert f"MEM32 {SCRATCH0:x}=0" in out
    assert "PIN 16=0" in out and "PIN 17=1" in out  # PWM low, brake on
    assert "BOARD" not in out and "RUN" not in out and "RESET" not in out
    assert out.rstrip().endswith("REPL")


def test_sec4_boot_gesture_refused_without_persistent_store(tmp_path: Path) -> None:
    # the gesture needs the flash store to know the pen has no key: until
    # pen/store.py exists it fails closed and the pen boots to production
    out = run_main(tmp_path, trigger_held=True)
    assert "maintenance" not in out and "BOARD" in out and "RESET" in out


def _on_trial(tmp_path: Path) -> Path:
    """The board's filesystem right after a deploy's switch: the new file
    x.py added, on trial (firmware/bootguard.py)."""
    d = tmp_path / "board"
    (d / ".prev").mkdir(parents=True)
    (d / ".prev" / "LIST").write_text("new x.py\n")
    (d / ".prev" / "TRIAL").write_text("0")
    (d / "x.py").write_text("")
    return d


def test_boot_guard_rolls_back_files_that_fail_two_boots(tmp_path: Path) -> None:
    d = _on_trial(tmp_path)
    for n in (1, 2):
        out = run_main(tmp_path, run="error")  # the new files crash at boot
        assert "WDT 8000" in out and "RESET" in out, out  # a hang would reset too
        assert (d / ".prev" / "TRIAL").read_text() == str(n)
    out = run_main(tmp_path, run="error")
    assert not (d / "x.py").exists() and not (d / ".prev").exists(), out  # rolled back, then booted
    assert "WDT" not in out and "RUN repl_exit=True" in out


def test_boot_guard_a_verified_start_ends_the_trial(tmp_path: Path) -> None:
    d = _on_trial(tmp_path)
    out = run_main(tmp_path, run="start:ok")
    assert not (d / ".prev" / "TRIAL").exists() and (d / "x.py").exists(), out
    assert (d / ".prev" / "LIST").exists()  # penctl deploy can still roll back
    out = run_main(tmp_path, run="error")
    assert "WDT" not in out and (d / "x.py").exists()  # later resets are not failed tries


def test_boot_guard_a_failed_integrity_check_rolls_back_at_once(tmp_path: Path) -> None:
    d = _on_trial(tmp_path)
    out = run_main(tmp_path, run="start:bad_signature")
    assert "RESET" in out and not (d / "x.py").exists() and not (d / ".prev").exists(), out
    assert out.count("WDT 8000") == 2  # at boot, and again for the roll back's flash writes


def test_boot_guard_no_gesture_while_files_are_on_trial(tmp_path: Path) -> None:
    _on_trial(tmp_path)
    out = run_main(tmp_path, trigger_held=True, run="error")
    assert "maintenance" not in out and "WDT 8000" in out and "RUN repl_exit=True" in out
