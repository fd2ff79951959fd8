# SR4 motor health: the latched fault codes and their names, detection
# (over-current, stall, hall loss, runaway, a motor turning while braked),
# IMU health (lost, frozen, implausible: magnitude, saturated or stuck axis)
# and clearing, which is refused while the cause
# persists. The depth and homing faults are raised by pen.depth (SR2).
#
# The counters (oc_ms, no_edge_ms, imu_bad_ms, ...) live on the Core; this
# module holds the code, the codes and the thresholds of the concern.
from pen import limits as L
from pen.compat import const, micropython

# latched faults: numbered codes reported by status (published table)
F_NONE = const(0)
F_OVERCURRENT = const(1)
F_STALL = const(2)
F_HALL_LOST = const(3)
F_IMU_LOST = const(4)
F_IMU_FROZEN = const(5)
F_DEPTH = const(6)
F_RATE_RUNAWAY = const(7)
F_HOMING = const(8)
F_IMU_IMPLAUSIBLE = const(9)
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
    "imu_implausible",
)

# rate_runaway has three checks: which one latched it goes on the fault's
# event-log entry (by=...), for the technician and the auditor
RB_RATE = const(1)  # the hall rate over the limit
RB_EMF = const(2)  # the back-EMF above the hall rate's (missed pulses)
RB_BRAKED = const(3)  # the motor turning with the drive off and braked
RUNAWAY_BY = ("", "rate", "emf", "braked")

OVERCURRENT_MA = const(2500)
OVERCURRENT_MS = const(2)  # 2 ms over the limit (leaky count): a shorted winding peaks briefly
STALL_MS = const(200)  # drive on, no hall edge for this long
STALL_MA = const(800)  # and a blocked rotor's current: stall, else hall lost
RUNAWAY_MARGIN_MHZ = const(15000)
RUNAWAY_MS = const(50)
COAST_MS = const(100)  # braked motor must have stopped after this long
COAST_EDGES = const(3)
# back-EMF second opinion on the rate (detect): motor model of boards/motor
MOTOR_MV_PER_HZ = const(34)  # back-EMF constant (KE x 2 pi), as the feed-forward
MOTOR_R_MOHM = const(2000)  # winding resistance
EMF_RATIO_X10 = const(13)  # back-EMF > 1.3 x the hall rate's ...
EMF_MARGIN_MV = const(500)  # ... and > it + 0.5 V (15 Hz) ...
EMF_MS = const(50)  # ... for 50 ms: rate_runaway
EMF_MIN_EDGES = const(8)
EMF_FILTER_SHIFT = const(4)  # leaky average, 1/16 per ms of the tick
# IMU health, in ms of the tick's dt like the bounds above, so a fault
# takes the same time to latch on every runtime (the simulator's 1 ms tick,
# the RP2040's 5 ms pass); each sample adds its tick's dt, the first too
IMU_LOST_MS = const(10)  # no good read: 10 ticks in the simulator, 2 passes on the chip
IMU_FROZEN_MS = const(250)  # identical accel registers (a live MEMS sensor always jitters)
IMU_ALIVE_MS = const(5)  # a frozen or stuck fault clears only on samples changing within this
IMU_IMPLAUSIBLE_MS = const(200)  # |a| outside 0.8-1.2 g or an axis saturated
IMU_STUCK_MS = const(250)  # one axis identical while another moves


