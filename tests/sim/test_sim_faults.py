"""The simulator's hardware-like faults and models (DESIGN §5, the
fault names): each fault does what the catalogue says, at the level a driver sees
(I2C registers and errors, hall edges, ADC counts, the serial write path,
the PWM pin), on CPython and, where cheap, inside the MicroPython
interpreter that runs the world by default. Also: the catalogue is said
once (sim/device/faults.py) and docs/simulator.md prints exactly it; the
IMU carries motor vibration and hand tremor, seeded and deterministic;
the sim clock reproduces the hall-age wrap after more than 2**29 us idle
(the 610 s idle through the firmware is in tests/system/test_sr_hw_faults.py)."""

from __future__ import annotations

import json
import math
import os
import re
import subprocess
from pathlib import Path
from typing import Any

import faults as F
import periph as P
import pytest
import world as W
from boards import mpu6050 as M
from boards.mpu6050 import ADDR, MPU6050

from sim import SimulatedPen
from sim.simulated_pen import FAULTS, micropython_command

ROOT = Path(__file__).resolve().parents[2]
DEVICE = ROOT / "sim" / "device"
NEW_FAULTS = ("imu_stuck_axis", "imu_bus_stall", "hall_missed_edges", "adc_noise", "serial_blocked")
DESIGN_FAULTS = (
    "stall",
    "overcurrent",
    "hall_lost",
    "imu_lost",
    "imu_frozen",
    "battery_sag",
    "cartridge_pulled",
    "serial_noise",
    "loop_hang",
    "step_loss",
) + NEW_FAULTS


class Inp:
    ax = ay = az = imu_ok = 0


def awake_world(seed: int = 1) -> tuple[W.World, P.SimI2C, MPU6050]:
    w = W.World(seed)
    i2c = P.SimI2C()
    i2c.devices[ADDR] = w.imu
    imu = MPU6050(i2c)
    assert imu.init()
    return w, i2c, imu


def s16(hi: int, lo: int) -> int:
    v = (hi << 8) | lo
    return v - 65536 if v & 0x8000 else v


def accel(w: W.World) -> tuple[int, int, int]:
    r = w.imu.regs
    return s16(r[0x3B], r[0x3C]), s16(r[0x3D], r[0x3E]), s16(r[0x3F], r[0x40])


def run_micropython(code: str) -> str:
    """Run `code` in the MicroPython unix port with the device path set."""
    prog = f"import sys\nsys.path.insert(0, {str(DEVICE)!r})\nsys.path.insert(0, {str(ROOT / 'firmware')!r})\n" + code
    r = subprocess.run([*micropython_command(), "-c", prog], capture_output=True, text=True, timeout=120)
    assert r.returncode == 0, r.stderr
    return r.stdout


# --- the catalogue, said once ---


def test_sim_fault_catalogue_is_one_table_used_everywhere() -> None:
    from sim.console import FAULT_HELP

    assert F.FAULT_NAMES == tuple(row[0] for row in F.CATALOGUE)
    assert tuple(FAULTS) == F.FAULT_NAMES  # SimulatedPen
    assert tuple(FAULT_HELP) == F.FAULT_NAMES  # the console
    assert set(F.FAULT_NAMES) == set(DESIGN_FAULTS) and len(F.FAULT_NAMES) == len(DESIGN_FAULTS)
    w = W.World()
    for name in F.FAULT_NAMES:  # the world knows every one of them
        w.set_fault(name, True)
        w.set_fault(name, False)
    assert not w.faults


def test_sim_fault_table_in_the_docs_is_the_catalogue() -> None:
    text = (ROOT / "docs" / "simulator.md").read_text()
    section = text.split("## Fault catalogue", 1)[1].split("\n## ", 1)[0]
    table = section.split("| fault | what the world does |", 1)[1].split("\n\n", 1)[0]
    rows = [line for line in table.splitlines() if line.startswith("| `")]
    got = [tuple(c.strip() for c in line.strip("|").split(" | ")) for line in rows]
    want = [(f"`{n}`", world, fw) for n, world, fw in F.CATALOGUE]
    assert got == want, "docs/simulator.md: paste sim.console.fault_table_markdown() into its fault catalogue"


