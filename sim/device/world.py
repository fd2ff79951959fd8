# The virtual pen's physics: battery, needle motor and cam, hall sensor,
# depth stage, MPU-6050, switches. Plain MicroPython-compatible Python; it
# runs beside the firmware inside the `micropython` interpreter (or CPython).
# Parameters are those of the reference pen in docs/simulator.md.
#
# Speed matters (DESIGN §7: >= 20x real time under MicroPython): the per-tick
# path uses attributes cached in locals, fault flags instead of dict look-ups,
# integer noise for the IMU and no per-tick allocation besides float boxing.
import math

from faults import FAULT_NAMES

TWO_PI = 2.0 * math.pi

# motor: coreless DC, 7.4 V no-load ~217 rev/s; cam: one stroke per turn
R_WINDING = 2.0  # ohm
R_SHORT = 1.0  # ohm: the `overcurrent` fault, a short across the motor
# (e.g. a failed snubber or winding-to-case short): current that turns
# nothing, flows whenever the PWM switch is on, and the shunt sees it
KE = 0.00544  # V*s/rad (= Nm/A)
J_ROTOR = 3.0e-7  # kg*m^2, rotor + cam + needle carrier
T_FRICTION = 0.0004  # Nm coulomb friction
B_VISCOUS = 1.0e-7  # Nm*s/rad
R_BRAKE = 0.5  # ohm: winding shorted through the brake FET
# skin load: needles entering skin cost torque, more when deeper and faster
LOAD_NM_PER_MM = 0.0012
LOAD_SPEED_REF = 600.0  # rad/s at which the speed-dependent term doubles it
# battery: 2S Li-ion, linear open-circuit voltage over the state of charge
BATT_FULL_MV = 8400.0
BATT_EMPTY_MV = 6000.0
BATT_SAG_MV = 6100.0  # open-circuit voltage under the `battery_sag` fault
BATT_R_INT = 0.15  # ohm
BATT_CAPACITY_MAS = 2000.0 * 3600.0  # mA*s
ELECTRONICS_MA = 30.0
# depth stage: 0.5 mm lead screw, 200 full steps per turn, 1/2 stepping
STEPS_PER_MM = 400
STAGE_MIN_STEPS = -80  # hard stop 0.2 mm behind the home switch
STAGE_MAX_STEPS = 1200  # hard stop at 3.0 mm
STAGE_PULLOUT_N = 6.0  # force on the needle stop the stepper holds against
STAGE_SKIN_N = 2.0  # force on the stop from needles hammering skin, load 1.0
STEP_LOSS_FAULT = 0.3  # fraction of pulses lost under the `step_loss` fault
# MPU-6050
IMU_NOISE_G = 0.002  # +- peak accelerometer noise
IMU_GYRO_NOISE_DPS = 0.05
IMU_BIAS_G = 0.01  # +- per-axis accelerometer offset (seeded per pen)
IMU_GYRO_BIAS_DPS = 1.0
TEMP_C = 35.0
NOISE_N = 256  # noise samples replayed in a loop (256 ms)
# a hand's physiological tremor (8-12 Hz): 7.8125 Hz, two periods in the
# NOISE_N-sample loop, seeded phase per pen; lateral acceleration and the
# angular rate that goes with it
TREMOR_G = 0.003
TREMOR_DPS = 0.2
TREMOR_PERIOD = 128  # samples (ms)
# motor vibration: the cam's unbalance shakes the pen once per stroke,
# mostly along the needle axis; amplitude grows with the square of speed
VIB_G = 0.006  # axial peak at 100 strokes/s (0.0135 g at 150 Hz)
VIB_LATERAL = 0.1  # lateral peak as a fraction of the axial one
VIB_OMEGA_REF = 2.0 * math.pi * 100.0
# adc_noise fault: ripple on both ADC inputs, one high outlier per 20 ms
ADC_RIPPLE_MV = 150  # battery, +- peak
ADC_RIPPLE_MA = 40  # motor current, +- peak
ADC_OUTLIER_EVERY_MS = 20
ADC_OUTLIER_MV = 2200
ADC_OUTLIER_MA = 400
STUCK_COUNTS = 32767  # imu_stuck_axis: Z reads +full scale
TICK_S = 0.001
SUBSTEPS = 4  # physics steps per 1 ms control tick (250 us)
SUB_US = 1000 // SUBSTEPS
SUB_S = 0.001 / SUBSTEPS
K_J = SUB_S / J_ROTOR


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


