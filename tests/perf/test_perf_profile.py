"""bench.profile's naming of a cycle profile (the chip side:
tests/chip/test_chip_profile.py)."""

from __future__ import annotations

from pathlib import Path

from bench.profile import by_function, read_profile, report

SYMBOLS = [
    (0x10000100, "T", "mp_map_lookup"),
    (0x10000180, "r", "mp_qstr_table"),  # data: never a function
    (0x10000200, "t", "fun_data_pen_core_Core_tick"),
    (0x10000300, "T", "gc_alloc"),
]


def test_profile_addresses_go_to_the_function_they_are_in(tmp_path: Path) -> None:
    f = tmp_path / "p.txt"
    f.write_text("10000104 100\n10000190 50\n10000204 30\n10000206 20\n100000fe 7\n10000400 5\n")
    hist = read_profile(f)
    rows = by_function(hist, SYMBOLS)
    # 0x10000190 lies after mp_map_lookup and the data symbol: still its code
    assert rows == [("mp_map_lookup", 150), ("pen_core_Core_tick [py]", 50), ("?", 7), ("gc_alloc", 5)]
    text = report(rows, top=2)
    assert "mp_map_lookup" in text and "gc_alloc" not in text
    assert text.splitlines()[1].split()[0] == "70.8"  # 150 of 212 cycles
