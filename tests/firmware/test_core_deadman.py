# boards/deadman.py: the drive dead-man of the pico board (SR8), with a
# recording motor instead of machine.PWM. pytest and MicroPython.
from boards.deadman import Deadman


class RecMotor:
    def __init__(self):
        self.calls = []

    def set(self, duty, brake):
        self.calls.append((duty, brake))


def test_sr8_deadman_brakes_a_loop_stuck_with_the_drive_on():
    m = RecMotor()
    d = Deadman(m, limit_ms=6, period_ms=2)
    for _ in range(50):  # a healthy 1 kHz loop: two beats per check
        d.heartbeat(1)
        d.heartbeat(1)
        d.check()
    assert not d.tripped and m.calls == []
    d.check()  # the loop stops beating
    d.check()
    assert not d.tripped
    d.check()  # 6 ms without a tick
    assert d.tripped and m.calls == [(0, 1)]  # PWM 0 (the motor brakes at its next call)
    d.check()
    assert m.calls == [(0, 1), (0, 1)]  # a period later: the brake
    d.check()
    assert m.calls == [(0, 1), (0, 1)]  # and no more


def test_sr8_deadman_leaves_a_stalled_loop_alone_with_the_drive_off():
    # e.g. a flash write (only ever done with the drive off)
    m = RecMotor()
    d = Deadman(m, limit_ms=6, period_ms=2)
    d.heartbeat(0)
    for _ in range(20):
        d.check()
    assert not d.tripped and m.calls == []
