# pyright: basic
# The virtual Pico's world side: the same runner (sim/device/runner.py: world
# commands, pacing, traces, truth) and the same World as the other runtimes,
# but the firmware is the UF2 on an emulated RP2040 (chip.js under node)
# instead of pen.runtime in this interpreter. Started by SimulatedPen as
#
#   python3 device.py CTL_PORT SPEED [SEED]
#
# with stdin/stdout on the master side of the pty: the chip's USB CDC bytes
# go there. The chip and the world move in lock step, one quantum of
# emulated time at a time (docs/simulator.md, "The virtual Pico").
from __future__ import annotations

import hashlib
import os
import select
import subprocess
import sys
from pathlib import Path

_root = Path(__file__).resolve().parent.parent.parent
for _p in (_root, _root / "firmware", _root / "sim" / "device"):
    if str(_p) not in sys.path:
        sys.path.insert(0, str(_p))

from runner import Sim, SimExit  # noqa: E402  # pyright: ignore[reportMissingImports]  # sim/device on sys.path above
from simboard import VREF_MV  # noqa: E402  # pyright: ignore[reportMissingImports]  # sim/device on sys.path above
from wallclock import wall_us  # noqa: E402  # pyright: ignore[reportMissingImports]  # sim/device on sys.path above

from sim.rp2040 import CHIP_JS, NODE_MODULES, elf_symbols, node_executable, quantum_us, uf2_path  # noqa: E402

# faults that act on the chip's buses and core, kept here (the world has no
# bus or CPU): the I2C bus held (every transfer times out), and loop_hang
# (the core stops executing; timers and the watchdog keep running), and the
# host reading nothing (serial_blocked: chip.js holds the CDC IN transfers,
# so the firmware's own USB stack sees its TX FIFO fill)
CHIP_FAULTS = ("imu_bus_stall", "serial_blocked")
ADC_FULL = 4095  # the RP2040's ADC is 12 bits; read_u16 scales it up
SERIAL_CHUNK = 64  # host bytes handed to the chip per ms at most (USB FS: 64 B packets)


class Pin:
    def __init__(self, v):
        self._v = v


class PWM:
    def __init__(self):
        self._duty = 0


class ChipI2C:
    timeouts = 0  # the chip's I2C timeouts are not counted from outside


class ChipADC:
    """truth()'s adc_* rows: the value the world put on the pin."""

    def __init__(self):
        self.mv = 0

    def read(self):
        return self.mv


class ChipBoard:
    """What runner.Sim's truth() and trace read from a board, filled from
    the chip's pins once per quantum."""

    def __init__(self):
        self.i2c = ChipI2C()
        self.battery = ChipADC()
        self.current = ChipADC()
        self.pwm = PWM()
        self.brake = Pin(1)
        self.led = 0
        self.buzzer = 0
        self.stepper_en = 1

    def motor_duty(self):
        return self.pwm._duty / 65535.0

    def brake_on(self):
        return self.brake._v == 1


# the top of core 0's stack (__StackTop of the rp2 port's memmap_mp_rp2040.ld,
# 8 KB above __StackBottom); MicroPython's stack check raises a Python call
# at STACK_BYTES - MICROPY_STACK_CHECK_MARGIN (256 B)
IRQ_EXCEPTION_TEXT = b"Uncaught exception in IRQ callback handler"
STACK_TOP = 0x20042000
STACK_BYTES = 8192
STACK_CHECK_BYTES = STACK_BYTES - 256


def irq_exceptions_in(tail, out):
    """The IRQ-exception lines in the USB bytes `out`, the last bytes of the
    chunk before (`tail`) included so a line split between two exchanges
    counts once; returns (count, the tail to keep)."""
    data = tail + out
    return data.count(IRQ_EXCEPTION_TEXT), data[-(len(IRQ_EXCEPTION_TEXT) - 1) :]


def heap_symbols():
    """mp_state_ctx, __GcHeapStart, __GcHeapEnd from the image's ELF (for
    the free-heap probe); empty when the ELF or nm is missing."""
    sym = {name: addr for addr, _, name in elf_symbols()}
    try:
        return ",".join(str(sym[k]) for k in ("mp_state_ctx", "__GcHeapStart", "__GcHeapEnd"))
    except KeyError:
        return ""


def flash_id(seed):
    """The emulated flash chip's 64-bit unique id (the RUID answer), one
    per pen: derived from the world's seed, so a pen keeps it across
    resets and two pens of other seeds differ (docs/simulator.md)."""
    return hashlib.sha256(b"needle-pen vpico flash %d" % seed).digest()[:8]


def adc12(mv):
    c = mv * ADC_FULL // VREF_MV
    return 0 if c < 0 else (ADC_FULL if c > ADC_FULL else c)