@micropython.native
def imu_health(c, i, dt):
    """Every tick: an IMU that stops answering or stops jittering latches."""
    if not i.imu_ok:
        c.imu_bad_ms += dt
        if c.imu_bad_ms >= IMU_LOST_MS and c.fault == F_NONE:
            c.fault = F_IMU_LOST
        return
    c.imu_bad_ms = 0
    # implausible readings (pen.tilt: magnitude, saturation) are out of the
    # cone at once; persisting, they latch
    if c.implaus:
        c.implaus_ms += dt
        if c.implaus_ms >= IMU_IMPLAUSIBLE_MS and c.fault == F_NONE:
            c.fault = F_IMU_IMPLAUSIBLE
    else:
        c.implaus_ms = 0
    # a live MEMS sensor always jitters in its last bits: on all three axes
    # (frozen) and on each one (stuck axis)
    ax = i.ax
    ay = i.ay
    az = i.az
    sx = ax == c.last_ax
    sy = ay == c.last_ay
    sz = az == c.last_az
    c.same_x_ms = c.same_x_ms + dt if sx else 0
    c.same_y_ms = c.same_y_ms + dt if sy else 0
    c.same_z_ms = c.same_z_ms + dt if sz else 0
    if sx and sy and sz:
        c.imu_same_ms += dt
        if c.imu_same_ms >= IMU_FROZEN_MS and c.fault == F_NONE:
            c.fault = F_IMU_FROZEN
    else:
        c.imu_same_ms = 0
        if c.fault == F_NONE and (
            c.same_x_ms >= IMU_STUCK_MS or c.same_y_ms >= IMU_STUCK_MS or c.same_z_ms >= IMU_STUCK_MS
        ):
            c.fault = F_IMU_IMPLAUSIBLE  # one axis stuck while another moves
    c.last_ax = ax
    c.last_ay = ay
    c.last_az = az


