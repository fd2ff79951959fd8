"""DESIGN §6/§7: the control tick allocates nothing on the heap in steady
state, proven under the real MicroPython interpreter: gc disabled,
micropython.heap_lock() around every tick (any allocation raises
MemoryError), gc.mem_alloc() counted before and after 10 000 ticks. And a
regression ceiling on the firmware's heap after boot on the unix port.
Counts only, no timings."""

from __future__ import annotations

import binascii

import pytest
from pen.compat import ROOM_PCT, table_size

from bench import measure as M


def _assert_steady_and_zero(r: dict, ticks: int) -> None:
    assert "error" not in r, r
    # the feeder really reached the steady state: homed, in the cone, running
    assert r["running_before"] and r["running_after"], r
    assert r["ticks"] == ticks
    assert r["heap_lock_errors"] == 0, f"tick allocated (first at tick {r['first_error_tick']}): {r}"
    assert r["tick_bytes"] == 0, r


def test_design6_tick_allocates_nothing_in_steady_state_micropython() -> None:
    _assert_steady_and_zero(M.alloc_per_tick(10000), 10000)


def test_design6_tick_allocates_nothing_with_the_full_sim_board() -> None:
    # the whole virtual pen (world, real drivers over sim peripherals) feeds
    # the core; only core.tick() is under the heap lock
    _assert_steady_and_zero(M.alloc_per_tick_full_sim(3000), 3000)


def test_design7_full_loop_pass_allocates_nothing_while_running_with_telemetry() -> None:
    # DESIGN §6: every stage of a pass (SR1 watch, inputs, tick, apply,
    # persistence on the sim flash, serial, protocol with a telemetry frame
    # every 10 ms to a technician, security) under heap_lock, 3000 passes
    r = M.alloc_per_pass_full_sim(3000)
    assert "error" not in r, r
    assert r["running_before"] and r["running_after"] and r["technician"], r
    assert r["passes"] == 3000
    assert r["heap_lock_errors"] == 0, f"a pass allocated (first: pass {r['first_error_pass']}): {r}"
    # the frames went out whole: 1 per 10 ms, each checked by the host's CRC
    assert r["frames"] == 300 and r["bytes_out"] >= 300 * 40, r
    for line in r["last_lines"]:
        body, crc = line.rsplit("*", 1)
        assert body.startswith("~") and len(body.split()) == 9, line
        assert f"{binascii.crc_hqx(body.encode(), 0xFFFF):04X}" == crc, line


def test_design7_pass_probe_catches_an_allocating_pass() -> None:
    # the same probe with each telemetry line copied before it is written
    r = M.run_probe("pass", "500", "selftest", script=M.INSIM)
    assert "error" not in r, r
    assert r["selftest"] is True and r["running_after"], r
    assert r["heap_lock_errors"] == r["frames"] == 50, r


def test_design6_alloc_probe_catches_an_allocating_tick() -> None:
    # the same probe with a tick that builds a list: every tick must be caught
    r = M.run_probe("alloc", "500", "selftest")
    assert "error" not in r, r
    assert r["selftest"] is True
    assert r["heap_lock_errors"] == 500, r


# Heap after boot on the unix port: a regression ceiling only. This port is
# 64-bit and loads the firmware from .mpy files onto the heap, so its figure
# is not the chip's: the DESIGN §7 target (>= 150 KB free after boot, not
# falling) is checked on the emulated RP2040 with the frozen image
# (tests/chip). Measured 122.6 KB here with every module resident (no lazy
# loading since the code is frozen into flash on the pen), then 130.2 KB
# with the start rule, plausibility, durable-ok and per-connection session
# code; the ceiling is that plus ~5 KB, so growth is seen, not a target
# (docs/performance.md). 136,512 B before the allocation-free replies of
# hb/ping/status/? (issue 14), 157,280 B with them (their code on the heap
# of this port, +11 KB for pen.protocol alone, and the reply buffers;
# frozen into flash on the chip). 168,448 B with the str replies built in
# steps and written in pieces while the needles run (get/loop/info/id,
# docs/performance.md "A request answered from str while running").
HEAP_AFTER_BOOT_CEILING_BYTES = 168 * 1024


@pytest.fixture(scope="module")
def boot_heap() -> dict[str, object]:
    r = M.heap_after_boot()
    assert "error" not in r, r
    assert r["firmware_object"] == "Firmware"
    return r


def test_design7_unix_port_heap_after_boot_regression_ceiling(boot_heap: dict[str, object]) -> None:
    assert 0 < int(boot_heap["heap_after_boot_bytes"]) <= HEAP_AFTER_BOOT_CEILING_BYTES, boot_heap  # type: ignore[call-overload]
    kept = boot_heap["modules_after_boot"]
    assert "pen.runtime" in kept and "pen.core" in kept, kept  # type: ignore[operator]


def test_design7_the_loop_pass_objects_attribute_tables_have_room(boot_heap: dict[str, object]) -> None:
    """A method called through an instance is first looked up, and missed,
    in the instance's own attribute table; MicroPython grows that table only
    when it is full and a miss probes until an empty slot (py/map.c), so a
    full table makes every call on the object slow (Protocol at 73 of 73:
    +~75 us a loop pass on the chip). pen/runtime.py keep_room()s the
    objects every pass calls into; the unix port builds the same tables."""
    attrs = boot_heap["instance_attrs"]
    assert isinstance(attrs, dict)
    for name in ("Firmware", "ProbeBoard", "Core", "Protocol", "Persistence", "LoopTime"):
        n = int(attrs[name])
        size = table_size(n)
        assert n * 100 <= size * ROOM_PCT, (name, n, size)