# --- imu_stuck_axis ---


def test_sim_imu_stuck_axis_z_reads_full_scale_while_x_and_y_move() -> None:
    w, _i2c, imu = awake_world()
    w.set_tilt(30.0, 0.0)
    w.set_fault("imu_stuck_axis", True)
    inp = Inp()
    xs = set()
    for _ in range(50):
        w.step_pose()
        imu.read_into(inp)
        assert inp.imu_ok == 1 and inp.az == 32767
        xs.add(inp.ax)
        assert abs(inp.ax - 0.5 * 16384) < 0.03 * 16384  # x still sees the 30 deg tilt
    assert len(xs) > 5  # live, noisy
    # what an unguarded tilt computation makes of it: about 14 deg for 30
    tilt = math.degrees(math.atan2(math.hypot(inp.ax, inp.ay), inp.az))
    assert 12.0 < tilt < 16.0
    w.set_fault("imu_stuck_axis", False)
    w.step_pose()
    imu.read_into(inp)
    assert abs(inp.az - math.cos(math.radians(30)) * 16384) < 0.03 * 16384


# --- imu_bus_stall ---


def test_sim_imu_bus_stall_times_out_after_the_bus_timeout_and_reports_the_blocked_time() -> None:
    w = W.World()
    blocked: list[int] = []
    i2c = P.SimI2C(timeout=1000, block=blocked.append)
    i2c.devices[ADDR] = w.imu
    imu = MPU6050(i2c)
    assert imu.init() and not blocked
    w.set_fault("imu_bus_stall", True)
    buf = bytearray(6)
    with pytest.raises(OSError) as e:
        i2c.readfrom_mem_into(ADDR, 0x3B, buf)
    assert e.value.args[0] == 110  # ETIMEDOUT, as the rp2 port raises
    assert blocked == [1000]
    inp = Inp()
    imu.read_into(inp)  # the driver sees a failed read
    assert inp.imu_ok == 0 and blocked == [1000, 1000]
    with pytest.raises(OSError):
        i2c.scan()
    w.set_fault("imu_bus_stall", False)
    for _ in range(M.BACKOFF_MIN):
        imu.read_into(inp)  # the driver backs off: no bus access
        assert inp.imu_ok == 0 and i2c.timeouts == 3
    imu.read_into(inp)
    assert inp.imu_ok == 1 and i2c.timeouts == 3


@pytest.mark.parametrize("runtime", ["micropython", "cpython"])
def test_sim_imu_bus_stall_moves_the_simulated_clock_by_the_blocked_time(runtime: str) -> None:
    """The board's I2C timeout (1 ms, boards/wiring.py) moves the simulated
    clock by the blocked time; the driver (boards/mpu6050.py) backs off
    between re-inits (2, 4, ... 32 ticks), so a held bus costs about 34
    timed-out transfers in a second, not one per tick."""
    from boards.wiring import I2C_TIMEOUT_US

    with SimulatedPen(runtime=runtime, speed=None) as sp:
        sp.advance(100)
        t0 = sp.truth()
        assert t0["i2c_timeouts"] == 0
        sp.inject("imu_bus_stall")
        sp.advance(1020)
        t = sp.truth()
        assert I2C_TIMEOUT_US <= 1000
        # back-offs 2+4+...+32 = 62 ticks, then 32 each (plus the blocked
        # ms of each attempt): about 34 attempts in 1020 ms, not 1000
        assert 25 <= t["i2c_timeouts"] <= 40, t
        assert t["time_ms"] >= t0["time_ms"] + 1020


# --- hall_missed_edges ---


