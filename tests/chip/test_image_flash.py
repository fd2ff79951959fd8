"""Flashing the image (`make flash`, tools/flash_image.py, docs/hardware.md): no
real board here, so the plan is checked for each state a board can be in
(--dry-run --assume), the copy onto an RPI-RP2 drive is really done into a
folder that stands for the drive, and the verification runs against a fake
penctl that answers `info --json` as a pen would."""

from __future__ import annotations

import json
import os
import stat
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]
FLASH = ROOT / "tools" / "flash_image.py"
UF2 = ROOT / "build" / "needle-pen.uf2"
JSON = ROOT / "build" / "needle-pen.json"


def need_image() -> str:
    if not (UF2.exists() and JSON.exists()):
        msg = "no image: run `make firmware`"
        if os.environ.get("CI", "").lower() == "true":
            pytest.fail(msg)
        pytest.skip(msg)
    return str(json.loads(JSON.read_text())["version"])


def flash(*args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run([sys.executable, str(FLASH), *args], capture_output=True, text=True, cwd=ROOT)


def fake_penctl(tmp_path: Path, answer: dict[str, object], rc: int = 0) -> str:
    """A penctl stand-in: records its arguments, prints `answer` as JSON."""
    script = tmp_path / "penctl"
    log = tmp_path / "penctl.args"
    script.write_text(f"#!/bin/sh\necho \"$@\" >> {log}\necho '{json.dumps(answer)}'\nexit {rc}\n")
    script.chmod(script.stat().st_mode | stat.S_IXUSR)
    return str(script)


def test_flash_plan_bootsel_loads_the_uf2_with_picotool() -> None:
    version = need_image()
    r = flash("--dry-run", "--assume", "bootsel", "--picotool", "/opt/picotool", "--port", "/dev/ttyACM7")
    assert r.returncode == 0, r.stderr
    assert f"/opt/picotool load -x {UF2}" in r.stdout
    assert "--port /dev/ttyACM7 --json info" in r.stdout
    assert f"expect image={version} code=frozen" in r.stdout


def test_flash_plan_without_bootsel_falls_back_to_penctl_deploy(tmp_path: Path) -> None:
    need_image()
    r = flash("--dry-run", "--assume", "none", "--port", "/dev/ttyACM7", "--penctl", "penctl")
    assert r.returncode == 0, r.stderr
    assert "penctl --port /dev/ttyACM7 deploy" in r.stdout
    assert "expect fw=" in r.stdout and "code=files" in r.stdout  # deploy replaces files, not the image


def test_flash_without_board_or_port_says_what_to_do() -> None:
    need_image()
    r = flash("--dry-run", "--assume", "none")
    assert r.returncode == 1
    assert "BOOTSEL" in r.stderr and "PORT=" in r.stderr


def test_flash_copies_the_uf2_onto_the_rpi_rp2_drive_and_verifies(tmp_path: Path) -> None:
    version = need_image()
    drive = tmp_path / "RPI-RP2"
    drive.mkdir()
    (drive / "INFO_UF2.TXT").write_text("UF2 Bootloader v3.0\nModel: Raspberry Pi RP2\nBoard-ID: RPI-RP2\n")
    penctl = fake_penctl(tmp_path, {"fw": "0.1.0", "image": version, "code": "frozen"})
    r = flash("--assume", f"mount:{drive}", "--penctl", penctl, "--verify-wait", "0")
    assert r.returncode == 0, r.stdout + r.stderr
    assert (drive / "needle-pen.uf2").read_bytes() == UF2.read_bytes()
    assert f"verified: the pen reports image={version} code=frozen" in r.stdout
    assert (tmp_path / "penctl.args").read_text().split() == ["--json", "info"]


def test_flash_verification_fails_on_another_version(tmp_path: Path) -> None:
    need_image()
    drive = tmp_path / "RPI-RP2"
    drive.mkdir()
    penctl = fake_penctl(tmp_path, {"fw": "0.1.0", "image": "none", "code": "files"})
    r = flash("--assume", f"mount:{drive}", "--penctl", penctl, "--verify-wait", "0", "--port", "/dev/ttyX")
    assert r.returncode == 1
    assert "image=none" in r.stderr and "expected" in r.stderr


def test_flash_verification_fails_when_the_pen_does_not_answer(tmp_path: Path) -> None:
    need_image()
    drive = tmp_path / "RPI-RP2"
    drive.mkdir()
    penctl = fake_penctl(tmp_path, {}, rc=3)
    r = flash("--assume", f"mount:{drive}", "--penctl", penctl, "--verify-wait", "0")
    assert r.returncode == 1
    assert "did not answer" in r.stderr


def test_flash_verification_names_deployed_files_that_shadow_the_image(tmp_path: Path) -> None:
    version = need_image()
    drive = tmp_path / "RPI-RP2"
    drive.mkdir()
    penctl = fake_penctl(tmp_path, {"fw": "0.1.0", "image": version, "code": "files"})
    r = flash("--assume", f"mount:{drive}", "--penctl", penctl, "--verify-wait", "0")
    assert r.returncode == 1
    assert "code=files" in r.stderr and "shadow" in r.stderr


def test_flash_asks_the_built_picotool_for_a_bootsel_board() -> None:
    """Detection for real: the picotool `make firmware` built answers that no
    board is in BOOTSEL mode here (no USB device), so the plan is a deploy."""
    need_image()
    r = subprocess.run(
        [sys.executable, "-c", "import flash_image; print(flash_image.find_picotool())"],
        capture_output=True,
        text=True,
        cwd=ROOT / "tools",
    )
    picotool = r.stdout.strip()
    assert picotool != "None", "make firmware builds picotool into its cache"
    r = subprocess.run([picotool, "version"], capture_output=True, text=True)
    assert r.returncode == 0 and "picotool v2.2.0" in r.stdout
    r = flash("--dry-run", "--port", "/dev/ttyACM7", "--penctl", "penctl")
    assert r.returncode == 0, r.stderr
    assert "board state: none; plan: deploy" in r.stdout
