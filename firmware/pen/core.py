# The functional core: sensor readings and the time in, actuator commands
# out. It never reads a clock or a pin; the runtime loop fills `inp`, calls
# tick() once per millisecond and applies `out`. tick() allocates nothing in
# steady state (integers below 2**30, no strings, no lists, no floats).
#
# This file keeps Inputs, Outputs, Config, the state machine, the start rule
# and tick(). Each safety concern has its own module, called from tick():
#   pen.tilt    SR1 the tilt cone and its reference
#   pen.depth   SR2 homing and verified depth moves
#   pen.drive   SR3 soft start and the PI rate loop
#   pen.faults  SR4 fault codes, detection, IMU health, clearing
# Their state stays on the Core (one object that status, telemetry and the
# tests read); the modules hold the code and the constants.
# Every change of the configuration goes through Core.configure().
from pen import depth as D
from pen import drive as V
from pen import faults as F
from pen import limits as L
from pen import tilt as T
from pen.compat import const, micropython, ticks_diff
from pen.errors import AUTH_REQUIRED, NOT_ALLOWED_IN_STATE, NOT_WHILE_RUNNING, UNKNOWN_KEY, PenError

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

# --- the core's own debounce and battery thresholds (SR5, SR6) ---
DEBOUNCE_MS = const(10)
BATT_CUTOFF_MV = const(6400)  # 2S Li-ion, 3.2 V per cell
BATT_RESUME_MV = const(6800)
BATT_DEBOUNCE_MS = const(50)
BATT_FILTER_SHIFT = const(3)  # leaky average: 1/8 of the difference per ms
BATT_STEP_MV = const(1000)  # per ms of the sample: at most 125 mV
# the filter's worst delay (median of 3, then the average) to a step from a
# full pack (8.4 V) to 100 mV under the cutoff: 29 ms at a 1 ms tick, 30 ms
# at the RP2040's 5 ms pass, so the drive is off at most 80 ms after it
BATT_FILTER_MS = const(30)


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
        self.ref_z = T.Q14


