# Targeted scenarios of the supervisor on pen.core.Core with the plant of
# test_core_replay (every tick still checked by its invariants). Plain
# asserts: runs under pytest and MicroPython (tests/firmware/mprun.py).
from pen import core as C
from pen import depth as DP
from pen import faults as FT
from pen.errors import PenError
from test_core_replay import Harness


def ready(stage=100):
    h = Harness(stage_steps=stage)
    h.advance(800)
    assert h.core.state == C.ST_READY, C.STATE_NAMES[h.core.state]
    return h


def running(stage=100):
    h = ready(stage)
    h.do("trigger", 1)
    h.advance(300)
    assert h.core.running
    return h


def test_sr7_session_time_stops_the_drive_and_a_new_session_restarts_it():
    h = running()
    h.do("poke", ("max_session_min", 1))
    h.advance(59000)  # the 300 ms run so far counts too
    assert h.core.running
    h.advance(1000)
    assert not h.core.running
    assert C.STOP_NAMES[h.core.stop_reason] == "session_time"
    assert h.core.block & C.BLK_SESSION
    h.do("trigger", 0)
    h.advance(20)
    h.do("trigger", 1)
    h.advance(50)
    assert not h.core.running  # the session is over
    h.do("new_session")
    h.do("trigger", 0)
    h.advance(20)
    h.do("trigger", 1)
    h.advance(50)
    assert h.core.running


def test_sr3_rate_runaway_latches():
    h = running()
    # a motor driven beyond the clinic limit + margin (e.g. a shorted FET)
    h.do("hall", "spin")
    h.do("poke", ("max_rate", 40000))
    h.do("poke", ("rate", 25000))
    h.advance(400)
    assert h.core.fault == FT.F_RATE_RUNAWAY and not h.core.running
    assert FT.RUNAWAY_BY[h.core.runaway_by] == "rate"  # which check: on the fault's log entry


def test_sr3_motor_turning_with_the_brake_on_latches_runaway():
    h = ready()
    h.do("hall", "spin")  # 60 Hz while the drive is off
    h.advance(300)
    assert h.core.fault == FT.F_RATE_RUNAWAY
    assert FT.RUNAWAY_BY[h.core.runaway_by] == "braked"
    assert not h.core.clear_fault()  # still turning: refused, nothing changes
    assert h.core.fault == FT.F_RATE_RUNAWAY
    h.do("hall", "follow")
    h.advance(300)
    assert h.core.clear_fault()


def test_sr4_stall_and_hall_lost_clear_only_by_a_technician():
    for current, code in ((1500, FT.F_STALL), (0, FT.F_HALL_LOST)):
        h = ready()
        h.do("hall", "dead")
        h.do("current", current)
        h.do("trigger", 1)
        h.advance(300)
        assert h.core.fault == code
        h.do("hall", "follow")
        h.do("current", 0)
        h.advance(300)
        try:
            h.core.clear_fault()
        except PenError as e:
            assert e.code == 40 and "technician" in e.text, e.text
        else:
            raise AssertionError("a stall/hall_lost fault cleared without a technician")
        assert h.core.fault == code
        h.do("clear", 1)  # an authenticated technician
        assert h.core.fault == FT.F_NONE
        h.advance(300)
        assert not h.core.running  # the trigger is still held: no start
        h.do("trigger", 0)
        h.advance(30)
        h.do("trigger", 1)
        h.advance(300)
        assert h.core.running and not h.core.fault


def test_sr4_stall_and_hall_lost_are_told_apart_by_current():
    h = ready()
    h.do("hall", "dead")
    h.do("current", 1500)
    h.do("trigger", 1)
    h.advance(300)
    assert h.core.fault == FT.F_STALL
    h = ready()
    h.do("hall", "dead")
    h.do("trigger", 1)
    h.advance(300)
    assert h.core.fault == FT.F_HALL_LOST


def test_sr4_overcurrent_latches_and_clear_refused_while_present():
    h = running()
    h.do("current", 3000)
    h.advance(3)
    assert h.core.fault == FT.F_OVERCURRENT and not h.core.running
    assert not h.core.clear_fault()
    h.do("current", 0)
    h.advance(500)
    assert h.core.fault == FT.F_OVERCURRENT  # latched
    assert h.core.clear_fault()
    assert h.core.fault == FT.F_NONE


