# The start rule (DESIGN §4): only a trigger press that BEGINS while every
# other condition holds starts the drive. A cartridge going in, the pen
# coming upright, a fault cleared, homing finishing or a timer expiring never
# start it. Driven through the Harness (its reference model checks every
# tick); plain asserts, so tests/firmware/mprun.py runs them under MicroPython.
from test_core_replay import Harness


def _ready(stage=100):
    h = Harness(stage_steps=stage)
    h.advance(1000)
    assert h.core.state == 3, h.core.state  # ready
    return h


def _fresh_press_starts(h):
    h.do("trigger", 0)
    h.advance(30)
    h.do("trigger", 1)
    h.advance(30)
    assert h.core.running


def test_sr6_start_rule_cartridge_going_in_does_not_start():
    h = _ready()
    h.do("cartridge", 0)
    h.advance(50)
    h.do("trigger", 1)  # pressed while the cartridge is out
    h.advance(50)
    h.do("trigger", 0)  # released and pressed again, still out
    h.advance(30)
    h.do("trigger", 1)
    h.advance(30)
    h.do("cartridge", 1)
    h.advance(500)
    assert not h.core.running
    assert h.core.block & 512  # not_armed: the press is spent
    _fresh_press_starts(h)


def test_sr1_start_rule_coming_upright_does_not_start():
    h = _ready()
    h.do("tilt", (30.0, 45.0))
    h.advance(20)
    h.do("trigger", 1)  # pressed while out of the cone
    h.advance(50)
    h.do("tilt", (0.0, 0.0))
    h.advance(800)  # upright, held longer than the hold time
    assert not h.core.running
    _fresh_press_starts(h)


def test_sr4_start_rule_clear_fault_does_not_start():
    h = _ready()
    h.do("current", 3000)  # over-current latches even with the drive off
    h.advance(10)
    assert h.core.fault == 1
    h.do("trigger", 1)  # released and pressed during the fault
    h.advance(30)
    h.do("trigger", 0)
    h.advance(30)
    h.do("trigger", 1)
    h.advance(30)
    h.do("current", 0)
    h.advance(5)
    h.do("clear")
    assert h.core.fault == 0
    h.advance(500)
    assert not h.core.running
    _fresh_press_starts(h)


def _last_step_tick(stage):
    h = Harness(stage_steps=stage)
    last = 0
    for t in range(1500):
        h.tick()
        if h.core.out.steps:
            last = t
    return last


def test_sr2_start_rule_press_during_homing_never_starts():
    # presses whose debounced edge falls before, on and right after the
    # stage's last step: none starts the drive, and the needles never run in
    # a tick in which the stage steps (the Harness checks every tick)
    last = _last_step_tick(120)
    for off in range(-30, 1):
        h = Harness(stage_steps=120)
        h.advance(last + off)
        h.do("trigger", 1)
        h.advance(600)
        assert not h.core.running, off
    _fresh_press_starts(h)


def test_sr7_start_rule_new_session_does_not_start():
    h = _ready()
    h.do("poke", ("max_session_min", 1))
    h.do("trigger", 1)
    h.advance(61000)
    assert not h.core.running
    assert h.core.block & 64  # session_time
    h.do("new_session")  # trigger still held: the timer restarting is no press
    h.advance(500)
    assert not h.core.running
    _fresh_press_starts(h)
