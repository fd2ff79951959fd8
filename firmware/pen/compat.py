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


# MicroPython keeps an instance's attributes in a hash table that grows only
# when it is full (py/map.c hash_allocation_sizes, below), and a method
# called through an instance is first looked up, and missed, in that table:
# a miss probes slot after slot (a modulo each) until an empty one, so in a
# full table of 73 every `self.method()` probes all 73 (~35 us on the
# RP2040). keep_room(obj) adds placeholder attributes until the table has
# grown to where at most ROOM_PCT of it is used (docs/performance.md,
# "Instance tables with room"). CPython's dicts do not need it.
_MICROPYTHON = __import__("sys").implementation.name == "micropython"
_TABLE_SIZES = (0, 2, 4, 6, 8, 10, 12, 17, 23, 29, 37, 47, 59, 73, 97, 127, 167, 223, 293)
ROOM_PCT = const(85)


def table_size(n):
    """The size of an instance table that took n attributes one at a time."""
    for s in _TABLE_SIZES:
        if s >= n:
            return s
    return n


def keep_room(obj):
    if not _MICROPYTHON:  # CPython (the simulator): its dicts keep room themselves
        return
    n = len(obj.__dict__)
    k = 0
    while n * 100 > table_size(n) * ROOM_PCT:
        setattr(obj, "_room%d" % k, None)
        k += 1
        n += 1
