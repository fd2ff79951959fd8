# The functional core: sensor readings and the time in, actuator commands
# out. It never reads a clock or a pin; the runtime loop fills `inp`, calls
# tick() once per millisecond and applies `out`. tick() allocates nothing in
# steady state (integers below 2**30, no strings, no lists, no floats).
from pen import limits as L
from pen.compat import const, lazy, ticks_diff
from pen.errors import NOT_ALLOWED_IN_STATE, NOT_WHILE_RUNNING, PenError
from pen.tilt import Q14, cos_to_cdeg, isqrt

# --- states (docs/safety.md has the diagram) ---
ST_BOOT = const(0)
ST_HOMING = const(1)
ST_IDLE = const(2)
ST_READY = const(3)
ST_RUNNING = const(4)
ST_FAULT = const(5)
ST_SAFE = const(6)
STATE_NAMES = ("boot", "homing", "idle", "ready", "running", "fault", "safe")

# --- reasons the drive may not run: a bit each, reported by `status` ---
BLK_NOT_HOMED = const(1)
BLK_TILT = const(2)
BLK_CARTRIDGE = const(4)
BLK_TRIGGER = const(8)
BLK_BATTERY = const(16)
BLK_FAULT = const(32)
BLK_SESSION = const(64)
BLK_DEPTH_MOVING = const(128)
BLK_SAFE_MODE = const(256)
BLK_NOT_ARMED = const(512)
BLK_CONFIG = const(1024)
BLOCK_NAMES = (
    "not_homed",
    "tilt",
    "cartridge",
    "trigger",
    "battery",
    "fault",
    "session_time",
    "depth_moving",
    "safe_mode",
    "not_armed",
    "config",
)

# --- latched faults (SR4): numbered codes reported by status ---
F_NONE = const(0)
F_OVERCURRENT = const(1)
F_STALL = const(2)
F_HALL_LOST = const(3)
F_IMU_LOST = const(4)
F_IMU_FROZEN = const(5)
F_DEPTH = const(6)
F_RATE_RUNAWAY = const(7)
F_HOMING = const(8)
FAULT_NAMES = (
    "none",
    "overcurrent",
    "stall",
    "hall_lost",
    "imu_lost",
    "imu_frozen",
    "depth",
    "rate_runaway",
    "homing",
)

# --- why the drive last stopped ---
STOP_NAMES = (
    "none",
    "trigger_released",
    "tilt",
    "cartridge",
    "battery",
    "fault",
    "session_time",
    "host_stop",
    "boot",
)
STOP_NONE = const(0)
STOP_TRIGGER = const(1)
STOP_TILT = const(2)
STOP_CARTRIDGE = const(3)
STOP_BATTERY = const(4)
STOP_FAULT = const(5)
STOP_SESSION = const(6)
STOP_HOST = const(7)
STOP_BOOT = const(8)