def test_sim_hall_missed_edges_loses_every_second_pulse() -> None:
    w = W.World()
    edges = 0
    for _ in range(400):
        w.step_motor(40000, False)
    w.set_fault("hall_missed_edges", True)
    s0 = w.strokes
    for _ in range(1000):
        w.step_motor(40000, False)
        edges += w.n_edges
    strokes = w.strokes - s0
    assert strokes > 100
    assert abs(edges - strokes / 2) <= 1 and w.hall_missed == strokes - edges
    w.set_fault("hall_missed_edges", False)
    s0, edges = w.strokes, 0
    for _ in range(200):
        w.step_motor(40000, False)
        edges += w.n_edges
    assert edges == w.strokes - s0


# --- adc_noise ---


def test_sim_adc_noise_ripple_and_one_high_outlier_every_20_ms() -> None:
    w = W.World(3)
    errs = [w.adc_noise() for _ in range(200)]
    outliers = [k for k, (mv, _ma) in enumerate(errs) if mv > W.ADC_RIPPLE_MV]
    assert len(outliers) == 10 and all(
        outliers[i + 1] - outliers[i] == W.ADC_OUTLIER_EVERY_MS for i in range(len(outliers) - 1)
    )
    for k, (mv, ma) in enumerate(errs):
        extra = (W.ADC_OUTLIER_MV, W.ADC_OUTLIER_MA) if k in outliers else (0, 0)
        assert abs(mv - extra[0]) <= W.ADC_RIPPLE_MV and abs(ma - extra[1]) <= W.ADC_RIPPLE_MA
    ripple = [mv for k, (mv, _ma) in enumerate(errs) if k not in outliers]
    assert max(ripple) - min(ripple) > W.ADC_RIPPLE_MV  # it does ripple
    w2 = W.World(3)
    assert [w2.adc_noise() for _ in range(200)] == errs  # seeded


@pytest.mark.parametrize("runtime", ["micropython", "cpython"])
def test_sim_adc_noise_reaches_the_firmware_through_the_adc_counts(runtime: str) -> None:
    with SimulatedPen(runtime=runtime, speed=None) as sp:
        sp.advance(50)
        sp.inject("adc_noise")
        reads = []
        for _ in range(40):
            sp.advance(1)
            t = sp.truth()
            reads.append(t["adc_battery_mv"] - t["battery_mv"])
        high = [d for d in reads if d > 1000]
        assert len(high) == 2, reads
        assert all(abs(d) <= W.ADC_RIPPLE_MV + 5 for d in reads if d <= 1000)
        sp.clear("adc_noise")
        sp.advance(1)
        t = sp.truth()
        assert abs(t["adc_battery_mv"] - t["battery_mv"]) <= 5


# --- serial_blocked ---


def test_sim_serial_blocked_fills_the_cdc_buffer_then_a_write_blocks_500_ms() -> None:
    sink: list[bytes] = []

    class Out:
        def write(self, data: bytes) -> int:
            sink.append(bytes(data))
            return len(data)

    blocked: list[int] = []
    cdc = P.SimCdcOut(Out(), blocked.append)
    assert cdc.write(b"x" * 10) == 10 and sink == [b"x" * 10]
    cdc.set_blocked(True)
    assert cdc.room() == P.CDC_TX_BUF
    assert cdc.write(b"y" * 200) == 200 and not blocked  # fits: no wait
    assert cdc.room() == P.CDC_TX_BUF - 200
    assert cdc.write(b"z" * 100) == P.CDC_TX_BUF - 200  # takes what fits ...
    assert blocked == [P.CDC_TX_TIMEOUT_MS * 1000]  # ... after waiting out the timeout
    assert cdc.room() == 0 and cdc.stalls == 1
    assert cdc.write(b"!") == 0 and cdc.stalls == 2  # full: every write waits
    assert len(sink) == 1  # nothing reached the host
    cdc.set_blocked(False)
    assert cdc.room() == P.CDC_TX_BUF and cdc.write(b"ok") == 2