# the loop periods of the runtimes: the simulator's 1 ms tick, the RP2040's
# 5 ms pass (boards/pico.py LOOP_US)
PERIODS_MS = (1, 5)


def _at(period):
    h = running()
    h.do("period", period)
    h.advance(2)
    return h


def _latch_ms(h, fault, limit_ms):
    """Emulated ms from now until `fault` latches (None: not within limit_ms)."""
    t0 = h.t
    while h.t - t0 <= limit_ms:
        h.advance(1)
        if h.core.fault == fault:
            return h.t - t0
    return None


def test_sr4_one_current_outlier_never_latches_overcurrent_on_every_loop_period():
    # adc_noise: one sample over the limit (an outlier) is no over-current on
    # either runtime; on the chip's 5 ms pass one sample used to count its
    # whole 5 ms, over OVERCURRENT_MS, and latched. A real over-current (two
    # samples over in a row) latches within two passes on both
    for period in PERIODS_MS:
        h = _at(period)
        for _ in range(3):
            h.do("current", FT.OVERCURRENT_MA + 500)
            h.advance(1)  # one pass: one sample
            h.do("current", 300)
            h.advance(4)
        assert h.core.fault == FT.F_NONE and h.core.running, (period, h.core.fault)
        h.do("current", FT.OVERCURRENT_MA + 500)
        ms = _latch_ms(h, FT.F_OVERCURRENT, 2 * period + FT.OVERCURRENT_MS)
        assert ms is not None and ms <= 2 * period, (period, ms)
        assert not h.core.running


def test_sr4_imu_lost_latches_after_imu_lost_ms_on_every_loop_period():
    # the same detection time in ms in the simulator (1 ms) and on the chip
    # (5 ms pass): not before IMU_LOST_MS, at most one pass after
    for period in PERIODS_MS:
        h = _at(period)
        h.do("imu", "lost")
        ms = _latch_ms(h, FT.F_IMU_LOST, FT.IMU_LOST_MS + period)
        assert ms is not None and FT.IMU_LOST_MS <= ms < FT.IMU_LOST_MS + period, (period, ms)
        assert not h.core.running


def test_sr4_imu_frozen_latches_after_imu_frozen_ms_on_every_loop_period():
    for period in PERIODS_MS:
        h = _at(period)
        h.do("imu", "frozen")
        ms = _latch_ms(h, FT.F_IMU_FROZEN, FT.IMU_FROZEN_MS + 2 * period)
        # the first frozen sample may still differ from the last live one
        assert ms is not None and FT.IMU_FROZEN_MS <= ms <= FT.IMU_FROZEN_MS + 2 * period, (period, ms)


def test_sr4_imu_frozen_clears_only_on_fresh_samples():
    h = running()
    h.do("imu", "frozen")
    h.advance(FT.IMU_FROZEN_MS + 5)
    assert h.core.fault == FT.F_IMU_FROZEN and not h.core.running
    assert not h.core.clear_fault()
    h.do("imu", "ok")
    h.advance(20)
    assert h.core.clear_fault()


def test_sr1_capture_reference_makes_the_tilted_axis_vertical():
    h = ready()
    h.do("tilt", (25.0, 90.0))
    h.advance(50)
    assert h.core.block & C.BLK_TILT
    ref = h.core.capture_tilt_ref()
    assert 6900 < ref[1] < 6950 and 14820 < ref[2] < 14870  # sin/cos 25 deg in Q14
    h.advance(310)
    assert not h.core.block & C.BLK_TILT
    assert h.core.tilt_cdeg < 100
    h.do("tilt", (25.0 + 16.0, 90.0))  # 16 deg from the new reference
    h.advance(1)
    assert h.core.block & C.BLK_TILT
    h.core.reset_tilt_ref()
    h.do("tilt", (0.0, 0.0))
    h.advance(310)
    assert not h.core.block & C.BLK_TILT