def _clamp16(v):
    if v > 32767:
        return 32767
    if v < -32768:
        return -32768
    return v


class MPU6050Model:
    """Register-level MPU-6050 (register map RM-MPU-6000A-00 rev 4.2):
    WHO_AM_I 0x75 = 0x68, PWR_MGMT_1 0x6B (SLEEP at reset, DEVICE_RESET
    bit 7), GYRO_CONFIG 0x1B and ACCEL_CONFIG 0x1C full-scale bits 4:3,
    big-endian samples ACCEL 0x3B..0x40, TEMP 0x41..0x42, GYRO 0x43..0x48.
    Samples carry a seeded per-axis bias and white noise; an asleep or
    frozen chip keeps its old sample registers."""

    def __init__(self, rng):
        self.rng = rng
        self.regs = bytearray(128)
        self.mv = memoryview(self.regs)
        self.present = True
        self.frozen = False
        self.stuck = False  # imu_stuck_axis: Z at +full scale
        self.stalled = False  # imu_bus_stall: holds the I2C bus
        self.vib_z = 0  # motor vibration of this sample, counts (World sets)
        self.vib_x = 0
        self.g = (0.0, 0.0, 1.0)  # specific force in the body frame, g
        self.w = (0.0, 0.0, 0.0)  # angular rate in the body frame, dps
        # per-pen offsets, drawn once from the seed
        self.accel_bias = (
            rng.uniform(-IMU_BIAS_G, IMU_BIAS_G),
            rng.uniform(-IMU_BIAS_G, IMU_BIAS_G),
            rng.uniform(-IMU_BIAS_G, IMU_BIAS_G),
        )
        self.gyro_bias = (
            rng.uniform(-IMU_GYRO_BIAS_DPS, IMU_GYRO_BIAS_DPS),
            rng.uniform(-IMU_GYRO_BIAS_DPS, IMU_GYRO_BIAS_DPS),
            rng.uniform(-IMU_GYRO_BIAS_DPS, IMU_GYRO_BIAS_DPS),
        )
        self.base = [0, 0, 0, 0, 0, 0, 0]  # counts without noise
        self.la = 16384  # accelerometer LSB per g at the current full scale
        ph = rng.uniform(0.0, TWO_PI)
        # tremor of each of the NOISE_N samples (g, dps), seeded phase
        self.tremor = [math.sin(ph + TWO_PI * j / TREMOR_PERIOD) for j in range(NOISE_N)]
        self.tremor2 = [math.cos(1.3 * ph + TWO_PI * j / TREMOR_PERIOD) for j in range(NOISE_N)]
        self.anoise = 0
        self.gnoise = 0
        self.dirty = True
        # white noise: NOISE_N seeded samples of 6 axes in -512..511 (scaled
        # to the full-scale setting), replayed in a loop
        self.noise = [rng.getrandbits(10) - 512 for _ in range(NOISE_N * 6)]
        self.table = bytearray(NOISE_N * 14)
        self.tmv = memoryview(self.table)
        self.table_ok = False
        self.moving = False
        self.j = 0
        self.reset()

    def reset(self):
        r = self.regs
        for k in range(128):
            r[k] = 0
        r[0x75] = 0x68
        r[0x6B] = 0x40  # SLEEP set at power-on
        self.dirty = True

    def accel_lsb_per_g(self):
        return 16384 >> ((self.regs[0x1C] >> 3) & 3)

    def gyro_lsb_per_dps(self):
        return 131.0 / (1 << ((self.regs[0x1B] >> 3) & 3))

    def set_motion(self, g, w, moving=False):
        self.g = g
        self.w = w
        self.moving = moving
        self.dirty = True

    def _rebase(self):
        la = self.accel_lsb_per_g()
        lg = self.gyro_lsb_per_dps()
        b = self.base
        g = self.g
        ab = self.accel_bias
        w = self.w
        gb = self.gyro_bias
        for k in range(3):
            b[k] = int(round((g[k] + ab[k]) * la))
            b[4 + k] = int(round((w[k] + gb[k]) * lg))
        b[3] = int(round((TEMP_C - 36.53) * 340.0))
        self.la = la
        self.anoise = int(IMU_NOISE_G * la) or 1
        self.gnoise = int(IMU_GYRO_NOISE_DPS * lg) or 1
        self.dirty = False

    def read_into(self, reg, buf):
        # element by element: no heap allocation on the driver's read path
        r = self.regs
        for k in range(len(buf)):
            buf[k] = r[reg + k]

    def read(self, reg, n):
        return self.regs[reg : reg + n]

    def write(self, reg, data):
        for k in range(len(data)):
            self.regs[reg + k] = data[k]
        if reg == 0x6B and data[0] & 0x80:
            self.reset()
        self.dirty = True

    def _build_table(self):
        """All NOISE_N samples of the current (static) pose as register
        images, so a sample is one slice copy."""
        b = self.base
        an = self.anoise
        gn = self.gnoise
        nz = self.noise
        t = self.table
        for j in range(NOISE_N):
            o = j * 14
            q = j * 6
            tr = self._tremor(j)
            for k in range(7):
                if k < 3:
                    v = b[k] + ((nz[q + k] * an) >> 9) + tr[k]
                elif k == 3:
                    v = b[3]
                else:
                    v = b[k] + ((nz[q + k - 1] * gn) >> 9) + tr[k]
                v = _clamp16(v) & 0xFFFF
                t[o + 2 * k] = v >> 8
                t[o + 2 * k + 1] = v & 0xFF

    def _tremor(self, j):
        """Tremor of sample j in counts per register (index as base): the
        hand sways the pen sideways (x, y) and rocks it (gyro)."""
        s1 = self.tremor[j]
        s2 = self.tremor2[j]
        ta = TREMOR_G * self.la
        tg = TREMOR_DPS * self.gyro_lsb_per_dps()
        return (int(ta * s1), int(ta * s2), int(0.25 * ta * s1 * s2), 0, int(tg * s2), int(-tg * s1), 0)

    def _faults_and_vibration(self):
        # motor vibration on top of the sample, then a stuck axis wins
        r = self.regs
        vz = self.vib_z
        if vz:
            vx = self.vib_x
            v = _clamp16(((r[0x3B] << 8 | r[0x3C]) ^ 0x8000) - 0x8000 + vx) & 0xFFFF
            r[0x3B] = v >> 8
            r[0x3C] = v & 0xFF
            v = _clamp16(((r[0x3F] << 8 | r[0x40]) ^ 0x8000) - 0x8000 + vz) & 0xFFFF
            r[0x3F] = v >> 8
            r[0x40] = v & 0xFF
        if self.stuck:
            r[0x3F] = STUCK_COUNTS >> 8
            r[0x40] = STUCK_COUNTS & 0xFF

    def sample(self):
        """One 1 kHz sample into the data registers 0x3B..0x48."""
        r = self.regs
        if self.frozen or r[0x6B] & 0x40:
            return  # frozen sensor, or asleep: registers keep old values
        if self.dirty:
            self._rebase()
            self.table_ok = False
        j = self.j + 1
        if j >= NOISE_N:
            j = 0
        self.j = j
        if self.moving:
            # the pose changes every sample: compute the accelerometer
            # registers directly, keep temperature and gyro of the table
            b = self.base
            an = self.anoise
            nz = self.noise
            q = j * 6
            tr = self._tremor(j)
            for k in range(3):
                v = _clamp16(b[k] + ((nz[q + k] * an) >> 9) + tr[k]) & 0xFFFF
                r[0x3B + 2 * k] = v >> 8
                r[0x3C + 2 * k] = v & 0xFF
            gn = self.gnoise
            for k in range(4, 7):
                v = _clamp16(b[k] + ((nz[q + k - 1] * gn) >> 9) + tr[k]) & 0xFFFF
                r[0x3B + 2 * k] = v >> 8
                r[0x3C + 2 * k] = v & 0xFF
            if self.vib_z or self.stuck:
                self._faults_and_vibration()
            return
        if not self.table_ok:
            self._build_table()
            self.table_ok = True
        self.mv[0x3B:0x49] = self.tmv[j * 14 : j * 14 + 14]
        if self.vib_z or self.stuck:
            self._faults_and_vibration()


