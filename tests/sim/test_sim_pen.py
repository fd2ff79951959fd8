"""SimulatedPen end to end (DESIGN §5, SimulatedPen): the three time modes, the fault
catalogue seen by the real firmware, the watchdog model, traces and plots,
and the sim_pen fixture of the pytest plugin."""

from __future__ import annotations

import threading
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest

from host import Pen
from sim import FAULTS, SimError, SimulatedPen
from sim.pytest_plugin import SIM_PEN_ALL
from sim.trace import load


def host_call(sp: SimulatedPen, fn: Callable[[Pen], Any]) -> Any:
    """A host request while stepped time moves (the firmware only reads its
    serial line while time advances)."""
    out: dict[str, Any] = {}

    def work() -> None:
        with Pen(sp.port) as p:
            try:
                out["v"] = fn(p)
            except Exception as e:  # noqa: BLE001 - re-raised in the test thread
                out["e"] = e

    th = threading.Thread(target=work)
    th.start()
    while th.is_alive():
        sp.advance(5)
        th.join(0.001)
    if "e" in out:
        raise out["e"]
    return out.get("v")


def running_pen(sp: SimulatedPen) -> None:
    sp.advance(1500)  # homing and the tilt hold time
    sp.set_contact(True)
    sp.press_trigger()
    sp.advance(700)
    assert sp.truth()["running"] is True


# --- time modes ---


@pytest.mark.parametrize("sim_pen", SIM_PEN_ALL, indirect=True)
def test_sim_stepped_time_moves_only_in_advance(sim_pen: SimulatedPen) -> None:
    t0 = sim_pen.truth()["time_ms"]
    time.sleep(0.2)
    assert sim_pen.truth()["time_ms"] == t0
    assert sim_pen.advance(250) == t0 + 250
    assert sim_pen.truth()["time_ms"] == t0 + 250


@pytest.mark.parametrize("sim_pen", ["micropython:1.0", "cpython:20"], indirect=True)
def test_sim_real_and_faster_time_run_on_their_own(sim_pen: SimulatedPen) -> None:
    t0 = int(sim_pen.truth()["time_ms"])
    deadline = time.monotonic() + 20
    while int(sim_pen.truth()["time_ms"]) < t0 + 200:  # moves without advance()
        assert time.monotonic() < deadline, "simulated time did not move"
        time.sleep(0.02)
    t1 = sim_pen.advance(100)
    assert t1 >= t0 + 300


def test_sim_speed_can_change_while_running() -> None:
    with SimulatedPen(runtime="cpython", speed=None) as sp:
        t0 = int(sp.truth()["time_ms"])
        sp.set_speed(0)  # as fast as possible
        deadline = time.monotonic() + 20
        while int(sp.truth()["time_ms"]) < t0 + 1000:
            assert time.monotonic() < deadline
            time.sleep(0.01)
        sp.set_speed(None)
        t1 = sp.truth()["time_ms"]
        time.sleep(0.1)
        assert sp.truth()["time_ms"] == t1


# --- the fault catalogue, through the real firmware ---


@pytest.mark.parametrize(
    ("fault", "expect_fault"),
    [
        ("stall", ("stall", "overcurrent")),  # a blocked rotor's current rises as the rate loop winds up
        ("overcurrent", ("overcurrent",)),
        ("hall_lost", ("hall_lost",)),
        ("imu_lost", ("imu_lost",)),
        ("imu_frozen", ("imu_frozen",)),
    ],
)
def test_sr4_sim_injected_fault_is_latched_by_the_firmware(fault: str, expect_fault: tuple[str, ...]) -> None:
    with SimulatedPen(runtime="cpython", speed=None) as sp:
        running_pen(sp)
        sp.inject(fault)
        assert fault in sp.truth()["faults"]  # type: ignore[operator]
        sp.advance(600)
        t = sp.truth()
        assert t["motor_duty"] == 0.0 and t["brake"] is True
        st = host_call(sp, lambda p: p.status())
        assert st["state"] == "fault" and st["fault"] in expect_fault
        sp.clear(fault)
        assert fault not in sp.truth()["faults"]  # type: ignore[operator]


