"""Physics sanity of the simulated pen's world (DESIGN §2, the simulator), checked against
closed-form results of the same model: motor speed vs duty and battery
voltage, skin load, brake stopping time, stall current, battery sag, the
MPU-6050 register contents for known orientations and full-scale settings,
depth-stage step loss under overload. The world module is the one the
device process runs (MicroPython-compatible); here it runs in CPython."""

from __future__ import annotations

import math

import pytest
import world as W
from boards.mpu6050 import MPU6050
from periph import SimI2C

TICKS_SETTLE = 400  # 20 mechanical time constants (J*R/KE^2 = 20 ms)


def run(w: W.World, duty: float, ticks: int, brake: bool = False) -> None:
    for _ in range(ticks):
        w.step_motor(round(duty * 65535), brake)


def analytic_speed(duty: float, voc: float, load0: float = 0.0, load1: float = 0.0) -> float:
    """Steady state of KE*i = T_f + B*w + load0 + load1*w with
    i = (d*Voc - KE*w) / (R + d^2*R_int)."""
    d = round(duty * 65535) / 65535
    r = W.R_WINDING + d * d * W.BATT_R_INT
    return (W.KE * d * voc / r - W.T_FRICTION - load0) / (W.KE * W.KE / r + W.B_VISCOUS + load1)


@pytest.mark.parametrize("duty", [0.3, 0.6, 0.9])
@pytest.mark.parametrize("soc", [0.2, 1.0])
def test_sim_motor_steady_speed_follows_duty_and_battery_voltage(duty: float, soc: float) -> None:
    w = W.World()
    w.charge_mas = soc * W.BATT_CAPACITY_MAS
    w.step_slow()
    run(w, duty, TICKS_SETTLE)
    expect = analytic_speed(duty, w.voc)
    assert w.omega == pytest.approx(expect, rel=0.002)
    assert w.stroke_hz() == pytest.approx(expect / (2 * math.pi), rel=0.002)


def test_sim_motor_speed_rises_with_duty_and_battery() -> None:
    speeds = {}
    for soc in (0.2, 1.0):
        for duty in (0.3, 0.6):
            w = W.World()
            w.charge_mas = soc * W.BATT_CAPACITY_MAS
            w.step_slow()
            run(w, duty, TICKS_SETTLE)
            speeds[soc, duty] = w.stroke_hz()
    assert speeds[0.2, 0.3] < speeds[0.2, 0.6] and speeds[1.0, 0.3] < speeds[1.0, 0.6]
    assert speeds[0.2, 0.6] < speeds[1.0, 0.6]
    # back-EMF bound: a full battery at 60 % cannot exceed d*Voc/KE
    assert speeds[1.0, 0.6] * 2 * math.pi < 0.6 * 8.4 / W.KE


def test_sim_skin_load_slows_the_motor_deeper_and_harder_costs_more() -> None:
    def speed(contact: bool, steps: int, load: float) -> float:
        w = W.World()
        w.stage_steps = steps
        w.contact = contact
        w.load_scale = load
        run(w, 0.6, TICKS_SETTLE)
        return w.omega

    free = speed(False, 600, 1.0)
    shallow = speed(True, 200, 1.0)
    deep = speed(True, 600, 1.0)
    hard = speed(True, 600, 2.0)
    assert free > shallow > deep > hard
    load0 = W.LOAD_NM_PER_MM * 1.5
    w0 = W.World()
    assert deep == pytest.approx(analytic_speed(0.6, w0.voc, load0, load0 / W.LOAD_SPEED_REF), rel=0.002)


def test_sim_hall_edges_one_per_stroke_inside_the_tick() -> None:
    w = W.World()
    run(w, 0.6, TICKS_SETTLE)
    edges = 0
    for _ in range(1000):
        w.step_motor(round(0.6 * 65535), False)
        for k in range(w.n_edges):
            assert 0 <= w.edge_us[k] < 1000
        edges += w.n_edges
    assert abs(edges - w.stroke_hz()) <= 1


