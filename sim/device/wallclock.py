# Wall-clock microseconds for pacing and benchmarks, on MicroPython (ticks_us,
# which wraps: always take differences with wall_diff) and on CPython.
import time

try:
    wall_us = time.ticks_us  # type: ignore[attr-defined]
    wall_diff = time.ticks_diff  # type: ignore[attr-defined]
except AttributeError:  # CPython

    def wall_us():  # type: ignore[misc]
        return time.perf_counter_ns() // 1000  # pyright: ignore[reportAttributeAccessIssue]  # CPython only

    def wall_diff(a, b):  # type: ignore[misc]
        return a - b
