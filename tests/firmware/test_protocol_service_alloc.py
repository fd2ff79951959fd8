# The protocol's service step runs once per loop pass: it must allocate
# nothing on the heap, also when it sends a telemetry frame or a state,
# stop or fault event (DESIGN §6: 0 bytes per pass while running).
# MicroPython: heap_lock makes any allocation raise; CPython: the lines are
# checked byte for byte against the formatted text they replace.
import gc

from pen import core as C
from pen import faults as FT
from pen import frame as FR
from pen.core import Config, Core
from pen.frame import crc16, hex4, put_int, put_ints, put_text, seal
from pen.protocol import OUT_MAX, Protocol

try:
    import micropython  # type: ignore[import-not-found]

    _lock = micropython.heap_lock
    _unlock = micropython.heap_unlock
except ImportError:  # CPython: count allocated blocks instead
    import sys

    _lock = None
    _unlock = None


class Sink:
    """The board's serial write as the runtime hands it over: the bytes are
    taken before it returns (into a preallocated buffer: no allocation)."""

    def __init__(self, size=8192):
        self.buf = bytearray(size)
        self.n = 0

    def write(self, data):
        buf = self.buf
        n = self.n
        for i in range(len(data)):
            buf[n + i] = data[i]
        self.n = n + len(data)

    def lines(self):
        text = bytes(self.buf[: self.n]).decode()
        self.n = 0
        return [x for x in text.split("\n") if x]


def _rig(write):
    core = Core(Config())
    p = Protocol(core, write, "b", "s")
    p.service(0)  # boot events
    p.service(1)
    return p


def _checked(line):
    assert line[-5] == "*" and hex4(crc16(line[:-5].encode())) == line[-4:], line
    return line[:-5]


def test_sr9_service_step_allocates_nothing_when_idle():
    out = []
    p = _rig(out.append)
    del out[:]
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


def _passes(p, now, n, c, stop_at=-1):
    """n service passes at 1 ms; the drive starts at the first and stops
    (a fault) at stop_at: state, stop and fault events in locked passes."""
    for k in range(n):
        if k == 0:
            c.state = C.ST_RUNNING
        if k == stop_at:
            c.state = C.ST_FAULT
            c.fault = FT.F_STALL
            c.stop_reason = C.STOP_FAULT
            c.run_ms = 61234
            c.strokes = 98765
        p.service(now)
        now += 1
    return now


def test_design6_telemetry_and_events_allocate_nothing():
    sink = Sink()
    p = _rig(sink.write)
    p.write_now = 1  # as pen.runtime sets it for the board's serial write
    for b in b"tel 100\n":
        p.feed(b)
    c = p.core
    c.meas_mhz = 99990
    c.tilt_cdeg = 312
    c.inp.motor_ma = 310
    c.inp.battery_mv = 7889
    now = _passes(p, 2, 30, c)  # warm up
    sink.lines()
    c.state = C.ST_READY
    p.service(now)
    sink.lines()
    seq0 = p.tel_seq
    if _lock is not None:
        gc.collect()
        _lock()
        try:
            _passes(p, now + 1, 1000, c, 500)
        finally:
            _unlock()
    else:
        _passes(p, now + 1, 1000, c, 500)
    lines = [_checked(x) for x in sink.lines()]
    frames = [x for x in lines if x[0] == "~"]
    events = [x for x in lines if x[0] == "!"]
    assert p.tel_seq - seq0 == 100 and len(frames) == 100
    assert frames[0] == "~%d %d 0 %d 99990 %d 312 310 7889" % (
        seq0 + 1,
        C.ST_RUNNING,
        c.cfg.rate,
        c.depth_pos_um(),
    ), frames[0]
    assert events == [
        "! state running",
        "! stop reason=fault run_s=61 strokes=98765",
        "! state fault",
        "! fault stall",
    ], events


def test_unprompted_lines_are_byte_identical_to_formatted_text():
    b = bytearray(OUT_MAX)
    for v in (0, 7, -1, 10, -10, 99, 65535, 123456789, -123456789, (1 << 30) - 1, -(1 << 30)):
        n = put_int(b, 3, v)
        assert bytes(b[3:n]) == (b"%d" % v), (v, bytes(b[3:n]))
    n = put_text(b, put_text(b, 0, "! state "), C.STATE_NAMES[C.ST_RUNNING])
    n = seal(b, n)
    assert bytes(b[:n]) == b"! state running*" + hex4(crc16(b"! state running")).encode() + b"\n"
    # a frame with the extremes of every field, as '%d' formats them
    out = []
    p = _rig(out.append)
    for w in b"tel 100\n":
        p.feed(w)
    c = p.core
    c.meas_mhz = -5
    c.tilt_cdeg = 18000
    c.inp.motor_ma = 0
    c.inp.battery_mv = (1 << 30) - 1
    p.tel_seq = 65535  # wraps to 0
    del out[:]
    p.service(12)
    text = b"".join(out).decode()
    want = "~0 %d 0 %d -5 %d 18000 0 %d" % (c.state, c.cfg.rate, c.depth_pos_um(), (1 << 30) - 1)
    assert text == want + "*" + hex4(crc16(want.encode())) + "\n", text
    # a line longer than the buffer is still sent whole
    del out[:]
    p.event("x" * (OUT_MAX + 10))
    assert _checked(b"".join(out).decode()[:-1]) == "! " + "x" * (OUT_MAX + 10)


def test_a_frames_fields_written_in_one_call_are_the_fields_written_one_by_one():
    # put_ints (a telemetry frame's fields in one machine-code call on the
    # chip) writes what put_int and a space between write, also at the
    # buffer's end: what does not fit is left out, the index is the length
    vals = [0, 7, -1, 10, -10, 99, 65535, 123456789, -123456789, (1 << 30) - 1, -(1 << 30)]
    for size in (OUT_MAX, 40, 12, 11, 3):
        a = bytearray(size)
        b = bytearray(size)
        for n in (0, 1, 2, len(vals)):
            for start in (0, 1, size - 1):
                j = start
                for k in range(n):
                    if k:
                        j = put_text(b, j, b" ")
                    j = put_int(b, j, vals[k])
                i = put_ints(a, start, vals, n)
                assert (i, bytes(a)) == (j, bytes(b)), (size, n, start, i, j)
    a = bytearray(OUT_MAX)
    n = put_ints(a, 1, vals, len(vals))
    assert bytes(a[1:n]) == " ".join("%d" % v for v in vals).encode()


def test_seal_is_the_reference_seal():
    # on MicroPython seal is machine code (viper): byte for byte the
    # Python reference, for every length up to the buffer's room
    b = bytearray(OUT_MAX)
    r = bytearray(OUT_MAX)
    for n in range(OUT_MAX - 6):
        for k in range(n):
            b[k] = r[k] = (k * 37 + n) & 0xFF
        assert seal(b, n) == FR._seal_py(r, n) == n + 6
        assert b[: n + 6] == r[: n + 6], n
        assert bytes(b[n : n + 6]) == b"*" + hex4(crc16(bytes(b[:n]))).encode() + b"\n"