def test_sim_serial_blocked_stalls_a_blocking_write_in_simulated_time() -> None:
    """The CDC TX model under serial_blocked: writes fill the 256-byte FIFO;
    one that does not fit takes what fits and waits 500 ms (simulated, via
    block), as MicroPython's rp2 CDC write. room() is what POLLOUT sees.
    The firmware's driver never gets there (it writes at most room()):
    tests/system/test_sr_hw_faults.py::test_sr9_blocked_serial_..."""
    import io

    blocked: list[int] = []
    cdc = P.SimCdcOut(io.BytesIO(), blocked.append)
    cdc.set_blocked(True)
    assert cdc.room() == P.CDC_TX_BUF
    assert cdc.write(b"x" * 200) == 200 and not blocked
    assert cdc.room() == P.CDC_TX_BUF - 200
    assert cdc.write(b"y" * 100) == P.CDC_TX_BUF - 200
    assert blocked == [P.CDC_TX_TIMEOUT_MS * 1000] and cdc.stalls == 1
    assert cdc.room() == 0
    cdc.set_blocked(False)
    assert cdc.room() == P.CDC_TX_BUF


@pytest.mark.parametrize("runtime", ["micropython", "cpython"])
def test_sim_serial_blocked_firmware_drops_instead_of_waiting(runtime: str) -> None:
    with SimulatedPen(runtime=runtime, speed=None) as sp:
        sp.advance(100)
        sp.inject("serial_blocked")
        os.write(sp._slave, b"?" * 10)  # status lines asked for; nobody reads them
        for _ in range(30):
            sp.advance(10)
            os.write(sp._slave, b"?")
        t = sp.truth()
        assert t["serial_stalls"] == 0 and t["resets"] == 0, t


# --- PWM double buffer: drive and brake overlap ---


def test_sim_pwm_duty_write_takes_effect_at_the_next_wrap() -> None:
    now = [1000]
    pwm = P.SimPWM(lambda: now[0])
    pwm.freq(20000)  # period 50 us, wraps at 1000 + 50k
    now[0] = 2010
    pwm.duty_u16(30000)
    assert pwm.duty_u16() == 30000 and pwm._duty == 0 and pwm._at == 2050
    assert pwm.on_us(2010, 3010) == 960
    pwm.settle(2049)
    assert pwm._duty == 0
    pwm.settle(2050)
    assert pwm._duty == 30000
    now[0] = 3000
    pwm.duty_u16(0)  # the pin still drives until 3050
    assert pwm.on_us(3000, 4000) == 50
    pwm.deinit()  # forcing the pin low acts at once
    assert pwm.on_us(3000, 4000) == 0


@pytest.mark.parametrize("runtime", ["micropython", "cpython"])
def test_sim_stop_writes_duty_0_and_brakes_a_tick_later_without_overlap(runtime: str) -> None:
    """boards/motor.py on the double-buffered PWM: a stop writes duty 0 and
    brakes at the next tick (the buffered duty has wrapped by then), so
    the model counts no overlap (an overlap is what
    test_sim_pwm_duty_write_takes_effect_at_the_next_wrap measures)."""
    with SimulatedPen(runtime=runtime, speed=None) as sp:
        sp.advance(1500)
        sp.press_trigger()
        sp.advance(400)
        assert sp.truth()["running"] and sp.truth()["shoot_through_us"] == 0
        sp.release_trigger()
        for _ in range(40):
            sp.advance(1)
            if sp.truth()["motor_duty"] == 0:
                break
        t = sp.truth()
        assert t["motor_duty"] == 0 and not t["brake"], t  # PWM 0, brake not yet
        sp.advance(1)
        t = sp.truth()
        assert t["motor_duty"] == 0 and t["brake"] and t["shoot_through_us"] == 0, t


# --- IMU: motor vibration and hand tremor ---


def _magnitudes(w: W.World, duty: int, n: int) -> list[float]:
    out = []
    for _ in range(n):
        w.step_motor(duty, False)
        w.step_pose()
        out.append(math.sqrt(sum(v * v for v in accel(w))) / 16384.0)
    return out


