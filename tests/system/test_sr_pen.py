"""One test per safety requirement (DESIGN §4) on the full virtual pen:
firmware on the sim board with the real drivers, on both runtimes, checked
against the world's ground truth (`truth()`), with reaction times measured
in simulated time (stepped mode: 1 ms per advance)."""

from __future__ import annotations

import random
from collections.abc import Iterator
from pathlib import Path

import pytest
import serial

from host import Pen, PenRefused
from sim import SimulatedPen

TILT_TO_OFF_MS = 2  # DESIGN §7
OFF_TO_STILL_MS = 30


@pytest.fixture
def pen(runtime: str) -> Iterator[tuple[SimulatedPen, Pen]]:
    with SimulatedPen(runtime=runtime, speed=0) as sim, Pen(sim.port) as host:
        yield sim, host


def wait_state(sim: SimulatedPen, host: Pen, state: str, limit_ms: int = 3000) -> dict[str, object]:
    waited = 0
    while True:
        st = host.status()
        if st["state"] == state:
            return st
        if waited >= limit_ms:
            raise AssertionError(f"no '{state}' after {limit_ms} ms: {st}")
        sim.advance(50)
        waited += 50


def start_running(sim: SimulatedPen, host: Pen, depth: str = "1.0", rate: str = "120") -> None:
    host.set("depth", depth)
    host.set("rate", rate)
    wait_state(sim, host, "ready")
    sim.press_trigger()
    sim.advance(600)  # soft start to the set rate
    assert host.status()["state"] == "running"
    assert sim.truth()["running"] is True


def drive_on(t: dict[str, object]) -> bool:
    return float(t["motor_duty"]) > 0.0 or not t["brake"]  # type: ignore[arg-type]


def ms_until(sim: SimulatedPen, cond, limit: int) -> int:  # type: ignore[no-untyped-def]
    """Stepped time: advance 1 ms at a time until cond(truth) holds."""
    for ms in range(1, limit + 1):
        sim.advance(1)
        if cond(sim.truth()):
            return ms
    raise AssertionError(f"not within {limit} ms: {sim.truth()}")


def measure_stop(sim: SimulatedPen, act, limit: int = 50) -> tuple[int, int]:  # type: ignore[no-untyped-def]
    """Stepped: act(), then ms until the drive is off, and ms from drive off
    until the needles are still: the world's stroke counter has stopped AND
    the rotor turns slower than 1 Hz (the stricter of the two)."""
    sim.set_speed(None)
    act()
    off = ms_until(sim, lambda t: not drive_on(t), limit)
    strokes = int(sim.truth()["strokes"])  # type: ignore[call-overload]
    last = off
    for ms in range(off + 1, off + 120):
        sim.advance(1)
        t = sim.truth()
        if int(t["strokes"]) != strokes or float(t["stroke_hz"]) >= 1.0:  # type: ignore[call-overload, arg-type]
            strokes = int(t["strokes"])  # type: ignore[call-overload]
            last = ms
    assert sim.truth()["running"] is False
    sim.set_speed(0)
    return off, last - off


def test_sr1_leaving_the_cone_stops_within_2_ms_and_rearm_needs_hold_and_fresh_press(
    pen: tuple[SimulatedPen, Pen],
) -> None:
    sim, host = pen
    start_running(sim, host, rate="150")
    off, still = measure_stop(sim, lambda: sim.set_tilt(15.5, 30.0))  # limit 15 deg
    assert off <= TILT_TO_OFF_MS
    assert still <= OFF_TO_STILL_MS
    st = host.status()
    assert st["stop"] == "tilt" and "tilt" in str(st["block"])
    # back in the cone but not by the 3 degree hysteresis margin: stays off
    sim.set_tilt(13.0, 30.0)
    sim.advance(600)
    assert not drive_on(sim.truth())
    # well inside and held, trigger still held from before: no fresh press
    sim.set_tilt(2.0, 30.0)
    sim.advance(600)
    assert not drive_on(sim.truth()) and host.status()["state"] == "ready"
    sim.release_trigger()
    sim.advance(50)
    sim.press_trigger()
    sim.advance(300)
    assert drive_on(sim.truth()) and sim.truth()["running"] is True


