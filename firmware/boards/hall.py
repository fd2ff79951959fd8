# Hall sensor on the cam: one rising edge per revolution, i.e. per stroke.
# The IRQ handler only stores integers (no allocation in an IRQ).
from pen.compat import const, micropython

# "no edge" age: ticks_us wraps at 2**30 us (about 1074 s), so ticks_diff
# gives a true age only below 2**29 us (537 s); past that it wraps negative
# and then counts up again. An age that is negative or >= AGE_WRAP_US means
# "no edge" (NO_EDGE_US): after a long idle the pen never reports a stale
# rate nor takes an edge from ten minutes ago for a running motor.
AGE_WRAP_US = const(0x20000000)  # 2**29
NO_EDGE_US = const(100000000)  # 100 s: what "no edge" reads as


def edge_age(age):
    """A ticks_diff age of the last edge, or NO_EDGE_US once it may have
    wrapped (negative, or >= 2**29 us) or is older than NO_EDGE_US."""
    if age < 0 or age >= AGE_WRAP_US or age > NO_EDGE_US:
        return NO_EDGE_US
    return age


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
            p = self.ticks_diff(t, self.last_us)
            # the first edge after a wrapped idle is no period (0: none yet)
            self.period_us = p if 0 < p < AGE_WRAP_US else 0
        self.seen = 1
        self.last_us = t
        self.count = (self.count + 1) & 0xFFFF

    @micropython.native
    def read_into(self, inp):
        # The edge IRQ can land between any two of these reads. The edge's
        # fields are taken first and the time after them, so the age is of
        # that edge and never negative; an edge that came in between (the
        # count moved) is taken again. Reading the time first made an edge
        # in between a negative age, read as a wrap: the edge and the period
        # were dropped and the rate read 0 for two strokes, and the loop
        # wound the duty up (docs/safety.md, SR3).
        n = self.count
        last = self.last_us
        per = self.period_us
        seen = self.seen
        now = self.ticks_us()
        if self.count != n:
            n = self.count
            last = self.last_us
            per = self.period_us
            seen = self.seen
            now = self.ticks_us()
        inp.hall_count = n
        if seen:
            age = edge_age(self.ticks_diff(now, last))
            if age == NO_EDGE_US and self.count == n:
                # a wrapped idle: forget the edge, so the age cannot come
                # back small when ticks_us wraps round to it (1074 s)
                self.seen = 0
                self.period_us = 0
                per = 0
            inp.hall_age_us = age
        else:
            inp.hall_age_us = NO_EDGE_US
        inp.hall_period_us = per
