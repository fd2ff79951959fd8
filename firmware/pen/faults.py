# SR4 motor health: the latched fault codes and their names, detection
# (over-current, stall, hall loss, runaway, a motor turning while braked),
# IMU health (lost, frozen) and clearing, which is refused while the cause
# persists. The depth and homing faults are raised by pen.depth (SR2).
#
# The counters (oc_ms, no_edge_ms, imu_bad, ...) live on the Core; this
# module holds the code, the codes and the thresholds of the concern.
from pen import limits as L
from pen.compat import const

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


def imu_health(c, i):
    """Every tick: an IMU that stops answering or stops jittering latches."""
    if not i.imu_ok:
        c.imu_bad += 1
        if c.imu_bad >= IMU_LOST_TICKS and c.fault == F_NONE:
            c.fault = F_IMU_LOST
        return
    c.imu_bad = 0
    # a live MEMS sensor always jitters in its last bits
    if i.ax == c.last_ax and i.ay == c.last_ay and i.az == c.last_az:
        c.imu_same += 1
        if c.imu_same >= IMU_FROZEN_TICKS and c.fault == F_NONE:
            c.fault = F_IMU_FROZEN
    else:
        c.imu_same = 0
    c.last_ax = i.ax
    c.last_ay = i.ay
    c.last_az = i.az


def detect(c, i, dt):
    """Every tick, after the drive: the fault to latch now, or F_NONE."""
    if c.fault:
        return F_NONE
    # over-current at any time
    if i.motor_ma > OVERCURRENT_MA:
        c.oc_ms += dt
        if c.oc_ms >= OVERCURRENT_MS:
            return F_OVERCURRENT
    else:
        c.oc_ms = 0
    if not c.running:
        c.no_edge_ms = 0
        c.runaway_ms = 0
        c.edge_mark = c.last_hall_count
        if c.coast_edges >= COAST_EDGES:
            # the motor turns with the drive off and the brake on
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
    lim = c.cfg.max_rate
    if lim > L.HW_RATE_MAX_MHZ:
        lim = L.HW_RATE_MAX_MHZ
    if c.meas_mhz > lim + RUNAWAY_MARGIN_MHZ:
        c.runaway_ms += dt
        if c.runaway_ms >= RUNAWAY_MS:
            return F_RATE_RUNAWAY
    else:
        c.runaway_ms = 0
    return F_NONE


def cause_present(c):
    """A latched fault clears only once its cause is gone."""
    f = c.fault
    i = c.inp
    if f == F_IMU_LOST:
        return not i.imu_ok or c.imu_bad
    if f == F_IMU_FROZEN:
        return not i.imu_ok or c.imu_same >= IMU_ALIVE_TICKS
    if f == F_OVERCURRENT:
        return i.motor_ma > OVERCURRENT_MA
    if f == F_RATE_RUNAWAY:
        return c.off_ms < COAST_MS or i.hall_age_us < COAST_MS * 1000  # still turning (or just stopped)
    # stall and hall loss can only show with the drive on: if the cause
    # persists the fault latches again on the next start
    return False


def reset(c):
    """Forget the latched fault and the counters that led to it."""
    c.fault = F_NONE
    c.imu_bad = 0
    c.coast_edges = 0
    c.oc_ms = 0
    c.runaway_ms = 0


def imu_failed(c):
    return c.fault == F_IMU_LOST or c.fault == F_IMU_FROZEN


def stage_untrusted(c):
    """A depth or homing fault: the stage must home again once cleared."""
    return c.fault == F_HOMING or c.fault == F_DEPTH