def test_sim_brake_stopping_time_matches_the_model_and_is_under_30_ms() -> None:
    w = W.World()
    run(w, 0.5, TICKS_SETTLE)
    w0 = w.omega
    ms = 0
    while w.omega > 0.0:
        w.step_motor(0, True)
        ms += 1
        assert ms < 1000
    # dw/dt = -b*w - c with b = (KE^2/R_brake + B)/J, c = T_f/J
    b = (W.KE * W.KE / W.R_BRAKE + W.B_VISCOUS) / W.J_ROTOR
    c = W.T_FRICTION / W.J_ROTOR
    t_stop_ms = math.log((w0 + c / b) / (c / b)) / b * 1000
    assert abs(ms - t_stop_ms) <= 1.5
    assert ms <= 30  # DESIGN §7: drive off -> strokes stop within 30 ms


def test_sim_coasting_without_brake_takes_longer_than_braking() -> None:
    w = W.World()
    run(w, 0.5, TICKS_SETTLE)
    ms = 0
    while w.omega > 0.0 and ms < 5000:
        w.step_motor(0, False)
        ms += 1
    assert ms > 100


@pytest.mark.parametrize("duty", [0.25, 0.5])
def test_sr4_sim_stall_draws_the_blocked_rotor_current(duty: float) -> None:
    w = W.World()
    w.set_fault("stall", True)
    run(w, duty, 50)
    d = round(duty * 65535) / 65535
    assert w.omega == 0.0 and w.n_edges == 0
    assert w.motor_a == pytest.approx(d * w.voc / (W.R_WINDING + d * d * W.BATT_R_INT), rel=1e-9)
    w.set_fault("stall", False)
    run(w, duty, 50)
    assert w.omega > 0.0


def test_sr4_sim_overcurrent_fault_adds_a_short_circuit_current() -> None:
    w = W.World()
    run(w, 0.5, TICKS_SETTLE)
    normal = w.motor_a
    w.set_fault("overcurrent", True)
    run(w, 0.5, 1)
    d = round(0.5 * 65535) / 65535
    assert w.motor_a - normal == pytest.approx(d * w.voc / W.R_SHORT, rel=0.01)
    assert w.motor_a > 2.5  # above the firmware's over-current threshold


def test_sr5_sim_battery_sags_under_load_and_discharges() -> None:
    w = W.World()
    assert w.battery_v == pytest.approx(w.voc)
    q0 = w.charge_mas
    run(w, 0.8, TICKS_SETTLE)
    sag = w.voc - w.battery_v
    assert sag == pytest.approx(w.drain_ma / 1000.0 * W.BATT_R_INT, rel=1e-9)
    assert sag > 0.01
    assert q0 > w.charge_mas
    q1 = w.charge_mas
    run(w, 0.8, 1000)  # steady state: 1 s at the steady drain
    assert q1 - w.charge_mas == pytest.approx(w.drain_ma, rel=1e-3)
    w.set_fault("battery_sag", True)
    assert w.voc == pytest.approx(W.BATT_SAG_MV / 1000.0)
    w.set_fault("battery_sag", False)
    w.charge_mas = 0.0
    w.step_slow()
    assert w.voc == pytest.approx(W.BATT_EMPTY_MV / 1000.0)


# --- MPU-6050 ---


def s16(regs: bytearray, reg: int) -> int:
    v = (regs[reg] << 8) | regs[reg + 1]
    return v - 65536 if v & 0x8000 else v


def awake_world(seed: int = 1) -> W.World:
    w = W.World(seed)
    w.imu.write(0x6B, bytes([0x01]))
    return w


def accel(w: W.World) -> tuple[int, int, int]:
    w.step_pose()
    r = w.imu.regs
    return s16(r, 0x3B), s16(r, 0x3D), s16(r, 0x3F)


def test_sim_mpu6050_identity_and_sleep_at_power_on() -> None:
    w = W.World()
    i2c = SimI2C()
    i2c.devices[0x68] = w.imu
    assert i2c.readfrom_mem(0x68, 0x75, 1) == b"\x68"
    assert i2c.readfrom_mem(0x68, 0x6B, 1)[0] & 0x40  # SLEEP after reset
    for _ in range(5):
        w.step_pose()
    assert bytes(w.imu.regs[0x3B:0x49]) == bytes(14)  # asleep: no samples
    assert i2c.scan() == [0x68]


# bound: per-axis bias + noise + hand tremor, in g
IMU_ERR_G = W.IMU_BIAS_G + W.IMU_NOISE_G + W.TREMOR_G


