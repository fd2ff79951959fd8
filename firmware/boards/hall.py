# Hall sensor on the cam: one rising edge per revolution, i.e. per stroke.
# The IRQ handler only stores integers (no allocation in an IRQ).


class Hall:
    def __init__(self, pin, ticks_us, ticks_diff, trigger, hard=False):
        self.ticks_us = ticks_us
        self.ticks_diff = ticks_diff
        self.count = 0
        self.period_us = 0
        self.last_us = 0
        self.seen = 0
        if hard:
            # rp2: a hard IRQ timestamps the edge when it happens, not when
            # the scheduler gets to it (the handler allocates nothing)
            pin.irq(handler=self._edge, trigger=trigger, hard=True)
        else:
            pin.irq(handler=self._edge, trigger=trigger)

    def _edge(self, pin):
        t = self.ticks_us()
        if self.seen:
            self.period_us = self.ticks_diff(t, self.last_us)
        self.seen = 1
        self.last_us = t
        self.count = (self.count + 1) & 0xFFFF

    def read_into(self, inp):
        inp.hall_count = self.count
        inp.hall_period_us = self.period_us
        if self.seen:
            age = self.ticks_diff(self.ticks_us(), self.last_us)
            # clamp so a long idle time stays a small int on the RP2040
            inp.hall_age_us = age if age < 100000000 else 100000000
        else:
            inp.hall_age_us = 100000000