class Core:
    def __init__(self, config):
        self.cfg = config
        self.inp = Inputs()
        self.out = Outputs()
        self.state = ST_BOOT
        self.block = BLK_NOT_HOMED
        self.fault = F.F_NONE
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
        self.depth_phase = D.DP_IDLE
        self.verified = 0  # last move checked against the home edge
        self.verify_err = 0  # steps between count and edge at the last check
        self.verifies = 0
        # debounced inputs
        self.trig = 0
        self.trig_cnt = 0
        self.cart = 0
        self.cart_cnt = 0
        self.armed = 0  # trigger released since the drive last stopped
        # start rule: every other condition has held since the trigger was
        # last released (raw and debounced), so the press that starts the
        # drive began while they held; any failed condition, a latched fault
        # or a clear-fault spends it (a new press is needed)
        self.clean = 0
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
        self.batt_f16 = -1  # leaky average of battery_mv, x8 (-1: no sample yet)
        self.batt_mv = 0  # the filtered battery voltage the cutoff uses
        self.batt_s1 = 0  # the last two samples (median of 3)
        self.batt_s2 = 0
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
        self.runaway_by = 0  # which check latched rate_runaway (pen.faults RUNAWAY_BY)
        self.emf_f = 0  # back-EMF estimate, mV x16 (pen.faults)
        self.emf_ms = 0
        self.emf_duty = 0  # the duty applied while this tick's ADC samples were taken
        self.emf_s1 = 0  # the last two per-sample estimates, mV (median of 3)
        self.emf_s2 = 0
        self.no_edge_ms = 0
        self.edge_mark = 0
        # imu health
        self.imu_bad_ms = 0  # ms of failed reads in a row
        self.imu_same_ms = 0  # ms of identical samples
        self.same_x_ms = 0  # ms each axis read the same value
        self.same_y_ms = 0
        self.same_z_ms = 0
        self.implaus = 0  # this sample is implausible (pen.tilt)
        self.implaus_ms = 0  # ... for this many ms in a row
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
        # bumped by every change of the configuration (configure()):
        # persistence and the protocol's config event watch it
        self.cfg_gen = 0

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

    def clear_fault(self, technician=False):
        """Clears a latched fault (SR4); returns False if its cause is still
        there (nothing changes then). A depth or homing fault re-homes.
        Stall and hall loss show only with the drive on, so no check can
        tell their cause is gone: only a technician clears them (refused
        with err 40 otherwise). Clearing never starts anything: the next
        start needs a new press."""
        if self.fault == F.F_NONE:
            return True
        if F.needs_technician(self) and not technician:
            raise PenError(
                AUTH_REQUIRED,
                "clearing %s needs an authenticated technician (its cause shows only with the drive on)"
                % F.FAULT_NAMES[self.fault],
            )
        if F.cause_present(self):
            return False
        if F.stage_untrusted(self):
            D.rehome(self)
        F.reset(self)
        self.clean = 0  # clear-fault never starts anything: a new press
        self.state = ST_IDLE if self.homed else ST_HOMING  # until the next tick
        return True

    def capture_tilt_ref(self):
        """Technician command (authenticated by the protocol layer): the
        pen's present axis becomes the reference of the tilt cone (SR1)."""
        x, y, z = T.capture_ref(self, F.imu_failed(self))
        self.configure({"ref_x": x, "ref_y": y, "ref_z": z})
        cfg = self.cfg
        return cfg.ref_x, cfg.ref_y, cfg.ref_z

    def reset_tilt_ref(self):
        """Back to the default reference, gravity-down."""
        x, y, z = T.check_reset(self)
        self.configure({"ref_x": x, "ref_y": y, "ref_z": z})

    def new_session(self):
        """Starts a new treatment session: the session timer (SR7) restarts."""
        if self.running:
            raise PenError(NOT_WHILE_RUNNING, "a session cannot restart while the needles run")
        self.run_ms = 0

    def configure(self, values):
        """The one road for every change of the configuration, whoever asks
        (protocol, technician commands, config import, the stored record at
        boot): validates the whole result (a refusal changes nothing),
        assigns, plans the depth move and bumps cfg_gen. `values` maps
        Config attribute names to internal integers. Returns how many
        values changed."""
        cfg = self.cfg
        # the configuration as it would be after the change, validated whole
        merged = Config()
        for k in _CONFIG_KEYS:
            setattr(merged, k, getattr(cfg, k))
        for k in values:
            if k not in _CONFIG_KEYS:
                raise PenError(UNKNOWN_KEY, "unknown configuration key '%s'" % k[:24])
            setattr(merged, k, values[k])
        for s in L.CLINIC + L.WORKING:
            s.check_hw(getattr(merged, s.key))
        T.check_max_tilt(merged.max_tilt)
        for s in L.WORKING:
            L.check_working(s, getattr(merged, s.key), merged)
        m = merged.ref_x * merged.ref_x + merged.ref_y * merged.ref_y + merged.ref_z * merged.ref_z
        if not (T.Q14 * T.Q14 * 90 // 100 <= m <= T.Q14 * T.Q14 * 110 // 100):
            raise PenError(NOT_ALLOWED_IN_STATE, "tilt reference is not a unit vector")
        if "ref_x" in values or "ref_y" in values or "ref_z" in values:
            # normalised whenever it is set or loaded (a stored vector 2 %
            # long would shrink every angle by the same 2 %)
            values = dict(values)
            x, y, z = T.normalise_ref(merged.ref_x, merged.ref_y, merged.ref_z)
            values["ref_x"] = merged.ref_x = x
            values["ref_y"] = merged.ref_y = y
            values["ref_z"] = merged.ref_z = z
        T.check_ref(merged)
        if merged.depth != cfg.depth and self.state == ST_RUNNING:
            raise PenError(NOT_WHILE_RUNNING, "depth cannot change while the needles run")
        changed = 0
        ref = 0
        for k in values:
            if getattr(cfg, k) != values[k]:
                setattr(cfg, k, values[k])
                changed += 1
                if k[:4] == "ref_":
                    ref = 1
        if changed:
            self.cfg_gen += 1
            if ref:
                T.restart_hold(self)
            # plan the depth move now, so a status read before the next
            # tick already shows it
            if self.homed and self.config_ok() and D.um_to_steps(cfg.depth) != self.target_steps:
                self.block |= BLK_DEPTH_MOVING
                if self.state == ST_READY:
                    self.state = ST_IDLE
        return changed

    def depth_target_um(self):
        return D.steps_to_um(self.target_steps)

    @micropython.native
    def depth_pos_um(self):
        return D.steps_to_um(self.pos_steps)

    @micropython.native
    def config_ok(self):
        """Defence in depth: the protocol validates every value, the core
        re-checks the layers every tick before a value can reach an
        actuator (the limits' and the cone's modules hold the checks)."""
        cfg = self.cfg
        return L.settings_ok(cfg) and T.cone_ok(cfg)

    # --- the control tick ---
    @micropython.native
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
        T.update(self, i, cfg, dt, cfg_ok)
        self._battery(i, dt)
        F.imu_health(self, i, dt)
        D.update(self, i, o, cfg, cfg_ok)

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
        if o.steps or D.moving(self, cfg, cfg_ok):
            # the needles never run in a tick in which the stage steps
            block |= BLK_DEPTH_MOVING
        if self.safe_mode:
            block |= BLK_SAFE_MODE
        # the start rule: a press counts only if it began while every other
        # condition held, and they have held since (a cartridge going in,
        # the pen coming upright, homing ending, a fault cleared or a timer
        # never start the drive)
        if block & ~BLK_TRIGGER:
            self.clean = 0
        elif not self.trig and not i.trigger:
            self.clean = 1
        if (not (self.armed and self.clean) and not remote) or self.host_stop or self.remote_end:
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

        V.update(self, i, o, cfg, dt)
        code = F.detect(self, i, dt)
        if code:
            self._latch(code, o)

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

    @micropython.native
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

    @micropython.native
    def _battery(self, i, dt):
        # the median of the last three samples drops a single outlier (a
        # load-dump spike, a bad conversion: the sim's adc_noise) whatever
        # the tick; then a leaky average in the tick's time (constant 8 ms,
        # so the RP2040's 5 ms pass filters like the simulator's 1 ms one),
        # its step clipped to BATT_STEP_MV per ms
        x = i.battery_mv
        if self.batt_f16 < 0:
            self.batt_f16 = x << BATT_FILTER_SHIFT  # first sample: no ramp up from 0
            self.batt_s1 = x
            self.batt_s2 = x
        a = self.batt_s1
        b = self.batt_s2
        self.batt_s2 = a
        self.batt_s1 = x
        # (inline, as pen.faults.detect's back-EMF median: a call costs the
        # tick more than these lines)
        lo = a if a < b else b
        hi = a + b - lo
        if x < lo:
            x = lo
        elif x > hi:
            x = hi
        d = x - (self.batt_f16 >> BATT_FILTER_SHIFT)
        if d > BATT_STEP_MV:
            d = BATT_STEP_MV
        elif d < -BATT_STEP_MV:
            d = -BATT_STEP_MV
        k = dt if dt < 8 else 8
        self.batt_f16 += d * k
        v = self.batt_f16 >> BATT_FILTER_SHIFT
        self.batt_mv = v
        if self.batt_low:
            if v >= BATT_RESUME_MV and not self.running:
                self.batt_low = 0
        elif v < BATT_CUTOFF_MV:
            self.batt_cnt += dt
            if self.batt_cnt >= BATT_DEBOUNCE_MS:
                self.batt_low = 1
                self.batt_cnt = 0
        else:
            self.batt_cnt = 0

    def _start(self):
        V.start(self)
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

    def _latch(self, code, o):
        self.fault = code
        self.clean = 0
        self._stop(BLK_FAULT)
        o.duty = 0
        o.brake = 1


# the configuration keys configure() accepts: the settings tables and the
# tilt reference
_CONFIG_KEYS = tuple(s.key for s in L.CLINIC + L.WORKING) + ("ref_x", "ref_y", "ref_z")
