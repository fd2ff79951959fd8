# A tiny deterministic input feeder for pen.core.Core: a fake board that
# fills core.inp from a few integer models (stage position from the step
# outputs, a motor that turns at the set rate while the drive is on, an IMU
# with a last-bit jitter, a trigger pressed once the pen is ready) so the
# core reaches and holds its steady state: homed, in the cone, running.
# Runs under MicroPython and CPython; feed() allocates nothing (small ints
# only, no floats, strings or lists), so it may sit inside an allocation
# count. Used by bench/fwprobe.py (allocation per tick, tick time) and the
# perf tests.

TICKS_MASK = (1 << 30) - 1
START_MS = (1 << 30) - 3000  # cross the RP2040 ticks wrap early, as the sim
TRIGGER_AT_MS = 1500  # homing (~0.4 s) + depth move + tilt hold are done by then
NO_EDGE_AGE_US = 100000000


class Feeder:
    def __init__(self, core, rate_mhz=100000, tilt_x=0, stage_steps=320):
        self.core = core
        self.inp = core.inp
        self.out = core.out
        self.t = 0  # ms since start
        self.stage = stage_steps  # true stage position in steps (0 = home)
        self.rate_mhz = rate_mhz  # motor speed while the drive is on
        self.period_us = 1000000000 // rate_mhz
        self.phase_us = 0  # time since the last hall edge
        self.seen = 0
        self.count = 0
        self.noise = 1  # ZX81 LCG state: always < 65537, a small int
        self.tilt_x = tilt_x  # accelerometer x offset, counts at 16384/g
        self.trigger_at = TRIGGER_AT_MS

    def feed(self):
        """Fill core.inp for the next tick from the outputs of the last."""
        i = self.inp
        o = self.out
        # depth stage: the core's step outputs move it; home at <= 0
        self.stage += o.steps
        # motor: turns at the set rate while driven, stops when braked
        if o.duty > 0 and not o.brake:
            self.phase_us += 1000
            if self.phase_us >= self.period_us:
                self.phase_us -= self.period_us
                self.count = (self.count + 1) & 0xFFFF
                self.seen = 1
            i.hall_period_us = self.period_us if self.seen else 0
            i.hall_age_us = self.phase_us if self.seen else NO_EDGE_AGE_US
            i.motor_ma = 300 + (o.duty >> 4)
        else:
            if self.phase_us < NO_EDGE_AGE_US:
                self.phase_us += 1000
            i.hall_age_us = self.phase_us if self.seen else NO_EDGE_AGE_US
            i.motor_ma = 0
        i.hall_count = self.count
        # IMU: vertical (plus an optional x tilt) with +-8 counts of jitter
        n = (self.noise * 75 + 74) % 65537
        self.noise = n
        i.ax = self.tilt_x + (n & 15) - 8
        i.ay = ((n >> 4) & 15) - 8
        i.az = 16384 + ((n >> 8) & 15) - 8
        i.imu_ok = 1
        i.home = 1 if self.stage <= 0 else 0
        i.cartridge = 1
        i.trigger = 1 if self.t >= self.trigger_at else 0
        i.battery_mv = 7800
        i.now_ms = (START_MS + self.t) & TICKS_MASK
        self.t += 1

    def step(self):
        self.feed()
        self.core.tick()

    def running(self):
        """The drive is on, judged from the outputs only."""
        return self.out.duty > 0 and not self.out.brake
