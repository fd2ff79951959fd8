# Device side of the simulator: runs the firmware (pen.runtime, unchanged)
# on a SimBoard with a virtual clock, next to the world physics. Started by
# SimulatedPen as `micropython runner.py ...` (or python3) with stdin/stdout
# on the master side of a pty; world commands arrive on a loopback TCP
# socket (docs/simulator.md lists them). Runs under MicroPython and CPython.
#
#   runner.py CTL_PORT SPEED [SEED]      SPEED: a factor, "max" or "stepped"
import sys

_here = sys.argv[0].rsplit("/", 1)[0] if "/" in sys.argv[0] else "."
sys.path.insert(0, _here)
sys.path.insert(0, _here + "/../../firmware")

import json  # noqa: E402
import select  # noqa: E402
import socket  # noqa: E402

from boards.stdio_serial import StdioSerial  # noqa: E402
from boards.wiring import BATTERY_DIV, BATTERY_MUL, CURRENT_DIV, CURRENT_MUL, VREF_MV, WDT_TIMEOUT_MS  # noqa: E402
from pen.compat import ticks_diff  # noqa: E402
from pen.runtime import Firmware  # noqa: E402
from periph import SimCdcOut  # noqa: E402
from simboard import SimBoard  # noqa: E402
from world import BATT_CAPACITY_MAS, World  # noqa: E402

try:
    from pen.core import STATE_NAMES  # noqa: E402
    from pen.faults import FAULT_NAMES  # noqa: E402
except ImportError:  # a core without the name tables still runs
    STATE_NAMES = ()
    FAULT_NAMES = ()

MASK = (1 << 30) - 1
# start close to the 2**30 wrap so every run crosses it early (DESIGN §6)
MS_OFFSET = (1 << 30) - 3000
US_OFFSET = (1 << 30) - 2000000


from wallclock import wall_diff, wall_us  # noqa: E402


class SimReset(BaseException):
    """The simulated MCU resets (watchdog): firmware reboots, world stays."""


class SimExit(BaseException):
    pass


class Clock:
    def __init__(self):
        self.us = 0
        self.ms = 0
        self.ticks_diff = ticks_diff

    def ticks_us(self):
        return (self.us + US_OFFSET) & MASK

    def ticks_ms(self):
        return (self.ms + MS_OFFSET) & MASK

    def now_us(self):
        """Simulated us since start, not wrapped (for the peripherals)."""
        return self.us


# how often (in ticks) the control socket and the serial line are polled
# (one poll for both) when time runs as fast as it can or is stepped: a
# poll is a system call, dearer under MicroPython than the rest of a tick.
# A host command then waits up to POLL_EVERY_FAST ms of simulated time;
# real time polls every tick.
POLL_EVERY_FAST = 8
HUP_CHECK_MS = 16  # how often the pty's hang-up is looked at (simulated ms)
VOC_EVERY = 64  # battery open-circuit voltage: changes slowly
# real-time pacing: the simulated clock follows an absolute wall-clock
# target. Behind it, ticks run back to back (catch-up, world commands and
# serial bytes still serviced every tick) until the clock is back on the
# target; a burst never covers more than CATCHUP_MAX_US: further behind
# (the process was stopped, the machine swapped) the target slips and the
# slip is counted in `lag_ms` (truth). The anchors are re-based every
# REBASE_US of wall time, so the wall clock's 2**30 us tick wrap
# (MicroPython) is never crossed by one difference.
CATCHUP_MAX_US = 1000000
REBASE_US = 1000000

TRACE_FIELDS = (
    "t_ms",
    "rate_set_hz",
    "rate_cmd_hz",
    "rate_meas_hz",
    "stroke_hz",
    "depth_set_mm",
    "depth_mm",
    "tilt_deg",
    "tilt_fw_deg",
    "duty",
    "current_ma",
    "battery_mv",
    "state",
    "fault",
    "trigger",
    "contact",
    "strokes",
    "resets",
)