@pytest.mark.parametrize(
    ("fault", "block"),
    [("battery_sag", "battery"), ("cartridge_pulled", "cartridge")],
)
def test_sr5_sr6_sim_battery_sag_and_cartridge_pulled_stop_the_drive(fault: str, block: str) -> None:
    with SimulatedPen(runtime="cpython", speed=None) as sp:
        running_pen(sp)
        sp.inject(fault)
        sp.advance(200)
        assert sp.truth()["running"] is False
        st = host_call(sp, lambda p: p.status())
        assert block in str(st["block"]) and st["stop"] == block


def test_sr8_sim_loop_hang_resets_through_the_watchdog_and_boots_safe() -> None:
    with SimulatedPen(runtime="cpython", speed=None) as sp:
        running_pen(sp)
        sp.inject("loop_hang")
        sp.advance(99)
        t = sp.truth()
        assert t["resets"] == 0 and t["motor_duty"] > 0  # outputs frozen as they were
        sp.advance(50)
        t = sp.truth()
        assert t["resets"] == 1 and "loop_hang" not in t["faults"]  # type: ignore[operator]
        sp.advance(1500)  # trigger still held: the pen stays off after the reset
        assert sp.truth()["running"] is False
        sp.release_trigger()
        sp.advance(50)
        sp.press_trigger()
        sp.advance(700)
        assert sp.truth()["running"] is True


def test_sr2_sim_step_loss_fault_loses_depth_stage_steps() -> None:
    with SimulatedPen(runtime="cpython", speed=None) as sp:
        sp.inject("step_loss")
        sp.advance(1500)
        host_call(sp, lambda p: p.set("depth", "1.5"))
        sp.advance(1000)
        t = sp.truth()
        assert int(t["lost_steps"]) > 100  # type: ignore[arg-type]
        assert float(t["needle_depth_mm"]) < 1.4  # type: ignore[arg-type]


def test_sr9_sim_serial_noise_does_not_crash_the_firmware() -> None:
    with SimulatedPen(runtime="cpython", speed=None) as sp:
        sp.inject("serial_noise")
        sp.advance(3000)
        sp.clear("serial_noise")
        info = host_call(sp, lambda p: p.info())
        assert info["board"] == "sim-rp2040"
        assert sp.truth()["resets"] == 0


def test_sim_unknown_fault_and_world_command_are_refused() -> None:
    with SimulatedPen(runtime="cpython", speed=None) as sp:
        with pytest.raises(ValueError, match="unknown fault"):
            sp.inject("gremlins")
        with pytest.raises(SimError, match="unknown"):
            sp._send("levitate 1")
        with pytest.raises(SimError, match="0..1"):
            sp.set_battery(1.5)
        assert sorted(FAULTS) == sorted(set(FAULTS)) and len(FAULTS) == 15


# --- traces and plots ---


def test_sim_trace_records_world_and_firmware_and_plots(tmp_path: Path) -> None:
    csv = tmp_path / "run.csv"
    with SimulatedPen(runtime="cpython", speed=None, trace=csv, trace_interval_ms=5) as sp:
        running_pen(sp)
        sp.set_tilt(25)
        sp.advance(100)
        png = sp.plot(tmp_path / "run.png")
    cols = load(csv)
    assert list(cols)[:4] == ["t_ms", "rate_set_hz", "rate_cmd_hz", "rate_meas_hz"]
    for name in ("stroke_hz", "depth_mm", "tilt_deg", "duty", "current_ma", "state"):
        assert name in cols
    t = cols["t_ms"]
    assert all(float(b) - float(a) == 5 for a, b in zip(t, t[1:], strict=False))  # type: ignore[arg-type]
    assert "running" in cols["state"] and cols["state"][-1] != "running"
    assert max(float(x) for x in cols["rate_meas_hz"]) > 95  # type: ignore[arg-type]
    assert max(float(x) for x in cols["tilt_deg"]) == 25.0  # type: ignore[arg-type]
    assert Path(png).read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"


