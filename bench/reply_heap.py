# ruff: noqa: UP031 - MicroPython code: %-formatting
# Heap bytes per request served while the needles run, on the MicroPython
# unix port (the same bytecode as the image, without the chip): the pen's
# protocol with every module's status part (tests/firmware
# test_protocol_reply_alloc.pen_rig), running, a request served over passes
# as on the RP2040 (Protocol.defer). gc.mem_alloc() before and after, no
# collection in between; and whether it runs under micropython.heap_lock().
#
#   micropython bench/reply_heap.py [N]     N of each request (default 20)
import gc
import sys

ROOT = (sys.argv[0].rsplit("/", 1)[0] if "/" in sys.argv[0] else ".") + "/.."
for _d in ("/firmware", "/sim/device", "/tests/firmware"):
    sys.path.insert(0, ROOT + _d)

import micropython  # type: ignore[import-not-found]  # noqa: E402
from pen import core as C  # noqa: E402
from test_protocol_reply_alloc import framed, pen_rig  # noqa: E402

# (name, body, framed): a framed request gets a new id each time (a
# repeated id and line is a retry, answered from the replay cache)
REQUESTS = (
    ("hb", "hb", 1),
    ("hb 500", "hb 500", 1),
    ("ping", "ping", 1),
    ("status", "status", 1),
    ("status (typed)", "status", 0),
    ("?", "?", 0),
    ("get rate", "get rate", 1),
)


def serve(proto, data):
    proto.feed_from(data, len(data))
    while proto.busy():
        proto.step()


def main():
    n = int(sys.argv[1]) if len(sys.argv) > 1 else 20
    proto, out = pen_rig(1)
    core = proto.core
    core.running = 1
    core.state = C.ST_RUNNING
    proto.defer = 1
    sink = bytearray(512)

    def write(d):
        for i in range(len(d)):
            sink[i] = d[i]

    proto.write = write
    proto.write_now = 1
    print("request          bytes/request  served under heap_lock")
    now = 2000
    for name, body, checked in REQUESTS:
        if checked:
            lines = [bytearray(framed(str(k), body)) for k in range(n + 2)]
        else:
            lines = [bytearray((body if body == "?" else body + "\n").encode())] * (n + 2)
        now += 50
        proto.now = now
        serve(proto, lines[n])  # warm up
        proto.run_served = 0
        gc.collect()
        before = gc.mem_alloc()
        for k in range(n):
            now += 50  # past the '?' rate limit
            proto.now = now
            serve(proto, lines[k])
            core.strokes += 1  # a new status each time (a retry gets the old one)
            proto.run_served = 0
        per = (gc.mem_alloc() - before) // n
        now += 50
        proto.now = now
        micropython.heap_lock()
        try:
            serve(proto, lines[n + 1])
            locked = "yes"
        except MemoryError:
            locked = "no (MemoryError)"
        finally:
            micropython.heap_unlock()
        proto.job = None
        proto.fast = 0
        proto.run_served = 0
        print("%-16s %13d  %s" % (name, per, locked))


main()