class Sim:
    def __init__(self, ctl_port, speed, seed):
        self.world = World(seed)
        self.clock = Clock()
        self.serial = StdioSerial()
        # the USB CDC TX path in front of the pty (the serial_blocked fault)
        self.cdc = SimCdcOut(self.serial.out, self.block)
        self.serial.out = self.cdc
        self.block_rem = 0  # us of a blocking wait not yet on the clock
        self.shoot_through_us = 0  # drive and brake both on (truth)
        self.shoot_through_n = 0  # ticks in which they overlapped
        self.lag_us = 0  # real time: behind the wall-clock target now
        self.slip_us = 0  # real time: given up to bounded catch-up
        self.lag_max_us = 0
        self.ctl_buf = b""
        self.ctl = None  # type: socket.socket | None
        self.ctl_fd = -1
        self.poll_ctl = None
        self.poll_any = select.poll()
        self.poll_any.register(sys.stdin, select.POLLIN)
        # the host's end of the pty: a hang-up (nobody holds the port open)
        # is the simulator's USB CDC DTR drop (host_connected)
        self.poll_in = select.poll()
        self.poll_in.register(sys.stdin, select.POLLIN)
        self.connected = True
        self.hup_ms = -HUP_CHECK_MS
        if ctl_port is not None:
            self.ctl = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
            self.ctl.connect(socket.getaddrinfo("127.0.0.1", ctl_port)[0][-1])
            self.ctl_fd = self.ctl.fileno() if hasattr(self.ctl, "fileno") else -1
            self.poll_ctl = select.poll()
            self.poll_ctl.register(self.ctl, select.POLLIN)
            self.poll_any.register(self.ctl, select.POLLIN)
        elif speed is None:
            speed = 0  # no control channel (tickbench): nobody could grant time
        self.advance_until = -1  # sim ms at which to answer a pending advance
        self.last_feed_ms = 0
        self.resets = 0
        self.hang = False
        self.board = None
        self.fw = None  # type: Firmware | None  # the running Firmware, for traces
        self.fs_root = None  # type: str | None  # the pen's flash (main() sets it; SimBoard reads it)
        self.rng = self.world.rng
        self.poll_left = 0
        self.ser_ready = True
        self.voc_left = 0
        self.trace_file = None
        self.trace_every = 10
        self.trace_next = 0
        self.set_speed(speed)

    def set_speed(self, speed):
        self.speed = speed  # None: stepped; 0: as fast as possible
        self.pace_wall0 = wall_us()
        self.pace_sim0 = self.clock.us
        self.lag_us = 0
        self.slip_us = 0
        self.lag_max_us = 0
        fast = speed is None or speed == 0
        self.poll_every = POLL_EVERY_FAST if fast else 1
        self.ser_ready = True

    # --- serial line (the pty), with the serial_noise fault ---
    def serial_read(self):
        if self.world.f_serial_noise and self.rng.random() < 0.05:
            return self.rng.getrandbits(8)
        if not self.ser_ready:
            return -1
        b = self.serial.read()
        if b < 0 and self.poll_every > 1:
            self.ser_ready = False  # until the next poll says otherwise
        return b

    def serial_write(self, data):
        self.serial.write(data)

    def host_connected(self):
        """False while no host holds the pty open (POLLHUP on the master),
        looked at every HUP_CHECK_MS of simulated time. While hung up the
        pty leaves the poll that paces the loop (it would never sleep)."""
        ms = self.clock.ms
        if ms - self.hup_ms < HUP_CHECK_MS:
            return self.connected
        self.hup_ms = ms
        hup = False
        for ev in self.poll_in.ipoll(0) if hasattr(self.poll_in, "ipoll") else self.poll_in.poll(0):
            if ev[1] & select.POLLHUP:
                hup = True
        if hup == self.connected:
            self.connected = not hup
            if hup:
                self.poll_any.unregister(sys.stdin)
            else:
                self.poll_any.register(sys.stdin, select.POLLIN)
                self.ser_ready = True
        return self.connected

    def feed_watchdog(self):
        self.last_feed_ms = self.clock.ms

    def block(self, us):
        """A peripheral call held the CPU for `us` (an I2C timeout, a
        blocked serial write): simulated time moves on by it, in whole ms,
        with the outputs as they are; the watchdog keeps counting."""
        board = self.board
        if board is None:
            return
        self.block_rem += us
        while self.block_rem >= 1000:
            self.block_rem -= 1000
            self._advance(board)
            if self.trace_file is not None and self.clock.ms >= self.trace_next:
                self._trace_row()
            if self.poll_every == 1 or self.advance_until >= 0 and self.clock.ms >= self.advance_until:
                self._service()
            if self.clock.ms - self.last_feed_ms >= WDT_TIMEOUT_MS:
                self.block_rem = 0
                raise SimReset()

    # --- time ---
    def tick(self, board):
        """Called by the firmware loop (via SimBoard.wait_tick): services
        world commands and pacing, then moves the world by 1 ms."""
        self.board = board
        au = self.advance_until
        if (au >= 0 and self.clock.ms >= au) or (au < 0 and self.speed is None):
            self._service()  # granted time ran out: answer, wait for more
        elif self.poll_every == 1:
            self._service()  # real time: pacing and commands every tick
        elif self.poll_left:
            self.poll_left -= 1
        else:
            self.poll_left = self.poll_every - 1
            for ev in self.poll_any.poll(0):
                o = ev[0]
                if o is self.ctl or o == self.ctl_fd:
                    self._service()
                else:
                    self.ser_ready = True
        if self.hang:
            # the loop is stuck: the world runs on with the outputs as they
            # were until the watchdog bites
            while True:
                self._advance(board)
                if self.trace_file is not None and self.clock.ms >= self.trace_next:
                    self._trace_row()
                self._service()
                if self.clock.ms - self.last_feed_ms >= WDT_TIMEOUT_MS:
                    self.hang = False
                    self.world.set_fault("loop_hang", False)
                    raise SimReset()
        if self.clock.ms - self.last_feed_ms >= WDT_TIMEOUT_MS:
            raise SimReset()  # a loop that stopped feeding the watchdog
        self._advance(board)
        if self.trace_file is not None and self.clock.ms >= self.trace_next:
            self._trace_row()
        return (self.clock.ms + MS_OFFSET) & MASK

    def _advance(self, board):
        w = self.world
        clock = self.clock
        t0 = clock.us
        if self.voc_left:
            self.voc_left -= 1
        else:
            self.voc_left = VOC_EVERY - 1
            w.step_slow()
        pwm = board.pwm
        brake = board.brake._v == 1
        if pwm._at >= 0 or (brake and pwm._duty):
            # a duty write waits for the PWM counter's wrap; count the time
            # the pin still drives while the brake is already on
            if brake:
                ov = pwm.on_us(t0, t0 + 1000)
                if ov:
                    self.shoot_through_us += ov
                    self.shoot_through_n += 1
            pwm.settle(t0 + 1000)
        w.step_motor(pwm._duty, brake)
        n = w.n_edges
        if n:
            pin = board.hall_pin
            eu = w.edge_us
            for k in range(n):
                clock.us = t0 + eu[k]
                pin._v = 1
                pin.fire()
                pin._v = 0
        clock.us = t0 + 1000
        clock.ms += 1
        # pose and IMU sample (World.step_pose, inlined: this runs every ms)
        if w.tilt_rate:
            w.step_pose()
        else:
            w.imu.sample()
        # ADC counts (SimBoard.update_adcs, inlined), wiring of boards/wiring.py
        ma = int(w.motor_a * 1000.0)
        mv = int(w.battery_v * 1000.0)
        if w.f_adc_noise:
            e = w.adc_noise()
            mv += e[0]
            ma += e[1]
        c = ma * CURRENT_DIV // CURRENT_MUL * 65535 // VREF_MV
        board.adc_current.counts = 0 if c < 0 else (65535 if c > 65535 else c)
        c = mv * BATTERY_DIV // BATTERY_MUL * 65535 // VREF_MV
        board.adc_battery.counts = 0 if c < 0 else (65535 if c > 65535 else c)

    def _service(self):
        """World commands, pacing, and (stepped mode) waiting for time."""
        while True:
            self._read_ctl(0)
            now = self.clock.ms
            if self.advance_until >= 0 and now >= self.advance_until:
                self.advance_until = -1
                self._reply("ok t=%d" % now)
            if self.speed is None:
                if self.advance_until >= 0:
                    return
                self._read_ctl(-1)  # stepped and no time granted: wait
                continue
            if self.speed == 0:
                return
            if not self._pace():
                return

    def _pace(self):
        """Real time (or N x): hold the simulated clock to the absolute
        wall-clock target pace_sim0 + (wall - pace_wall0) * speed. Returns
        True to be called again (it slept and the target may still be
        ahead), False to run the next tick now."""
        now = wall_us()
        wall = wall_diff(now, self.pace_wall0)
        sim_us = self.clock.us - self.pace_sim0
        ahead = int(sim_us / self.speed) - wall
        if wall >= REBASE_US:
            # move both anchors to now: differences stay far from the wrap
            self.pace_wall0 = now
            self.pace_sim0 = self.clock.us - int(ahead * self.speed)
        if ahead < 0:
            behind = -ahead
            if behind > CATCHUP_MAX_US:
                # too far behind to catch up in one burst: slip the target
                slip = behind - CATCHUP_MAX_US
                self.slip_us += slip
                self.pace_wall0 = now
                self.pace_sim0 = self.clock.us + int(CATCHUP_MAX_US * self.speed)
                behind = CATCHUP_MAX_US
            self.lag_us = behind
            if behind > self.lag_max_us:
                self.lag_max_us = behind
            return False
        self.lag_us = 0
        if ahead < 1000:
            return False  # less than a tick ahead: run it (no drift: the target is absolute)
        # sleep until the target (poll's ms granularity), waking for a
        # world command or a serial byte, then look again
        for _ in self.poll_any.poll(ahead // 1000):
            pass
        return True

    def lag_ms(self):
        """How far the simulated clock is behind the wall clock (real-time
        modes): now, plus what bounded catch-up gave up."""
        return (self.lag_us + self.slip_us) / 1000.0

    def _read_ctl(self, timeout):
        ctl = self.ctl
        if ctl is None or self.poll_ctl is None or not self.poll_ctl.poll(timeout):
            return
        data = ctl.recv(4096)
        if not data:
            raise SimExit()
        self.ctl_buf += data
        while b"\n" in self.ctl_buf:
            line, self.ctl_buf = self.ctl_buf.split(b"\n", 1)
            try:
                self._command(line.decode().split())
            except SimExit:
                raise
            except Exception as e:  # noqa: BLE001 - report, keep the world running
                self._reply("err %s" % e)

    def _reply(self, text):
        ctl = self.ctl
        if ctl is None:
            raise AttributeError("no control channel to reply on")
        ctl.send((text + "\n").encode())

    def _command(self, words):
        if not words:
            return
        cmd = words[0]
        w = self.world
        if cmd == "advance":
            self.advance_until = self.clock.ms + int(words[1])
            return  # answered when the time has passed
        if cmd == "tilt":
            w.tilt_rate = 0.0
            w.sweep_to = None
            w.set_tilt(float(words[1]), float(words[2]) if len(words) > 2 else w.axis_deg)
        elif cmd == "sweep":
            w.sweep(float(words[1]), float(words[2]) if len(words) > 2 else None)
        elif cmd == "trigger":
            w.trigger = words[1] == "1"
        elif cmd == "cartridge":
            w.cartridge = words[1] == "1"
        elif cmd == "contact":
            w.contact = words[1] == "1"
        elif cmd == "load":
            v = float(words[1])
            if v < 0:
                raise ValueError("load must be >= 0")
            w.load_scale = v
        elif cmd == "soc":
            v = float(words[1])
            if v < 0 or v > 1:
                raise ValueError("state of charge must be 0..1")
            w.charge_mas = v * BATT_CAPACITY_MAS
            w.step_slow()
        elif cmd == "inject" or cmd == "clear":
            name = words[1]
            w.set_fault(name, cmd == "inject")
            if name == "loop_hang":
                self.hang = cmd == "inject"
            elif name == "serial_blocked":
                self.cdc.set_blocked(cmd == "inject")
        elif cmd == "speed":
            self.set_speed(None if words[1] == "stepped" else (0 if words[1] == "max" else float(words[1])))
        elif cmd == "trace":
            self._trace_open(words[1] if len(words) > 1 else "off", int(words[2]) if len(words) > 2 else 10)
        elif cmd == "truth":
            self._reply("ok " + json.dumps(self.truth()))
            return
        elif cmd == "quit":
            self._trace_close()
            self._reply("ok")
            raise SimExit()
        else:
            raise ValueError("unknown world command '%s'" % cmd)
        self._reply("ok")

    # --- traces: world and firmware outputs to CSV ---
    def _trace_open(self, path, every_ms):
        self._trace_close()
        if path == "off":
            return
        if every_ms < 1:
            raise ValueError("trace interval must be >= 1 ms")
        self.trace_file = open(path, "w")
        self.trace_file.write(",".join(TRACE_FIELDS) + "\n")
        self.trace_every = every_ms
        self.trace_next = self.clock.ms

    def _trace_close(self):
        if self.trace_file is not None:
            self.trace_file.close()
            self.trace_file = None

    def _trace_row(self):
        self.trace_next = self.clock.ms + self.trace_every
        w = self.world
        b = self.board
        fw = self.fw
        f = self.trace_file
        if f is None:
            return  # callers check; no trace open
        core = fw.core if fw is not None else None
        cfg = getattr(core, "cfg", None)
        state = getattr(core, "state", -1)
        fault = getattr(core, "fault", 0)
        f.write(
            "%d,%.3f,%.3f,%.3f,%.3f,%.3f,%.4f,%.3f,%.2f,%.4f,%.1f,%.0f,%s,%s,%d,%d,%d,%d\n"
            % (
                self.clock.ms,
                getattr(cfg, "rate", 0) / 1000.0,
                getattr(core, "ramp_mhz", 0) / 1000.0 if getattr(core, "running", 0) else 0.0,
                getattr(core, "meas_mhz", 0) / 1000.0,
                w.stroke_hz(),
                getattr(cfg, "depth", 0) / 1000.0,
                w.needle_depth_mm(),
                w.tilt_deg,
                getattr(core, "tilt_cdeg", 0) / 100.0,
                b.pwm._duty / 65535.0 if b else 0.0,
                w.motor_a * 1000.0,
                w.battery_v * 1000.0,
                STATE_NAMES[state] if 0 <= state < len(STATE_NAMES) else str(state),
                FAULT_NAMES[fault] if 0 <= fault < len(FAULT_NAMES) else str(fault),
                1 if w.trigger else 0,
                1 if w.contact else 0,
                w.strokes,
                self.resets,
            )
        )

    def truth(self):
        w = self.world
        b = self.board
        hz = w.stroke_hz()
        return {
            "time_ms": self.clock.ms,
            "stroke_hz": hz,
            "needle_depth_mm": w.needle_depth_mm(),
            "tilt_deg": w.tilt_deg,
            "axis_deg": w.axis_deg,
            "motor_duty": b.motor_duty() if b else 0.0,
            "brake": b.brake_on() if b else True,
            "motor_ma": w.motor_a * 1000.0,
            "battery_mv": w.battery_v * 1000.0,
            "battery_soc": w.charge_mas / BATT_CAPACITY_MAS,
            "running": hz >= 1.0,
            "strokes": w.strokes,
            "trigger": w.trigger,
            "cartridge": w.cartridge,
            "contact": w.contact,
            "load": w.load_scale,
            "home_switch": w.home,
            "resets": self.resets,
            "lost_steps": w.lost_steps,
            "faults": sorted(w.faults),
            "led": b.led if b else 0,
            "imu_regs": _hex(w.imu.regs, 0x3B, 14),
            "shoot_through_us": self.shoot_through_us,
            "shoot_through_ticks": self.shoot_through_n,
            "hall_edges_missed": w.hall_missed,
            "i2c_timeouts": b.i2c.timeouts if b else 0,
            "adc_battery_mv": b.battery.read() if b else 0,
            "adc_motor_ma": b.current.read() if b else 0,
            "serial_stalls": self.cdc.stalls,
            "serial_stalled_ms": self.cdc.stalled_us // 1000,
            "speed": self.speed if self.speed is not None else "stepped",
            "lag_ms": self.lag_ms(),
            "lag_max_ms": (self.lag_max_us + self.slip_us) / 1000.0,
        }


def _hex(buf, start, n):
    return "".join("%02x" % buf[k] for k in range(start, start + n))


def main():
    import gc

    if hasattr(gc, "threshold"):
        # MicroPython: collect after 64 KB of garbage so the working set
        # stays in the CPU cache; a sweep of the whole (large) heap at every
        # exhaustion made the simulator 5x slower
        gc.threshold(65536)
    else:
        gc.freeze()  # pyright: ignore[reportAttributeAccessIssue]  # CPython only: the start-up objects never need scanning
    args = sys.argv[1:]
    port = int(args[0])
    speed = None if args[1] == "stepped" else (0 if args[1] == "max" else float(args[1]))
    seed = int(args[2]) if len(args) > 2 else 1
    sim = Sim(port, speed, seed)
    from flash import sim_storage

    sim.fs_root = sim_storage()  # the pen's flash: littlefs on a simulated chip (flash.py)
    sim._reply("hello")
    while True:
        try:
            sim.last_feed_ms = sim.clock.ms
            sim.fw = Firmware(SimBoard(sim))
            sim.fw.run()
        except SimReset:
            sim.resets += 1
        except SimExit:
            sim._trace_close()
            return
        except Exception as e:  # a firmware crash: report on stderr, not the pty
            _print_exception(e)
            raise SystemExit(3) from None


def _print_exception(e):
    if hasattr(sys, "print_exception"):
        sys.print_exception(e, sys.stderr)  # type: ignore[attr-defined]
    else:
        import traceback  # type: ignore[import-not-found]  # CPython fallback; MicroPython has sys.print_exception

        traceback.print_exception(e, file=sys.stderr)


if __name__ == "__main__":
    main()
