# The simulated board: the same drivers as boards/pico.py, handed simulated
# peripherals wired to the world. Timing, watchdog and serial come from the
# Sim (runner.py), which owns the virtual clock.
from boards.analog import Analog
from boards.hall import Hall
from boards.motor import Motor
from boards.mpu6050 import ADDR, MPU6050
from boards.stepper import Stepper
from boards.wiring import BATTERY_DIV, BATTERY_MUL, CURRENT_DIV, CURRENT_MUL, I2C_TIMEOUT_US, TICK_US, VREF_MV
from pen.auth import MemStore
from periph import SimADC, SimI2C, SimPin, SimPWM
from wallclock import wall_us


class SimBoard:
    name = "sim-rp2040"
    serial_number = "SIM00001"
    period_us = TICK_US  # the simulated tick

    def __init__(self, sim):
        self.sim = sim
        # pen/looptime.py times the firmware's passes on the desktop's wall
        # clock (a simulated pass takes no simulated time)
        self.ticks_us = wall_us
        world = sim.world
        self.world = world
        sim.board = self  # the world moves with these outputs from now on
        self.pwm = SimPWM(sim.clock.now_us)
        self.brake = SimPin(1)
        self.motor = Motor(self.pwm, self.brake)
        self.hall_pin = SimPin(0)
        self.hall = Hall(self.hall_pin, sim.clock.ticks_us, sim.clock.ticks_diff, SimPin.IRQ_RISING)
        self.dir_pin = SimPin(0)
        self.en_pin = SimPin(1)
        self.step_pin = SimPin(0, self._step_edge)
        self.stepper = Stepper(self.step_pin, self.dir_pin, self.en_pin)
        # the bus timeout the pico board hands machine.I2C (boards/wiring.py);
        # a stalled transfer waits it out in simulated time (sim.block)
        self.i2c = SimI2C(I2C_TIMEOUT_US, sim.block)
        self.i2c.devices[ADDR] = world.imu
        self.imu = MPU6050(self.i2c)
        self.imu.init()
        self.adc_current = SimADC()
        self.adc_battery = SimADC()
        self.current = Analog(self.adc_current, VREF_MV, CURRENT_MUL, CURRENT_DIV)
        self.battery = Analog(self.adc_battery, VREF_MV, BATTERY_MUL, BATTERY_DIV)
        self.update_adcs()
        self.serial_read = sim.serial_read
        self.serial_write = sim.serial_write
        self.serial_room = sim.cdc.room  # bytes a write takes without blocking (POLLOUT)
        self.host_connected = sim.host_connected  # the pty's hang-up: DTR of the USB CDC port
        self.serial_dropped = self._serial_dropped  # bytes the firmware's serial driver dropped
        self.led = 0
        self.buzzer = 0
        # storage for pen.persist (sim/device/flash.py) and the reset cause
        self.fs_root = getattr(sim, "fs_root", None)
        self.reset_cause = "watchdog" if sim.resets else "power_on"
        # without a flash (fs_root None) security state lives in the Sim's
        # memory, surviving a simulated watchdog reset but not the process
        if self.fs_root is None:
            if getattr(sim, "nvram", None) is None:
                sim.nvram = MemStore()
            self.store = sim.nvram

    def _serial_dropped(self):
        return self.sim.serial.dropped

    def _step_edge(self, old, new):
        if new and not old and not self.en_pin.value():
            self.world.step_stage(self.dir_pin.value())

    def wait_tick(self):
        return self.sim.tick(self)

    def read_inputs(self, inp):
        w = self.world
        inp.trigger = 1 if w.trigger else 0
        inp.cartridge = 1 if (w.cartridge and not w.f_cartridge_pulled) else 0
        inp.home = 1 if w.home else 0
        self.hall.read_into(inp)
        self.imu.read_into(inp)
        # ADC counts were set by update_adcs() after the world's step: the
        # sense path allocates nothing (no float arithmetic here)
        inp.motor_ma = self.current.read()
        inp.battery_mv = self.battery.read()

    def update_adcs(self):
        """The ADCs see the world through the same scaling as the real
        shunt amplifier and battery divider (boards/wiring.py)."""
        w = self.world
        self.adc_current.counts = adc_counts(int(w.motor_a * 1000.0) * CURRENT_DIV // CURRENT_MUL)
        self.adc_battery.counts = adc_counts(int(w.battery_v * 1000.0) * BATTERY_DIV // BATTERY_MUL)

    def apply(self, out):
        self.motor.set(out.duty, out.brake)
        self.stepper.move(out.steps)
        self.led = out.led
        self.buzzer = out.buzzer

    def feed_watchdog(self):
        self.sim.feed_watchdog()

    # what the world's motor sees
    def motor_duty(self):
        """The duty written (in effect at the PWM counter's next wrap, at
        most one period from now)."""
        return self.pwm.register() / 65535.0

    def brake_on(self):
        return self.brake._v == 1


def adc_counts(mv):
    """16-bit ADC counts of mv at the ADC pin (clipped like the converter)."""
    c = mv * 65535 // VREF_MV
    if c < 0:
        return 0
    return 65535 if c > 65535 else c