class World:
    def __init__(self, seed=1):
        self.rng = Rng(seed)
        # motor and cam
        self.omega = 0.0
        self.angle = 0.0
        self.motor_a = 0.0
        self.strokes = 0
        self.load_scale = 1.0
        # hall edges of the last tick: count and offsets in us
        self.n_edges = 0
        self.edge_us = [0] * (SUBSTEPS + 1)
        # battery
        self.charge_mas = BATT_CAPACITY_MAS * 0.8
        self.voc = 0.0
        self.battery_v = 0.0
        self.drain_ma = 0.0  # mean battery current of the last tick
        # stage: position unknown to the firmware at power-up
        self.stage_steps = 320  # 0.80 mm
        self.lost_steps = 0
        self.home = False
        # pose and switches
        self.tilt_deg = 0.0
        self.axis_deg = 0.0
        self.tilt_rate = 0.0  # deg/s sweep
        self.sweep_to = None  # stop the sweep at this tilt
        self.trigger = False
        self.cartridge = True
        self.contact = False
        self.imu = MPU6050Model(self.rng)
        self.faults = {}
        # fault flags, kept in step with `faults` by set_fault
        self.f_stall = False
        self.f_overcurrent = False
        self.f_hall_lost = False
        self.f_step_loss = False
        self.f_battery_sag = False
        self.f_cartridge_pulled = False
        self.f_serial_noise = False
        self.f_hall_missed = False
        self.f_adc_noise = False
        self.f_serial_blocked = False
        self.hall_skip = 0  # hall_missed_edges: the next edge is lost if 1
        self.hall_missed = 0  # edges lost to hall_missed_edges (truth)
        self.adc_n = 0  # adc_noise: ms counter of the outlier cadence
        self._update_voc()
        self.battery_v = self.voc
        self.set_tilt(0.0, 0.0)
        self.home = self.stage_steps <= 0

    # --- derived ground truth ---
    def stroke_hz(self):
        return self.omega / TWO_PI

    def needle_depth_mm(self):
        return self.stage_steps / STEPS_PER_MM

    def cartridge_closed(self):
        return self.cartridge and not self.f_cartridge_pulled

    def _update_voc(self):
        if self.f_battery_sag:
            self.voc = BATT_SAG_MV / 1000.0
        else:
            soc = self.charge_mas / BATT_CAPACITY_MAS
            if soc < 0.0:
                soc = 0.0
            self.voc = (BATT_EMPTY_MV + (BATT_FULL_MV - BATT_EMPTY_MV) * soc) / 1000.0

    def step_motor(self, duty_u16, brake):
        """Integrate motor, cam and battery over one 1 ms tick in SUBSTEPS
        explicit steps. Hall edges (one per cam turn) land in n_edges and
        edge_us (offsets in the tick, microseconds).

        Per substep the model is linear in the speed w (quasi-static
        winding current i = (d*Voc - KE*w) / (R + d^2*R_int), battery
        current d*i), so each substep is w <- p + r*w with coefficients
        computed once per tick: cheap enough for MicroPython."""
        w = self.omega
        if w == 0.0 and (brake or duty_u16 <= 0):
            # at rest, drive off: nothing moves (the common idle tick)
            if self.imu.vib_z:
                self._vibration(0.0, 0.0)
            self.n_edges = 0
            self.motor_a = 0.0
            self.drain_ma = ELECTRONICS_MA
            self.charge_mas -= ELECTRONICS_MA * TICK_S
            self.battery_v = self.voc
            return
        if self.contact and self.cartridge and self.stage_steps > 0:
            load0 = self.load_scale * LOAD_NM_PER_MM * self.stage_steps / STEPS_PER_MM
        else:
            load0 = 0.0
        # coasting (no winding current): w <- pc + rc*w
        pc = -(load0 + T_FRICTION) * K_J
        rc = 1.0 - (B_VISCOUS + load0 / LOAD_SPEED_REF) * K_J
        w_free = 1e30  # above this speed the diode blocks: coast
        d = 0.0
        i0 = 0.0
        i1 = 0.0
        if brake:
            i1 = KE / R_BRAKE
        elif duty_u16 > 0:
            d = duty_u16 / 65535.0
            inv = 1.0 / (R_WINDING + d * d * BATT_R_INT)
            i0 = d * self.voc * inv
            i1 = KE * inv
            w_free = i0 / i1
        # driven: w <- pd + rd*w
        pd = pc + KE * i0 * K_J
        rd = rc - KE * i1 * K_J
        a = self.angle
        n = 0
        if self.f_stall:
            w = 0.0
        else:
            sub_s = SUB_S
            two_pi = TWO_PI
            for s in range(SUBSTEPS):
                if w < w_free:
                    w = pd + rd * w
                else:
                    w = pc + rc * w
                if w < 0.0:
                    w = 0.0
                a += w * sub_s
                if a >= two_pi:
                    a -= two_pi
                    self.strokes += 1
                    if self.f_hall_missed:
                        self.hall_skip ^= 1
                        if not self.hall_skip:
                            self.hall_missed += 1
                            continue  # every second pulse is lost
                    if not self.f_hall_lost:
                        # the edge is where the cam passed the magnet
                        self.edge_us[n] = int((s + 1 - a / (w * sub_s)) * SUB_US)
                        n += 1
        self.omega = w
        self.angle = a
        self.n_edges = n
        self._vibration(w, a)
        if brake:
            i = 0.0  # the brake current circulates outside the shunt
        else:
            i = i0 - i1 * w
            if i < 0.0:
                i = 0.0
        i_short = d * self.voc / R_SHORT if self.f_overcurrent else 0.0
        self.motor_a = i + i_short
        drain = (d * i + i_short) * 1000.0 + ELECTRONICS_MA
        self.drain_ma = drain
        self.charge_mas -= drain * TICK_S
        self.battery_v = self.voc - drain * (0.001 * BATT_R_INT)

    def _vibration(self, w, a):
        """The cam's unbalance at angle a and speed w, as IMU counts for
        the next sample: axial (Z) and a lateral share (X)."""
        imu = self.imu
        if w <= 0.0:
            imu.vib_z = 0
            imu.vib_x = 0
            return
        k = w / VIB_OMEGA_REF
        amp = VIB_G * k * k * imu.la
        v = int(amp * math.sin(a))
        imu.vib_z = v or 1  # nonzero while the motor turns
        imu.vib_x = int(VIB_LATERAL * amp * math.cos(a))

    def adc_noise(self):
        """The `adc_noise` fault's error of this ms: (battery mV, motor
        mA). Seeded ripple on both inputs, and every ADC_OUTLIER_EVERY_MS
        one high outlier (a load-dump spike or a bad conversion)."""
        n = self.adc_n + 1
        if n >= ADC_OUTLIER_EVERY_MS:
            n = 0
        self.adc_n = n
        rng = self.rng
        mv = rng.getrandbits(9) * ADC_RIPPLE_MV // 256 - ADC_RIPPLE_MV
        ma = rng.getrandbits(9) * ADC_RIPPLE_MA // 256 - ADC_RIPPLE_MA
        if n == 0:
            return mv + ADC_OUTLIER_MV, ma + ADC_OUTLIER_MA
        return mv, ma

    def step_stage(self, direction):
        """One step pulse arrived at the driver (direction 1 = deeper).
        Pulses are lost under the `step_loss` fault and when the force on
        the needle stop exceeds the stepper's pull-out (a high skin load
        while the needles run) for steps that push against it."""
        if self.f_step_loss and self.rng.random() < STEP_LOSS_FAULT:
            self.lost_steps += 1
            return
        if direction and self.contact and self.omega > 1.0:
            force = STAGE_SKIN_N * self.load_scale
            if force > STAGE_PULLOUT_N and self.rng.random() < (force - STAGE_PULLOUT_N) / force:
                self.lost_steps += 1
                return
        s = self.stage_steps + (1 if direction else -1)
        if s < STAGE_MIN_STEPS:
            s = STAGE_MIN_STEPS
            self.lost_steps += 1  # against the hard stop
        elif s > STAGE_MAX_STEPS:
            s = STAGE_MAX_STEPS
            self.lost_steps += 1
        self.stage_steps = s
        self.home = s <= 0

    def home_closed(self):
        return self.home

    # --- pose ---
    def set_tilt(self, deg, axis_deg=0.0):
        self.tilt_deg = deg
        self.axis_deg = axis_deg
        self._pose()

    def _pose(self):
        t = math.radians(self.tilt_deg)
        a = math.radians(self.axis_deg)
        st = math.sin(t)
        ca = math.cos(a)
        sa = math.sin(a)
        # specific force of a pen at rest: +1 g along the body axis pointing
        # up when vertical; tilting by t towards azimuth a; the sweep turns
        # the pen about the horizontal axis perpendicular to the tilt
        r = self.tilt_rate
        self.imu.set_motion((st * ca, st * sa, math.cos(t)), (-r * sa, r * ca, 0.0), r != 0.0)

    def accel_g(self):
        return self.imu.g

    def step_pose(self):
        r = self.tilt_rate
        if r:
            d = self.tilt_deg + r * TICK_S
            stop = self.sweep_to
            if stop is not None and ((r > 0 and d >= stop) or (r < 0 and d <= stop)):
                d = stop
                self.tilt_rate = 0.0
                self.sweep_to = None
            self.tilt_deg = d
            self._pose()
        self.imu.sample()

    def sweep(self, deg_per_s, to_deg=None):
        self.tilt_rate = deg_per_s
        self.sweep_to = to_deg
        self._pose()

    # --- slow state (once per tick) ---
    def step_slow(self):
        self._update_voc()

    def set_fault(self, name, on):
        if name not in FAULT_NAMES:
            raise ValueError("unknown fault '%s'" % name)
        if on:
            self.faults[name] = True
        elif name in self.faults:
            del self.faults[name]
        f = self.faults
        self.f_stall = "stall" in f
        self.f_overcurrent = "overcurrent" in f
        self.f_hall_lost = "hall_lost" in f
        self.f_step_loss = "step_loss" in f
        self.f_battery_sag = "battery_sag" in f
        self.f_cartridge_pulled = "cartridge_pulled" in f
        self.f_serial_noise = "serial_noise" in f
        self.f_hall_missed = "hall_missed_edges" in f
        self.f_adc_noise = "adc_noise" in f
        self.f_serial_blocked = "serial_blocked" in f
        self.imu.stuck = "imu_stuck_axis" in f
        self.imu.stalled = "imu_bus_stall" in f
        self.imu.present = "imu_lost" not in f
        self.imu.frozen = "imu_frozen" in f
        self._update_voc()
