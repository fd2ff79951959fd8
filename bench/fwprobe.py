# ruff: noqa: UP031 - MicroPython code: %-formatting
# Firmware probe for `make bench` and the perf tests. Runs under the real
# MicroPython interpreter (unix port) and, for the parts that exist there,
# CPython. Prints one JSON object on its last line.
#
#   micropython bench/fwprobe.py alloc [TICKS]    heap bytes per control tick
#   micropython bench/fwprobe.py time [TICKS]     tick time + profile
#   micropython bench/fwprobe.py boot             heap in use after boot
#   micropython bench/fwprobe.py alloc selftest   the same with a tick that
#                                                 allocates: must be caught
#   add "native" to time the core with @micropython.native on every method
#   (a copy of pen/core.py in a scratch dir; the firmware is not changed)
import gc
import json
import sys

ROOT = (sys.argv[0].rsplit("/", 1)[0] if "/" in sys.argv[0] else ".") + "/.."
sys.path.insert(0, ROOT + "/firmware")
sys.path.insert(0, ROOT + "/sim/device")
sys.path.insert(0, ROOT + "/bench")  # feeder.py

try:
    import micropython  # type: ignore[import-not-found]
except ImportError:
    micropython = None

from wallclock import wall_diff as _diff  # noqa: E402
from wallclock import wall_us as _us  # noqa: E402

WARMUP_TICKS = 4000


def _native_core():
    """Put a copy of pen/core.py with @micropython.native on every method
    first on the path (used only to measure what native code would give)."""
    import os

    src = open(ROOT + "/firmware/pen/core.py").read()
    lines = []
    for line in src.split("\n"):
        if line.startswith("    def "):
            lines.append("    @micropython.native")
        lines.append(line)
    # one scratch dir, overwritten by each run (`make clean` removes build/)
    d = ROOT + "/build/native_probe"
    for sub in ("/build", "/build/native_probe", "/build/native_probe/pen"):
        try:
            os.mkdir(ROOT + sub)
        except OSError:
            pass
    for name in os.listdir(ROOT + "/firmware/pen"):
        if name.endswith(".py") and name != "core.py":
            open(d + "/pen/" + name, "w").write(open(ROOT + "/firmware/pen/" + name).read())
    open(d + "/pen/core.py", "w").write("import micropython\n" + "\n".join(lines))
    sys.path.insert(0, d)
    return d


def steady_core():
    from feeder import Feeder
    from pen.core import Config, Core

    core = Core(Config())
    f = Feeder(core)
    for _ in range(WARMUP_TICKS):
        f.step()
    return core, f


def probe_alloc(n, selftest=False):
    core, f = steady_core()
    res = {"ticks": n, "running_before": f.running(), "selftest": selftest}
    if selftest:
        # prove the counter can see an allocation: a tick that builds a list
        real = core.tick

        def allocating_tick():
            real()
            return [core.state, core.block]

        core.tick = allocating_tick
    if micropython is None or not hasattr(gc, "mem_alloc"):
        res["error"] = "needs MicroPython (gc.mem_alloc, micropython.heap_lock)"
        return res
    feed = f.feed
    tick = core.tick
    mem = gc.mem_alloc
    lock = micropython.heap_lock
    unlock = micropython.heap_unlock
    errors = 0
    first_error = -1
    tick_bytes = 0
    gc.collect()
    gc.disable()
    a0 = mem()
    for k in range(n):
        feed()
        b = mem()
        lock()
        try:
            tick()
        except MemoryError:
            errors += 1
            if first_error < 0:
                first_error = k
        unlock()
        tick_bytes += mem() - b
    a1 = mem()
    gc.enable()
    res["tick_bytes"] = tick_bytes
    res["loop_bytes"] = a1 - a0  # ticks plus the feeder
    res["bytes_per_tick"] = tick_bytes / n
    res["heap_lock_errors"] = errors
    res["first_error_tick"] = first_error
    res["running_after"] = f.running()
    return res