def test_sr1_reentry_before_hold_time_does_not_rearm(pen: tuple[SimulatedPen, Pen]) -> None:
    sim, host = pen
    start_running(sim, host)
    sim.set_speed(None)  # stepped: the hold time is measured exactly
    sim.set_tilt(30.0)
    sim.advance(20)
    sim.release_trigger()
    sim.set_tilt(0.0)
    sim.advance(100)
    sim.press_trigger()
    for _ in range(17):  # up to 270 ms back inside the cone: < 300 ms hold
        sim.advance(10)
        assert not drive_on(sim.truth())
    sim.advance(400)
    assert not drive_on(sim.truth())  # the press began inside the hold: spent (start rule)
    sim.release_trigger()
    sim.advance(50)
    sim.press_trigger()
    sim.advance(300)
    assert drive_on(sim.truth())  # held long enough now, fresh press given


def test_sr2_no_drive_before_homing_then_depth_within_0_02_mm(runtime: str) -> None:
    with SimulatedPen(runtime=runtime, speed=None) as sim:
        sim.advance(5)
        sim.press_trigger()  # pressed while the stage homes, pen upright
        depths = []
        for _ in range(150):
            sim.advance(10)
            t = sim.truth()
            assert not drive_on(t)  # a press begun while homing never starts it
            depths.append(float(t["needle_depth_mm"]))  # type: ignore[arg-type]
        # off all along the homing run from 0.80 mm down to the switch
        assert depths[0] > 0.7 and min(depths) <= 0.05
        sim.release_trigger()  # a fresh press: the drive starts at the set depth
        sim.advance(50)
        sim.press_trigger()
        sim.advance(30)
        t = sim.truth()
        assert drive_on(t) and abs(float(t["needle_depth_mm"]) - 0.5) <= 0.02  # type: ignore[arg-type]
        sim.set_speed(0)
        with Pen(sim.port) as host:
            check_depths(sim, host)


def check_depths(sim: SimulatedPen, host: Pen) -> None:
    sim.release_trigger()
    sim.advance(50)
    for depth in ("1.5", "0.05", "0.75"):
        host.set("depth", depth)
        wait_state(sim, host, "ready")
        t = sim.truth()
        assert abs(float(t["needle_depth_mm"]) - float(depth)) <= 0.02  # type: ignore[arg-type]
        assert float(host.status()["depth"]) == float(depth)  # type: ignore[arg-type]


def test_sr2_step_loss_is_found_at_the_home_edge_and_latches_depth_fault(pen: tuple[SimulatedPen, Pen]) -> None:
    sim, host = pen
    host.set("depth", "1.5")
    wait_state(sim, host, "ready")
    sim.inject("step_loss")
    host.set("depth", "1.0")  # the move descends to the home edge first
    st = wait_state(sim, host, "fault")
    assert st["fault"] == "depth" and st["fault_code"] == 6
    sim.press_trigger()
    sim.advance(300)
    assert not drive_on(sim.truth())
    sim.release_trigger()
    sim.clear("step_loss")
    sim.advance(500)
    assert host.status()["fault"] == "depth"  # latched: the cause going is not enough
    host.clear_fault()  # re-homes, then moves to the set depth again
    wait_state(sim, host, "ready")
    assert abs(float(sim.truth()["needle_depth_mm"]) - 1.0) <= 0.02  # type: ignore[arg-type]


def test_sr3_soft_start_and_rate_within_1_percent_after_a_skin_load_step(pen: tuple[SimulatedPen, Pen]) -> None:
    sim, host = pen
    host.set("depth", "1.5")
    host.set("rate", "100")
    wait_state(sim, host, "ready")
    sim.set_speed(None)
    sim.press_trigger()
    sim.advance(60)
    # soft start: 300 Hz/s from 25 Hz, not a jump to the set rate
    assert 0.0 < float(sim.truth()["stroke_hz"]) < 60.0  # type: ignore[arg-type]
    sim.set_speed(0)
    sim.advance(800)
    assert abs(float(sim.truth()["stroke_hz"]) - 100.0) <= 1.0  # type: ignore[arg-type]
    sim.set_contact(True)  # needles into the skin: a load step
    sim.advance(500)
    assert abs(float(sim.truth()["stroke_hz"]) - 100.0) <= 1.0  # type: ignore[arg-type]
    sim.set_load(1.5)  # skin load step: +50 % torque
    sim.advance(500)
    errs = []
    for _ in range(10):
        sim.advance(37)
        errs.append(abs(float(sim.truth()["stroke_hz"]) - 100.0) / 100.0)  # type: ignore[arg-type]
    assert max(errs) <= 0.01, errs
    st = host.status()
    assert st["state"] == "running" and abs(float(st["rate"]) - 100.0) <= 1.0  # type: ignore[arg-type]


