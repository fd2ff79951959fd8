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
import time  # noqa: E402

from boards.stdio_serial import StdioSerial  # noqa: E402
from pen.compat import ticks_diff  # noqa: E402
from pen.runtime import Firmware  # noqa: E402
from simboard import WDT_TIMEOUT_MS, SimBoard  # noqa: E402
from world import World  # noqa: E402

MASK = (1 << 30) - 1
# start close to the 2**30 wrap so every run crosses it early (DESIGN §6)
MS_OFFSET = (1 << 30) - 3000
US_OFFSET = (1 << 30) - 2000000

FAULTS = (
    "stall",
    "overcurrent",
    "hall_lost",
    "imu_lost",
    "imu_frozen",
    "battery_sag",
    "cartridge_pulled",
    "serial_noise",
    "loop_hang",
    "step_loss",
)

try:
    _ticks_us = time.ticks_us  # type: ignore[attr-defined]
    _tdiff = time.ticks_diff  # type: ignore[attr-defined]

    def wall_us():  # type: ignore[no-redef]  # MicroPython variant; CPython's below
        return _ticks_us()

    def wall_diff(a, b):  # type: ignore[no-redef]  # MicroPython variant; CPython's below
        return _tdiff(a, b)

except AttributeError:  # CPython

    def wall_us():
        return time.perf_counter_ns() // 1000  # type: ignore[attr-defined]  # CPython only, not in the MicroPython stubs

    def wall_diff(a, b):
        return a - b


class SimReset(Exception):
    """The simulated MCU resets (watchdog): firmware reboots, world stays."""


class SimExit(Exception):
    pass


