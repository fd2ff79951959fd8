# Raspberry Pi Pico (RP2040) reference board: the one pin table, the real
# machine.* peripherals handed to the drivers, the 1 kHz tick and the WDT.
import time

import machine
from machine import ADC, I2C, PWM, WDT, Pin, Timer
from pen.compat import const, micropython, ticks_add, ticks_diff

from boards.analog import Analog
from boards.deadman import Deadman
from boards.hall import Hall
from boards.motor import Motor
from boards.mpu6050 import MPU6050
from boards.stdio_serial import StdioSerial
from boards.stepper import Stepper
from boards.wiring import (
    BATTERY_DIV,
    BATTERY_MUL,
    CURRENT_DIV,
    CURRENT_MUL,
    I2C_FREQ,
    I2C_TIMEOUT_US,
    VREF_MV,
    WDT_FLASH_TIMEOUT_MS,
    WDT_TIMEOUT_MS,
)

# The loop period on the RP2040, chosen from the virtual Pico's figures
# (docs/performance.md, "Loop period"): a full pass takes up to ~1.9 ms of
# emulated time with telemetry streaming, ~2.4 ms with a request served
# while running (SR1's watches included), so 5 ms holds it within half,
# the margin for silicon. The
# accelerometer is read and the tilt cone checked every ~1 ms in between
# (SR1's fast path, pen/runtime.py tilt_watch), so tilt -> drive off does
# not wait for the next pass. The simulator's board keeps 1 ms (wiring.TICK_US).
LOOP_US = const(5000)
IMU_FRESH_US = const(500)  # a read at the start of a pass: skipped if the last is this recent
IMU_WATCH_US = const(1000)  # between passes: a read every ms (the MPU-6050 samples at 1 kHz) ...
WATCH_LEFT_US = const(700)  # ... while this much of the wait is left (a watch takes ~0.35 ms)
# the read started before the apply stage (due_begin) when the last is this
# old: its ~0.24 ms of bus time end it past IMU_WATCH_US, and it overlaps
# apply instead of falling due, unoverlapped, in a later stage when the
# tick ends just short of IMU_WATCH_US (docs/performance.md)
IMU_EARLY_US = const(800)

# GPIO numbers of the reference wiring (docs/hardware.md prints this table;
# a test keeps the two in step).
PINS = {
    "motor_pwm": 16,
    "motor_brake": 17,
    "hall": 18,
    "stepper_step": 10,
    "stepper_dir": 11,
    "stepper_en": 12,
    "home_switch": 13,
    "trigger": 14,
    "cartridge": 15,
    "i2c0_sda": 4,
    "i2c0_scl": 5,
    "buzzer": 22,
    "led": 25,
    "adc_motor_current": 26,
    "adc_battery": 27,
}


def _i2c():
    # a 1 ms timeout per transfer (the port's default is 50 ms): wiring.py
    return I2C(0, sda=Pin(PINS["i2c0_sda"]), scl=Pin(PINS["i2c0_scl"]), freq=I2C_FREQ, timeout=I2C_TIMEOUT_US)


def _i2c_recover():
    """Frees a bus that a slave holds (SDA low after a reset in the middle
    of a read): SDA released, up to 9 SCL pulses until the slave lets SDA
    go, then a STOP (SDA rising while SCL is high), then a fresh I2C object
    on the pins (NXP UM10204 3.1.16 bus clear). At most ~0.1 ms; called by
    the MPU-6050 driver before a re-init, which backs off between tries."""
    scl = Pin(PINS["i2c0_scl"], Pin.OPEN_DRAIN, value=1)
    sda = Pin(PINS["i2c0_sda"], Pin.OPEN_DRAIN, value=1)
    for _ in range(9):
        if sda.value():
            break
        scl.value(0)
        time.sleep_us(5)
        scl.value(1)
        time.sleep_us(5)
    sda.value(0)  # STOP: SDA low -> high with SCL high
    time.sleep_us(5)
    sda.value(1)
    time.sleep_us(5)
    return _i2c()