def test_sr1_capture_refused_while_running_or_moving_or_without_imu():
    h = running()
    for what in ("running", "imu", "moving"):
        if what == "imu":
            h.do("trigger", 0)
            h.advance(20)
            h.do("imu", "lost")
            h.advance(1)
        elif what == "moving":
            h = ready()
            h.core.fx = 8 * 4096 * 2  # |a| = 2 g: the pen is being moved
        before = (h.cfg.ref_x, h.cfg.ref_y, h.cfg.ref_z)
        try:
            h.core.capture_tilt_ref()
        except PenError:
            pass
        else:
            raise AssertionError("capture accepted while " + what)
        assert (h.cfg.ref_x, h.cfg.ref_y, h.cfg.ref_z) == before


def test_sr2_invalid_config_never_reaches_the_stage_or_motor():
    h = running()
    h.do("poke", ("depth", 2000))  # above the clinic max 1.50 mm
    h.advance(5)
    assert not h.core.running and h.core.block & C.BLK_CONFIG
    h.advance(2000)
    assert h.stage <= 1500 * DP.STEPS_PER_MM // 1000 + DP.DEPTH_TOL_STEPS
    h.do("poke", ("depth", 1000))
    h.do("trigger", 0)
    h.advance(1000)
    assert abs(h.stage - 400) <= DP.DEPTH_TOL_STEPS and h.core.pos_steps == 400


def test_sr2_step_loss_detected_on_the_next_move():
    h = ready()
    h.do("step_loss", 1)
    h.do("set", ("depth", "1.0"))
    h.advance(1500)
    assert h.core.fault == FT.F_DEPTH
    h.do("step_loss", 0)
    assert h.core.clear_fault()
    assert not h.core.homed  # the stage is homed again before any drive
    h.advance(2000)
    assert h.core.homed and h.core.pos_steps == 400 and abs(h.stage - 400) <= DP.DEPTH_TOL_STEPS


def test_sr8_trigger_held_through_a_reset_needs_a_release():
    h = running()
    h.do("reboot")
    h.advance(1500)
    assert h.core.state == C.ST_READY and not h.core.running
    h.do("trigger", 0)
    h.advance(20)
    h.do("trigger", 1)
    h.advance(50)
    assert h.core.running


def test_sr5_battery_cutoff_with_hysteresis():
    h = running()
    h.do("battery", 6300)
    h.advance(C.BATT_DEBOUNCE_MS + C.BATT_FILTER_MS)
    assert not h.core.running and C.STOP_NAMES[h.core.stop_reason] == "battery"
    h.do("battery", 6600)  # above cutoff, below resume: stays blocked
    h.do("trigger", 0)
    h.advance(20)
    h.do("trigger", 1)
    h.advance(50)
    assert not h.core.running
    h.do("battery", 7000)
    h.do("trigger", 0)
    h.advance(20)
    h.do("trigger", 1)
    h.advance(50)
    assert h.core.running


def test_sr9_host_stop_latches_until_the_trigger_is_released():
    h = running()
    h.do("stop")
    h.advance(1)
    assert not h.core.running and C.STOP_NAMES[h.core.stop_reason] == "host_stop"
    h.advance(500)
    assert not h.core.running
    h.do("trigger", 0)
    h.advance(20)
    h.do("trigger", 1)
    h.advance(50)
    assert h.core.running


def test_core_tick_survives_the_ticks_wrap_and_clock_jumps():
    h = running()
    for jump in (1 << 29, 5000, 7):
        h.do("glitch", jump)
        h.advance(5)
        assert h.core.running


def _raw_imu(h, ticks, xyz):
    """Feeds raw accelerometer counts xyz(k) for `ticks` ticks."""
    h.imu_mode = "raw"  # the plant leaves h.ax/ay/az as set
    for k in range(ticks):
        h.ax, h.ay, h.az = xyz(k)
        h.advance(1)


def _jit(k):
    return (k * 5 + 3) % 7 - 3  # a live sensor's last bits


