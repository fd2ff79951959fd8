"""Maintenance on the virtual Pico: the authenticated `maintenance` command
reboots the image into the REPL (the watchdog scratch marker survives the
harness's chip reset), where mpremote works; outside it mpremote gets
nothing (tests/chip/test_chip_pen.py); the boot guard rolls back deployed
files that do not start. One provisioned pen for the module, in file order.

Deploy rehearsed end to end (`make test-deep`, NEEDLE_PEN_DEEP=1:
40-60 s of wall time, 10-18 s emulated): `penctl deploy` builds and signs
the manifest, asks the provisioned pen for maintenance, checks the board's
MicroPython, stages in .next/, switches (keeping .prev/), reboots and checks
integrity, mode and version; the pen then runs the deployed files
(`code=files`) with its signature checked (docs/hardware.md, "Deploy
rehearsed on the virtual Pico").
"""

from __future__ import annotations

import os
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest

from host import Pen
from sim import SimulatedPen
from tests.chip.conftest import REQUEST_TIMEOUT_S, need_chip

BIN = Path(sys.executable).parent
# how long the pen may take to answer after a reboot, in wall seconds: the
# emulator runs at 0.05-0.2x real time (never a pass/fail timing)
BOOT_WAIT_S = 600


class Provisioned:
    def __init__(self, pen: SimulatedPen, key: Path) -> None:
        self.pen = pen
        self.key = key


@pytest.fixture(scope="module")
def ppen(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Provisioned]:
    need_chip()
    key = tmp_path_factory.mktemp("maint") / "tech.key"
    with SimulatedPen(runtime="rp2040", speed=0) as pen:
        with Pen(pen.port, timeout=REQUEST_TIMEOUT_S, key_file=key) as p:
            p.provision()
        yield Provisioned(pen, key)


@pytest.mark.skipif(
    os.environ.get("NEEDLE_PEN_DEEP") != "1", reason="40-60 s of wall time (10-18 s emulated): make test-deep"
)
def test_chip_deploy_rehearsal_end_to_end(ppen: Provisioned) -> None:
    pen = ppen.pen
    resets = int(pen.truth()["resets"])
    r = subprocess.run(
        [
            str(BIN / "penctl"),
            "--port",
            pen.port,
            "--key-file",
            str(ppen.key),
            "--timeout",
            str(REQUEST_TIMEOUT_S),
            "deploy",
            "--boot-wait",
            str(BOOT_WAIT_S),
        ],
        capture_output=True,
        text=True,
        timeout=3 * BOOT_WAIT_S,
    )
    lines = [ln.split("\r")[-1] for ln in r.stderr.splitlines()]
    said = "\n".join(ln for ln in lines if ln.startswith(("deploy:", "penctl:")))
    # steps 1-5: build and sign, maintenance, the board's MicroPython, stage, switch
    assert "manifest signed" in said, said
    assert "maintenance mode granted" in said, said
    assert "the board runs MicroPython 1.29.0 (mpy v6.3 armv6m)" in said, said
    compiled = int(said.split(" files compiled")[0].rsplit(" ", 1)[-1])
    assert f"staged {compiled + 1} files" in said and "in .next/" in said, said  # and the manifest
    assert f"switched {compiled + 1}" in said and "kept in .prev/" in said, said
    # step 6: the reboot into the deployed files, their integrity, mode and version
    assert r.returncode == 0, said
    assert "integrity ok, mode production" in said
    # the reboot into maintenance and the one into the new files, no other
    # (the boot guard's trial ended at the first pass: no roll back)
    assert int(pen.truth()["resets"]) == resets + 2
    with Pen(pen.port, timeout=REQUEST_TIMEOUT_S) as p:
        info = p.info()
        sec = p.security()
    assert info["code"] == "files", info  # the deployed pen/ shadows the frozen one
    assert sec["integrity"] == "ok" and sec["mode"] == "production", sec
    assert pen.truth()["motor_duty"] == 0


def test_chip_sec_mpremote_reaches_repl_only_in_maintenance(ppen: Provisioned) -> None:
    pen = ppen.pen
    resets = int(pen.truth()["resets"])
    with Pen(pen.port, timeout=REQUEST_TIMEOUT_S, key_file=ppen.key) as p:
        p.maintenance()
    pen.advance(400)  # the reset and the boot into maintenance
    assert pen.truth()["resets"] == resets + 1
    assert pen.truth()["motor_duty"] == 0
    r = subprocess.run(
        [str(BIN / "mpremote"), "connect", pen.port, "resume", "exec", "print(6*7)"],
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert "42" in r.stdout, r.stdout + r.stderr


def test_chip_boot_guard_rolls_back_deployed_files_that_do_not_start(ppen: Provisioned) -> None:
    """Deployed files that crash at import (a stand-in for a broken deploy)
    are rolled back by the pen itself: main.py's boot guard counts two
    failed boots (each a reset), then puts .prev/ back and boots that
    (firmware/bootguard.py). Runs on the pen the last test left in the REPL."""
    import bootguard

    from host import deploy as D

    pen = ppen.pen
    # deploy's own way in after maintenance: open, raw REPL, again until it answers
    raw, why = D._reopen_in_repl(pen.port, BOOT_WAIT_S)  # pyright: ignore[reportPrivateUsage]
    assert why is None, why
    transport = D.Patient(raw, BOOT_WAIT_S / 10)  # as penctl deploy --boot-wait 600 runs its scripts
    # the pen runs the frozen firmware, or the files a deep run deployed
    had = D.board_hashes(transport, ["pen/__init__.mpy"], "reading")["pen/__init__.mpy"] != "-"
    broken = {"pen/__init__.py": b"raise ImportError('a deploy that does not start')\n"}
    todo = D.plan(broken, transport)
    D.stage(broken, todo, transport, lambda s: None)
    D.switch(transport, broken, todo)
    resets = int(pen.truth()["resets"])
    D._reset(raw)  # pyright: ignore[reportPrivateUsage]
    pen.advance(600)  # two boots that fail at the import, the roll back, a good boot
    assert int(pen.truth()["resets"]) == resets + 1 + bootguard.MAX_TRIES
    with Pen(pen.port, timeout=REQUEST_TIMEOUT_S) as p:
        info = p.info()
        sec = p.security()
    assert info["code"] == ("files" if had else "frozen"), info
    assert sec["integrity"] == "ok" and sec["mode"] == "production", sec
    assert pen.truth()["motor_duty"] == 0
