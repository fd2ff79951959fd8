# The replies a running pen must give (hb, ping, `?` and status) are built
# in a preallocated buffer: served while the needles run they allocate
# nothing (DESIGN §6: a collection while running takes ~12 ms on the chip
# and trips the 6 ms dead-man), with the same bytes on the wire as the
# replies built from str before (docs/protocol.md is public). Plain
# asserts: pytest and MicroPython (tests/firmware/mprun.py).
import hashlib
from binascii import hexlify

from pen import core as C
from pen.core import Config, Core
from pen.frame import crc16, hex4, put_int, put_text
from pen.protocol import Protocol
from test_protocol_commands import pen_with_modules
from test_protocol_service_alloc import Sink as ServiceSink


def framed(rid, body):
    head = ("@%s %s" % (rid, body)).encode()
    return head + b"*" + hex4(crc16(head)).encode() + b"\n"


# the requests of the comparison: typed (any case, extra spaces) and
# framed, with the arguments hb takes and some it refuses
REQUESTS = (
    b"ping\n",
    b"PING\n",
    b"  ping   extra words \n",
    b"status\n",
    b"Status \n",
    b"hb\n",
    b"hb 500\n",
    b"HB 250\r",
    b"hb 0\n",
    b"hb 99\n",
    b"hb 5001\n",
    b"hb 00300\n",
    b"hb x\n",
    b"hb 1 2\n",
    b"status now\n",
    b"?",
    framed("1", "ping"),
    framed("1", "ping"),  # a retry: the same answer
    framed("2", "status"),
    framed("2", "status"),
    framed("a-B9", "STATUS"),
    framed("12345678", "hb 300"),
    framed("12345678", "hb 300"),
    framed("x", "hb"),
    framed("x", "hb 100"),
    framed("3", "hb  5000"),
    framed("4", " ping"),
    framed("5", "hb 4999x"),
    b"@6 ping\n",
    b"@7 ping*0000\n",
    framed("8", "pin*g"),
    b"?",
)


def pen_rig(full):
    if full:
        # the status parts of the pen's other modules (persistence, security)
        proto, out = pen_with_modules()
        proto.status_puts.append(lambda b, i: put_int(b, put_text(b, i, "tx_dropped=0 rt_skipped="), proto.rt_skipped))
    else:
        out = []
        proto = Protocol(Core(Config()), out.append, "test", "SIM00001")
    core = proto.core
    core.request_stop = lambda: None
    core.remote_stop = lambda: None
    proto.service(1000)
    del out[:]
    return proto, out


def _states(core, k):
    """A few states of the core, k = 0..3: idle, running, faulted with
    every block, extreme readings."""
    if k == 0:
        return
    core.running = 1
    core.state = C.ST_RUNNING
    core.meas_mhz = 99987
    core.strokes = 123456
    core.run_ms = 61999
    core.inp.motor_ma = 412
    core.inp.battery_mv = 3987
    core.tilt_cdeg = 1234
    core.out.duty = 655
    if k >= 2:
        core.fault = 3
        core.block = (1 << len(C.BLOCK_NAMES)) - 1
        core.stop_reason = len(C.STOP_NAMES) - 1
        core.state = C.ST_FAULT
    if k >= 3:
        core.inp.motor_ma = -32768
        core.inp.battery_mv = 65535
        core.tilt_cdeg = -18000
        core.meas_mhz = 2147483
        core.strokes = 1073741823
        core.run_ms = 1073741823


def replies(full, k, defer):
    """What the pen writes for REQUESTS, one at a time, in state k; defer:
    served over passes as on the RP2040."""
    proto, out = pen_rig(full)
    _states(proto.core, k)
    proto.defer = defer
    got = []
    now = 1000
    for data in REQUESTS:
        now += 25  # past the '?' rate limit
        proto.now = now
        data = bytearray(data)
        proto.feed_from(data, len(data))
        steps = 0
        while proto.busy():
            proto.step()
            steps += 1
            assert steps < 60, data
        got.append(b"".join(out))
        del out[:]
        # what hb changed shows in the next reply; a retried status gets
        # the first answer, not today's stroke count; the budget of a run
        # is not what this compares
        proto.core.strokes += 1
        proto.run_served = 0
    return got


def transcripts():
    """(full, k, defer, the replies) of every case."""
    for full in (0, 1):
        for k in range(4):
            for defer in (0, 1):
                yield full, k, defer, replies(full, k, defer)


def digest(got):
    return hexlify(hashlib.sha256(b"|".join(got)).digest()[:8]).decode()


# digest() of each case's replies, taken from the replies built from str
# (before the allocation-free path: 7be0be8); the same on CPython and
# MicroPython, served at once and over passes
GOLDEN = {
    (0, 0): "0b840ca72168f5c6",
    (0, 1): "59e26271ef3d53d0",
    (0, 2): "1745f636a6cdd80f",
    (0, 3): "a680221bb67e817a",
    (1, 0): "90a9da42e0fa1b08",
    (1, 1): "c6cfcd6baac2013b",
    (1, 2): "27e02aef48907404",
    (1, 3): "a88acb76e07fcc7a",
}
# two of them in full (the case (1, 1): a running pen with every module)
STATUS_RUNNING = (
    b"@2 ok state=running fault=none fault_code=0 block=not_homed stop=boot depth=0.00 depth_target=0.00"
    b" rate_set=100.0 rate=99.9 tilt=12.3 tilt_ref=0.0 duty=6.5 current=412 battery=3987 run_s=61"
    b" strokes=123474 store=fresh cfg_writes=1 stored=1 boot=1 integrity=ok tx_dropped=0 rt_skipped=0*"
)


