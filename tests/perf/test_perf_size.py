"""DESIGN §7: all firmware, compiled by mpy-cross (tools/compile_firmware.py
--out, the files `penctl deploy` writes), fits 64 KB. The figure and what
each step bought: docs/performance.md, ".mpy size"."""

from __future__ import annotations

from bench import measure as M

MPY_MAX_BYTES = 64 * 1024


def test_design7_firmware_mpy_total_fits_64kb() -> None:
    r = M.mpy_size()
    assert "error" not in r, r
    assert r["files"] >= 10, r  # every firmware file was compiled, not a stray few
    assert 0 < r["total_bytes"] <= MPY_MAX_BYTES, r
