"""Hypothesis stateful test of the safety supervisor (DESIGN §4), driving
pen.core.Core directly in CPython with random sequences of inputs, commands
and time steps. The invariants are checked at EVERY tick by the reference
model in tests/firmware/test_core_replay.py (Harness._check): the drive is off
whenever a condition of §4 fails, no depth or rate outside the layered limits
reaches an actuator, latched faults stay latched. The same harness replays
fixed-seed sequences under MicroPython (tests/firmware, run by
test_micropython_units.py)."""

from __future__ import annotations

import os
import sys
from pathlib import Path

from hypothesis import event, settings
from hypothesis import strategies as st
from hypothesis.stateful import RuleBasedStateMachine, initialize, invariant, precondition, rule

sys.path.insert(0, str(Path(__file__).resolve().parent))

import test_core_replay as H  # noqa: E402
from pen import core as C  # noqa: E402
from pen import faults as FT  # noqa: E402


class SupervisorMachine(RuleBasedStateMachine):
    h: H.Harness

    @initialize(stage=st.integers(-60, 600), upright_start=st.booleans())
    def boot(self, stage: int, upright_start: bool) -> None:
        self.h = H.Harness(stage_steps=stage)
        self.cleared = 0
        if upright_start:
            # most sequences should reach "running" to be worth anything
            self.h.do("advance", 1000)
            self.h.do("trigger", 1)
            self.h.do("advance", 300)

    @rule(n=st.sampled_from(H.ADVANCES) | st.integers(1, 60))
    def advance(self, n: int) -> None:
        self.h.do("advance", n)

    @rule(deg=st.floats(0, 40, allow_nan=False) | st.sampled_from([14.9, 15.1, 11.9, 12.1]), axis=st.floats(0, 360))
    def tilt(self, deg: float, axis: float) -> None:
        self.h.do("tilt", (deg, axis))

    @rule(v=st.integers(0, 1))
    def trigger(self, v: int) -> None:
        self.h.do("trigger", v)

    @rule(v=st.integers(0, 1))
    def cartridge(self, v: int) -> None:
        self.h.do("cartridge", v)

    @rule(mv=st.integers(4500, 8600))
    def battery(self, mv: int) -> None:
        self.h.do("battery", mv)

    @rule(mode=st.sampled_from(["ok", "lost", "frozen", "stuck", "stall"]))
    def imu(self, mode: str) -> None:
        # stuck: imu_stuck_axis; stall: imu_bus_stall (sim/device/faults.py)
        self.h.do("imu", mode)

    @rule(mode=st.sampled_from(["follow", "dead", "spin", "missed"]))
    def hall(self, mode: str) -> None:
        # missed: hall_missed_edges
        self.h.do("hall", mode)

    @rule(v=st.integers(0, 1))
    def adc_noise(self, v: int) -> None:
        self.h.do("noise", v)

    @rule(ms=st.sampled_from([1, 5]))
    def loop_period(self, ms: int) -> None:
        # the simulator's 1 ms pass or the RP2040's 5 ms (boards/pico.py)
        self.h.do("period", ms)

    @rule(ma=st.sampled_from([0, 0, 1300, 2400, 2600, 5000]))
    def current(self, ma: int) -> None:
        self.h.do("current", ma)

    @rule(v=st.integers(0, 1))
    def step_loss(self, v: int) -> None:
        self.h.do("step_loss", v)

    @rule(
        key=st.sampled_from(["depth", "rate"]),
        text=st.sampled_from(list(H.DEPTH_TEXTS + H.RATE_TEXTS))
        | st.decimals(-5, 300, places=2, allow_nan=False).map(str)
        | st.text(max_size=6),
    )
    def set_value(self, key: str, text: str) -> None:
        self.h.do("set", (key, text))

    @rule(attr=st.sampled_from(H.POKE_ATTRS), v=st.sampled_from(H.POKE_VALUES) | st.integers(-(2**20), 2**20))
    def poke(self, attr: str, v: int) -> None:
        self.h.do("poke", (attr, v))

    @rule()
    def stop(self) -> None:
        self.h.do("stop")

    @rule()
    def remote_start(self) -> None:
        self.h.do("remote_start")

    @rule()
    def remote_stop(self) -> None:
        self.h.do("remote_stop")

    @rule(technician=st.booleans())
    def clear(self, technician: bool) -> None:
        self.h.do("clear", 1 if technician else None)

    @rule()
    def capture(self) -> None:
        self.h.do("capture")

    @rule()
    def reset_ref(self) -> None:
        self.h.do("reset_ref")

    @rule()
    def new_session(self) -> None:
        self.h.do("new_session")

    @rule()
    def reboot(self) -> None:
        self.h.do("reboot")

    @rule(jump=st.sampled_from([3, 50, 5000, 1 << 29]))
    def glitch(self, jump: int) -> None:
        self.h.do("glitch", jump)

    @rule(
        cond=st.sampled_from(["cartridge", "tilt", "stuck", "stall", "battery", "fault", "homing"]),
        n=st.integers(20, 600),
    )
    def press_then_the_condition_returns(self, cond: str, n: int) -> None:
        # the start rule's hazards (SR1/SR6 fresh press, docs/safety.md): the trigger is pressed while
        # one condition fails, then the condition returns by itself (a
        # cartridge going in, the pen coming upright, a sensor recovering,
        # a fault cleared, homing ending): the model must see no start
        h = self.h
        h.do("trigger", 0)
        h.do("advance", 20)
        if cond == "cartridge":
            h.do("cartridge", 0)
        elif cond == "tilt":
            h.do("tilt", (30.0, 0.0))
        elif cond == "stuck" or cond == "stall":
            h.do("imu", cond)
        elif cond == "battery":
            h.do("battery", 6000)
        elif cond == "fault":
            h.do("imu", "lost")
        else:
            h.do("reboot")
        h.do("advance", 100)
        h.do("trigger", 1)
        h.do("advance", 30)
        if cond == "cartridge":
            h.do("cartridge", 1)
        elif cond == "tilt":
            h.do("tilt", (0.0, 0.0))
        elif cond == "battery":
            h.do("battery", 7800)
        elif cond != "homing":
            h.do("imu", "ok")
            h.do("advance", 20)
            h.do("clear", None)
        h.do("advance", n)

    @precondition(lambda self: bool(self.h.core.running))
    @rule(
        upset=st.sampled_from(
            [
                ("tilt", (30.0, 10.0)),
                ("tilt", (15.3, 200.0)),
                ("trigger", 0),
                ("cartridge", 0),
                ("battery", 6300),
                ("battery", 6250),
                ("imu", "lost"),
                ("imu", "frozen"),
                ("imu", "stuck"),
                ("imu", "stall"),
                ("current", 3000),
                ("hall", "dead"),
                ("hall", "spin"),
                ("hall", "missed"),
                ("noise", 1),
                ("poke", ("depth", 1550)),
                ("poke", ("max_session_min", 1)),
                ("stop", None),
                ("reboot", None),
            ]
        ),
        n=st.integers(1, 400),
    )
    def upset_while_running(self, upset: tuple[str, object], n: int) -> None:
        # one condition of §4 fails while the needles run: the per-tick
        # checks must see the drive go off in time
        self.h.do(upset[0], upset[1])
        self.h.do("advance", n)

    @precondition(lambda self: self.h.core.fault != FT.F_NONE)
    @rule(n=st.integers(1, 200))
    def latched_fault_outlives_its_cause(self, n: int) -> None:
        # remove every cause, let time pass: the fault must still be there
        h = self.h
        f = h.core.fault
        for name, arg in (
            ("imu", "ok"),
            ("hall", "follow"),
            ("current", 0),
            ("step_loss", 0),
            ("battery", 7800),
            ("noise", 0),
        ):
            h.do(name, arg)
        h.do("advance", n)
        assert h.core.fault == f, f"fault {f} cleared itself"

    def teardown(self) -> None:
        # shown by --hypothesis-show-statistics: most runs must really drive
        event("drive ran" if self.h.on_total else "drive never ran")
        event("a fault latched" if self.h.faults_seen else "no fault")

    @invariant()
    def state_names_consistent(self) -> None:
        c = self.h.core
        assert 0 <= c.state < len(C.STATE_NAMES)
        assert (c.state == C.ST_FAULT) == (c.fault != FT.F_NONE)
        assert (c.state == C.ST_RUNNING) == bool(c.running)


# derandomized under the ci profile (200 examples of 40 steps, ~30 s of
# CPython); the deep profile (HYPOTHESIS_PROFILE=deep, `make test-deep`)
# runs its own max_examples (2000) of 80 steps, random
DEEP = os.environ.get("HYPOTHESIS_PROFILE") == "deep"
SupervisorMachine.TestCase.settings = settings(
    max_examples=max(200, settings.default.max_examples), stateful_step_count=80 if DEEP else 40
)
test_sr_supervisor_invariants_hold_at_every_tick = SupervisorMachine.TestCase
