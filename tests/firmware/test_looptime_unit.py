# The loop's own stopwatch (pen/looptime.py, DESIGN §7): the figures a pen
# maker reads from a real Pico (`penctl loop`, `make bench PORT=...`). Plain
# asserts: runs under pytest and MicroPython (tests/firmware/mprun.py).
from pen.compat import TICKS_MASK
from pen.core import Config, Core
from pen.errors import PenError
from pen.looptime import WINDOW, LoopTime, register
from pen.protocol import Protocol, _drain


class Clock:
    """A microsecond clock that moves only when told, wrapping like ticks_us."""

    def __init__(self, t=TICKS_MASK - 2000):
        self.t = t  # starts close to the wrap

    def __call__(self):
        return self.t

    def at(self, us):
        self.t = (self.t + us) & TICKS_MASK
        return self.t


def _pass(lt, clock, before_tick, tick, after_tick):
    """One pass: its busy part = before_tick + tick + after_tick us."""
    t0 = clock()
    t1 = clock.at(before_tick)
    t2 = clock.at(tick)
    clock.at(after_tick)
    lt.record(t0, t1, t2)
    clock.at(5000)  # the wait for the next period is not busy


def _figures(lt):
    return dict(x.split("=") for x in lt.words().split())


def test_design7_stopwatch_times_busy_part_and_tick_across_the_wrap():
    clock = Clock()
    lt = LoopTime(5000, clock)
    lt.reset()  # the pass that resets is not timed
    _pass(lt, clock, 100, 100, 100)
    for busy in (1000, 3000, 2000):
        _pass(lt, clock, 500, 1000, busy - 1500)
    f = _figures(lt)
    assert f == {
        "period_us": "5000",
        "passes": "3",
        "busy_mean_us": "2000",
        "busy_max_us": "3000",
        "tick_mean_us": "1000",
        "tick_max_us": "1000",
        "overruns": "0",
    }, f


def test_design7_stopwatch_counts_passes_longer_than_the_period():
    clock = Clock(0)
    lt = LoopTime(5000, clock)
    lt.skip = 0
    _pass(lt, clock, 1000, 1000, 3001)  # 5001 us
    _pass(lt, clock, 1000, 1000, 3000)  # exactly the period: not over
    f = _figures(lt)
    assert f["overruns"] == "1" and f["busy_max_us"] == "5001", f


def test_design7_stopwatch_sums_stay_small_over_a_long_session():
    # 25 minutes at a 5 ms period is 300,000 passes: the sums are halved
    # every WINDOW passes, so they never outgrow a small int on the RP2040
    clock = Clock(0)
    lt = LoopTime(5000, clock)
    lt.skip = 0
    for _ in range(WINDOW + 10):
        _pass(lt, clock, 1000, 1000, 2000)
    f = _figures(lt)
    assert f["passes"] == str(WINDOW + 10) and f["busy_mean_us"] == "4000" and f["tick_mean_us"] == "1000", f
    assert lt.n <= WINDOW and lt.busy_sum < (1 << 29), (lt.n, lt.busy_sum)


def test_design7_loop_command_reads_and_resets_and_refuses_other_words():
    clock = Clock(0)
    lt = LoopTime(5000, clock)
    p = Protocol(Core(Config()), lambda data: None, "b", "s")
    register(p, lt)
    cmd = p.commands["loop"][0]

    def handler(args):
        # the reply is built in steps (served while the needles run): run them
        return _drain(cmd(args))

    lt.skip = 0
    _pass(lt, clock, 1000, 1000, 1000)
    assert "passes=1 " in handler([])
    assert "passes=0 " in handler(["reset"])
    _pass(lt, clock, 1000, 1000, 1000)  # the resetting pass: not timed
    _pass(lt, clock, 1000, 1000, 1000)
    assert "passes=1 " in handler([])
    for bad in (["now"], ["reset", "x"]):
        try:
            handler(bad)
        except PenError as e:
            assert e.code == 2 and "usage: loop [reset]" in e.text, e.text
        else:
            raise AssertionError("accepted %r" % (bad,))
    assert "passes=1 " in handler([])  # a refused line changes nothing