# --- mechanics and tuning (calibration constants of the reference pen) ---
STEPS_PER_MM = const(400)  # 0.5 mm lead screw, 200 full steps per turn
MAX_STEPS_PER_TICK = const(2)  # 2 kHz step rate: full travel in 0.6 s
HOMING_MAX_STEPS = const(1400)  # 2.5 mm of travel plus 1 mm of margin
HOMING_BACKOFF_MAX = const(200)
DEPTH_TOL_STEPS = const(8)  # 0.02 mm: home edge found within this of 0
DEBOUNCE_MS = const(10)
TILT_HYST_CDEG = const(300)  # re-arm only 3 degrees inside the cone ...
TILT_HOLD_MS = const(300)  # ... held for 300 ms
BATT_CUTOFF_MV = const(6400)  # 2S Li-ion, 3.2 V per cell
BATT_RESUME_MV = const(6800)
BATT_DEBOUNCE_MS = const(50)
RAMP_MHZ_PER_MS = const(300)  # soft start: 300 Hz/s
MOTOR_MV_PER_HZ = const(34)  # back-EMF constant for feed-forward
# PI gains at 100 Hz, scheduled in proportion to the rate: the hall period
# (one sample per stroke) is the loop's dead time, so low rates need low gains
KP_Q10 = const(102)  # 0.1 duty-bp per mHz of error at 100 Hz
KI_Q16 = const(328)  # 0.005 duty-bp per mHz*ms at 100 Hz
GAIN_REF_HZ = const(100)
INTEG_MAX = const(2000000)
DUTY_MAX = const(10000)  # duty in basis points (0..10000)
DUTY_START_MAX = const(4000)  # until a period is measured in a run ...
START_BOOST = const(1500)  # ... feed-forward plus this much
STALE_DUTY_MARGIN = const(1000)  # duty rise allowed while no pulse comes
OVERCURRENT_MA = const(2500)
OVERCURRENT_MS = const(2)  # two samples in a row: a shorted winding peaks briefly
STALL_MS = const(200)  # drive on, no hall edge for this long
STALL_MA = const(800)  # and a blocked rotor's current: stall, else hall lost
RUNAWAY_MARGIN_MHZ = const(15000)
RUNAWAY_MS = const(50)
COAST_MS = const(100)  # braked motor must have stopped after this long
COAST_EDGES = const(3)
IMU_LOST_TICKS = const(5)
IMU_FROZEN_TICKS = const(250)
IMU_ALIVE_TICKS = const(5)  # frozen fault clears only on fresh samples

# depth stage phases after homing
DP_IDLE = const(0)
DP_VERIFY = const(1)  # descending to the home edge, checking the count
DP_RETURN = const(2)  # climbing back to the target


class Inputs:
    """Readings, filled by the board every tick. Plain ints."""

    def __init__(self):
        self.now_ms = 0
        self.trigger = 0  # 1 = pressed (after the board's polarity)
        self.cartridge = 0  # 1 = present
        self.home = 0  # 1 = home switch closed (stage at 0.00 mm)
        self.hall_count = 0  # edges since boot (wraps harmlessly)
        self.hall_period_us = 0  # last full revolution, 0 = none yet
        self.hall_age_us = 0  # since the last edge
        self.ax = 0  # accelerometer, raw counts at +-2 g
        self.ay = 0
        self.az = 0
        self.imu_ok = 0  # 1 = the last I2C read succeeded
        self.motor_ma = 0
        self.battery_mv = 0


class Outputs:
    """Actuator commands, applied by the board after every tick."""

    def __init__(self):
        self.duty = 0  # basis points 0..10000 of PWM
        self.brake = 1
        self.steps = 0  # signed step count to issue this tick (<= 2)
        self.led = 0
        self.buzzer = 0


class Config:
    """Clinic limits and working settings, in internal units. Attribute names
    are the setting keys of pen.limits, so validation and storage are
    table-driven."""

    def __init__(self):
        self.max_depth = L.DEFAULT_MAX_DEPTH_UM
        self.max_rate = L.DEFAULT_MAX_RATE_MHZ
        self.max_tilt = L.DEFAULT_MAX_TILT_CDEG
        self.max_session_min = L.DEFAULT_MAX_SESSION_MIN
        self.depth = L.DEFAULT_DEPTH_UM
        self.rate = L.DEFAULT_RATE_MHZ
        # tilt reference axis: unit vector in Q14, gravity-down by default
        self.ref_x = 0
        self.ref_y = 0
        self.ref_z = Q14


