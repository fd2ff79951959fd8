# Depth stage stepper (STEP/DIR/EN into a driver such as the A4988): the
# core asks for a signed number of steps each tick; this pulses them.


class Stepper:
    def __init__(self, step_pin, dir_pin, enable_pin):
        self.step = step_pin
        self.dir = dir_pin
        self.en = enable_pin
        step_pin.value(0)
        enable_pin.value(0)  # active low: energised, holds position

    def move(self, n):
        if n == 0:
            return
        if n > 0:
            self.dir.value(1)
        else:
            self.dir.value(0)
            n = -n
        s = self.step
        while n:
            s.value(1)
            s.value(0)
            n -= 1