def test_sr3_rate_outside_limits_never_reaches_the_motor(pen: tuple[SimulatedPen, Pen]) -> None:
    sim, host = pen
    for bad in ("151", "24.9", "150.05", "1e3"):
        with pytest.raises(PenRefused):
            host.set("rate", bad)
    start_running(sim, host, rate="150")
    for _ in range(5):
        sim.advance(50)
        assert float(sim.truth()["stroke_hz"]) <= 150.0 * 1.01  # type: ignore[arg-type]


@pytest.mark.parametrize(
    ("fault", "code", "while_running"),
    [("stall", "stall", False), ("overcurrent", "overcurrent", False), ("hall_lost", "hall_lost", True)],
)
def test_sr4_motor_faults_latch_and_clear_only_by_command(
    pen: tuple[SimulatedPen, Pen], fault: str, code: str, while_running: bool, tmp_path: Path
) -> None:
    sim, host = pen
    host.set("rate", "100")
    wait_state(sim, host, "ready")
    if while_running:
        sim.press_trigger()
        sim.advance(600)
        assert sim.truth()["running"] is True
    sim.inject(fault)
    sim.press_trigger()
    st = wait_state(sim, host, "fault", 1000)
    assert st["fault"] == code
    sim.advance(100)
    assert not drive_on(sim.truth())
    sim.clear(fault)
    sim.advance(300)
    st = host.status()
    assert st["fault"] == code and not drive_on(sim.truth())  # still latched
    if fault in ("stall", "hall_lost"):
        # no check can see their cause with the drive off: a technician clears
        with pytest.raises(PenRefused) as e:
            host.clear_fault()
        assert e.value.code == 40 and host.status()["fault"] == code
        host.key_file = str(tmp_path / "tech.key")
        host.provision()
        host.technician_request("clear-fault")
    else:
        host.clear_fault()
    sim.advance(50)
    assert host.status()["state"] == "ready"  # trigger still held: no restart
    assert not drive_on(sim.truth())
    sim.release_trigger()
    sim.advance(30)
    sim.press_trigger()
    sim.advance(400)
    assert sim.truth()["running"] is True


@pytest.mark.parametrize(("fault", "code"), [("imu_lost", "imu_lost"), ("imu_frozen", "imu_frozen")])
def test_sr4_imu_loss_latches_and_clear_is_refused_while_present(
    pen: tuple[SimulatedPen, Pen], fault: str, code: str
) -> None:
    sim, host = pen
    start_running(sim, host)
    sim.inject(fault)
    st = wait_state(sim, host, "fault", 1000)
    assert st["fault"] == code and not drive_on(sim.truth())
    with pytest.raises(PenRefused) as e:
        host.clear_fault()
    assert e.value.code == 32
    sim.clear(fault)
    sim.advance(50)
    assert host.status()["fault"] == code
    host.clear_fault()
    sim.release_trigger()
    sim.advance(400)
    assert host.status()["state"] == "ready"


def test_sr5_battery_under_cutoff_stops_the_drive(pen: tuple[SimulatedPen, Pen]) -> None:
    sim, host = pen
    start_running(sim, host)
    off, still = measure_stop(sim, lambda: sim.inject("battery_sag"), 100)
    # the leaky-average filter (<= 30 ms), 50 ms debounce of load dips, the brake a tick later
    assert off <= 82 and still <= OFF_TO_STILL_MS
    st = host.status()
    assert st["stop"] == "battery" and "battery" in str(st["block"])
    sim.release_trigger()
    sim.advance(30)
    sim.press_trigger()
    sim.advance(300)
    assert not drive_on(sim.truth())
    sim.clear("battery_sag")
    sim.release_trigger()
    sim.advance(30)
    sim.press_trigger()
    sim.advance(300)
    assert sim.truth()["running"] is True