# The accelerometer read on the RP2040's I2C0 block's registers (RP2040
# datasheet 4.3, DW_apb_i2c) in viper: the 7 commands queued in the TX FIFO,
# the 6 bytes taken from the RX FIFO and unpacked, a few cycles per
# register where machine.I2C's readfrom_mem_into and the unpacking cost
# ~200 us more per read on the chip (docs/performance.md)
@micropython.viper
def _i2c_queue():
    p = ptr32((0x4004 << 16) | 0x4000)  # noqa: F821  # the I2C0 block
    p[27] = 0  # IC_ENABLE off: TAR is written with the block off (its FIFOs flushed)
    p[1] = 0x68  # IC_TAR: the MPU-6050
    p[27] = 1
    p[4] = 0x3B  # IC_DATA_CMD: ACCEL_XOUT_H
    p[4] = 0x500  # read, RESTART
    p[4] = 0x100
    p[4] = 0x100
    p[4] = 0x100
    p[4] = 0x100
    p[4] = 0x300  # read, STOP


@micropython.viper
def _i2c_wait(inp, start: int, timeout: int) -> int:
    # the 6 bytes from the RX FIFO, waited for here until timeout us after
    # start (ticks_us: the TIMER's TIMERAWL, 30 bits); -1 on an abort
    # (TX_ABRT: a NACK) or the timeout
    p = ptr32((0x4004 << 16) | 0x4000)  # noqa: F821
    t = ptr32((0x4005 << 16) | 0x4028)  # noqa: F821  # TIMER TIMERAWL
    while p[30] < 6:  # IC_RXFLR
        if p[13] & 0x40:  # IC_RAW_INTR_STAT TX_ABRT
            return -1
        if ((t[0] - start) & 0x3FFFFFFF) >= timeout:
            return -1
    h = p[4] & 0xFF
    v = (h << 8) | (p[4] & 0xFF)
    if v & 0x8000:
        v -= 65536
    inp.ax = v
    h = p[4] & 0xFF
    v = (h << 8) | (p[4] & 0xFF)
    if v & 0x8000:
        v -= 65536
    inp.ay = v
    h = p[4] & 0xFF
    v = (h << 8) | (p[4] & 0xFF)
    if v & 0x8000:
        v -= 65536
    inp.az = v
    inp.imu_ok = 1
    return 1


@micropython.viper
def _i2c_abort():
    p = ptr32((0x4004 << 16) | 0x4000)  # noqa: F821
    if p[21]:  # IC_CLR_TX_ABRT: read to clear
        pass
    p[27] = 0