@micropython.native
def detect(c, i, dt):
    """Every tick, after the drive: the fault to latch now, or F_NONE."""
    if c.fault:
        return F_NONE
    # over-current at any time
    # a leaky count: a sample under the limit takes its time off rather than
    # resetting it, so a noisy reading of a real over-current cannot hold
    # the fault off, while one high outlier (adc_noise) never reaches it. A
    # sample counts at most OVERCURRENT_MS - 1: on the RP2040's 5 ms pass
    # one sample (an outlier) would otherwise be the whole 2 ms; there two
    # samples over in a row latch it (<= 2 passes, ~5-10 ms)
    ms = dt if dt < OVERCURRENT_MS else OVERCURRENT_MS - 1
    if i.motor_ma > OVERCURRENT_MA:
        c.oc_ms += ms
        if c.oc_ms >= OVERCURRENT_MS:
            return F_OVERCURRENT
    elif c.oc_ms > ms:
        c.oc_ms -= ms
    else:
        c.oc_ms = 0
    if not c.running:
        c.no_edge_ms = 0
        c.runaway_ms = 0
        c.emf_duty = 0
        c.edge_mark = c.last_hall_count
        if c.coast_edges >= COAST_EDGES:
            # the motor turns with the drive off and the brake on
            c.runaway_by = RB_BRAKED
            return F_RATE_RUNAWAY
        return F_NONE
    # drive on but no stroke: blocked rotor (stall) or a dead hall sensor
    if c.last_hall_count == c.edge_mark:
        c.no_edge_ms += dt
        # before the first pulse of a run: STALL_MS; once turning, four
        # missed periods (the drive holds its duty meanwhile)
        lim = STALL_MS
        if c.run_edges and i.hall_period_us > 0:
            lim = 4 * (i.hall_period_us // 1000) + 10
            if lim > STALL_MS:
                lim = STALL_MS
        if c.no_edge_ms >= lim:
            return F_STALL if i.motor_ma >= STALL_MA else F_HALL_LOST
    else:
        c.no_edge_ms = 0
    c.edge_mark = c.last_hall_count
    # a second opinion on the rate that does not use the hall signal: the
    # back-EMF, duty x battery - current x winding resistance, against the
    # one the hall rate implies. Missed hall pulses (every second one: the
    # loop drives 200 Hz while it reads 100 Hz) show as a back-EMF far above
    # the hall rate's. Each sample's estimate takes the duty that was
    # applied while the ADCs were read (the last tick's, not the one just
    # computed: on the chip's 5 ms pass a rising duty alone read ~1 V too
    # high in a battery sag) and the raw battery reading (the filtered one
    # lags a sag by ~25 ms); then the median of the last three estimates
    # drops an ADC outlier on either input whatever the tick (adc_noise:
    # one in four samples on the 5 ms pass), and a leaky average follows.
    e = c.emf_duty * i.battery_mv // 10000 - i.motor_ma * MOTOR_R_MOHM // 1000
    c.emf_duty = c.out.duty
    a = c.emf_s1
    b = c.emf_s2
    c.emf_s2 = a
    c.emf_s1 = e
    # the median of three, inline as in pen.core._battery: one shared native
    # helper cost the tick 20-30 us more on the chip (bench.chip, measured)
    lo = a if a < b else b
    hi = a + b - lo
    if e < lo:
        e = lo
    elif e > hi:
        e = hi
    # Compared only with a fresh period (a stale one is the hall-lost
    # check's), after a few strokes (no start transient).
    if c.run_edges >= EMF_MIN_EDGES and 0 <= i.hall_age_us <= i.hall_period_us:
        # in the tick's time (16 ms), so the RP2040's 5 ms pass is as quick
        k = dt if dt < 8 else 8
        c.emf_f += (e - (c.emf_f >> EMF_FILTER_SHIFT)) * k
        emf = c.emf_f >> EMF_FILTER_SHIFT
        hall = c.meas_mhz * MOTOR_MV_PER_HZ // 1000  # the back-EMF at the hall rate
        if emf * 10 > hall * EMF_RATIO_X10 and emf > hall + EMF_MARGIN_MV:
            c.emf_ms += dt
            if c.emf_ms >= EMF_MS:
                c.runaway_by = RB_EMF
                return F_RATE_RUNAWAY
        else:
            c.emf_ms = 0
    lim = c.cfg.max_rate
    if lim > L.HW_RATE_MAX_MHZ:
        lim = L.HW_RATE_MAX_MHZ
    if c.meas_mhz > lim + RUNAWAY_MARGIN_MHZ:
        c.runaway_ms += dt
        if c.runaway_ms >= RUNAWAY_MS:
            c.runaway_by = RB_RATE
            return F_RATE_RUNAWAY
    else:
        c.runaway_ms = 0
    return F_NONE


def cause_present(c):
    """A latched fault clears only once its cause is gone."""
    f = c.fault
    i = c.inp
    if f == F_IMU_LOST:
        return not i.imu_ok or c.imu_bad_ms
    if f == F_IMU_FROZEN:
        return not i.imu_ok or c.imu_same_ms >= IMU_ALIVE_MS
    if f == F_IMU_IMPLAUSIBLE:
        return (
            not i.imu_ok
            or c.implaus
            or c.same_x_ms >= IMU_ALIVE_MS
            or c.same_y_ms >= IMU_ALIVE_MS
            or c.same_z_ms >= IMU_ALIVE_MS
        )
    if f == F_OVERCURRENT:
        return i.motor_ma > OVERCURRENT_MA
    if f == F_RATE_RUNAWAY:
        return c.off_ms < COAST_MS or i.hall_age_us < COAST_MS * 1000  # still turning (or just stopped)
    # stall and hall loss can only show with the drive on: a technician
    # clears them (needs_technician); the fault latches again on the next
    # start if the cause persists
    return False


def needs_technician(c):
    """Stall and hall loss: their cause cannot be checked with the drive off
    (a re-start to test it would run the needles), so only a technician
    clears them."""
    return c.fault == F_STALL or c.fault == F_HALL_LOST


def reset(c):
    """Forget the latched fault and the counters that led to it."""
    c.fault = F_NONE
    c.imu_bad_ms = 0
    c.coast_edges = 0
    c.oc_ms = 0
    c.runaway_ms = 0
    c.runaway_by = 0


def imu_failed(c):
    return c.fault == F_IMU_LOST or c.fault == F_IMU_FROZEN or c.fault == F_IMU_IMPLAUSIBLE


def stage_untrusted(c):
    """A depth or homing fault: the stage must home again once cleared."""
    return c.fault == F_HOMING or c.fault == F_DEPTH
