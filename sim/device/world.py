# The virtual pen's physics: battery, needle motor and cam, hall sensor,
# depth stage, MPU-6050, switches. Plain MicroPython-compatible Python; it
# runs beside the firmware inside the `micropython` interpreter (or CPython).
# Parameters are those of the reference pen in docs/simulator.md.
import math

TWO_PI = 2.0 * math.pi

# motor: coreless DC, 7.4 V no-load ~217 rev/s; cam: one stroke per turn
R_WINDING = 2.0  # ohm
KE = 0.00544  # V*s/rad (= Nm/A)
J_ROTOR = 3.0e-7  # kg*m^2, rotor + cam + needle carrier
T_FRICTION = 0.0004  # Nm coulomb friction
B_VISCOUS = 1.0e-7  # Nm*s/rad
R_BRAKE = 0.5  # ohm: winding shorted through the brake FET
# skin load: needles entering skin cost torque, more when deeper and faster
LOAD_NM_PER_MM = 0.0012
LOAD_SPEED_REF = 600.0  # rad/s at which the speed-dependent term doubles it
# battery: 2S Li-ion
BATT_FULL_MV = 8400.0
BATT_EMPTY_MV = 6000.0
BATT_R_INT = 0.15  # ohm
BATT_CAPACITY_MAS = 2000.0 * 3600.0  # mA*s
# depth stage
STEPS_PER_MM = 400
STAGE_MIN_STEPS = -80  # hard stop 0.2 mm behind the home switch
STAGE_MAX_STEPS = 1200  # hard stop at 3.0 mm
# MPU-6050
IMU_NOISE_G = 0.002
SUBSTEPS = 4  # physics steps per 1 ms control tick


class Rng:
    """xorshift32: the same sequence under MicroPython and CPython (the
    unix port's random module has no Random class), so a seeded run is
    reproducible on both runtimes."""

    def __init__(self, seed):
        self.s = (seed * 2654435761 + 1) & 0xFFFFFFFF or 1

    def getrandbits(self, n):
        s = self.s
        s ^= (s << 13) & 0xFFFFFFFF
        s ^= s >> 17
        s ^= (s << 5) & 0xFFFFFFFF
        self.s = s
        return s >> (32 - n)

    def random(self):
        return self.getrandbits(24) / 16777216.0

    def uniform(self, a, b):
        return a + (b - a) * self.random()


class MPU6050Model:
    """Register-level MPU-6050: WHO_AM_I, PWR_MGMT_1 (sleeps at reset),
    ACCEL_CONFIG full scale, big-endian sample registers from 0x3B."""

    def __init__(self, rng):
        self.rng = rng
        self.regs = bytearray(128)
        self.present = True
        self.frozen = False
        self.reset()

    def reset(self):
        for k in range(128):
            self.regs[k] = 0
        self.regs[0x75] = 0x68
        self.regs[0x6B] = 0x40  # SLEEP set at power-on

    def read(self, reg, n):
        return self.regs[reg : reg + n]

    def write(self, reg, data):
        for k in range(len(data)):
            self.regs[reg + k] = data[k]
        if reg == 0x6B and data[0] & 0x80:
            self.reset()

    def _put16(self, reg, v):
        v = int(v)
        if v > 32767:
            v = 32767
        elif v < -32768:
            v = -32768
        v &= 0xFFFF
        self.regs[reg] = v >> 8
        self.regs[reg + 1] = v & 0xFF

    def sample(self, gx, gy, gz):
        """New sample from specific force in g (body frame)."""
        if self.frozen or self.regs[0x6B] & 0x40:
            return  # frozen sensor, or asleep: registers keep old values
        lsb = 16384 >> ((self.regs[0x1C] >> 3) & 3)
        n = IMU_NOISE_G
        r = self.rng
        self._put16(0x3B, (gx + r.uniform(-n, n)) * lsb)
        self._put16(0x3D, (gy + r.uniform(-n, n)) * lsb)
        self._put16(0x3F, (gz + r.uniform(-n, n)) * lsb)
        self._put16(0x41, 36.53 * 340 - 521)  # ~35 C
        self._put16(0x43, r.uniform(-3, 3))
        self._put16(0x45, r.uniform(-3, 3))
        self._put16(0x47, r.uniform(-3, 3))