def test_sr9_replies_to_hb_ping_status_and_rt_status_are_the_bytes_of_before():
    for full, k, defer, got in transcripts():
        d = digest(got)
        if d != GOLDEN[(full, k)]:
            for line in got:
                print(line)
        assert d == GOLDEN[(full, k)], (full, k, defer, d)
        if (full, k) == (1, 1):
            assert got[18].startswith(STATUS_RUNNING) and got[19] == got[18], got[18]
            assert got[16] == b"@1 ok*1A26\n", got[16]


def _heap_lock():
    try:
        import micropython  # type: ignore[import-not-found]

        return micropython.heap_lock, micropython.heap_unlock
    except (ImportError, AttributeError):  # CPython: the bytes are checked
        return None, None


class Sink(ServiceSink):
    """The board's serial write as the runtime hands it over (write_now):
    test_protocol_service_alloc's preallocated sink, read back as bytes."""

    def take(self):
        data = bytes(self.buf[: self.n])
        self.n = 0
        return data


def _served(proto, data, lock, unlock):
    if lock is not None:
        lock()
    try:
        proto.feed_from(data, len(data))
        while proto.busy():
            proto.step()
    finally:
        if unlock is not None:
            unlock()


def running_rig():
    """A pen with every module's status part, the needles running, serving
    over passes as on the RP2040, its writes into a Sink."""
    proto, _ = pen_rig(1)
    _states(proto.core, 1)
    proto.defer = 1
    sink = Sink()
    proto.write = sink.write
    proto.write_now = 1
    return proto, sink


def test_design6_hb_ping_status_and_rt_status_while_running_allocate_nothing():
    # DESIGN §6/§7: served while the needles run, over passes as on the
    # RP2040, with every module's status part, each of these requests runs
    # under heap_lock (MicroPython: any allocation raises MemoryError), and
    # its answer is the one served without the lock
    lock, unlock = _heap_lock()
    proto, sink = running_rig()
    reqs = []
    for k in range(3):
        for body in ("hb", "hb 500", "ping", "status"):
            reqs.append(bytearray(framed("%s%d" % (body[:2], k), body)))
    reqs += [bytearray(b"status\n"), bytearray(b"hb\n"), bytearray(b"ping\n"), bytearray(b"?")]
    reqs.append(bytearray(framed("st2", "status")))  # a retry: the cached answer
    # the same requests served without the lock, on a rig in the same state
    ref, rsink = running_rig()
    now = 5000
    for data in reqs:
        now += 25  # past the '?' rate limit
        proto.now = now
        ref.now = now
        _served(ref, data, None, None)
        want = rsink.take()
        _served(proto, data, lock, unlock)
        got = sink.take()
        assert got == want, (data, got, want)
        assert got.startswith(b"@") or got.startswith(b"ok") or got.startswith(b"? "), got
        assert b" err " not in got and not got.startswith(b"err"), got
    assert proto.run_served == 0  # none of them counts in the run's budget
    if lock is not None:
        # the lock is on: a request answered from str cannot run under it
        data = bytearray(framed("g", "get rate"))
        try:
            _served(proto, data, lock, unlock)
            raised = False
        except MemoryError:
            raised = True
        assert raised, sink.take()


def test_the_longest_status_fits_its_buffer():
    # every block, the longest names, the longest id, extreme readings and
    # the longest part of each module: the reply is built, never cut, in
    # REPLY_MAX bytes (pen.frame writes stop at the buffer's end and the
    # reply is then refused: this says that never happens)
    from pen import faults as F
    from pen.protocol import REPLY_MAX, STATUS_PART_MAX

    proto, out = pen_rig(1)
    c = proto.core
    _states(c, 3)
    names = (C.STATE_NAMES, F.FAULT_NAMES, C.STOP_NAMES)
    longest = [max(range(len(t)), key=lambda k, t=t: len(t[k])) for t in names]
    c.state, c.fault, c.stop_reason = longest
    c.inp.motor_ma = -1073741824
    c.strokes = 1073741823
    # the modules' parts at their longest: at most STATUS_PART_MAX each
    b = bytearray(STATUS_PART_MAX + 1)
    for put in proto.status_puts:
        assert put(b, 0) <= STATUS_PART_MAX
    proto.defer = 1
    proto.feed_from(bytearray(framed("12345678", "status")), len(framed("12345678", "status")))
    while proto.busy():
        proto.step()
    reply = b"".join(out)
    core_len = len(reply) - sum(put(b, 0) + 1 for put in proto.status_puts)
    worst = core_len + len(proto.status_puts) * (STATUS_PART_MAX + 1)
    print("longest status: %d B, with every part at its longest %d B; REPLY_MAX %d" % (len(reply), worst, REPLY_MAX))
    assert reply.startswith(b"@12345678 ok state=") and b"internal" not in reply, reply
    assert worst <= REPLY_MAX, worst
