"""Maintenance on the virtual Pico: the authenticated `maintenance` command
reboots the image into the REPL (the watchdog scratch marker survives the
harness's chip reset), where mpremote works; outside it mpremote gets
nothing (tests/chip/test_chip_pen.py). A pen of its own: it is left in the
REPL."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

from host import Pen
from sim import SimulatedPen
from tests.chip.conftest import REQUEST_TIMEOUT_S, need_chip


def test_chip_sec_mpremote_reaches_repl_only_in_maintenance(tmp_path: Path) -> None:
    need_chip()
    key = tmp_path / "tech.key"
    with SimulatedPen(runtime="rp2040", speed=0) as pen:
        with Pen(pen.port, timeout=REQUEST_TIMEOUT_S, key_file=key) as p:
            p.provision()
            p.maintenance()
        pen.advance(400)  # the reset and the boot into maintenance
        assert pen.truth()["resets"] == 1
        assert pen.truth()["motor_duty"] == 0
        r = subprocess.run(
            [str(Path(sys.executable).parent / "mpremote"), "connect", pen.port, "resume", "exec", "print(6*7)"],
            capture_output=True,
            text=True,
            timeout=120,
        )
        assert "42" in r.stdout, r.stdout + r.stderr
