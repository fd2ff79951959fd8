# The one place that papers over MicroPython vs CPython differences.
try:
    from micropython import const  # type: ignore[import-not-found]
except ImportError:  # CPython (simulator and tests)

    def const(expr):  # type: ignore[no-redef]
        return expr


# `@micropython.native` on the hot integer code (docs/performance.md): the
# compiler reads the decorator by its name alone and emits armv6m machine
# code on the RP2040 (x64 on the unix port); CPython gets a no-op.
try:
    import micropython  # type: ignore[import-not-found]
except ImportError:  # CPython

    class micropython:  # type: ignore[no-redef]  # noqa: N801 - stands in for the module
        @staticmethod
        def native(f):
            return f


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