class PicoBoard:
    name = "pico-rp2040"
    # pen/runtime.py: persistence and the protocol's service step in
    # alternate passes (each at 100 Hz with the 5 ms period)
    spread_service = True
    # pen/runtime.py GC_IDLE_MS: collections only with the drive off
    gc_policy = True
    # pen/protocol.py defer: a request served while the needles run is
    # answered over passes, a part per pass (a `status` takes ~5 ms)
    spread_requests = True
    fs_root = "/"  # the port's built-in littlefs: pen.persist keeps its files here
    period_us = LOOP_US  # pen/looptime.py

    def __init__(self):
        self.serial_number = machine.unique_id().hex()
        self.ticks_us = time.ticks_us  # pen/looptime.py: the silicon's own passes
        self.motor = Motor(PWM(Pin(PINS["motor_pwm"])), Pin(PINS["motor_brake"], Pin.OUT, value=1))
        self.hall = Hall(Pin(PINS["hall"], Pin.IN, Pin.PULL_UP), time.ticks_us, ticks_diff, Pin.IRQ_FALLING, True)
        self.stepper = Stepper(
            Pin(PINS["stepper_step"], Pin.OUT),
            Pin(PINS["stepper_dir"], Pin.OUT),
            Pin(PINS["stepper_en"], Pin.OUT),
        )
        self.home = Pin(PINS["home_switch"], Pin.IN, Pin.PULL_UP)  # closed = low
        self.trigger = Pin(PINS["trigger"], Pin.IN, Pin.PULL_UP)  # pressed = low
        self.cartridge = Pin(PINS["cartridge"], Pin.IN, Pin.PULL_UP)  # present = low
        self.led = Pin(PINS["led"], Pin.OUT, value=0)
        self.buzzer = Pin(PINS["buzzer"], Pin.OUT, value=0)
        self.imu = MPU6050(_i2c(), recover=_i2c_recover)
        self.imu.init()
        # shunt amplifier and battery divider: boards/wiring.py
        self.current = Analog(ADC(Pin(PINS["adc_motor_current"])), VREF_MV, CURRENT_MUL, CURRENT_DIV)
        self.battery = Analog(ADC(Pin(PINS["adc_battery"])), VREF_MV, BATTERY_MUL, BATTERY_DIV)
        self.serial = StdioSerial()
        self.serial_read = self.serial.read
        self.serial_read_into = self.serial.read_into
        self.serial_write = self.serial.write
        # the host's end of the port: USB CDC DTR (set while a program holds
        # the port open). MicroPython 1.29 gives Python no way to read it
        # (TinyUSB's tud_cdc_connected() stays inside shared/tinyusb); an
        # image with the native helper `penusb.connected()` ends a
        # technician session when the host closes the port. Without it the
        # session ends on `id` (a new connection), logout or the idle timeout.
        try:
            import penusb  # type: ignore[import-not-found]  # pyright: ignore[reportMissingImports]

            self.host_connected = penusb.connected  # pyright: ignore[reportUnknownMemberType]
        except ImportError:
            pass
        self.serial_dropped = self._serial_dropped
        # why the MCU last reset (power-on/brown-out, watchdog): reported,
        # never acted on: every boot starts with the drive off (SR5, SR8)
        self.reset_cause = machine.reset_cause()
        # SR8: started last, once every driver holds its safe state; it
        # cannot be stopped and the loop feeds it once per tick
        self.wdt = WDT(timeout=WDT_TIMEOUT_MS)
        self.wdt_flash = 0  # 1 while the flash write timeout is set (feed_flash)
        # a loop stuck with the drive on is stopped within ~6 ms, before the
        # watchdog's 100 ms (boards/deadman.py)
        self.deadman = Deadman(self.motor)
        self.deadman_timer = Timer(-1, mode=Timer.PERIODIC, period=self.deadman.period, callback=self.deadman.check)
        self.marks = machine.mem32  # stage marks of a loop pass (pen/runtime.py MARK)
        self.watch = None  # pen/runtime.py installs SR1's fast path here
        self.imu_us = time.ticks_us()
        self.next_us = ticks_add(time.ticks_us(), LOOP_US)
        self.overruns = 0

    def _serial_dropped(self):
        return self.serial.dropped

    def wait_tick(self):
        late = ticks_diff(time.ticks_us(), self.next_us)
        if late > LOOP_US:
            self.overruns += 1  # a late tick is counted, never made up twice
            self.next_us = time.ticks_us()
        else:
            watch = self.watch
            while True:
                now = time.ticks_us()
                left = ticks_diff(self.next_us, now)
                if left <= 0:
                    break
                if watch is not None and left > WATCH_LEFT_US and ticks_diff(now, self.imu_us) >= IMU_WATCH_US:
                    watch()
        self.next_us = ticks_add(self.next_us, LOOP_US)
        return time.ticks_ms()

    @micropython.native
    def watch_due(self):
        """SR1's fast path between the stages of a pass: a tilt watch when
        the last accelerometer read is IMU_WATCH_US old (the MPU-6050 has a
        new sample), so no stretch of a pass goes long without one."""
        watch = self.watch
        if watch is not None and ticks_diff(time.ticks_us(), self.imu_us) >= IMU_WATCH_US:
            watch()

    @micropython.native
    def due_begin(self, inp):
        """watch_due's read started ahead of a short stage (pen/runtime.py:
        the bus time overlaps the stage, the cone is checked after it):
        imu_begin's answer when the last read is IMU_EARLY_US old, else 0."""
        if ticks_diff(time.ticks_us(), self.imu_us) >= IMU_EARLY_US:
            return self.imu_begin(inp)
        return 0

    @micropython.native
    def read_imu(self, inp):
        """The accelerometer into inp, unless the last read is so recent
        that the MPU-6050 has no new sample."""
        if self.imu_begin(inp) == 1:
            self.imu_end(inp)

    @micropython.native
    def imu_begin(self, inp):
        """read_imu's first half: 1 when the read is queued on the I2C block
        (imu_end takes it, ~236 us of bus time later), 2 when the driver
        read it (a lost chip: back-off, re-init), 0 when the last read is so
        recent that the MPU-6050 has no new sample."""
        d = self.deadman
        d.beat = (d.beat + 1) & 0xFFFF  # the loop is alive and watching the tilt (SR8)
        now = time.ticks_us()
        if ticks_diff(now, self.imu_us) >= IMU_FRESH_US:
            self.imu_us = now
            imu = self.imu
            if not imu.ok:
                imu.read_into(inp)  # lost: back-off, re-init with a bus clear
                return 2
            _i2c_queue()
            return 1
        return 0

    @micropython.native
    def imu_end(self, inp):
        """read_imu's second half: waits for the 6 bytes of the read queued
        by imu_begin (at most I2C_TIMEOUT_US from its start) into inp."""
        if _i2c_wait(inp, self.imu_us, I2C_TIMEOUT_US) < 0:  # pyright: ignore[reportArgumentType]  # a ticks_us value is an int
            # a NACK, or a bus held past the timeout: as a failed
            # machine.I2C transfer (the driver backs off, re-inits)
            _i2c_abort()
            self.imu.failed()
            inp.imu_ok = 0

    @micropython.native
    def drive_off(self):
        """SR1's fast path: PWM 0 and brake on, ahead of the tick."""
        self.motor.set(0, 1)

    @micropython.native
    def read_inputs(self, inp):
        inp.trigger = 1 - self.trigger.value()
        inp.cartridge = 1 - self.cartridge.value()
        inp.home = 1 - self.home.value()
        self.hall.read_into(inp)
        if self.watch is None:
            self.imu.read_into(inp)  # else read by the watch, first in the pass
        inp.motor_ma = self.current.read()
        inp.battery_mv = self.battery.read()

    @micropython.native
    def apply(self, out):
        if self.deadman.tripped:
            # the loop stalled with the drive on: boot again, drive off (SR8)
            machine.reset()
        self.motor.set(out.duty, out.brake)
        self.deadman.heartbeat(1 if out.duty > 0 else 0)
        self.stepper.move(out.steps)
        self.led.value(out.led)
        self.buzzer.value(out.buzzer)

    @micropython.native
    def feed_watchdog(self):
        if self.wdt_flash:
            # the loop's timeout again, at the first feed after a flash write
            self.wdt_flash = 0
            self.wdt = WDT(timeout=WDT_TIMEOUT_MS)
        else:
            self.wdt.feed()

    def feed_flash(self):
        """Before a flash operation (pen.persist: only with the drive off).
        A littlefs write can erase two sectors with the CPU stalled, ~92 ms
        on the virtual Pico, which the 100 ms watchdog reset (SR8): the
        watchdog gets WDT_FLASH_TIMEOUT_MS until the loop's next feed."""
        self.wdt_flash = 1
        self.wdt = WDT(timeout=WDT_FLASH_TIMEOUT_MS)