class Clock:
    def __init__(self):
        self.us = 0
        self.ticks_diff = ticks_diff

    def ticks_us(self):
        return (self.us + US_OFFSET) & MASK

    def ticks_ms(self):
        return (self.us // 1000 + MS_OFFSET) & MASK

    def ms(self):
        return self.us // 1000


class Sim:
    def __init__(self, ctl_port, speed, seed):
        self.world = World(seed)
        self.clock = Clock()
        self.serial = StdioSerial()
        self.ctl = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
        self.ctl.connect(socket.getaddrinfo("127.0.0.1", ctl_port)[0][-1])
        self.ctl_buf = b""
        self.poll_ctl = select.poll()
        self.poll_ctl.register(self.ctl, select.POLLIN)
        self.poll_any = select.poll()
        self.poll_any.register(self.ctl, select.POLLIN)
        self.poll_any.register(sys.stdin, select.POLLIN)
        self.set_speed(speed)
        self.advance_until = -1  # sim ms at which to answer a pending advance
        self.last_feed_ms = 0
        self.resets = 0
        self.hang = False
        self.board = None
        self.rng = self.world.rng

    def set_speed(self, speed):
        self.speed = speed  # None: stepped; 0: as fast as possible
        self.pace_wall0 = wall_us()
        self.pace_sim0 = self.clock.us

    # --- serial line (the pty), with the serial_noise fault ---
    def serial_read(self):
        if "serial_noise" in self.world.faults and self.rng.random() < 0.05:
            return self.rng.getrandbits(8)
        return self.serial.read()

    def serial_write(self, data):
        self.serial.write(data)

    def feed_watchdog(self):
        self.last_feed_ms = self.clock.ms()

    # --- time ---
    def tick(self, board):
        """Called by the firmware loop (via SimBoard.wait_tick)."""
        self.board = board
        self._service()
        if self.hang:
            # the loop is stuck: the world runs on with the outputs as they
            # were until the watchdog bites
            while True:
                self._advance(board)
                self._service()
                if self.clock.ms() - self.last_feed_ms >= WDT_TIMEOUT_MS:
                    self.hang = False
                    self.world.set_fault("loop_hang", False)
                    raise SimReset()
        self._advance(board)
        return self.clock.ticks_ms()

    def _advance(self, board):
        w = self.world
        clock = self.clock
        t0 = clock.us
        edges = w.step_motor(board.motor_duty(), board.brake_on(), 0.001)
        if edges:
            for f in edges:
                clock.us = t0 + int(f * 1000)
                board.hall_pin._v = 1
                board.hall_pin.fire()
                board.hall_pin._v = 0
        clock.us = t0 + 1000
        w.step_pose(0.001)

    def _service(self):
        """World commands, pacing, and (stepped mode) waiting for time."""
        while True:
            self._read_ctl(0)
            now = self.clock.ms()
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
            ahead = int((self.clock.us - self.pace_sim0) / self.speed) - wall_diff(wall_us(), self.pace_wall0)
            if ahead < 1000:
                return
            # sleep, but wake for a world command or a serial byte
            for _ in self.poll_any.poll(ahead // 1000):
                pass
            if ahead < 2000:
                return

    def _read_ctl(self, timeout):
        if not self.poll_ctl.poll(timeout):
            return
        data = self.ctl.recv(4096)
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
        self.ctl.send((text + "\n").encode())

    def _command(self, words):
        if not words:
            return
        cmd = words[0]
        w = self.world
        if cmd == "advance":
            self.advance_until = self.clock.ms() + int(words[1])
            return  # answered when the time has passed
        if cmd == "tilt":
            w.tilt_deg = float(words[1])
            w.axis_deg = float(words[2]) if len(words) > 2 else 0.0
            w.tilt_rate = 0.0
        elif cmd == "sweep":
            w.tilt_rate = float(words[1])
        elif cmd == "trigger":
            w.trigger = words[1] == "1"
        elif cmd == "cartridge":
            w.cartridge = words[1] == "1"
        elif cmd == "contact":
            w.contact = words[1] == "1"
        elif cmd == "load":
            w.load_scale = float(words[1])
        elif cmd == "inject" or cmd == "clear":
            name = words[1]
            if name not in FAULTS:
                raise ValueError("unknown fault '%s'" % name)
            w.set_fault(name, cmd == "inject")
            if name == "loop_hang":
                self.hang = cmd == "inject"
        elif cmd == "speed":
            self.set_speed(None if words[1] == "stepped" else (0 if words[1] == "max" else float(words[1])))
        elif cmd == "truth":
            self._reply("ok " + json.dumps(self.truth()))
            return
        elif cmd == "quit":
            self._reply("ok")
            raise SimExit()
        else:
            raise ValueError("unknown world command '%s'" % cmd)
        self._reply("ok")

    def truth(self):
        w = self.world
        b = self.board
        hz = w.stroke_hz()
        return {
            "time_ms": self.clock.ms(),
            "stroke_hz": hz,
            "needle_depth_mm": w.needle_depth_mm(),
            "tilt_deg": w.tilt_deg,
            "axis_deg": w.axis_deg,
            "motor_duty": b.motor_duty() if b else 0.0,
            "brake": b.brake_on() if b else True,
            "motor_ma": w.motor_a * 1000.0,
            "battery_mv": w.battery_v * 1000.0,
            "running": hz >= 1.0,
            "strokes": w.strokes,
            "trigger": w.trigger,
            "cartridge": w.cartridge,
            "contact": w.contact,
            "resets": self.resets,
            "lost_steps": w.lost_steps,
            "faults": sorted(w.faults),
            "led": b.led if b else 0,
        }


def main():
    args = sys.argv[1:]
    port = int(args[0])
    speed = None if args[1] == "stepped" else (0 if args[1] == "max" else float(args[1]))
    seed = int(args[2]) if len(args) > 2 else 1
    sim = Sim(port, speed, seed)
    sim._reply("hello")
    while True:
        try:
            Firmware(SimBoard(sim)).run()
        except SimReset:
            sim.resets += 1
            sim.last_feed_ms = sim.clock.ms()
        except SimExit:
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


main()
