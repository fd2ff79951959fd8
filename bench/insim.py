# ruff: noqa: UP031 - MicroPython code: %-formatting
# The whole virtual pen in one process, without the pty and control socket:
# the sim world, the sim board (real drivers over simulated peripherals) and
# the unchanged firmware loop (pen.runtime.Firmware). Runs under MicroPython
# and CPython. Used by `make bench` to split the simulator's time between
# the world and the firmware, and to count heap bytes per control tick with
# the full simulated board feeding the core.
#
#   micropython bench/insim.py split [MS]    where a simulated ms goes
#   micropython bench/insim.py alloc [MS]    heap bytes in core.tick, full sim
#   micropython bench/insim.py pass [MS]     heap bytes in whole loop passes
#                                            while running, telemetry at
#                                            100 Hz to a technician
import gc
import json
import sys

ROOT = (sys.argv[0].rsplit("/", 1)[0] if "/" in sys.argv[0] else ".") + "/.."
sys.path.insert(0, ROOT + "/firmware")
sys.path.insert(0, ROOT + "/sim/device")


try:
    import micropython  # type: ignore[import-not-found]
except ImportError:
    micropython = None

from wallclock import wall_diff as _diff  # noqa: E402
from wallclock import wall_us as _us  # noqa: E402

MASK = (1 << 30) - 1
MS_OFFSET = (1 << 30) - 3000
US_OFFSET = (1 << 30) - 2000000