class Core:
    def __init__(self, config):
        self.cfg = config
        self.inp = Inputs()
        self.out = Outputs()
        self.state = ST_BOOT
        self.block = BLK_NOT_HOMED
        self.fault = F_NONE
        self.safe_mode = 0  # integrity failure / invalid config: never drives
        self.stop_reason = STOP_BOOT
        self.started = 0  # first tick seen
        self.last_ms = 0
        # depth stage
        self.homed = 0
        self.homing_phase = 0  # 0 back off switch, 1 seek switch
        self.homing_steps = 0
        self.pos_steps = 0
        self.target_steps = 0
        self.depth_phase = DP_IDLE
        self.verified = 0  # last move checked against the home edge
        self.verify_err = 0  # steps between count and edge at the last check
        self.verifies = 0
        # debounced inputs
        self.trig = 0
        self.trig_cnt = 0
        self.cart = 0
        self.cart_cnt = 0
        self.armed = 0  # trigger released since the drive last stopped
        self.started_inputs = 0
        # tilt
        self.mag = 4096
        self.tilt_cdeg = 18000
        self.in_cone = 0
        self.cone_ms = 0
        self.fx = 0  # low-pass accel (4096 LSB/g, x8) for reference capture
        self.fy = 0
        self.fz = 0
        # battery
        self.batt_low = 0
        self.batt_cnt = 0
        # drive
        self.running = 0
        self.ramp_mhz = 0
        self.meas_mhz = 0
        self.integ = 0
        self.run_ms = 0  # drive-on time of the current session
        self.strokes = 0
        self.run_edges = 0  # hall edges since the drive started
        self.duty_hold = 0  # last duty computed from a fresh hall period
        self.off_ms = 0  # since the drive stopped (boot counts as a stop)
        self.coast_edges = 0  # hall edges after the braked motor must stop
        self.last_hall_count = 0
        self.oc_ms = 0
        self.runaway_ms = 0
        self.no_edge_ms = 0
        self._edge_mark = 0
        # imu health
        self.imu_bad = 0
        self.imu_same = 0
        self.last_ax = 0
        self.last_ay = 0
        self.last_az = 0
        # host STOP requests are latched until the trigger is released
        self.host_stop = 0
        # service-mode remote start (technician + host heartbeat, set by the
        # protocol layer): stands in for the trigger and the fresh press
        # only; cleared by any stop, so it never restarts by itself
        self.remote = 0
        self.remote_end = 0  # a host ended a remote run: stop reason host_stop

    # --- commands from the protocol layer (outside the tick) ---
    def request_stop(self):
        if self.remote:
            self.remote_end = 1
        self.remote = 0
        self.host_stop = 1

    def remote_start(self):
        """Service mode (the protocol calls it for an authenticated
        technician with the host heartbeat armed): the drive starts at the
        next tick without a hand on the trigger. Every other condition of
        the rule still holds; refused unless the pen is ready."""
        if self.running:
            raise PenError(NOT_WHILE_RUNNING, "the needles already run; remote start needs a stopped drive")
        if self.state != ST_READY or self.host_stop:
            raise PenError(
                NOT_ALLOWED_IN_STATE,
                "remote start needs a ready pen (state=%s%s)"
                % (
                    STATE_NAMES[self.state],
                    ", host STOP pending until the trigger is released" if self.host_stop else "",
                ),
            )
        self.remote = 1
        self.remote_end = 0

    def remote_stop(self):
        """Ends a remote run (the drive stops at the next tick); as a host
        STOP it also stops a drive started by the trigger."""
        self.request_stop()

    def clear_fault(self):
        """Clears a latched fault; returns False if its cause is still there
        (nothing changes then). The code is in pen.corex (loaded per call)."""
        return lazy("corex", "clear_fault", self)

    def capture_tilt_ref(self):
        """Technician command (authenticated by the protocol layer): the
        pen's present axis becomes the reference of the tilt cone. Refused
        while the drive runs, without a live IMU, or while the pen moves
        (|a| not within 10 % of 1 g). Code in pen.corex."""
        return lazy("corex", "capture_tilt_ref", self)

    def reset_tilt_ref(self):
        """Back to the default reference, gravity-down. Code in pen.corex."""
        return lazy("corex", "reset_tilt_ref", self)

    def new_session(self):
        """Starts a new treatment session: the session timer (SR7) restarts."""
        if self.running:
            raise PenError(NOT_WHILE_RUNNING, "a session cannot restart while the needles run")
        self.run_ms = 0

    def config_changed(self):
        """Called by the protocol after a setting changed, so that a status
        read before the next tick already shows the move that is pending."""
        if self.homed and self.config_ok() and self.cfg.depth * STEPS_PER_MM // 1000 != self.target_steps:
            self.block |= BLK_DEPTH_MOVING
            if self.state == ST_READY:
                self.state = ST_IDLE

    def depth_target_um(self):
        return self.target_steps * 1000 // STEPS_PER_MM

    def depth_pos_um(self):
        return self.pos_steps * 1000 // STEPS_PER_MM

    def config_ok(self):
        """Defence in depth: the protocol validates every value, the core
        re-checks the layers before a value can reach an actuator."""
        cfg = self.cfg
        md = cfg.max_depth
        mr = cfg.max_rate
        mt = cfg.max_tilt
        if md < L.HW_DEPTH_MIN_UM or md > L.HW_DEPTH_MAX_UM:
            return False
        if mr < L.HW_RATE_MIN_MHZ or mr > L.HW_RATE_MAX_MHZ:
            return False
        if mt < L.HW_TILT_MIN_CDEG or mt > L.HW_TILT_MAX_CDEG:
            return False
        if cfg.max_session_min < L.HW_SESSION_MIN_MIN or cfg.max_session_min > L.HW_SESSION_MAX_MIN:
            return False
        d = cfg.depth
        if d < L.HW_DEPTH_MIN_UM or d > md or d % L.DEPTH_STEP_UM:
            return False
        r = cfg.rate
        if r < L.HW_RATE_MIN_MHZ or r > mr or r % L.RATE_STEP_MHZ:
            return False
        return True

    # --- the control tick ---
    def tick(self):
        i = self.inp
        o = self.out
        cfg = self.cfg
        now = i.now_ms
        if self.started:
            dt = ticks_diff(now, self.last_ms)
            if dt < 0 or dt > 100:
                dt = 1  # a clock glitch never fakes elapsed time
        else:
            dt = 1
            self.started = 1
        self.last_ms = now
        cfg_ok = self.config_ok()

        self._debounce(i, dt)
        self._tilt(i, cfg, dt, cfg_ok)
        self._battery(i, dt)
        self._imu_health(i)
        self._depth(i, o, cfg, cfg_ok)

        block = 0
        if not self.homed:
            block |= BLK_NOT_HOMED
        if not self.in_cone:
            block |= BLK_TILT
        if not self.cart:
            block |= BLK_CARTRIDGE
        remote = self.remote
        if not self.trig and not remote:
            block |= BLK_TRIGGER
        if self.batt_low:
            block |= BLK_BATTERY
        if self.fault:
            block |= BLK_FAULT
        if not cfg_ok:
            block |= BLK_CONFIG
        elif self.run_ms >= cfg.max_session_min * 60000:
            block |= BLK_SESSION
        if (
            self.pos_steps != self.target_steps
            or self.depth_phase != DP_IDLE
            or (cfg_ok and cfg.depth * STEPS_PER_MM // 1000 != self.target_steps)
        ):
            block |= BLK_DEPTH_MOVING
        if self.safe_mode:
            block |= BLK_SAFE_MODE
        if (not self.armed and not remote) or self.host_stop or self.remote_end:
            block |= BLK_NOT_ARMED

        if self.running:
            if block:
                self._stop(block)
        elif block == 0:
            self._start()
        if not self.running:
            self.remote = 0  # a remote start that could not start is dropped
        self.remote_end = 0
        self.block = block

        self._drive(i, o, cfg, dt)
        self._faults(i, o, dt)

        if self.fault:
            self.state = ST_FAULT
        elif self.safe_mode:
            self.state = ST_SAFE
        elif not self.homed:
            self.state = ST_HOMING
        elif self.running:
            self.state = ST_RUNNING
        elif block & ~(BLK_TRIGGER | BLK_NOT_ARMED) == 0:
            self.state = ST_READY
        else:
            self.state = ST_IDLE
        o.led = 1 if self.running else 0
        o.buzzer = 1 if self.fault else 0

    def _debounce(self, i, dt):
        if not self.started_inputs:
            # the first reading is taken as it is: a trigger held through a
            # reset must be released before it can start the drive (SR8)
            self.started_inputs = 1
            self.trig = i.trigger
            self.cart = i.cartridge
        if i.trigger != self.trig:
            self.trig_cnt += dt
            if self.trig_cnt >= DEBOUNCE_MS:
                self.trig = i.trigger
                self.trig_cnt = 0
        else:
            self.trig_cnt = 0
        if not self.trig and not i.trigger:
            # a released trigger arms the next press and ends a host STOP
            self.armed = 1
            self.host_stop = 0
        if i.cartridge != self.cart:
            self.cart_cnt += dt
            if self.cart_cnt >= DEBOUNCE_MS:
                self.cart = i.cartridge
                self.cart_cnt = 0
        else:
            self.cart_cnt = 0

    def _tilt(self, i, cfg, dt, cfg_ok):
        # raw counts at 16384 LSB/g -> 4096 LSB/g keeps every product < 2**30
        ax = i.ax >> 2
        ay = i.ay >> 2
        az = i.az >> 2
        m = isqrt(ax * ax + ay * ay + az * az, self.mag)
        self.mag = m
        if m < 1024 or not i.imu_ok:
            # under 0.25 g (free fall or a dead sensor): no trustworthy axis
            self.tilt_cdeg = 18000
        else:
            dot = ax * cfg.ref_x + ay * cfg.ref_y + az * cfg.ref_z
            self.tilt_cdeg = cos_to_cdeg((dot << 1) // m)
            # low-pass (1/8 per ms) of the accel for a reference capture
            self.fx += ax - (self.fx >> 3)
            self.fy += ay - (self.fy >> 3)
            self.fz += az - (self.fz >> 3)
        limit = cfg.max_tilt if cfg_ok else 0
        if self.tilt_cdeg > limit:
            self.in_cone = 0
            self.cone_ms = 0
        elif not self.in_cone:
            if self.tilt_cdeg <= limit - TILT_HYST_CDEG:
                self.cone_ms += dt
                if self.cone_ms >= TILT_HOLD_MS:
                    self.in_cone = 1
            else:
                self.cone_ms = 0

    def _battery(self, i, dt):
        if self.batt_low:
            if i.battery_mv >= BATT_RESUME_MV and not self.running:
                self.batt_low = 0
        elif i.battery_mv < BATT_CUTOFF_MV:
            self.batt_cnt += dt
            if self.batt_cnt >= BATT_DEBOUNCE_MS:
                self.batt_low = 1
                self.batt_cnt = 0
        else:
            self.batt_cnt = 0

    def _imu_health(self, i):
        if not i.imu_ok:
            self.imu_bad += 1
            if self.imu_bad >= IMU_LOST_TICKS and self.fault == F_NONE:
                self.fault = F_IMU_LOST
            return
        self.imu_bad = 0
        # a live MEMS sensor always jitters in its last bits
        if i.ax == self.last_ax and i.ay == self.last_ay and i.az == self.last_az:
            self.imu_same += 1
            if self.imu_same >= IMU_FROZEN_TICKS and self.fault == F_NONE:
                self.fault = F_IMU_FROZEN
        else:
            self.imu_same = 0
        self.last_ax = i.ax
        self.last_ay = i.ay
        self.last_az = i.az

    def _depth(self, i, o, cfg, cfg_ok):
        o.steps = 0
        if not self.homed:
            if self.fault:
                return
            if self.homing_phase == 0:
                # start off the switch so the edge we home on is a real one
                if i.home:
                    if self.homing_steps >= HOMING_BACKOFF_MAX:
                        self.fault = F_HOMING
                        return
                    o.steps = 1
                    self.homing_steps += 1
                    return
                self.homing_phase = 1
                self.homing_steps = 0
            if i.home:
                self.homed = 1
                self.pos_steps = 0
                self.target_steps = 0
                self.depth_phase = DP_IDLE
                self.verified = 1  # the edge itself was just found
                # fall through: the move to the set depth starts this tick,
                # so the stage never reads "in place" at 0 before it
            elif self.homing_steps >= HOMING_MAX_STEPS:
                self.fault = F_HOMING
                return
            else:
                o.steps = -1
                self.homing_steps += 1
                return
        if self.fault:
            return  # a faulted stage holds still
        pos = self.pos_steps
        ph = self.depth_phase
        if ph == DP_IDLE:
            # a new depth is taken only with the drive off and a valid config
            if cfg_ok and not self.running:
                target = cfg.depth * STEPS_PER_MM // 1000
                if target != self.target_steps:
                    self.target_steps = target
                    self.verified = 0
                    # every move goes via the home edge: the descent checks
                    # the step count of the previous climb (step loss)
                    ph = DP_VERIFY
            # the switch must agree with the step count at any time
            if i.home and pos > DEPTH_TOL_STEPS:
                self._depth_fault(pos)
                return
        if ph == DP_VERIFY:
            if i.home:
                if pos > DEPTH_TOL_STEPS:
                    self._depth_fault(pos)  # edge early: steps lost climbing
                    return
                self.verify_err = pos
                self.verifies += 1
                self.pos_steps = 0  # re-zero on the edge
                pos = 0
                ph = DP_RETURN
            elif pos < -DEPTH_TOL_STEPS:
                self._depth_fault(pos)  # edge missing: steps lost descending
                return
            else:
                d = -MAX_STEPS_PER_TICK if pos > DEPTH_TOL_STEPS + MAX_STEPS_PER_TICK else -1
                o.steps = d
                self.pos_steps = pos + d
                self.depth_phase = ph
                return
        if ph == DP_RETURN:
            d = self.target_steps - pos
            if d > MAX_STEPS_PER_TICK:
                d = MAX_STEPS_PER_TICK
            elif d < -MAX_STEPS_PER_TICK:
                d = -MAX_STEPS_PER_TICK
            o.steps = d
            self.pos_steps = pos + d
            if self.pos_steps == self.target_steps:
                ph = DP_IDLE
                self.verified = 1
        self.depth_phase = ph

    def _depth_fault(self, pos):
        self.verify_err = pos
        self.fault = F_DEPTH
        self.depth_phase = DP_IDLE

    def _start(self):
        self.running = 1
        self.ramp_mhz = L.HW_RATE_MIN_MHZ
        self.integ = 0
        self.no_edge_ms = 0
        self.run_edges = 0
        self.duty_hold = DUTY_START_MAX
        self.stop_reason = STOP_NONE

    def _stop(self, block):
        self.running = 0
        self.remote = 0  # any stop ends a remote run: it never restarts by itself
        self.armed = 0
        self.off_ms = 0
        self.coast_edges = 0
        if block & BLK_FAULT:
            self.stop_reason = STOP_FAULT
        elif block & BLK_TILT:
            self.stop_reason = STOP_TILT
        elif block & BLK_CARTRIDGE:
            self.stop_reason = STOP_CARTRIDGE
        elif block & BLK_BATTERY:
            self.stop_reason = STOP_BATTERY
        elif block & BLK_SESSION:
            self.stop_reason = STOP_SESSION
        elif self.host_stop or self.remote_end:
            self.stop_reason = STOP_HOST
        elif block & BLK_TRIGGER:
            self.stop_reason = STOP_TRIGGER
            self.armed = 1
        else:
            self.stop_reason = STOP_FAULT

    def _drive(self, i, o, cfg, dt):
        # measured stroke rate from the hall period (one pulse per stroke)
        hc = i.hall_count
        edges = (hc - self.last_hall_count) & 0xFFFF
        self.last_hall_count = hc
        self.strokes += edges
        p = i.hall_period_us
        age = i.hall_age_us
        if p > 0:
            if age > p:
                p = age  # slowing down: the open period bounds the rate
            self.meas_mhz = 1000000000 // p
            if age > 500000:
                self.meas_mhz = 0
        if not self.running:
            o.duty = 0
            o.brake = 1
            self.integ = 0
            if self.off_ms < 1000000:
                self.off_ms += dt
            if self.off_ms > COAST_MS:
                self.coast_edges += edges
            return
        self.run_edges += edges
        if self.run_edges > 1000000:
            self.run_edges = 1000000
        self.run_ms += dt
        target = cfg.rate
        r = self.ramp_mhz
        if r < target:
            r += RAMP_MHZ_PER_MS * dt
            if r > target:
                r = target
        elif r > target:
            r = target  # slowing down needs no ramp
        self.ramp_mhz = r
        r_hz = r // 1000
        err = r - self.meas_mhz
        # the open period is longer than the last one: the rate is only
        # bounded, not measured; do not wind up on it (a lost hall sensor
        # looks exactly like this)
        stale = i.hall_period_us > 0 and age > i.hall_period_us
        if self.run_edges < 2:
            # no period measured in this run yet: feed-forward plus a fixed
            # break-away boost, no integration (no overshoot of the ramp)
            self.integ = 0
        elif not (stale and err > 0):
            self.integ += err * dt * r_hz // GAIN_REF_HZ
        if self.integ > INTEG_MAX:
            self.integ = INTEG_MAX
        elif self.integ < -INTEG_MAX:
            self.integ = -INTEG_MAX
        batt = i.battery_mv if i.battery_mv > 1000 else 1000
        ff = r_hz * MOTOR_MV_PER_HZ * 10000 // batt
        duty = ff + ((err * KP_Q10) >> 10) * r_hz // GAIN_REF_HZ + ((self.integ * KI_Q16) >> 16)
        dmax = DUTY_MAX
        if self.run_edges < 2:
            dmax = ff + START_BOOST
            if dmax > DUTY_START_MAX:
                dmax = DUTY_START_MAX
        if stale:
            # a missing pulse never raises the drive: hold the last duty
            # until the pulses return or the hall fault latches
            if dmax > self.duty_hold + STALE_DUTY_MARGIN:
                dmax = self.duty_hold + STALE_DUTY_MARGIN
        if duty > dmax:
            duty = dmax
        elif duty < 0:
            duty = 0
        o.duty = duty
        o.brake = 0
        if not stale:
            self.duty_hold = duty if self.run_edges >= 2 else dmax

    def _faults(self, i, o, dt):
        if self.fault:
            return
        # over-current at any time
        if i.motor_ma > OVERCURRENT_MA:
            self.oc_ms += dt
            if self.oc_ms >= OVERCURRENT_MS:
                self._latch(F_OVERCURRENT, o)
                return
        else:
            self.oc_ms = 0
        if not self.running:
            self.no_edge_ms = 0
            self.runaway_ms = 0
            self._edge_mark = self.last_hall_count
            if self.coast_edges >= COAST_EDGES:
                # the motor turns with the drive off and the brake on
                self._latch(F_RATE_RUNAWAY, o)
            return
        # drive on but no stroke: blocked rotor (stall) or a dead hall sensor
        if self.last_hall_count == self._edge_mark:
            self.no_edge_ms += dt
            # before the first pulse of a run: STALL_MS; once turning, four
            # missed periods (the drive holds its duty meanwhile)
            lim = STALL_MS
            if self.run_edges and i.hall_period_us > 0:
                lim = 4 * (i.hall_period_us // 1000) + 10
                if lim > STALL_MS:
                    lim = STALL_MS
            if self.no_edge_ms >= lim:
                self._latch(F_STALL if i.motor_ma >= STALL_MA else F_HALL_LOST, o)
                return
        else:
            self.no_edge_ms = 0
        self._edge_mark = self.last_hall_count
        lim = self.cfg.max_rate
        if lim > L.HW_RATE_MAX_MHZ:
            lim = L.HW_RATE_MAX_MHZ
        if self.meas_mhz > lim + RUNAWAY_MARGIN_MHZ:
            self.runaway_ms += dt
            if self.runaway_ms >= RUNAWAY_MS:
                self._latch(F_RATE_RUNAWAY, o)
        else:
            self.runaway_ms = 0

    def _latch(self, code, o):
        self.fault = code
        self._stop(BLK_FAULT)
        o.duty = 0
        o.brake = 1