@pytest.mark.parametrize(
    ("tilt", "axis", "expect_g"),
    [
        (0.0, 0.0, (0.0, 0.0, 1.0)),
        (90.0, 0.0, (1.0, 0.0, 0.0)),
        (90.0, 90.0, (0.0, 1.0, 0.0)),
        (180.0, 0.0, (0.0, 0.0, -1.0)),
        (30.0, 45.0, (0.5 * math.cos(math.pi / 4), 0.5 * math.sin(math.pi / 4), math.cos(math.pi / 6))),
    ],
)
def test_sr1_sim_mpu6050_registers_for_known_orientations(
    tilt: float, axis: float, expect_g: tuple[float, ...]
) -> None:
    w = awake_world()
    w.set_tilt(tilt, axis)
    for _ in range(20):
        got = accel(w)
        for k in range(3):
            assert abs(got[k] - expect_g[k] * 16384) <= IMU_ERR_G * 16384 + 1, (k, got)


def test_sim_mpu6050_full_scale_settings() -> None:
    w = awake_world()
    w.set_tilt(0.0)
    for fs, lsb in ((0x00, 16384), (0x08, 8192), (0x10, 4096), (0x18, 2048)):
        w.imu.write(0x1C, bytes([fs]))
        az = accel(w)[2]
        assert abs(az - lsb) <= IMU_ERR_G * lsb + 1, (fs, az)
    w.sweep(100.0)  # 100 deg/s about the body y axis (tilt towards x)
    for fs, lsb in ((0x00, 131.0), (0x18, 16.4)):
        w.imu.write(0x1B, bytes([fs]))
        w.step_pose()
        gy = s16(w.imu.regs, 0x45)
        err = (W.IMU_GYRO_BIAS_DPS + W.IMU_GYRO_NOISE_DPS) * lsb + 1
        assert abs(gy - 100.0 * lsb) <= err, (fs, gy)


def test_sim_mpu6050_noise_bias_and_seed() -> None:
    a = awake_world(1)
    b = awake_world(1)
    c = awake_world(2)
    sa = [accel(a) for _ in range(300)]
    assert sa == [accel(b) for _ in range(300)]  # same seed, same samples
    sc = [accel(c) for _ in range(300)]
    assert sa != sc
    # noise: consecutive samples differ (a live MEMS sensor jitters)
    assert sum(1 for k in range(1, 300) if sa[k] != sa[k - 1]) > 290
    # bias: the mean differs from the ideal by at most the bias bound
    mean_z = sum(s[2] for s in sa) / len(sa)
    assert abs(mean_z - 16384) <= W.IMU_BIAS_G * 16384 + 5
    assert a.imu.accel_bias != c.imu.accel_bias


def test_sim_mpu6050_tilt_sweep_moves_the_accelerometer() -> None:
    w = awake_world()
    w.sweep(50.0, 20.0)  # 50 deg/s until 20 deg
    for _ in range(399):
        w.step_pose()
    assert w.tilt_rate != 0.0 and 19.0 < w.tilt_deg < 20.0
    for _ in range(10):
        w.step_pose()
    assert w.tilt_deg == 20.0 and w.tilt_rate == 0.0
    ax = accel(w)[0]
    assert abs(ax - math.sin(math.radians(20)) * 16384) <= IMU_ERR_G * 16384 + 1


def test_sr4_sim_mpu6050_lost_and_frozen_through_the_real_driver() -> None:
    from pen.core import Inputs

    w = W.World()
    i2c = SimI2C()
    i2c.devices[0x68] = w.imu
    drv = MPU6050(i2c)
    assert drv.init()
    inp = Inputs()
    w.set_tilt(90.0)
    w.step_pose()
    drv.read_into(inp)
    assert inp.imu_ok == 1 and abs(inp.ax - 16384) < 300
    w.set_fault("imu_frozen", True)
    drv.read_into(inp)
    first = (inp.ax, inp.ay, inp.az)
    for _ in range(10):
        w.step_pose()
        drv.read_into(inp)
        assert (inp.ax, inp.ay, inp.az) == first and inp.imu_ok == 1
    w.set_fault("imu_lost", True)
    drv.read_into(inp)
    assert inp.imu_ok == 0
    with pytest.raises(OSError):
        i2c.readfrom_mem(0x68, 0x75, 1)


def test_sim_mpu6050_device_reset_bit() -> None:
    w = awake_world()
    w.imu.write(0x1C, bytes([0x18]))
    w.step_pose()
    w.imu.write(0x6B, bytes([0x80]))
    assert w.imu.regs[0x6B] == 0x40 and w.imu.regs[0x1C] == 0
    assert bytes(w.imu.regs[0x3B:0x49]) == bytes(14)