def test_sim_imu_sees_motor_vibration_and_tremor_within_the_plausibility_window() -> None:
    w, _i2c, _imu = awake_world(5)
    w.set_tilt(10.0, 45.0)
    idle = _magnitudes(w, 0, 512)
    fast = _magnitudes(w, 65535, 1500)[500:]  # full duty: above 150 strokes/s
    assert w.stroke_hz() > 150
    for mags in (idle, fast):
        assert 0.8 < min(mags) and max(mags) < 1.2
    spread_idle = max(idle) - min(idle)
    spread_fast = max(fast) - min(fast)
    assert spread_fast > spread_idle + W.VIB_G  # the motor shakes the pen
    # tremor: the lateral axes sway at 7.8 Hz even at rest (its amplitude
    # out of 512 samples, projected on the tremor frequency)
    xs: list[int] = []
    for _ in range(512):
        w.step_pose()
        xs.append(accel(w)[0])
    k = 2 * math.pi / W.TREMOR_PERIOD
    a = 2 / 512 * sum(x * math.sin(k * j) for j, x in enumerate(xs))
    b = 2 / 512 * sum(x * math.cos(k * j) for j, x in enumerate(xs))
    assert abs(math.hypot(a, b) - W.TREMOR_G * 16384) < 0.3 * W.TREMOR_G * 16384
    w2, _i, _m = awake_world(5)
    w2.set_tilt(10.0, 45.0)
    assert _magnitudes(w2, 0, 512) == idle  # seeded: the same pen shakes the same way


def test_sim_imu_tremor_and_vibration_are_the_same_under_micropython() -> None:
    code = """
import world as W
from periph import SimI2C
from boards.mpu6050 import MPU6050
w = W.World(7)
i2c = SimI2C()
i2c.devices[0x68] = w.imu
MPU6050(i2c).init()
w.set_tilt(12.0, 30.0)
h = 0
for k in range(700):
    w.step_motor(50000 if k > 200 else 0, False)
    w.step_pose()
    for b in w.imu.regs[0x3B:0x49]:
        h = (h * 31 + b) & 0xFFFFFFF
print(h, w.strokes)
"""
    mp = run_micropython(code).split()
    ns: dict[str, Any] = {}
    import io
    from contextlib import redirect_stdout

    buf = io.StringIO()
    with redirect_stdout(buf):
        exec(code.replace("import world as W", "W = __import__('world')"), ns)  # noqa: S102 - the same program on CPython
    assert mp == buf.getvalue().split()
    assert int(mp[1]) > 50  # the motor turned: vibration was in the samples


# --- long idle (> 10 min) ---


def test_sim_clock_reproduces_the_hall_age_wrap_after_a_long_idle() -> None:
    """The sim clock wraps ticks_us at 2**30 like the RP2040, so the real
    Hall driver on the sim board sees what the chip would: 610 s after the
    last edge, ticks_diff gives a negative age (the 2**29 us half range
    is 537 s). The end-to-end run through the firmware is
    tests/system/test_sr_hw_faults.py::test_sr3_after_a_long_idle_..."""
    import runner as R
    from boards import hall as H
    from boards.hall import Hall
    from pen.compat import ticks_diff

    clock = R.Clock()
    pin = P.SimPin(0)
    hall = Hall(pin, clock.ticks_us, ticks_diff, P.SimPin.IRQ_RISING)

    class Edge:
        hall_count = hall_period_us = hall_age_us = 0

    inp = Edge()
    for _ in range(3):
        clock.us += 10000
        pin.fire()
    hall.read_into(inp)
    assert inp.hall_period_us == 10000 and inp.hall_age_us == 0
    last = hall.last_us
    clock.us += 500_000_000  # 500 s: still inside the half range
    assert ticks_diff(clock.ticks_us(), last) == 500_000_000
    clock.us += 110_000_000  # 610 s since the edge: past 2**29 us
    assert ticks_diff(clock.ticks_us(), last) < 0  # the wrap the sim clock reproduces
    assert clock.ticks_us() < (1 << 30)
    hall.read_into(inp)  # the driver (boards/hall.py) reads it as "no edge"
    assert inp.hall_age_us == H.NO_EDGE_US and inp.hall_period_us == 0
    clock.us += 1_074_000_000 - 610_000_000  # ticks_us back round to the old edge
    hall.read_into(inp)
    assert inp.hall_age_us == H.NO_EDGE_US  # the forgotten edge never comes back


