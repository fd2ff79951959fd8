"""The control and safety figures of DESIGN §7 that belong to the core,
measured on the virtual pen in simulated time and checked against their
targets. `pytest -s -q tests/test_core_figures.py` prints the table."""

from __future__ import annotations

from test_sr_pen import drive_on, measure_stop, start_running, wait_state

from host import Pen
from sim import SimulatedPen


def test_core_figures_meet_design_targets(runtime: str) -> None:
    rows: list[tuple[str, float, str, bool]] = []
    with SimulatedPen(runtime=runtime, speed=0) as sim, Pen(sim.port) as host:
        # depth positioning error over the whole range
        worst = 0.0
        for depth in ("0.05", "0.50", "1.00", "1.25", "1.50", "0.25"):
            host.set("depth", depth)
            wait_state(sim, host, "ready")
            worst = max(worst, abs(float(sim.truth()["needle_depth_mm"]) - float(depth)))  # type: ignore[arg-type]
        rows.append(("depth positioning error, mm", worst, "<= 0.02", worst <= 0.02))
        # steady-state rate error after skin-load steps, at 3 rates
        host.set("depth", "1.5")
        worst = 0.0
        for rate in ("40", "100", "140"):
            host.set("rate", rate)
            wait_state(sim, host, "ready")
            sim.set_contact(True)
            sim.set_load(1.0)
            sim.press_trigger()
            sim.advance(1200)
            for load in (1.5, 0.7):
                sim.set_load(load)
                sim.advance(700)
                for _ in range(5):
                    sim.advance(23)
                    hz = float(sim.truth()["stroke_hz"])  # type: ignore[arg-type]
                    worst = max(worst, abs(hz - float(rate)) / float(rate))
            sim.release_trigger()
            sim.set_contact(False)
            sim.advance(100)
        rows.append(("stroke-rate steady-state error under load steps, %", worst * 100, "<= 1", worst <= 0.01))
        # reaction times at 150 Hz
        host.set("depth", "1.0")
        start_running(sim, host, depth="1.0", rate="150")
        off, still = measure_stop(sim, lambda: sim.set_tilt(25.0))
        rows.append(("tilt violation -> drive off, ms (simulated)", off, "<= 2", off <= 2))
        rows.append(("drive off -> strokes stop and rotor < 1 Hz, ms (sim.)", still, "<= 30", still <= 30))
        # boot to ready (homing from 0.80 mm, move to 0.50 mm, tilt hold)
    with SimulatedPen(runtime=runtime, speed=None) as sim:
        # a press during homing is spent (the start rule): press, and
        # release and press again every 30 ms until the drive starts
        ready_ms = 0
        while not drive_on(sim.truth()):
            assert ready_ms < 3000, sim.truth()
            sim.release_trigger()
            sim.advance(15)  # past the 10 ms debounce
            sim.press_trigger()
            sim.advance(15)
            ready_ms += 30
        rows.append(("power-up -> first stroke allowed (homing), ms, +-30", ready_ms, "reported", True))
    print()
    for name, value, target, ok in rows:
        print(f"{name:<52} {value:8.3f}  {target:<9} {'ok' if ok else 'MISSED'}  [{runtime}]")
    assert all(ok for *_, ok in rows), rows