# --- depth stage ---


def test_sr2_sim_stage_home_switch_and_hard_stops() -> None:
    w = W.World()
    w.stage_steps = 2
    w.step_stage(0)
    assert not w.home_closed()
    w.step_stage(0)
    assert w.home_closed()
    for _ in range(200):
        w.step_stage(0)
    assert w.stage_steps == W.STAGE_MIN_STEPS and w.lost_steps == 200 + W.STAGE_MIN_STEPS
    w.stage_steps = W.STAGE_MAX_STEPS
    w.step_stage(1)
    assert w.stage_steps == W.STAGE_MAX_STEPS


def _deeper(w: W.World, n: int) -> int:
    start = w.stage_steps
    for _ in range(n):
        w.step_stage(1)
    return w.stage_steps - start


def test_sr2_sim_stage_loses_steps_under_overload() -> None:
    w = W.World()
    w.stage_steps = 0
    w.contact = True
    w.omega = 600.0  # needles hammering the skin
    w.load_scale = 1.0  # 2 N on the stop: within the stepper's 6 N
    assert _deeper(w, 400) == 400 and w.lost_steps == 0
    w.stage_steps = 0
    w.load_scale = 5.0  # 10 N: over the pull-out force
    moved = _deeper(w, 1000)
    expect_lost = (5.0 * W.STAGE_SKIN_N - W.STAGE_PULLOUT_N) / (5.0 * W.STAGE_SKIN_N)
    assert abs((1000 - moved) / 1000 - expect_lost) < 0.06
    assert w.lost_steps == 1000 - moved
    # retracting (with the load) never loses steps; no load once lifted
    before = w.stage_steps
    for _ in range(100):
        w.step_stage(0)
    assert w.stage_steps == before - 100
    w.contact = False
    w.stage_steps = 0
    assert _deeper(w, 200) == 200


def test_sr2_sim_step_loss_fault() -> None:
    w = W.World()
    w.stage_steps = 0
    w.set_fault("step_loss", True)
    moved = _deeper(w, 1000)
    assert abs((1000 - moved) / 1000 - W.STEP_LOSS_FAULT) < 0.06
    w.set_fault("step_loss", False)
    assert _deeper(w, 100) == 100


def test_sim_fault_catalogue_matches_the_host_side() -> None:
    from sim import FAULTS

    assert tuple(FAULTS) == W.FAULT_NAMES
    w = W.World()
    with pytest.raises(ValueError, match="unknown fault"):
        w.set_fault("gremlins", True)


# --- invariants over arbitrary drive sequences (hypothesis, `ci` profile) ---

from hypothesis import given  # noqa: E402
from hypothesis import strategies as st  # noqa: E402

_segment = st.tuples(
    st.integers(0, 65535),  # PWM duty_u16
    st.booleans(),  # brake
    st.booleans(),  # skin contact
    st.floats(0.0, 3.0),  # skin load
    st.integers(1, 60),  # ticks
)


@given(st.lists(_segment, min_size=1, max_size=8), st.booleans())
def test_sim_motor_invariants_hold_for_any_drive_sequence(
    segments: list[tuple[int, bool, bool, float, int]], hall_lost: bool
) -> None:
    w = W.World()
    w.stage_steps = 600
    w.set_fault("hall_lost", hall_lost)
    edges = 0
    for duty_u16, brake, contact, load, ticks in segments:
        w.contact = contact
        w.load_scale = load
        for _ in range(ticks):
            strokes = w.strokes
            w.step_motor(duty_u16, brake)
            edges += w.n_edges
            d = 0.0 if brake else duty_u16 / 65535
            # no speed beyond the back-EMF limit of the applied voltage
            # (plus what the previous, higher duty left: bound by full battery)
            assert 0.0 <= w.omega <= W.BATT_FULL_MV / 1000.0 / W.KE
            assert 0.0 <= w.angle < 2 * math.pi
            assert 0.0 <= w.motor_a <= d * w.voc / W.R_WINDING + 1e-9
            assert w.battery_v <= w.voc + 1e-12
            assert w.n_edges == (0 if hall_lost else w.strokes - strokes)
            assert w.strokes - strokes <= 1  # < 1 turn per ms below 1000 Hz
    assert edges == (0 if hall_lost else w.strokes)