class ChipSim(Sim):
    def __init__(self, ctl_port, speed, seed):
        super().__init__(ctl_port, speed, seed)
        self.board = ChipBoard()
        self.chip_faults = set()
        self.command_us = {}
        self.want_heap = False
        self.heap_free = -1
        self.heap_allocs = -1
        self.heap_threshold = -1
        self.stack_low = STACK_TOP  # the C stack's deepest SP since power-on (chip.js)
        self.stack_low_pc = 0
        self.gpio_irq_stack = 0
        self.hall_irq_disabled = 0  # the hall pin's IRQ turned off after boot (chip.js)
        self.irq_exceptions = 0  # "Uncaught exception in IRQ callback handler" seen on the USB
        self.usb_tail = b""
        self.quantum = quantum_us()
        self.t_us = 0  # the world's time: quantum boundaries
        self.chip_us = 0
        self.duty_changed_us = 0
        self.timer_us = 0
        self.adc_err = (0, 0)  # adc_noise: this ms's (battery mV, motor mA) error
        self.sent_regs = b""
        self.wall0 = wall_us()
        self.host_fd = sys.stdin.fileno()
        self.poll_host = select.poll()
        self.poll_host.register(self.host_fd, select.POLLIN)
        env = dict(os.environ, NODE_PATH=str(NODE_MODULES))
        env.setdefault("PENSIM_RP2040_HEAP", heap_symbols())
        self.flash_id = flash_id(seed)
        self.node = subprocess.Popen(
            [node_executable(), str(CHIP_JS), str(uf2_path()), str(self.quantum), self.flash_id.hex()],
            stdin=subprocess.PIPE,
            stdout=subprocess.PIPE,
            env=env,
            bufsize=0,
        )
        assert self.node.stdin is not None and self.node.stdout is not None
        self.to_chip = self.node.stdin
        self.from_chip = self.node.stdout

    # --- world commands the chip handles itself ---
    def _command(self, words):
        if words:
            # when each world command took effect, µs of emulated time
            # (tests time the firmware's reaction from it)
            self.command_us[words[0]] = self.t_us
        if words and words[0] == "heap":
            self.want_heap = True  # measured by the chip side at the end of the next loop pass
            self.heap_free = -1  # until then
            self._reply("ok")
            return
        if words and words[0] in ("inject", "clear") and len(words) > 1 and words[1] in CHIP_FAULTS:
            if words[0] == "inject":
                self.chip_faults.add(words[1])
            else:
                self.chip_faults.discard(words[1])
            self._reply("ok")
            return
        super()._command(words)

    def truth(self):
        t = super().truth()
        t["faults"] = sorted(set(t["faults"]) | self.chip_faults)
        t["runtime"] = "rp2040"
        t["flash_id"] = self.flash_id.hex()  # machine.unique_id(): `info` serial=
        t["host_connected"] = self.connected  # the DTR the chip's USB host sends
        t["time_us"] = self.t_us
        t["duty_changed_us"] = self.duty_changed_us
        # the chip's TIMER (ticks_us = its low 30 bits; PENSIM_RP2040_TIMER_START_US)
        t["timer_us"] = self.timer_us
        t["command_us"] = dict(self.command_us)
        t["heap_free"] = self.heap_free  # bytes, at the last `heap` command; -1: not read (yet)
        # ... and the GC's count of blocks allocated since its last
        # collection (every allocation, also one freed at once) and gc.threshold
        t["heap_allocs"] = self.heap_allocs
        t["heap_threshold"] = self.heap_threshold
        # the C stack: the deepest it has been since power-on, in bytes of
        # the 8 KB that core 0's code and interrupts share, the instruction
        # that reached it (arm-none-eabi-addr2line names it), and the most a
        # GPIO interrupt (the hall's hard IRQ) took on top of where it landed
        t["stack_used_max"] = STACK_TOP - self.stack_low
        t["stack_used_max_pc"] = self.stack_low_pc
        t["gpio_irq_stack_max"] = self.gpio_irq_stack
        # hard IRQ handlers that raised (and were disabled) since power-on
        t["irq_exceptions"] = self.irq_exceptions
        # ... and the times the hall pin's interrupt was turned off while the
        # chip ran (the firmware never does; MicroPython does after a raise)
        t["hall_irq_disabled"] = self.hall_irq_disabled
        t["stepper_enabled"] = self.board.stepper_en == 0
        t["buzzer"] = self.board.buzzer  # on while a fault is latched (pen.core)
        wall = (wall_us() - self.wall0) / 1e6
        t["speed_ratio"] = self.t_us / 1e6 / wall if wall > 0 else 0.0
        return t

    # --- lock step ---
    def _from_chip(self):
        line = self.from_chip.readline()
        if not line:
            raise RuntimeError("the emulated chip stopped (node exited)")
        f = line.split()
        b = self.board
        w = self.world
        self.chip_us = int(f[1])  # may pass the quantum's end by an instruction or a ROM call
        b.pwm._duty = int(f[2])
        b.brake._v = int(f[3])
        b.stepper_en = int(f[4])
        b.led = int(f[5])
        b.buzzer = int(f[6])
        if f[7] != b"-":
            for run in f[7].split(b","):
                d, n = run.split(b":")
                for _ in range(int(n)):
                    w.step_stage(int(d))
        if f[8] != b"-":
            for wr in f[8].split(b","):
                reg, data = wr.split(b"=")
                w.imu.write(int(reg), bytes.fromhex(data.decode()))
        if f[9] != b"-":
            out = bytes.fromhex(f[9].decode())
            self.serial_write(out)
            # MicroPython prints this (to the USB CDC) when a hard IRQ
            # handler raises, and then disables that IRQ for good
            # (shared/runtime/mpirq.c): counted, never expected
            n, self.usb_tail = irq_exceptions_in(self.usb_tail, out)
            self.irq_exceptions += n
        if f[10] != b"-":
            for ev in f[10].split(b","):
                if ev.startswith(b"heap:"):
                    free, allocs, threshold = ev[5:].split(b":")
                    self.heap_free = int(free)
                    self.heap_allocs = int(allocs)
                    self.heap_threshold = int(threshold)
                if ev.startswith(b"sp:"):
                    sp, pc = ev[3:].split(b":")
                    self.stack_low = int(sp)
                    self.stack_low_pc = int(pc, 16)
                if ev == b"hallirqoff":
                    self.hall_irq_disabled += 1
                if ev.startswith(b"irqsp:"):
                    self.gpio_irq_stack = int(ev[6:])
                if ev == b"reset":
                    self.resets += 1
                    if self.hang:
                        self.hang = False
                        w.set_fault("loop_hang", False)
        self.duty_changed_us = int(f[11])
        self.timer_us = int(f[12])

    def _world_ms(self):
        """One ms of the world from the quantum boundary t_us: the same
        steps as runner.Sim._advance, with the actuators the chip holds now;
        returns the hall edges (absolute µs) for the chip to play."""
        w = self.world
        b = self.board
        if self.voc_left:
            self.voc_left -= 1
        else:
            self.voc_left = 63
            w.step_slow()
        w.step_motor(b.pwm._duty, b.brake._v == 1)
        t0 = self.t_us
        edges = [t0 + w.edge_us[k] for k in range(w.n_edges)]
        if w.tilt_rate:
            w.step_pose()
        else:
            w.imu.sample()
        self.clock.us = t0 + 1000
        self.clock.ms = self.clock.us // 1000
        if self.trace_file is not None and self.clock.ms >= self.trace_next:
            self._trace_row()
        return edges

    def _service_ms(self):
        # world commands and pacing, as runner.Sim.tick does per tick
        au = self.advance_until
        if (au >= 0 and self.clock.ms >= au) or (au < 0 and self.speed is None) or self.poll_every == 1:
            self._service()
        elif self.poll_left:
            self.poll_left -= 1
        else:
            self.poll_left = self.poll_every - 1
            for ev in self.poll_any.poll(0):
                if ev[0] is self.ctl or ev[0] == self.ctl_fd:
                    self._service()

    def _host_bytes(self):
        if not self.poll_host.poll(0):
            return b""
        try:
            return os.read(self.host_fd, SERIAL_CHUNK)
        except (BlockingIOError, OSError):
            return b""

    def run(self):
        q = self.quantum
        w = self.world
        self._from_chip()  # the chip is loaded
        self._reply("hello")
        while True:
            edges = None
            regs = "-"
            host = b""
            if self.t_us % 1000 == 0:
                self.host_connected()  # the pty's hang-up, every HUP_CHECK_MS: the chip's DTR
                self._service_ms()
                edges = self._world_ms()
                r = bytes(w.imu.regs)
                if r != self.sent_regs:
                    self.sent_regs = r
                    regs = r.hex()
                host = self._host_bytes()
                # adc_noise on both ADC inputs, as runner.Sim does per ms
                self.adc_err = w.adc_noise() if w.f_adc_noise else (0, 0)
            ma = int(w.motor_a * 1000.0) + self.adc_err[1]
            mv = int(w.battery_v * 1000.0) + self.adc_err[0]
            self.board.current.mv = ma
            self.board.battery.mv = mv
            fields = (
                "R",
                self.t_us + q,
                0 if w.trigger else 1,
                0 if w.cartridge_closed() else 1,
                0 if w.home else 1,
                adc12(ma),
                adc12(mv // 3),
                1 if w.imu.present else 0,
                1 if "imu_bus_stall" in self.chip_faults else 0,
                1 if self.hang else 0,
                ",".join(str(e) for e in edges) if edges else "-",
                regs,
                host.hex() if host else "-",
                "heap" if self.want_heap else "-",
                1 if "serial_blocked" in self.chip_faults else 0,
                1 if self.connected else 0,
            )
            self.want_heap = False
            line = " ".join(str(f) for f in fields) + "\n"
            self.to_chip.write(line.encode())
            self._from_chip()
            self.t_us += q

    def close(self):
        try:
            self.to_chip.write(b"X\n")
            self.to_chip.close()
        except OSError:
            pass
        try:
            self.node.wait(timeout=5)
        except subprocess.TimeoutExpired:
            self.node.kill()
            self.node.wait()


def main():
    args = sys.argv[1:]
    port = int(args[0])
    speed = None if args[1] == "stepped" else (0 if args[1] == "max" else float(args[1]))
    seed = int(args[2]) if len(args) > 2 else 1
    sim = ChipSim(port, speed, seed)
    try:
        sim.run()
    except SimExit:
        sim._trace_close()
    finally:
        sim.close()


if __name__ == "__main__":
    main()