def test_sr3_a_hall_edge_between_the_drivers_reads_never_drops_the_rate() -> None:
    """The hall IRQ is hard: on the chip it can land between the driver's
    read of the clock and of the last edge. It once made a negative age,
    read as a wrapped idle: the edge and the period were dropped, the rate
    read 0 for two strokes and the loop wound the duty up (seen on the
    virtual Pico as a speed burst). An edge at any point of the read keeps
    the age >= 0, the period and the count."""
    import runner as R
    from boards.hall import Hall
    from pen.compat import ticks_diff

    class Edge:
        hall_count = hall_period_us = hall_age_us = 0

    class RacyHall(Hall):
        """The edge fires at the k-th attribute read of read_into."""

        k = -1  # -1: not armed

        def __getattribute__(self, name: str) -> object:
            k = object.__getattribute__(self, "k")
            if k >= 0:
                object.__setattr__(self, "k", k - 1)
                if k == 0:
                    clock.us += 3
                    pin.fire()
            return object.__getattribute__(self, name)

    fired = 0
    for k in range(40):
        clock = R.Clock()
        pin = P.SimPin(0)
        hall = RacyHall(pin, clock.ticks_us, ticks_diff, P.SimPin.IRQ_RISING)
        for _ in range(3):
            clock.us += 10000
            pin.fire()
        clock.us += 4000
        inp = Edge()
        object.__setattr__(hall, "k", k)
        hall.read_into(inp)
        if object.__getattribute__(hall, "k") >= 0:
            break  # read_into made fewer than k reads: every point tried
        fired += 1
        assert 0 <= inp.hall_age_us <= 4003, (k, inp.hall_age_us)
        assert inp.hall_period_us in (10000, 4003), (k, inp.hall_period_us)
        # one edge's figures: the count, its period and its age agree
        assert (inp.hall_count, inp.hall_period_us) in ((3, 10000), (4, 4003)), (k, inp.hall_count)
        hall.read_into(inp)
        assert inp.hall_count == 4 and inp.hall_period_us == 4003 and 0 <= inp.hall_age_us <= 3, k
    assert fired > 5, fired


def test_sim_truth_keeps_its_keys() -> None:
    with SimulatedPen(runtime="cpython", speed=None) as sp:
        t = sp.truth()
    for key in ("stroke_hz", "needle_depth_mm", "tilt_deg", "motor_duty", "motor_ma", "battery_mv", "running"):
        assert key in t
    for key in ("shoot_through_us", "lag_ms", "i2c_timeouts", "serial_stalls", "hall_edges_missed", "adc_battery_mv"):
        assert key in t
    json.dumps(t)
    assert re.fullmatch(r"[0-9a-f]{28}", t["imu_regs"])


def test_sim_rp2040_harness_counts_a_hard_irq_handler_that_raised_once_even_split() -> None:
    """MicroPython's line for a hard IRQ handler that raised (and is then
    disabled for good) is counted on the virtual Pico's USB output, once,
    also when it arrives split over two exchanges (tests/chip/conftest.py
    fails any chip test during which it appears)."""
    from sim.rp2040.device import IRQ_EXCEPTION_TEXT, irq_exceptions_in

    line = IRQ_EXCEPTION_TEXT + b"\r\nRuntimeError: maximum recursion depth exceeded\r\n"
    for cut in range(len(line) + 1):
        n1, tail = irq_exceptions_in(b"", b"ok\r\n" + line[:cut])
        n2, tail = irq_exceptions_in(tail, line[cut:] + b"ok\r\n")
        n3, _ = irq_exceptions_in(tail, b"ok")
        assert n1 + n2 + n3 == 1, cut
    assert irq_exceptions_in(b"", b"@1 ok state=ready\r\n")[0] == 0