class World:
    def __init__(self, seed=1):
        self.rng = Rng(seed)
        # motor and cam
        self.omega = 0.0
        self.angle = 0.0
        self.motor_a = 0.0
        self.strokes = 0
        self.load_scale = 1.0
        # battery
        self.charge_mas = BATT_CAPACITY_MAS * 0.8
        self.battery_v = 0.0
        # stage: position unknown to the firmware at power-up
        self.stage_steps = 320  # 0.80 mm
        self.lost_steps = 0
        # pose and switches
        self.tilt_deg = 0.0
        self.axis_deg = 0.0
        self.tilt_rate = 0.0  # deg/s sweep
        self.trigger = False
        self.cartridge = True
        self.contact = False
        self.imu = MPU6050Model(self.rng)
        self.faults = {}
        self._batt_update()

    # --- derived ground truth ---
    def stroke_hz(self):
        return self.omega / TWO_PI

    def needle_depth_mm(self):
        return self.stage_steps / STEPS_PER_MM

    def _batt_update(self):
        soc = self.charge_mas / BATT_CAPACITY_MAS
        voc = BATT_EMPTY_MV + (BATT_FULL_MV - BATT_EMPTY_MV) * soc
        if "battery_sag" in self.faults:
            voc = 6100.0
        self.battery_v = voc / 1000.0 - self.motor_a * BATT_R_INT

    def step_motor(self, duty, brake, dt):
        """Integrate the motor over dt seconds; returns hall edges as
        fractions of dt at which they happened."""
        edges = None
        h = dt / SUBSTEPS
        stalled = "stall" in self.faults
        r_wind = 0.3 if "overcurrent" in self.faults else R_WINDING
        for _ in range(SUBSTEPS):
            self._batt_update()
            w = self.omega
            if brake:
                i = -KE * w / R_BRAKE
            elif duty > 0.0:
                i = (duty * self.battery_v - KE * w) / r_wind
                if i < 0.0:
                    i = 0.0  # low-side switch + flyback diode: no regeneration
            else:
                i = 0.0
            torque = KE * i - B_VISCOUS * w
            if self.contact and self.cartridge:
                torque -= self.load_scale * LOAD_NM_PER_MM * self.needle_depth_mm() * (1.0 + w / LOAD_SPEED_REF)
            if w > 0.0:
                torque -= T_FRICTION
            if stalled:
                w = 0.0
            else:
                w += torque / J_ROTOR * h
                if w < 0.0:
                    w = 0.0
            self.omega = w
            self.motor_a = i if duty > 0.0 else 0.0
            if stalled and duty > 0.0:
                self.motor_a = duty * self.battery_v / r_wind
            self.charge_mas -= (self.motor_a * 1000.0 + 30.0) * h  # + 30 mA electronics
            a0 = self.angle
            a1 = a0 + w * h
            if a1 >= TWO_PI:
                a1 -= TWO_PI
                self.strokes += 1
                if "hall_lost" not in self.faults:
                    if edges is None:
                        edges = []
                    frac = (TWO_PI - a0) / (w * h) if w > 0.0 else 1.0
                    edges.append((_ + frac) / SUBSTEPS)
            self.angle = a1
        return edges

    def step_stage(self, direction):
        """One step pulse arrived at the driver."""
        if "step_loss" in self.faults and self.rng.random() < 0.3:
            self.lost_steps += 1
            return
        s = self.stage_steps + (1 if direction else -1)
        if s < STAGE_MIN_STEPS:
            s = STAGE_MIN_STEPS
        elif s > STAGE_MAX_STEPS:
            s = STAGE_MAX_STEPS
        self.stage_steps = s

    def home_closed(self):
        return self.stage_steps <= 0

    def accel_g(self):
        t = math.radians(self.tilt_deg)
        a = math.radians(self.axis_deg)
        st = math.sin(t)
        return st * math.cos(a), st * math.sin(a), math.cos(t)

    def step_pose(self, dt):
        if self.tilt_rate:
            self.tilt_deg += self.tilt_rate * dt
        gx, gy, gz = self.accel_g()
        self.imu.sample(gx, gy, gz)

    def set_fault(self, name, on):
        if on:
            self.faults[name] = True
        elif name in self.faults:
            del self.faults[name]
        self.imu.present = "imu_lost" not in self.faults
        self.imu.frozen = "imu_frozen" in self.faults