def test_sr5_brownout_reset_boots_safe(pen: tuple[SimulatedPen, Pen]) -> None:
    # a brown-out resets the MCU like the watchdog does: the world keeps its
    # state (flat battery, trigger held) and the firmware boots again
    sim, host = pen
    start_running(sim, host)
    sim.inject("battery_sag")
    sim.inject("loop_hang")
    sim.advance(300)
    t = sim.truth()
    assert t["resets"] == 1 and not drive_on(t)
    sim.advance(1500)
    assert not drive_on(sim.truth())
    assert "battery" in str(host.status()["block"])


def test_sr6_cartridge_pulled_or_trigger_released_stops_the_drive(pen: tuple[SimulatedPen, Pen]) -> None:
    sim, host = pen
    start_running(sim, host)
    off, still = measure_stop(sim, lambda: sim.set_cartridge(False))
    assert off <= 12 and still <= OFF_TO_STILL_MS  # 10 ms switch debounce
    assert host.status()["stop"] == "cartridge"
    sim.set_cartridge(True)
    sim.advance(300)
    assert not drive_on(sim.truth())  # no restart without a fresh press
    sim.release_trigger()
    sim.advance(30)
    sim.press_trigger()
    sim.advance(300)
    assert sim.truth()["running"] is True
    off, still = measure_stop(sim, sim.release_trigger)
    assert off <= 12 and still <= OFF_TO_STILL_MS
    assert host.status()["stop"] == "trigger_released"


def test_sr8_hung_loop_is_reset_by_the_watchdog_and_boots_with_drive_off(pen: tuple[SimulatedPen, Pen]) -> None:
    sim, host = pen
    start_running(sim, host)
    sim.inject("loop_hang")
    sim.advance(150)  # WDT: 100 ms
    t = sim.truth()
    assert t["resets"] == 1
    assert not drive_on(t)
    sim.advance(2000)  # homed again, upright, trigger still held
    assert not drive_on(sim.truth())
    st = host.status()
    assert st["state"] == "ready" and st["stop"] == "boot"
    sim.release_trigger()
    sim.advance(30)
    sim.press_trigger()
    sim.advance(300)
    assert sim.truth()["running"] is True


def test_sr9_noise_and_garbage_on_the_line_change_nothing(runtime: str) -> None:
    with SimulatedPen(runtime=runtime, speed=0) as sim:
        with Pen(sim.port) as host:
            host.set("depth", "1.0")
            host.set("rate", "80")
            wait_state(sim, host, "ready")
        rng = random.Random(9)
        junk = bytes(rng.choice(b"setdphrac 0123456789.-\x00\x03\x04\xff\r\n") for _ in range(3000))
        with serial.serial_for_url(sim.port, timeout=0.05) as raw:
            for k in range(0, len(junk), 100):
                raw.write(junk[k : k + 100])
                sim.advance(20)
                assert not drive_on(sim.truth())
        sim.inject("serial_noise")
        sim.advance(500)
        assert not drive_on(sim.truth())
        sim.clear("serial_noise")
        sim.advance(50)
        t = sim.truth()
        assert t["resets"] == 0 and abs(float(t["needle_depth_mm"]) - 1.0) <= 0.02  # type: ignore[arg-type]
        with Pen(sim.port) as host:
            got = host.get()
            assert got["depth"] == 1.0 and got["rate"] == 80.0
            assert host.status()["state"] == "ready"


def test_sr7_drive_stops_at_the_clinic_session_time(runtime: str, tmp_path: Path) -> None:
    with SimulatedPen(runtime=runtime, speed=0) as sim:
        with Pen(sim.port, key_file=str(tmp_path / "tech.key")) as host:
            host.provision()  # factory step, then an authenticated technician
            host.limits_set("max_session_min", 1)
            host.set("depth", "1.0")
            wait_state(sim, host, "ready")
        sim.set_speed(None)  # stepped: the session clock is exact
        sim.press_trigger()
        sim.advance(59500)
        assert sim.truth()["running"] is True
        sim.advance(600)  # 60 s of drive-on time (+ 10 ms debounce) have passed
        t = sim.truth()
        assert not drive_on(t)
        sim.advance(100)
        assert sim.truth()["running"] is False
        sim.release_trigger()
        sim.advance(50)
        sim.press_trigger()
        sim.advance(500)
        assert not drive_on(sim.truth())  # the session is over: no restart
        sim.set_speed(0)
        with Pen(sim.port) as host:
            st = host.status()
            assert st["stop"] == "session_time" and "session_time" in str(st["block"])
