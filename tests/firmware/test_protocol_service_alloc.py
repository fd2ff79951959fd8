# The protocol's service step runs once per 1 ms loop pass: when nothing is
# due it must allocate nothing (MicroPython: heap_lock makes any allocation
# raise). A due telemetry frame allocates (formatting) but a bounded amount.
import gc

from pen.core import Config, Core
from pen.protocol import Protocol

try:
    import micropython  # type: ignore[import-not-found]

    _lock = micropython.heap_lock
    _unlock = micropython.heap_unlock
except ImportError:  # CPython: count allocated blocks instead
    import sys

    _lock = None
    _unlock = None


def _rig():
    out = []
    core = Core(Config())
    p = Protocol(core, out.append, "b", "s")
    p.service(0)  # boot events
    p.service(1)
    del out[:]
    return p, out


def test_sr9_service_step_allocates_nothing_when_idle():
    p, out = _rig()
    now = 2
    for _ in range(10):  # warm up
        p.service(now)
        now += 1
    if _lock is not None:
        _lock()
        try:
            for _ in range(2000):
                p.service(now)
                now += 1
        finally:
            _unlock()
    else:
        gc.collect()
        before = sys.getallocatedblocks()
        for _ in range(2000):
            p.service(now)
            now += 1
        assert sys.getallocatedblocks() - before < 100  # no per-pass growth (2000 passes)
    assert out == []


def test_telemetry_frame_allocation_is_bounded():
    p, out = _rig()
    for b in b"tel 100\n":
        p.feed(b)
    del out[:]
    now = 2
    mem = getattr(gc, "mem_alloc", None)
    gc.collect()
    start = mem() if mem else 0
    for _ in range(1000):
        p.service(now)
        now += 1
        del out[:]
    gc.collect()
    if mem:
        assert mem() - start < 1024
    assert p.tel_seq == 100
