# The loop's own stopwatch (DESIGN §7, the worst-case full loop pass;
# docs/performance.md, "The measurement to take on a real Pico"): the busy
# part of every loop pass (from the end of the wait for the period to the
# end of the pass's work) and the control tick inside it, timed with the
# board's microsecond clock. On the RP2040 that is time.ticks_us, so a
# connected Pico reports its own silicon's figures (`penctl loop`,
# `make bench PORT=...`); the virtual Pico's are emulated time, the
# simulator's the desktop's wall clock. Small-integer counters only:
# nothing is allocated per pass.
from pen.compat import const, micropython, ticks_diff
from pen.errors import BAD_ARGUMENTS, PenError

# passes in the means before both sums are halved, so that they stay small
# ints on the RP2040 (65536 x 5000 us < 2**30): the means then weigh the
# recent passes more, the maxima and counts stay exact
WINDOW = const(65536)


class LoopTime:
    def __init__(self, period_us, clock):
        self.period_us = period_us
        self.clock = clock  # () -> us, wrapping like ticks_us (differences via ticks_diff)
        self.reset()

    def reset(self):
        self.passes = 0  # passes timed since the last reset
        self.n = 0  # passes in the sums
        self.busy_sum = 0
        self.busy_max = 0
        self.tick_sum = 0
        self.tick_max = 0
        self.overruns = 0  # passes whose busy part was longer than the period
        # the pass that resets (it serves the `loop reset` request) is not
        # timed: the figures start with the next one
        self.skip = 1

    @micropython.native
    def record(self, t_start, t_tick, t_ticked):
        """One pass: t_start when the wait ended, t_tick / t_ticked around
        the tick (clock() values); the pass ends now."""
        busy = ticks_diff(self.clock(), t_start)
        tick = ticks_diff(t_ticked, t_tick)
        if self.skip:
            self.skip = 0
            return
        self.passes += 1
        n = self.n + 1
        if n > WINDOW:
            n = (n + 1) >> 1
            self.busy_sum >>= 1
            self.tick_sum >>= 1
        self.n = n
        self.busy_sum += busy
        self.tick_sum += tick
        if busy > self.busy_max:
            self.busy_max = busy
        if tick > self.tick_max:
            self.tick_max = tick
        if busy > self.period_us:
            self.overruns += 1

    def words(self):
        steps = self.word_steps()
        try:
            while True:
                next(steps)
        except StopIteration as e:
            return e.value

    def word_steps(self):
        """The figures as words, in two steps (`loop` is served while the
        needles run, a step per loop pass); all read at the first."""
        n = self.n or 1
        v = (self.period_us, self.passes, self.busy_sum // n, self.busy_max)
        w = (self.tick_sum // n, self.tick_max, self.overruns)
        a = "period_us=%d passes=%d busy_mean_us=%d busy_max_us=%d" % v
        yield
        return a + " tick_mean_us=%d tick_max_us=%d overruns=%d" % w


def register(proto, lt):
    """`loop`: the figures since the last `loop reset` (or boot); `loop
    reset`: start again (anyone: both only read or restart a stopwatch)."""

    def cmd_loop(args):
        if args and (len(args) > 1 or args[0] != "reset"):
            raise PenError(BAD_ARGUMENTS, "usage: loop [reset]")
        if args:
            lt.reset()
        return lt.word_steps()

    proto.register("loop", cmd_loop, usage="loop [reset]")