# --- the pytest plugin ---


@pytest.mark.sim_pen(runtime="cpython", speed=None, seed=7)
def test_sim_pen_fixture_takes_its_arguments_from_the_marker(sim_pen: SimulatedPen) -> None:
    assert sim_pen.runtime == "cpython" and sim_pen.speed is None and sim_pen.seed == 7
    sim_pen.advance(1500)
    sim_pen.press_trigger()
    sim_pen.advance(600)
    assert sim_pen.truth()["running"] is True
    sim_pen.set_tilt(30)
    sim_pen.advance(2)
    assert sim_pen.truth()["motor_duty"] == 0.0  # SR1: off within 2 control ticks


def test_sim_pen_fixture_in_a_pen_makers_own_test_file(tmp_path: Path) -> None:
    import subprocess
    import sys

    (tmp_path / "test_maker.py").write_text(
        "import pytest\n"
        "from sim.pytest_plugin import SIM_PEN_ALL\n"
        "@pytest.mark.parametrize('sim_pen', SIM_PEN_ALL, indirect=True)\n"
        "def test_pen_runs(sim_pen):\n"
        "    sim_pen.advance(1500); sim_pen.press_trigger(); sim_pen.advance(800)\n"
        "    assert abs(sim_pen.truth()['stroke_hz'] - 100) < 2\n"
        "def test_default_is_micropython_stepped(sim_pen):\n"
        "    assert sim_pen.runtime == 'micropython' and sim_pen.speed is None\n"
    )
    r = subprocess.run(
        [
            sys.executable,
            "-m",
            "pytest",
            "-q",
            "-p",
            "no:cacheprovider",
            "--sim-trace",
            str(tmp_path / "tr"),
            str(tmp_path),
        ],
        capture_output=True,
        text=True,
        timeout=120,
        cwd=tmp_path,
    )
    assert r.returncode == 0, r.stdout + r.stderr
    assert "3 passed" in r.stdout
    assert len(list((tmp_path / "tr").glob("*.csv"))) == 3
    assert len(list((tmp_path / "tr").glob("*.png"))) == 2  # the test that let no time pass has no plot


# --- the sim board under MicroPython: no heap allocation on the firmware's path ---

ALLOC_SCRIPT = """
import sys, gc, micropython
sys.argv[0] = "runner.py"
sys.path.insert(0, "."); sys.path.insert(0, "../../firmware")
from runner import Sim
from simboard import SimBoard
from pen.runtime import Firmware
sim = Sim(None, 0, 1)
fw = Firmware(SimBoard(sim)); sim.fw = fw
b = fw.board; core = fw.core
for k in range(1500): fw.step()
sim.world.contact = True; sim.world.trigger = True
for k in range(800): fw.step()
fails = 0
for k in range(300):
    sim.tick(b)
    gc.collect()
    micropython.heap_lock()
    try:
        b.read_inputs(core.inp)
        core.tick()
        b.apply(core.out)
        b.feed_watchdog()
    except MemoryError:
        fails += 1
    micropython.heap_unlock()
print("RESULT", fails, core.running, sim.world.strokes)
"""


def test_sim_board_sense_and_act_path_allocates_nothing_under_micropython() -> None:
    """The sim board hands the firmware its inputs and takes its outputs
    without heap allocation (heap_lock raises MemoryError on any), so a
    firmware allocation test may run on the simulated board."""
    import subprocess

    from sim.simulated_pen import DEVICE_DIR, micropython_command

    r = subprocess.run(
        [*micropython_command(), "-c", ALLOC_SCRIPT],
        cwd=DEVICE_DIR,
        capture_output=True,
        text=True,
        timeout=120,
        stdin=subprocess.DEVNULL,
    )
    words = [ln for ln in r.stdout.splitlines() if ln.startswith("RESULT")]
    assert words, r.stdout + r.stderr
    _, fails, running, strokes = words[0].split()
    assert fails == "0" and running == "1" and int(strokes) > 50
