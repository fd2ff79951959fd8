"""SR8 on the virtual Pico: a hung loop (the core stops, timers and the
watchdog run on) is reset by the chip's watchdog, and the pen boots with the
drive off, the trigger still held. A pen of its own (the main module's pen
goes through resets of its own)."""

from __future__ import annotations

from collections.abc import Iterator

import pytest

from host import Pen
from sim import SimulatedPen
from tests.chip.conftest import REQUEST_TIMEOUT_S, Chip, need_chip
from tests.chip.test_chip_pen import ready, running


@pytest.fixture(scope="module")
def chip(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Chip]:
    need_chip()
    with SimulatedPen(runtime="rp2040", speed=0) as pen:
        with Pen(pen.port, timeout=REQUEST_TIMEOUT_S) as host:
            yield Chip(pen, host, tmp_path_factory.mktemp("vpico-wdt"))


def test_chip_sr8_hung_loop_watchdog_reset_then_drive_off(chip: Chip) -> None:
    chip.pen.release_trigger()
    ready(chip)
    resets = chip.truth()["resets"]
    running(chip)
    chip.pen.inject("loop_hang")
    chip.pen.advance(300)  # 100 ms watchdog, then the boot
    t = chip.truth()
    assert t["resets"] == resets + 1
    assert t["motor_duty"] == 0
    assert t["trigger"] is True  # still held: the drive stays off (SR8)
    chip.pen.advance(500)
    assert chip.truth()["motor_duty"] == 0
    chip.host.link.close()  # a new connection to the rebooted pen
    chip.host = Pen(chip.pen.port, timeout=REQUEST_TIMEOUT_S)
    assert chip.status()["state"] != "running"
    assert int(str(chip.host.info()["boot"])) > 1
    chip.pen.release_trigger()
    chip.host.link.close()
