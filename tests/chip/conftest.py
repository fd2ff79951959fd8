"""The virtual Pico (docs/simulator.md, "The virtual Pico"): the firmware
image on rp2040js against the simulator's world. One booted pen is shared by
the tests of a module (booting and homing costs about 1.5 s of emulated
time, some 15-25 s of wall time)."""

from __future__ import annotations

import os
import shutil
import tempfile
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest

from host import Pen
from sim import SimulatedPen
from sim.rp2040 import ChipSetupError, check_ready

# wall-clock limit of one host request: the emulator runs at about 0.1x
# real time, slower on a loaded machine (never a pass/fail timing)
REQUEST_TIMEOUT_S = 60.0


def need_chip() -> None:
    try:
        check_ready()
    except ChipSetupError as e:
        pytest.skip(f"virtual Pico not available: {e}")


class Chip:
    """A booted virtual Pico, its host link, and helpers that wait in
    emulated time."""

    def __init__(self, pen: SimulatedPen, host: Pen, tmp: Path) -> None:
        self.pen = pen
        self.host = host
        self.boot_ms = 0
        # chip.js's loop probe (bench/chip.py reads it): stage marks of
        # every pass, flash stalls with the drive state
        self.probe = tmp / "probe.txt"
        # the technician's key, given to the pen once (provisioned)
        self.key_file = tmp / "tech.key"
        self.provisioned = False

    def probe_lines(self) -> list[str]:
        return self.probe.read_text().splitlines() if self.probe.exists() else []

    def status(self) -> dict[str, object]:
        return self.host.status()

    def wait_for(
        self, what: Callable[[dict[str, object]], bool], emulated_ms: int, step_ms: int = 50
    ) -> dict[str, object]:
        """Polls `status` until `what(status)` holds; fails after
        `emulated_ms` of emulated time."""
        t_end = int(self.pen.truth()["time_ms"]) + emulated_ms
        while True:
            st = self.status()
            if what(st):
                return st
            if int(self.pen.truth()["time_ms"]) >= t_end:
                raise AssertionError(f"not reached within {emulated_ms} ms of emulated time; last status {st}")
            self.pen.advance(step_ms)

    def truth(self) -> dict[str, Any]:
        return self.pen.truth()

    def technician(self, fresh: bool = True) -> Pen:
        """The host link authenticated as the technician (the pen is
        provisioned with this chip's key the first time); `fresh`: on a new
        connection. Asked with the drive off."""
        if fresh:
            self.host.link.close()
            self.host = Pen(self.pen.port, timeout=REQUEST_TIMEOUT_S, key_file=self.key_file)
        else:
            self.host.key_file = self.key_file
        if not self.provisioned:
            self.host.provision()
            self.provisioned = True
        self.host.auth()
        return self.host


@pytest.fixture(scope="module")
def chip() -> Iterator[Chip]:
    need_chip()
    tmp = Path(tempfile.mkdtemp(prefix="vpico-"))
    os.environ["PENSIM_RP2040_PROBE"] = str(tmp / "probe.txt")  # read when the chip starts
    try:
        with SimulatedPen(runtime="rp2040", speed=0) as pen:
            del os.environ["PENSIM_RP2040_PROBE"]
            with Pen(pen.port, timeout=REQUEST_TIMEOUT_S) as host:
                c = Chip(pen, host, tmp)
                t0 = time.monotonic()
                c.wait_for(lambda s: s["state"] == "ready", 4000)
                c.boot_ms = int(pen.truth()["time_ms"])
                print(f"virtual Pico ready after {c.boot_ms} ms emulated, {time.monotonic() - t0:.1f} s wall")
                yield c
    finally:
        os.environ.pop("PENSIM_RP2040_PROBE", None)
        shutil.rmtree(tmp, ignore_errors=True)


@pytest.fixture(autouse=True)
def _no_irq_handler_raised(request: pytest.FixtureRequest) -> Iterator[None]:
    """Every test on a booted pen: no hard IRQ handler raised meanwhile.
    MicroPython prints "Uncaught exception in IRQ callback handler" and
    disables that IRQ for good (the hall's: the pen stops counting strokes);
    the harness counts the line on the USB (truth()["irq_exceptions"]) and
    the hall pin's interrupt enable going off (["hall_irq_disabled"]: the
    line itself can be lost in a full USB FIFO)."""
    if "chip" not in request.fixturenames:
        yield
        return
    c: Chip = request.getfixturevalue("chip")
    t = c.pen.truth()
    before = (int(t["irq_exceptions"]), int(t["hall_irq_disabled"]))
    yield
    t = c.pen.truth()
    n = int(t["irq_exceptions"]) - before[0]
    off = int(t["hall_irq_disabled"]) - before[1]
    assert n == 0 and off == 0, (
        f"during the test {n} hard IRQ handler(s) raised (the pen's USB output) and the hall pin's IRQ "
        f"was turned off {off} time(s): the pen stops counting strokes"
    )