def test_sr1_implausible_magnitude_is_out_of_the_cone_and_latches():
    for g in (0.7, 1.3):
        h = running()
        _raw_imu(h, 1, lambda k, g=g: (_jit(k), -_jit(k), int(16384 * g) + _jit(k)))
        assert not h.core.running and C.STOP_NAMES[h.core.stop_reason] == "tilt"
        _raw_imu(h, FT.IMU_IMPLAUSIBLE_MS - 2, lambda k, g=g: (_jit(k), -_jit(k), int(16384 * g) + _jit(k)))
        assert h.core.fault == FT.F_NONE
        _raw_imu(h, 2, lambda k, g=g: (_jit(k), -_jit(k), int(16384 * g) + _jit(k)))
        assert FT.FAULT_NAMES[h.core.fault] == "imu_implausible"
        assert not h.core.clear_fault()  # still implausible
        _raw_imu(h, 10, lambda k: (_jit(k), -_jit(k), 16384 + _jit(k)))
        assert h.core.clear_fault()


def test_sr1_plausible_magnitudes_and_a_short_bump_do_not_latch():
    h = running()
    _raw_imu(h, 500, lambda k: (_jit(k), -_jit(k), int(16384 * (0.85 if k & 1 else 1.15)) + _jit(k)))
    assert h.core.running and h.core.fault == FT.F_NONE
    h = ready()
    _raw_imu(h, FT.IMU_IMPLAUSIBLE_MS - 1, lambda k: (_jit(k), -_jit(k), 32000 + _jit(k)))  # a bump
    _raw_imu(h, 10, lambda k: (_jit(k), -_jit(k), 16384 + _jit(k)))
    assert h.core.fault == FT.F_NONE


def test_sr1_saturated_axis_is_implausible():
    # Z stuck at full scale with X showing a real 30 deg tilt: |a| 2.07 g, and
    # the end stop itself is implausible even where the magnitude would pass
    for xyz in ((8192, 0, 32767), (0, -32768, 0), (32767, 0, 0)):
        h = running()
        _raw_imu(h, 1, lambda k, xyz=xyz: (xyz[0] + _jit(k), xyz[1], xyz[2]))
        assert not h.core.running and h.core.tilt_cdeg == 18000, xyz


def test_sr4_one_axis_stuck_while_the_others_move_latches():
    h = running()
    # Y stuck at a plausible mid value, X and Z live: inside the cone
    _raw_imu(h, FT.IMU_STUCK_MS - 2, lambda k: (_jit(k), 120, 16384 + _jit(k)))
    assert h.core.running and h.core.fault == FT.F_NONE
    _raw_imu(h, 3, lambda k: (_jit(k), 120, 16384 + _jit(k)))
    assert FT.FAULT_NAMES[h.core.fault] == "imu_implausible" and not h.core.running
    assert not h.core.clear_fault()  # still stuck
    _raw_imu(h, 10, lambda k: (_jit(k), 120 + _jit(k), 16384 + _jit(k)))
    assert h.core.clear_fault()


def test_sr3_coast_edges_of_a_pass_that_spans_the_coast_time_do_not_latch_runaway():
    # On the chip the brake follows the stop a pass later (the PWM duty
    # register takes effect at its wrap), and a flash write in the stop's
    # pass (the run's records: the drive is off) stalls the loop 45 ms and
    # more while the motor coasts unbraked. The pass after the stall spans
    # COAST_MS and carries the coast's hall edges: not "turning while
    # braked". Only the edges of a pass that began past COAST_MS count (a
    # false rate_runaway by=braked latched in two CI runs on the chip).
    h = running()
    h.period = 5  # the chip's loop pass
    h.advance(100)
    h.do("trigger", 0)
    for _ in range(20):
        h.advance(1)
        if not h.core.running:
            break  # the pass that stopped the drive
    assert not h.core.running
    h.advance(1)  # the next pass
    edges = h.hall_count
    h.do("hall", "spin")  # the coast during the stall (60 Hz)
    h.period = FT.COAST_MS - 5  # one stalled pass across the coast time
    h.advance(1)
    h.do("hall", "follow")  # braked: stopped
    h.period = 5
    assert h.hall_count - edges >= FT.COAST_EDGES, "the coast made the edges this test is about"
    h.advance(100)
    assert h.core.fault == FT.F_NONE, FT.RUNAWAY_BY[h.core.runaway_by]
    # a motor that really turns with the brake on still latches
    h.do("hall", "spin")
    h.advance(100)
    assert h.core.fault == FT.F_RATE_RUNAWAY and FT.RUNAWAY_BY[h.core.runaway_by] == "braked"
