"""The cycle profile of the virtual Pico (`python -m bench.profile`,
docs/simulator.md): chip.js's per-address cycle counts, named by the
image's ELF, add up to the stage they were taken in, and name the code
that ran there."""

from __future__ import annotations

import os
import shutil
import tempfile
from pathlib import Path

from bench.profile import CYCLES_PER_US, by_function, read_profile
from host import Pen
from sim import SimulatedPen
from sim.rp2040 import elf_symbols
from tests.chip.conftest import REQUEST_TIMEOUT_S, Chip, need_chip
from tests.chip.test_chip_pen import running

TICK_STAGE = 2  # firmware/pen/runtime.py: mark 2 starts the tick, mark 3 ends it


def test_chip_profile_of_the_tick_stage_adds_up_to_the_stage_and_names_the_tick() -> None:
    need_chip()
    symbols = elf_symbols()
    assert symbols, "no symbols: build/needle-pen.elf and arm-none-eabi-nm (make firmware)"
    tmp = Path(tempfile.mkdtemp(prefix="vpico-prof-"))
    env = {
        "PENSIM_RP2040_PROBE": str(tmp / "probe.txt"),
        "PENSIM_RP2040_PROFILE": str(tmp / "profile.txt"),
        "PENSIM_RP2040_PROFILE_MARKS": str(TICK_STAGE),
    }
    os.environ.update(env)  # read when the chip starts
    try:
        with SimulatedPen(runtime="rp2040", speed=0) as pen:
            for k in env:
                del os.environ[k]
            with Pen(pen.port, timeout=REQUEST_TIMEOUT_S) as host:
                chip = Chip(pen, host, tmp)
                chip.wait_for(lambda s: s["state"] == "ready", 4000)
                running(chip)
                pen.advance(200)
                pen.release_trigger()
                pen.advance(50)
        # the emulator has exited: the profile is written
        hist = read_profile(tmp / "profile.txt")
        probe = (tmp / "probe.txt").read_text().splitlines()
    finally:
        for k in env:
            os.environ.pop(k, None)
        shutil.rmtree(tmp, ignore_errors=True)
    # the stage's time from its marks, every pass since power-on
    stage_us = 0.0
    start = None
    for line in probe:
        if line.startswith("mark "):
            _, m, t = line.split()
            if int(m) == TICK_STAGE:
                start = float(t)
            elif start is not None:
                stage_us += float(t) - start
                start = None
    total_us = sum(hist.values()) / CYCLES_PER_US
    assert stage_us > 10_000, stage_us  # hundreds of ticks
    assert abs(total_us - stage_us) <= 0.01 * stage_us, (total_us, stage_us)
    rows = dict(by_function(hist, symbols))
    assert rows.get("pen_core_Core_tick [py]", 0) > 0, sorted(rows, key=lambda k: -rows[k])[:20]
    assert rows.get("?", 0) <= 0.01 * sum(rows.values()), rows.get("?")
