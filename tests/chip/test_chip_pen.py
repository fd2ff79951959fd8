"""The pen's firmware image on the virtual Pico (rp2040js), end to end: the
same world as the other runtimes drives its pins and buses, the host talks
to it over the pty bridged to its USB CDC. The tests share one booted pen
and run in file order (each leaves the pen as the next expects); times are
emulated time, never wall time."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest
from pen.protocol import RUN_REQUESTS

from bench.chip import flash_with_drive_on, heap_state, parse_marks, request_passes
from host import Pen
from host.link import PenRefused
from tests.chip.conftest import REQUEST_TIMEOUT_S, Chip

ROOT = Path(__file__).resolve().parents[2]
VENV_BIN = Path(sys.executable).parent
# DESIGN §4 SR1: leaving the cone stops the drive within 5 ms on the chip
TILT_STOP_US = 5000
TILT_PHASES_MS = (0, 1, 2, 3, 4)  # every ms of a 5 ms loop period
# the loop period on the RP2040 (firmware/boards/pico.py LOOP_US) and
# DESIGN §7's bound: the worst loop pass within half of it
LOOP_US = 5000
BUSY_LIMIT_US = LOOP_US // 2
LOOP_RUN_MS = 400  # emulated, per stroke rate, after ...
# ... the soft start: the passes at the start of a run (the session's
# record, state events) are up to ~2.2 ms, measured apart
# (docs/performance.md, "The loop pass within half the period")
LOOP_SETTLE_MS = 300
# DESIGN §7: free heap >= 150 KB, not falling while running
HEAP_MIN_FREE = 150 * 1024
HEAP_RUN_MS = 500  # emulated: 100 loop passes at the 5 ms period
# DESIGN §7 loop budget: a pass that serves a part of a request while the
# needles run (no telemetry): 2.1-2.4 ms measured (43-48 %,
# docs/performance.md, "The loop pass within half the period"; 4.2-4.8 ms
# before issue 14's work). Where the request lands in a pass depends on the
# host's wall-clock timing, which moves the figure by ~0.1-0.2 ms between
# runs, so the test's bound is 55 % (it failed at 62-65 %); the period
# itself is never missed
REQUEST_BUSY_LIMIT_US = LOOP_US * 55 // 100


def firmware_version() -> str:
    ns: dict[str, object] = {}
    exec((ROOT / "firmware" / "pen" / "version.py").read_text(), ns)
    return str(ns["FIRMWARE_VERSION"])


def running(chip: Chip, released: bool = False) -> None:
    """Needles on the skin, trigger pressed, until the needles move. Waits
    on the world, not on `status` (a host request while the drive is on
    makes a long pass, DESIGN §7). released: the trigger is already up for
    longer than the debounce (rearm), so the fresh press comes at once."""
    chip.pen.set_contact(True)
    if not released:
        chip.pen.release_trigger()  # a fresh press: released past the debounce
        chip.pen.advance(100)
    chip.pen.press_trigger()
    for _ in range(60):
        chip.pen.advance(25)
        if chip.truth()["stroke_hz"] > 5.0:
            return
    chip.pen.release_trigger()
    raise AssertionError(f"the pen did not start: {chip.status()}; {chip.truth()}; {fault_log(chip)}")


def fault_log(chip: Chip) -> str:
    """The pen's last fault entries from its event log (a failure message
    names which check latched: `rate_runaway,by=...`), or why not."""
    try:
        entries = chip.host.log()
    except Exception as e:  # noqa: BLE001 - a diagnostic must not hide the failure it explains
        return f"event log not read: {e}"
    return "event log: " + "; ".join(str(x) for x in entries[-6:])


def rearm(chip: Chip) -> None:
    """Back upright and the trigger released for longer than the tilt hold
    time (300 ms): the next press starts the pen again."""
    chip.pen.release_trigger()
    chip.pen.set_tilt(0)
    chip.pen.advance(350)


def ready(chip: Chip) -> None:
    """Ready to run (after a reset: homed again; a latched fault left by an
    earlier test cleared); only asked with the drive off."""
    chip.pen.release_trigger()
    st = chip.wait_for(lambda s: s["state"] in ("ready", "fault"), 4000)
    if st["state"] == "fault":
        for f in ("stall", "hall_lost", "overcurrent"):
            chip.pen.clear(f)
        chip.technician().clear_fault()
        chip.wait_for(lambda s: s["state"] == "ready", 4000)


# Found by the virtual Pico: the session-start event was written to the
# flash log as the drive started; a 4 KB sector erase stalled the CPU ~45 ms
# with the drive on and the dead-man reset the pen. pen.persist now writes
# only with the drive off (the loop-pass test counts flash stalls with the
# drive on; the rate test runs the drive without a reset).


def test_chip_boot_to_ready_and_homing(chip: Chip) -> None:
    st = chip.status()
    t = chip.truth()
    assert st["state"] == "ready"
    assert t["resets"] == 0
    # homed: the firmware's idea of the depth is the stage's true position
    assert abs(float(str(st["depth"])) - t["needle_depth_mm"]) <= 0.02
    assert t["motor_duty"] == 0 and t["brake"] is True
    assert chip.boot_ms < 4000


def test_chip_handshake_and_info_show_image_version(chip: Chip) -> None:
    ident = chip.host.identify()
    assert ident["fw"] == firmware_version()
    assert ident["board"] == "pico-rp2040"  # the rp2 board, not the sim board
    info = chip.host.info()
    assert info["fw"] == firmware_version()
    assert info["mode"] == "production"
    assert float(str(info["rate_max_hz"])) == 150.0


def test_chip_sr2_sr3_set_depth_and_rate_stage_moves_rate_holds(chip: Chip) -> None:
    chip.host.set("depth", "0.30")
    chip.host.set("rate", "80")
    chip.wait_for(lambda s: s["depth"] == 0.30 and s["state"] == "ready", 2000)
    assert abs(chip.truth()["needle_depth_mm"] - 0.30) <= 0.02
    running(chip)
    chip.pen.advance(600)  # soft start and settling
    hz: list[float] = []
    for _ in range(20):  # the rotor's speed every 20 ms for 400 ms
        chip.pen.advance(20)
        hz.append(chip.truth()["stroke_hz"])
    mean = sum(hz) / len(hz)
    # DESIGN §7: <= 1 % steady-state error, every sample (the rotor's speed
    # swung +-5 % on the chip until the P gain was halved for the 5 ms
    # pass, pen/drive.py KP_HALF_PASS_MS)
    print(f"rate on the chip: mean {mean:.2f} Hz, {min(hz):.1f}..{max(hz):.1f} Hz")
    assert abs(mean - 80.0) <= 0.8, hz
    assert all(abs(x - 80.0) <= 0.8 for x in hz), hz
    assert chip.truth()["resets"] == 0


def test_chip_sr3_rate_settles_after_a_start_and_load_steps_at_150_hz(chip: Chip) -> None:
    """DESIGN §7 (stroke-rate error <= 1 %) on the chip's 5 ms pass: after
    the soft start's ramp and after each load step (skin x2, x0.5, x1.5, x1)
    the rotor is within 1 % of 150 Hz by 200 ms and stays there, and no step
    swings it more than 5 %. With the simulator's P gain it rang +-8-9 %
    and never settled (docs/performance.md, "The rate after a start on the
    chip")."""
    ready(chip)
    chip.host.set("rate", "150")
    worst: dict[str, tuple[float, list[float]]] = {}
    try:
        running(chip)
        chip.pen.advance(500)  # the soft start: 300 Hz/s from 25 Hz, ~0.42 s to 150 Hz
        for load in (None, 2.0, 0.5, 1.5, 1.0):
            if load is not None:
                chip.pen.set_load(load)
            hz = []
            for _ in range(25):  # every 20 ms for 500 ms
                chip.pen.advance(20)
                hz.append(round(chip.truth()["stroke_hz"], 1))
            worst[f"load {load}"] = (max(abs(x - 150.0) for x in hz) / 1.5, hz)
            assert all(abs(x - 150.0) <= 1.5 for x in hz[10:]), (load, hz)
            assert all(abs(x - 150.0) <= 7.5 for x in hz), (load, hz)
    finally:
        chip.pen.set_load(1.0)
        chip.pen.release_trigger()
        chip.pen.advance(100)
        chip.host.set("rate", "80")
    print("rate at 150 Hz, worst swing %: " + ", ".join(f"{k} {v[0]:.1f}" for k, v in worst.items()))
    assert chip.truth()["resets"] == 0 and chip.truth()["faults"] == []


# Found by the virtual Pico: after the stall test's run stopped, one
# littlefs write (a record saved as the run stopped) erased two 4 KB
# sectors with the CPU stalled (~92 ms) and the 100 ms watchdog reset the
# pen (probe: `reset`, reason 1, mark 4); a flash write now
# gets WDT_FLASH_TIMEOUT_MS (boards/pico.py feed_flash).
def test_chip_sr4_stall_is_a_latched_fault(chip: Chip) -> None:
    ready(chip)
    running(chip)
    chip.pen.inject("stall")
    chip.pen.advance(300)
    assert chip.truth()["motor_duty"] == 0
    st = chip.status()
    assert st["fault"] in ("stall", "overcurrent"), (st, chip.truth())
    assert chip.truth()["motor_duty"] == 0
    chip.pen.clear("stall")
    chip.pen.release_trigger()
    chip.pen.advance(50)
    assert chip.status()["fault"] == st["fault"], "a latched fault stays until cleared on purpose"
    assert chip.truth()["resets"] == 0
    chip.technician().clear_fault()
    chip.wait_for(lambda s: s["fault"] == "none", 200)
    rearm(chip)


# Found by the virtual Pico (chip.js's stack watermark): the C stack is 8 KB
# for the main code and every interrupt, and MicroPython's check raises a
# Python call at 7936 B (sim/rp2040/device.py STACK_CHECK_BYTES). A request
# that writes the flash reached 7.6-7.8 KB in littlefs, a soft timer
# callback on top; the hall's hard IRQ (~0.7 KB) landing there, on the
# edges of a coasting motor, raised, and MicroPython disabled it for good:
# the next run wound the duty up on no edges and latched hall_lost.
STACK_MARGIN_B = 256  # a deeper path than the ones below, untested


def test_chip_sr4_the_c_stack_keeps_room_for_the_hall_irq_under_every_flash_write(chip: Chip) -> None:
    """The deepest flash writes of the product: a technician's limit change
    and a setting committed at once, the technician's session ended by a DTR
    drop, a run's records written as the motor coasts (hall IRQs landing in
    the writes), a latched fault logged. The deepest stack, plus the most the
    hall IRQ took on top of where it landed, stays under the check with
    STACK_MARGIN_B to spare; and the pen still counts hall edges after."""
    from sim.rp2040.device import STACK_CHECK_BYTES

    ready(chip)
    tech = chip.technician()
    limit = tech.limits()["max_depth"]
    tech.link.request(f"limits set max_depth {limit}")
    tech.set("depth", "0.40")
    chip.technician()  # a new connection: the DTR drop ends the session
    chip.wait_for(lambda s: s["state"] == "ready", 2000)
    for _ in range(2):
        running(chip)
        chip.pen.advance(300)
        chip.pen.release_trigger()  # the run's records written while it coasts
        chip.pen.advance(400)
    running(chip)
    chip.pen.inject("stall")
    chip.pen.advance(300)
    chip.pen.clear("stall")
    st = chip.status()
    assert st["fault"] == "stall", st
    ready(chip)
    t = chip.truth()
    used, irq = int(t["stack_used_max"]), int(t["gpio_irq_stack_max"])
    print(
        f"C stack: deepest {used} B (pc {t['stack_used_max_pc']:x}), hall IRQ on top {irq} B; check at {STACK_CHECK_BYTES} B"
    )
    assert irq > 200, "no hall IRQ measured"
    assert used + irq <= STACK_CHECK_BYTES - STACK_MARGIN_B, (used, irq)
    # the hall IRQ still counts: a run reaches its rate by the pen's own count
    running(chip)
    chip.pen.advance(400)
    st = chip.status()
    chip.pen.release_trigger()
    assert st["state"] == "running" and float(str(st["rate"])) > 50.0, st


def test_chip_design7_heap_does_not_fall_while_running_with_telemetry(chip: Chip) -> None:
    """DESIGN §6/§7: 0 bytes per full loop pass while the pen runs and a
    technician streams telemetry at 100 Hz, on the chip: the free GC heap
    (read from the chip's RAM at the end of a pass, every 100 ms) is the
    same after HEAP_RUN_MS of running as before, so nothing was allocated and nothing collected (the firmware
    sets gc.threshold off while the drive runs: a collection could only be
    the heap running out), and it stays >= 150 KB. No host request
    meanwhile: a request is served while running and may allocate (issue
    14, the request side)."""
    ready(chip)
    tech = chip.technician()
    tech.telemetry(100)
    tech.link.unprompted.clear()
    states: list[dict[str, int]] = []
    try:
        running(chip)
        chip.pen.advance(LOOP_SETTLE_MS)  # soft start; the run's first pass logs its start
        states.append(heap_state(chip.pen))
        for _ in range(HEAP_RUN_MS // 100):
            chip.pen.advance(100)
            states.append(heap_state(chip.pen))
        if chip.truth()["motor_duty"] <= 0:
            raise AssertionError(f"the pen stopped running: {chip.status()}; {chip.truth()}")
    finally:
        chip.pen.release_trigger()
        chip.pen.advance(50)
        tech.telemetry(0)
    lines = list(tech.link.unprompted)
    seqs = [int(x[1:].split()[0]) for x in lines if x.startswith("~")]
    other = [x for x in lines if not x.startswith("~")]
    heap = [h["free"] for h in states]
    allocs = [h["allocs"] for h in states]
    print(f"free heap while running, every 100 ms: {heap} B, blocks allocated {allocs}; {len(seqs)} frames; {other}")
    # the frames of the measured stretch went out: 1 per 10 ms, none skipped
    assert len(seqs) >= (LOOP_SETTLE_MS + HEAP_RUN_MS) // 10 - 5, len(seqs)
    assert seqs == list(range(seqs[0], seqs[0] + len(seqs))), seqs
    assert heap[0] >= HEAP_MIN_FREE, heap
    # pen/runtime.py: gc.threshold off while the drive runs
    assert all(h["threshold"] == 0xFFFFFFFF for h in states), states
    assert heap == [heap[0]] * len(heap), (
        f"the free heap moved over {HEAP_RUN_MS // 5} passes: {heap} B every 100 ms; unprompted lines {other}"
    )
    assert chip.truth()["resets"] == 0
    rearm(chip)
    # the GC's own count of blocks allocated (every gc_alloc, also a block
    # freed again within its call) does not move either: the frames of the
    # pass's bytecode calls stay on the C stack (image/board mpconfigboard.h
    # VM_MAX_STATE_ON_STACK; heap_lock cannot see them: under it the VM falls
    # back to the C stack); MicroPython's 44 B made ~35 blocks a pass
    assert allocs == [allocs[0]] * len(allocs), (
        f"DESIGN §6: blocks allocated while running {allocs} every 100 ms, over {HEAP_RUN_MS // 5} passes"
    )


def test_chip_loop_pass_within_half_the_period_streaming_at_100_and_150_hz(chip: Chip) -> None:
    """DESIGN §7: the worst full loop pass (I2C read, tick, outputs,
    persistence, serial, protocol: every stage, from the chip's stage marks)
    within 50 % of the loop period, in emulated time with interrupts on, a
    technician connected and telemetry streaming at 100 Hz, at 100 and
    150 Hz on the skin, in steady running after the soft start; no flash
    write with the drive on."""
    ready(chip)
    tech = chip.technician()
    tech.telemetry(100)
    worst: dict[int, float] = {}
    flash_on = 0
    try:
        for hz in (100, 150):
            tech.set("rate", str(hz))
            running(chip)
            chip.pen.advance(LOOP_SETTLE_MS)
            mark = len(chip.probe_lines())
            chip.pen.advance(LOOP_RUN_MS)
            lines = chip.probe_lines()[mark:]
            busy = parse_marks(lines)["busy"]
            assert len(busy) >= LOOP_RUN_MS * 1000 // LOOP_US - 2, "passes missing from the probe"
            worst[hz] = max(busy)
            flash_on += flash_with_drive_on(lines)
            assert chip.truth()["motor_duty"] > 0
            chip.pen.release_trigger()
            chip.pen.advance(100)
    finally:
        chip.pen.release_trigger()
        tech.telemetry(0)
        tech.set("rate", "80")
    print(f"worst loop pass: {worst} us emulated, period {LOOP_US} us")
    assert chip.truth()["resets"] == 0
    assert flash_on == 0, "a flash write stalled the CPU with the drive on"
    assert max(worst.values()) <= BUSY_LIMIT_US, worst


def test_chip_sr1_tilt_stops_drive_within_5ms_emulated(chip: Chip) -> None:
    # the delay depends on where in the loop pass the IMU's new sample
    # lands: tilt at several phases (the pass is not a whole number of ms)
    # and hold the worst one to the bound
    delays: list[int] = []
    ready(chip)
    released = False
    for lead_ms in TILT_PHASES_MS:
        running(chip, released)
        chip.pen.advance(lead_ms)
        resets = chip.truth()["resets"]
        chip.pen.set_tilt(30)
        chip.pen.advance(2 * TILT_STOP_US // 1000)  # twice the bound: the drive is off by then
        t = chip.truth()
        assert t["motor_duty"] == 0
        if t["resets"] == resets:  # a reset in between would stop the drive too
            delays.append(t["duty_changed_us"] - t["command_us"]["tilt"])
        rearm(chip)
        ready(chip)
        released = True
    assert len(delays) >= 2, delays
    print(f"tilt -> drive off: {delays} us emulated")
    assert 0 < max(delays) <= TILT_STOP_US, delays


def penctl(chip: Chip, *args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [str(VENV_BIN / "penctl"), "--port", chip.pen.port, *args],
        capture_output=True,
        text=True,
        timeout=REQUEST_TIMEOUT_S * 2,
    )


def test_chip_penctl_subcommands_over_the_pty(chip: Chip) -> None:
    chip.pen.release_trigger()
    ready(chip)
    chip.host.link.close()  # penctl locks the port for itself
    info = penctl(chip, "info", "--json")
    assert info.returncode == 0, info.stderr
    assert firmware_version() in info.stdout
    r = penctl(chip, "set", "rate", "90")
    assert r.returncode == 0, r.stderr
    r = penctl(chip, "get", "rate")
    assert r.returncode == 0 and "90" in r.stdout, r.stdout + r.stderr
    r = penctl(chip, "set", "depth", "2.4")  # above the clinic's 1.50 mm
    assert r.returncode != 0 and "max_depth" in (r.stdout + r.stderr)
    r = penctl(chip, "status", "--json")
    assert r.returncode == 0 and '"state"' in r.stdout
    chip.host = Pen(chip.pen.port, timeout=REQUEST_TIMEOUT_S)


def mpremote(chip: Chip, *args: str, timeout: float = 120.0) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [str(VENV_BIN / "mpremote"), "connect", chip.pen.port, *args],
        capture_output=True,
        text=True,
        timeout=timeout,
    )


def test_chip_sec_mpremote_gets_no_repl_in_production(chip: Chip) -> None:
    resets = chip.truth()["resets"]
    chip.host.link.close()
    try:
        r = mpremote(chip, "exec", "print(6*7)", timeout=20)
        out = r.stdout + r.stderr
    except subprocess.TimeoutExpired as e:
        out = str(e.stdout or b"") + str(e.stderr or b"")
    assert "42" not in out
    assert chip.truth()["resets"] == resets
    # the pen still answers its own protocol
    chip.host = Pen(chip.pen.port, timeout=REQUEST_TIMEOUT_S)
    assert "state" in chip.status()
    assert chip.host.info()["mode"] == "production"


def test_chip_requests_while_running_keep_every_pass_within_the_period(chip: Chip) -> None:
    """DESIGN §7 / SR8: `status` and `ping` (answered without heap) and `get`,
    `loop`, `info`, `dict` and an unknown command (answered from str, a step
    per part: before the steps `info` took 5.1 ms in one pass, `dict` 8.4
    ms) served while the needles run (a part
    per pass, pen/protocol.py defer) leave no busy pass over
    REQUEST_BUSY_LIMIT_US and miss no period; the dead-man (SR8) never
    trips, the drive stays on. The run starts on a collected heap (the
    runtime collects when the drive stops): a collection that a heap full
    of the idle polls' garbage starts while running is the heap item of
    DESIGN §7's, not this test's."""
    ready(chip)
    resets = chip.truth()["resets"]
    running(chip)
    chip.pen.release_trigger()
    chip.pen.advance(100)  # the drive stops: gc.collect()
    running(chip, released=True)
    worst: dict[str, dict[str, float]] = {}
    try:
        for req in ("status", "ping", "get", "loop", "info", "bogus", "status", "ping", "get", "loop", "info", "dict"):
            mark = len(chip.probe_lines())
            if req in ("bogus", "dict"):
                # an unknown command (its reject entry waits for the drive
                # to stop: at once it made a 5.95 ms pass) and the data
                # dictionary (an item a step: 8.4 ms of one pass at once)
                try:
                    chip.host.link.request(req)
                except PenRefused as e:
                    assert req == "bogus" and "unknown_command" in str(e), e
            else:
                getattr(chip.host, req)()
            chip.pen.advance(20)
            r = request_passes(chip.probe_lines()[mark:])
            w = worst.setdefault(req, r)
            for k, v in r.items():
                w[k] = max(w[k], v)
            t = chip.truth()
            assert t["resets"] == resets, "the dead-man reset the pen"
            assert t["motor_duty"] > 0
    finally:
        chip.pen.release_trigger()
        chip.pen.advance(100)
    print(f"requests while running: {worst} (us emulated, period {LOOP_US} us)")
    for req, w in worst.items():
        assert w["missed"] == 0, (req, w)
        assert w["busy_max"] <= REQUEST_BUSY_LIMIT_US, (req, w)


def test_chip_design7_a_run_serves_its_request_budget_of_str_replies_then_refuses(chip: Chip) -> None:
    """DESIGN §6/§7, SR8: requests answered from str while the needles run
    make garbage, and a collection while running (~12 ms on this heap) would
    trip the dead-man: a run serves RUN_REQUESTS of them (`get`), then
    refuses the next with not_while_running (built with no heap) until the
    drive stops; `status` and `hb`, answered without heap, are still served
    after that. No reset, the drive stays on, the heap keeps >= 150 KB;
    after the stop the pen answers again."""
    ready(chip)
    resets = chip.truth()["resets"]
    running(chip)
    try:
        for _ in range(RUN_REQUESTS):
            chip.host.get("rate")
        free = heap_state(chip.pen)["free"]
        with pytest.raises(PenRefused) as e:
            chip.host.get("rate")
        st = chip.host.status()
        hb = chip.host.heartbeat()
        t = chip.truth()
        assert t["resets"] == resets and t["motor_duty"] > 0, t
    finally:
        chip.pen.release_trigger()
        chip.pen.advance(100)  # the drive stops: collected, the count starts again
    print(f"after {RUN_REQUESTS} requests while running: free heap {free} B; then: {e.value}; status {st['state']}")
    assert e.value.code == 30 and "request budget" in e.value.text, e.value
    assert st["state"] == "running" and "timeout_ms" in hb, (st, hb)
    assert free >= HEAP_MIN_FREE, free
    assert chip.status()["state"] == "ready"


def test_chip_design7_the_pen_times_its_own_passes_as_the_emulator_does(chip: Chip) -> None:
    """DESIGN §7 / docs/performance.md ("The measurement to take on a real
    Pico"): `loop` (pen/looptime.py, the pen's own ticks_us stopwatch that
    `make bench PORT=...` reads on a board) agrees with the emulator's stage
    marks over the same passes, with the needles running and telemetry
    streaming: the pass count, the busy part's maximum and mean, the tick's
    mean. A wrong clock, unit or window in the stopwatch fails here."""
    ready(chip)
    tech = chip.technician()
    tech.telemetry(100)
    running(chip)
    try:
        chip.pen.advance(LOOP_SETTLE_MS)
        tech.loop(reset=True)
        mark = len(chip.probe_lines())
        chip.pen.advance(200)
        fw = tech.loop()
        lines = chip.probe_lines()[mark:]
        assert chip.truth()["motor_duty"] > 0
    finally:
        chip.pen.release_trigger()
        tech.telemetry(0)
        chip.pen.advance(100)
    marks = parse_marks(lines)
    busy, tick = marks["busy"], marks["tick"]
    print(f"loop (the pen's own clock): {fw}; stage marks: {len(busy)} passes, busy max {max(busy):.0f} us")
    assert fw["period_us"] == LOOP_US
    # the reset's reply and the read are served in passes at the two ends
    # of the probe's window (a request is served over a few passes)
    assert len(busy) - 8 <= int(fw["passes"]) <= len(busy) + 2, (fw, len(busy))
    inner = busy[4:-4]
    # the stopwatch's span is a little longer than mark 1 -> mark 7 (its
    # clock reads lie just outside them), and an interrupt (USB, ~100 us)
    # that lands in that gap counts in its figure only
    assert max(inner) - 60 <= int(fw["busy_max_us"]) <= max(busy) + 200, (fw, max(inner), max(busy))
    mean_busy = sum(busy) / len(busy)
    mean_tick = sum(tick) / len(tick)
    assert abs(int(fw["busy_mean_us"]) - mean_busy) <= 0.05 * mean_busy + 30, (fw, mean_busy)
    assert abs(int(fw["tick_mean_us"]) - mean_tick) <= 0.05 * mean_tick + 30, (fw, mean_tick)


def test_chip_design7_make_bench_port_measures_a_connected_pen(chip: Chip) -> None:
    """DESIGN §7: `make bench PORT=...` (bench/board.py) runs the loop-pass
    measurement on a connected pen: idle, then the needles running in
    service mode with telemetry streaming, figures read while they run.
    Here the pen is the virtual Pico, so the figures are emulated time."""
    from bench import board

    ready(chip)
    tech = chip.technician()
    chip.pen.set_contact(True)
    res = board.measure(tech, seconds=1.5, idle_s=0.5)
    print(board.report(res))
    assert res["why_not_running"] is None, res
    for name in ("idle", "running"):
        f = res[name]
        assert f["period_us"] == LOOP_US and int(f["passes"]) > 0, res
        assert 0 < int(f["tick_mean_us"]) <= int(f["busy_mean_us"]) <= int(f["busy_max_us"]), res
    # the tool is tested here, not the deadline: the passes that serve the
    # bench's own requests while running reach the period now and then
    # (docs/performance.md, "What is not there yet"); the loop-pass bound
    # has its own tests
    assert int(res["running"]["passes"]) >= 20, res
    assert res["frames"] > 0
    assert chip.truth()["resets"] == 0
    chip.wait_for(lambda s: s["state"] == "ready", 2000)
    assert "rate" in chip.host.get("rate")


# Pen.remote_run's polling (hb + status after each other), every ~0.1 s of
# emulated time; more than twice the budget of requests answered from str
# (RUN_REQUESTS, 20 now, 24 then: before the allocation-free replies the 13th poll was
# refused and the heartbeat rule stopped the drive, ~2 s into the run)
REMOTE_POLLS = 20
REMOTE_POLL_MS = 30  # emulated, between polls (hb ~20 ms, status ~50 ms)


def test_chip_design7_remote_run_polls_hb_and_status_with_a_flat_heap(chip: Chip) -> None:
    """DESIGN §6/§7, SR8: a technician's remote run (Pen.remote_run: `hb`
    and `status` after each other, REMOTE_POLLS times) on the chip: no
    request refused, every poll sees the drive running, the free heap and
    the GC's count of blocks allocated do not move (nothing allocated while
    the needles run), no reset."""
    ready(chip)
    tech = chip.technician()
    resets = chip.truth()["resets"]
    chip.pen.set_contact(True)
    states: list[str] = []
    heaps: list[dict[str, int]] = []
    t0 = t1 = 0
    for st in tech.remote_run(600.0, hb_ms=500, poll_s=0.0):
        states.append(str(st["state"]))
        if len(states) == 3:  # the run's first passes (session start logged) are behind
            heaps.append(heap_state(chip.pen))
            t0 = int(chip.truth()["time_ms"])
        elif len(states) > 3 and len(states) % 6 == 3:
            heaps.append(heap_state(chip.pen))
        if len(states) >= REMOTE_POLLS + 3:
            t = chip.truth()
            t1 = int(t["time_ms"])
            assert t["motor_duty"] > 0 and t["resets"] == resets, t
            break
        chip.pen.advance(REMOTE_POLL_MS)
    chip.pen.advance(50)  # remote_run ended with `remote stop`
    free = [h["free"] for h in heaps]
    allocs = [h["allocs"] for h in heaps]
    print(
        f"remote run: {len(states)} polls (hb + status) over {t1 - t0} ms emulated after the third;"
        f" free heap {free} B, blocks allocated {allocs}"
    )
    assert states[2:] == ["running"] * (len(states) - 2), states
    assert chip.truth()["resets"] == resets
    assert len(heaps) >= 4 and free[0] >= HEAP_MIN_FREE, heaps
    assert free == [free[0]] * len(free), f"the free heap moved while polled: {free}"
    assert allocs == [allocs[0]] * len(allocs), f"blocks allocated while polled: {allocs}"
    assert chip.status()["state"] == "ready"
