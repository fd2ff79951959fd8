"""DESIGN §7: all firmware, compiled by mpy-cross (tools/compile_firmware.py
--out, the files `penctl deploy` writes), fits 64 KB. The figure and what
each step bought: docs/performance.md, ".mpy size"."""

from __future__ import annotations

import pytest

from bench import measure as M

MPY_MAX_BYTES = 64 * 1024


@pytest.mark.xfail(
    strict=True,
    reason="DESIGN §7 target missed by a decision: 100.2 KB of .mpy (102,651 B; str replies in steps and written in pieces while running, the stepped dict and error replies, keep_room 3.2 KB, the loop pass within half the period 8.1 KB (native step, tick helpers, drivers; viper put_ints/seal and the event text check; requests put aside while running), 0 B per loop pass cost 1.75 KB, the boot guard 1 KB, requests over passes and their budget 2 KB, hb/ping/status/? answered without heap 5.8 KB, the loop pass's viper tilt check and native telemetry frame 2.5 KB, the loop's stopwatch 1.5 KB). Bytecode alone is 63.8 KB after the size work; native code on SR1's "
    "watch path and the tick's safety modules adds 9.4 KB, and without it the chip missed SR1's 5 ms tilt bound "
    "(5.4 ms in CI); the viper I2C register read of the accelerometer 1.2 KB more (busy pass -4 %). "
    "Safety over size: docs/performance.md, '.mpy size'",
)
def test_design7_firmware_mpy_total_fits_64kb() -> None:
    r = M.mpy_size()
    assert "error" not in r, r
    assert r["files"] >= 10, r  # every firmware file was compiled, not a stray few
    assert 0 < r["total_bytes"] <= MPY_MAX_BYTES, r