class Clock:
    def __init__(self):
        self.us = 0

    def ticks_us(self):
        return (self.us + US_OFFSET) & MASK

    def ticks_ms(self):
        return (self.us // 1000 + MS_OFFSET) & MASK

    def ticks_diff(self, a, b):
        d = (a - b) & MASK
        return d - (1 << 30) if d >= (1 << 29) else d


class InSim:
    """What SimBoard needs from the runner's Sim, minus sockets and pacing."""

    def __init__(self, world):
        self.world = world
        self.clock = Clock()
        self.world_us = 0  # wall time spent in the world physics
        self.script = None

    def serial_read(self):
        return -1

    def serial_write(self, data):
        pass

    def feed_watchdog(self):
        pass

    def tick(self, board):
        t0 = _us()
        w = self.world
        clock = self.clock
        base = clock.us
        edges = w.step_motor(board.motor_duty(), board.brake_on(), 0.001)
        if edges:
            for f in edges:
                clock.us = base + int(f * 1000)
                board.hall_pin._v = 1
                board.hall_pin.fire()
                board.hall_pin._v = 0
        clock.us = base + 1000
        w.step_pose(0.001)
        self.world_us += _diff(_us(), t0)
        return clock.ticks_ms()


def _runner_gc_threshold():
    """The gc.threshold(N) the runner's main() sets, if any, so the
    in-process split collects garbage the way the real runner does."""
    try:
        src = open(ROOT + "/sim/device/runner.py").read()
    except OSError:
        return 0
    k = src.find("gc.threshold(")
    if k < 0:
        return 0
    k += len("gc.threshold(")
    j = k
    while j < len(src) and src[j].isdigit():
        j += 1
    return int(src[k:j]) if j > k else 0


def _runner_importable():
    """A runner whose main() is guarded by __name__ can be imported, and
    then its own Sim (Sim(None, 0, seed): no socket, as fast as possible)
    drives the world exactly as in SimulatedPen; the skeleton's runner
    starts on import, so the InSim shim above stands in for it."""
    try:
        src = open(ROOT + "/sim/device/runner.py").read()
    except OSError:
        return False
    return "\nmain()" not in src


class _Timed:
    """Wraps the runner Sim's _advance to count the world's wall time."""

    def __init__(self, sim):
        self.sim = sim
        self.real = sim._advance
        self.world_us = 0

    def __call__(self, board):
        t0 = _us()
        self.real(board)
        self.world_us += _diff(_us(), t0)


def build():
    import world as world_mod
    from pen.runtime import Firmware
    from simboard import SimBoard

    thr = _runner_gc_threshold()
    if thr and hasattr(gc, "threshold"):
        gc.threshold(thr)
    if _runner_importable():
        from runner import Sim

        sim = Sim(None, 0, 1)
        timer = _Timed(sim)
        sim._advance = timer
        fw = Firmware(SimBoard(sim))
        if hasattr(sim, "fw"):
            sim.fw = fw
        return sim, fw, timer, "runner.Sim"
    sim = InSim(world_mod.World(1))
    fw = Firmware(SimBoard(sim))
    return sim, fw, sim, "bench shim"


def _warm(fw, sim):
    """Home, then trigger and needles on the skin; running after 2 s."""
    for _ in range(1000):
        fw.step()
    sim.world.trigger = True
    sim.world.contact = True
    for _ in range(1000):
        fw.step()


def split(ms):
    sim, fw, timer, harness = build()
    core = fw.core
    real_tick = core.tick
    acc = [0]

    def timed():
        t = _us()
        real_tick()
        acc[0] += _diff(_us(), t)

    _warm(fw, sim)
    core.tick = timed
    timer.world_us = 0
    gc.collect()
    t0 = _us()
    for _ in range(ms):
        fw.step()
    total = _diff(_us(), t0)
    return {
        "harness": harness,
        "ms": ms,
        "running": core.out.duty > 0,
        "rate_hz": sim.world.stroke_hz(),
        "total_us_per_ms": total / ms,
        "world_us_per_ms": timer.world_us / ms,
        "core_tick_us_per_ms": acc[0] / ms,
        "board_and_loop_us_per_ms": (total - timer.world_us - acc[0]) / ms,
        "sim_ratio": 1000.0 * ms / total,
    }


def alloc(ms):
    res = {"ms": ms}
    if micropython is None or not hasattr(gc, "mem_alloc"):
        res["error"] = "needs MicroPython"
        return res
    sim, fw, _timer, harness = build()
    res["harness"] = harness
    core = fw.core
    real_tick = core.tick
    st = [0, 0, -1, 0]  # bytes, MemoryErrors, first error tick, ticks
    mem = gc.mem_alloc
    lock = micropython.heap_lock
    unlock = micropython.heap_unlock

    def locked():
        b = mem()
        lock()
        try:
            real_tick()
        except MemoryError:
            st[1] += 1
            if st[2] < 0:
                st[2] = st[3]
        unlock()
        st[0] += mem() - b
        st[3] += 1

    _warm(fw, sim)
    res["running_before"] = core.out.duty > 0
    core.tick = locked
    for _ in range(ms):
        fw.step()
    res["tick_bytes"] = st[0]
    res["heap_lock_errors"] = st[1]
    res["first_error_tick"] = st[2]
    res["ticks"] = st[3]
    res["running_after"] = core.out.duty > 0
    return res


class Sink:
    """The host end of the serial line in the pass probe: reads every byte
    into a preallocated ring (no allocation), keeps the last lines."""

    def __init__(self, size=4096):
        self.buf = bytearray(size)
        self.n = 0  # bytes written in all
        self.size = size

    def write(self, data):
        buf = self.buf
        size = self.size
        n = self.n
        k = len(data)
        for i in range(k):
            buf[(n + i) % size] = data[i]
        self.n = n + k
        return k

    def text(self):
        n = self.n
        size = self.size
        if n <= size:
            return bytes(self.buf[:n])
        k = n % size
        return bytes(self.buf[k:]) + bytes(self.buf[:k])


def pass_alloc(ms, trace=False, selftest=False):
    """Whole Firmware.step() passes under heap_lock while the pen runs on
    the skin with persistence (the sim flash), a technician session and
    telemetry at 100 Hz: only the world's physics (the sim's tick, outside
    the firmware) runs unlocked."""
    res = {"ms": ms}
    if micropython is None or not hasattr(gc, "mem_alloc"):
        res["error"] = "needs MicroPython"
        return res
    if not _runner_importable():
        res["error"] = "needs an importable runner.Sim"
        return res
    from flash import sim_storage
    from pen.runtime import Firmware
    from runner import Sim
    from simboard import SimBoard

    sim = Sim(None, 0, 1)
    sim.fs_root = sim_storage()
    sink = Sink()
    sim.serial.out = sink  # the firmware's serial driver writes to the host
    board = SimBoard(sim)
    # as boards/pico.py: the service halves in alternate passes, the GC policy
    board.spread_service = True
    board.gc_policy = True
    fw = Firmware(board)
    sim.fw = fw
    core = fw.core
    _warm(fw, sim)
    fw.auth.session = 1  # a technician is connected ...
    fw.auth.last_ms = core.inp.now_ms
    for b in b"tel 100\n":  # ... and streams telemetry
        fw.proto.feed(b)
    if selftest:
        fw.proto.write_now = 0  # each line handed over as a copy: must be caught
    res["selftest"] = selftest
    for _ in range(200):
        fw.step()
    res["running_before"] = core.running == 1 and core.out.duty > 0
    lock = micropython.heap_lock
    unlock = micropython.heap_unlock
    world_tick = sim.tick

    def wait_tick():
        unlock()  # the world's physics is the simulator's, not the pen's
        now = world_tick(board)
        lock()
        return now

    board.wait_tick = wait_tick
    errors = 0
    first = -1
    seq0 = fw.proto.tel_seq
    out0 = sink.n
    for k in range(ms):
        lock()
        err = None
        try:
            fw.step()
        except MemoryError as e:
            err = e
        unlock()
        if err is not None:
            errors += 1
            if first < 0:
                first = k
            if trace and errors <= 20:
                sys.print_exception(err)  # type: ignore[attr-defined]
    del board.wait_tick
    res["heap_lock_errors"] = errors
    res["first_error_pass"] = first
    res["passes"] = ms
    res["frames"] = (fw.proto.tel_seq - seq0) & 0xFFFF
    res["bytes_out"] = sink.n - out0
    res["running_after"] = core.running == 1 and core.out.duty > 0
    res["technician"] = fw.auth.session == 1
    tail = sink.text().split(b"\n")
    res["last_lines"] = [x.decode() for x in tail[-4:-1]]
    return res


def main():
    args = sys.argv[1:]
    mode = args[0] if args else "split"
    n = int(args[1]) if len(args) > 1 and args[1].isdigit() else 5000
    res = {"mode": mode, "impl": sys.implementation.name}
    if mode == "split":
        res.update(split(n))
    elif mode == "alloc":
        res.update(alloc(n))
    elif mode == "pass":
        res.update(pass_alloc(n, "trace" in args, "selftest" in args))
    print(json.dumps(res))


main()