def _stats(arr, n, overhead):
    s = sorted(arr)
    return {
        "median_us": s[n // 2] - overhead,
        "p99_us": s[n * 99 // 100] - overhead,
        "max_us": s[n - 1] - overhead,
        "mean_us": sum(s) / n - overhead,
    }


def _loop_us(feed, fn, n):
    us = _us
    t0 = us()
    for _ in range(n):
        feed()
        fn()
    return _diff(us(), t0)


def _nothing():
    return None


def probe_time(n):
    import array

    core, f = steady_core()
    feed = f.feed
    tick = core.tick
    us = _us
    diff = _diff
    stamps = array.array("i", [0] * n)
    # cost of the two clock reads themselves
    for k in range(n):
        t0 = us()
        stamps[k] = diff(us(), t0)
    overhead = sorted(stamps)[n // 2]
    gc.collect()
    for k in range(n):
        feed()
        t0 = us()
        tick()
        stamps[k] = diff(us(), t0)
    res = {"ticks": n, "overhead_us": overhead, "running": f.running()}
    res.update(_stats(stamps, n, overhead))
    # the mean without clock-read granularity: n ticks in one stretch,
    # less the same loop with an empty call in place of the tick
    gc.collect()
    t_tick = _loop_us(feed, tick, n)
    t_empty = _loop_us(feed, _nothing, n)
    res["batch_mean_us"] = (t_tick - t_empty) / n
    res["running_after"] = f.running()
    res["profile_us"] = profile(core, f, n)
    res["running_after_profile"] = f.running()
    return res


def profile(core, f, n):
    """Mean time of each part of the tick in the steady state, from n calls
    in one stretch (each after a fresh feed; best of 3 stretches) less the
    same loop with an empty call. The parts are the core's own methods called with the
    arguments tick() passes them; parts a newer core lacks are skipped."""
    i = core.inp
    o = core.out
    cfg = core.cfg
    parts = []

    def add(name, fn):
        parts.append((name, fn))

    m1 = getattr(core, "_debounce", None)
    if m1:
        add("_debounce", lambda: m1(i, 1))
    # one module per safety concern (pen.tilt, pen.faults, pen.depth, pen.drive)
    try:
        from pen import depth as D
        from pen import drive as V
        from pen import faults as F
        from pen import tilt as T

        add("tilt.update", lambda: T.update(core, i, cfg, 1, 1))
        add("faults.imu_health", lambda: F.imu_health(core, i, 1))
        add("depth.update", lambda: D.update(core, i, o, cfg, 1))
        add("drive.update", lambda: V.update(core, i, o, cfg, 1))
        add("faults.detect", lambda: F.detect(core, i, 1))
    except ImportError:
        pass
    m2 = getattr(core, "_tilt", None)
    if m2:
        add("_tilt", lambda: m2(i, cfg, 1))
    m3 = getattr(core, "_battery", None)
    if m3:
        add("_battery", lambda: m3(i, 1))
    m4 = getattr(core, "_imu_health", None)
    if m4:
        add("_imu_health", lambda: m4(i))
    m5 = getattr(core, "_depth", None)
    if m5:
        add("_depth", lambda: m5(i, o, cfg))
    m6 = getattr(core, "_drive", None)
    if m6:
        add("_drive", lambda: m6(i, o, cfg, 1))
    m7 = getattr(core, "_faults", None)
    if m7:
        add("_faults", lambda: m7(i, o, 1))
    try:
        from pen.tilt import cos_to_cdeg, isqrt

        add("tilt.isqrt (in _tilt)", lambda: isqrt(4100 * 4100 + 3, 4100))
        add("tilt.cos_to_cdeg (in _tilt)", lambda: cos_to_cdeg(32000))
    except ImportError:
        pass
    add("whole tick()", core.tick)
    feed = f.feed
    empty = _nothing
    gc.collect()
    base = _best_loop_us(feed, empty, n)
    # a list of [name, us] pairs keeps the order (MicroPython dicts do not)
    out = [["call overhead", base / n]]
    for name, fn in parts:
        try:
            out.append([name, (_best_loop_us(feed, fn, n) - base) / n])
        except TypeError:
            # a newer core changed this method's arguments: not profiled
            out.append([name, None])
    return out


def _best_loop_us(feed, fn, n, repeats=3):
    best = 0
    for k in range(repeats):
        t = _loop_us(feed, fn, n)
        if k == 0 or t < best:
            best = t
    return best


class _Regs:
    """The MPU-6050 registers the driver reads at boot."""

    present = True

    def __init__(self):
        self.regs = bytearray(128)
        self.regs[0x75] = 0x68
        self.regs[0x40] = 0x40

    def read(self, reg, n):
        return self.regs[reg : reg + n]

    def read_into(self, reg, buf):
        # the device interface of sim/device/periph.SimI2C
        for k in range(len(buf)):
            buf[k] = self.regs[reg + k]

    def write(self, reg, data):
        for k in range(len(data)):
            self.regs[reg + k] = data[k]


MODULES = (
    "pen.compat",
    "pen.errors",
    "pen.limits",
    "pen.tilt",
    "pen.version",
    "pen.faults",
    "pen.depth",
    "pen.drive",
    "pen.core",
    "pen.frame",
    "pen.protocol",
    "pen.store",
    "pen.eventlog",
    "pen.sessions",
    "pen.persist",
    "pen.sha",
    "pen.auth",
    "pen.integrity",
    "pen.runtime",
    "boards.analog",
    "boards.hall",
    "boards.motor",
    "boards.mpu6050",
    "boards.stepper",
    "boards.stdio_serial",
)


def probe_boot():
    """Heap in use by the firmware after boot: modules imported and the
    Firmware object built on a board of real drivers over simulated
    peripherals (the peripherals are imported before the baseline)."""
    res = {}
    if not hasattr(gc, "mem_alloc"):
        res["error"] = "needs MicroPython (gc.mem_alloc)"
        return res
    from periph import SimADC, SimI2C, SimPin, SimPWM

    # the pen's storage: a directory on the host's disk through pen.store's
    # FileOps, the code path of the board's littlefs (boards/pico.py sets
    # fs_root). Stored records then live on the disk, as they live in flash
    # on the board, not on the heap (a dict of bytes, as sim/device/flash.py
    # MemFileOps keeps them, would count the "flash" as firmware heap).
    fs_root = _scratch_dir()
    i2c = SimI2C()
    i2c.devices[0x68] = _Regs()
    periph = (SimPWM(), SimPin(1), SimPin(0), SimPin(0), SimPin(0), SimPin(1), SimADC(), SimADC())
    import array

    sizes = array.array("i", [0] * (len(MODULES) + 1))  # before the baseline
    gc.collect()
    base = gc.mem_alloc()
    free0 = gc.mem_free()
    # module by module: the bytecode, constants and interned names each keeps
    last = base
    for k in range(len(MODULES)):
        __import__(MODULES[k])
        gc.collect()
        now = gc.mem_alloc()
        sizes[k] = now - last
        last = now
    from boards.analog import Analog
    from boards.hall import Hall
    from boards.motor import Motor
    from boards.mpu6050 import MPU6050
    from boards.stepper import Stepper
    from pen.compat import ticks_diff
    from pen.runtime import Firmware

    class ProbeBoard:
        name = "probe"
        serial_number = "PROBE0001"

        def __init__(self):
            self.motor = Motor(periph[0], periph[1])
            self.hall = Hall(periph[2], _us, ticks_diff, SimPin.IRQ_RISING)
            self.stepper = Stepper(periph[3], periph[4], periph[5])
            self.imu = MPU6050(i2c)
            self.imu.init()
            self.current = Analog(periph[6], 3300, 1, 1)
            self.battery = Analog(periph[7], 3300, 3, 1)
            self.fs_root = fs_root
            self.reset_cause = "power_on"
            self.period_us = 1000  # pen/looptime.py: the simulator's tick
            self.ticks_us = _us

        def feed_watchdog(self):
            pass

        def serial_write(self, data):
            pass

        def serial_read(self):
            return -1

        def apply(self, out):
            self.motor.set(out.duty, out.brake)
            self.stepper.move(out.steps)

    fw = Firmware(ProbeBoard())
    gc.collect()
    sizes[len(MODULES)] = gc.mem_alloc() - last
    res["heap_after_boot_bytes"] = gc.mem_alloc() - base
    res["heap_total_bytes"] = gc.mem_alloc() + gc.mem_free()
    breakdown = {}
    for k in range(len(MODULES)):
        breakdown[MODULES[k]] = sizes[k]
    breakdown["Firmware(board) objects"] = sizes[len(MODULES)]
    res["breakdown_bytes"] = breakdown
    res["heap_free_before_bytes"] = free0
    res["firmware_object"] = type(fw).__name__
    # the attributes of the firmware's objects: a method called through an
    # instance is first looked up (and missed) in the instance's own hash
    # table, and a miss probes until an empty slot (py/map.c), so a full
    # table costs every call (tests/perf/test_perf_alloc.py)
    res["instance_attrs"] = instance_attrs(fw)
    # modules the firmware has loaded after boot
    res["modules_after_boot"] = sorted(k for k in sys.modules if k.startswith("pen.") or k.startswith("boards."))
    _rm_tree(fs_root)
    return res


def instance_attrs(fw):
    """{class name: attributes in its instance's table} of fw and of the
    objects it holds (one level down, and the board's drivers)."""
    out = {}
    objs = [fw]
    for v in list(fw.__dict__.values()) + list(getattr(fw, "board", fw).__dict__.values()):
        if hasattr(v, "__dict__") and not isinstance(v, type) and type(v).__name__ not in ("module", "function"):
            objs.append(v)
    for o in objs:
        try:
            out[type(o).__name__] = len(o.__dict__)
        except (AttributeError, TypeError):
            pass
    return out


def _scratch_dir():
    import os
    import time

    try:
        os.stat("/tmp")
        base = "/tmp"
    except OSError:  # a board: its littlefs root
        base = ""
    stamp = time.ticks_us() if hasattr(time, "ticks_us") else time.time_ns()
    d = "%s/fwprobe-boot-%d" % (base, stamp)
    os.mkdir(d)
    return d


def _rm_tree(d):
    import os

    for name in os.listdir(d):
        os.remove(d + "/" + name)
    os.rmdir(d)


def main():
    args = sys.argv[1:]
    mode = args[0] if args else "alloc"
    native = "native" in args
    nums = [int(a) for a in args[1:] if a.isdigit()]
    n = nums[0] if nums else 10000
    res = {"mode": mode, "impl": sys.implementation.name, "native": native}
    if native:
        if micropython is None:
            res["error"] = "native code needs MicroPython"
            print(json.dumps(res))
            return
        _native_core()
    if mode == "alloc":
        res.update(probe_alloc(n, "selftest" in args))
    elif mode == "time":
        res.update(probe_time(n))
    elif mode == "boot":
        if len(args) > 1 and args[1] != "native":
            # a directory of .mpy files (tools/compile_firmware.py --out D):
            # import the compiled firmware, as the board does
            sys.path.insert(0, args[1] + "/firmware")
            res["from"] = args[1]
        res.update(probe_boot())
    else:
        res["error"] = "unknown mode " + mode
    print(json.dumps(res))


main()
