# The one place that papers over MicroPython vs CPython differences.
try:
    from micropython import const  # type: ignore[import-not-found]
except ImportError:  # CPython (simulator and tests)

    def const(expr):  # type: ignore[no-redef]
        return expr


# Time is an RP2040 ticks value: it wraps at 2**30. The core only ever takes
# differences with ticks_diff/ticks_add, so it behaves the same on the board,
# under the unix port (which wraps at 2**62) and under CPython.
TICKS_PERIOD = const(1 << 30)
TICKS_MASK = const((1 << 30) - 1)
TICKS_HALF = const(1 << 29)

_native = False
try:
    import time as _time

    _native = _time.ticks_add(0, -1) == TICKS_MASK  # type: ignore[attr-defined]
except (ImportError, AttributeError):
    pass

if _native:
    ticks_diff = _time.ticks_diff  # type: ignore[attr-defined]
    ticks_add = _time.ticks_add  # type: ignore[attr-defined]
else:

    def ticks_diff(a, b):
        # signed distance a - b on the 2**30 circle; stays within small ints
        d = (a - b) & TICKS_MASK
        if d >= TICKS_HALF:
            d -= TICKS_PERIOD
        return d

    def ticks_add(a, delta):
        return (a + delta) & TICKS_MASK


# Rarely used code (technician and key commands, log readers, config import,
# boot-only steps) lives in modules that are imported for one call and
# dropped after, so their bytecode does not stay on the heap (DESIGN §7).
# Never called from the control tick.
# The modules loaded this way; after each call every one of them is dropped
# (a lazy module may import another, e.g. pen.authx imports pen.sha).
LAZY = ("pcmds", "authx", "persistx", "pboot", "storex", "ringx", "sha", "integrity")


def lazy(name, fn, *args):
    """Calls fn(*args) of module pen.<name>, imported for this call only."""
    import sys

    mod = "pen." + name
    __import__(mod)
    try:
        return getattr(sys.modules[mod], fn)(*args)
    finally:
        for n in LAZY:
            drop(n)


def drop(name):
    """Forgets module pen.<name> so its code can be collected."""
    import sys

    import pen

    sys.modules.pop("pen." + name, None)
    if hasattr(pen, name):
        delattr(pen, name)
