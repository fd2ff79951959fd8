# Drive dead-man (SR8): the hardware watchdog resets a hung loop after
# 100 ms, during which the motor would keep its last duty. A periodic timer
# callback (a soft IRQ: on MicroPython it still runs while Python code spins
# in a loop) watches the loop's heartbeat; when the drive is on and no tick
# came for LIMIT_MS it switches the motor off and brakes. The board then
# resets the MCU on its next tick, so the pen boots safe (drive off, fresh
# trigger press needed). Integers only: nothing is allocated in the callback.
from pen.compat import const

LIMIT_MS = const(6)
PERIOD_MS = const(2)


class Deadman:
    def __init__(self, motor, limit_ms=LIMIT_MS, period_ms=PERIOD_MS):
        self.motor = motor
        self.limit = limit_ms
        self.period = period_ms
        self.beat = 0  # advanced by the loop once per tick
        self.seen = 0
        self.quiet_ms = 0
        self.drive_on = 0  # set by the loop with the outputs it applies
        self.tripped = 0

    def heartbeat(self, drive_on):
        self.beat = (self.beat + 1) & 0xFFFF
        self.drive_on = drive_on

    def check(self, _timer=None):
        """Timer callback, every `period` ms."""
        if self.beat != self.seen:
            self.seen = self.beat
            self.quiet_ms = 0
            return
        self.quiet_ms += self.period
        if self.quiet_ms >= self.limit and self.drive_on:
            self.motor.set(0, 1)  # PWM 0 and brake on, from the IRQ
            self.drive_on = 0
            self.tripped = 1
