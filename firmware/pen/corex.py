# The seldom used commands of pen.core (outside the tick): clearing a
# latched fault and setting the tilt reference. Imported for one call and
# dropped after (pen.compat.lazy). Each takes the Core.
from pen.core import (
    COAST_MS,
    DP_IDLE,
    F_DEPTH,
    F_HOMING,
    F_IMU_FROZEN,
    F_IMU_LOST,
    F_NONE,
    F_OVERCURRENT,
    F_RATE_RUNAWAY,
    IMU_ALIVE_TICKS,
    OVERCURRENT_MA,
    ST_HOMING,
    ST_IDLE,
)
from pen.errors import NOT_ALLOWED_IN_STATE, NOT_WHILE_RUNNING, PenError
from pen.tilt import Q14, isqrt


def clear_fault(c):
    """Clears a latched fault; returns False if its cause is still there
    (nothing changes then)."""
    f = c.fault
    if f == F_NONE:
        return True
    i = c.inp
    if f == F_IMU_LOST and (not i.imu_ok or c.imu_bad):
        return False
    if f == F_IMU_FROZEN and (not i.imu_ok or c.imu_same >= IMU_ALIVE_TICKS):
        return False
    if f == F_OVERCURRENT and i.motor_ma > OVERCURRENT_MA:
        return False
    if f == F_RATE_RUNAWAY and (c.off_ms < COAST_MS or i.hall_age_us < COAST_MS * 1000):
        return False  # still turning (or just stopped)
    # stall and hall loss can only show with the drive on: if the cause
    # persists the fault latches again on the next start
    if f == F_HOMING or f == F_DEPTH:
        # re-home: the stage position is not trusted after a depth fault
        c.homed = 0
        c.homing_phase = 0
        c.homing_steps = 0
        c.depth_phase = DP_IDLE
    c.fault = F_NONE
    c.state = ST_IDLE if c.homed else ST_HOMING  # until the next tick
    c.imu_bad = 0
    c.coast_edges = 0
    c.oc_ms = 0
    c.runaway_ms = 0
    return True


def capture_tilt_ref(c):
    """Technician command (authenticated by the protocol layer): the
    pen's present axis becomes the reference of the tilt cone. Refused
    while the drive runs, without a live IMU, or while the pen moves
    (|a| not within 10 % of 1 g)."""
    if c.running:
        raise PenError(NOT_WHILE_RUNNING, "tilt reference cannot change while the needles run")
    if not c.inp.imu_ok or c.fault == F_IMU_LOST or c.fault == F_IMU_FROZEN:
        raise PenError(NOT_ALLOWED_IN_STATE, "tilt reference needs a working IMU")
    x = c.fx >> 3
    y = c.fy >> 3
    z = c.fz >> 3
    m = isqrt(x * x + y * y + z * z, 4096)
    if m < 3686 or m > 4506:
        raise PenError(
            NOT_ALLOWED_IN_STATE,
            "hold the pen still to capture the tilt reference (|a| = %d mg)" % (m * 1000 // 4096),
        )
    _set_ref(c, x * Q14 // m, y * Q14 // m, z * Q14 // m)
    return c.cfg.ref_x, c.cfg.ref_y, c.cfg.ref_z


def reset_tilt_ref(c):
    """Back to the default reference, gravity-down."""
    if c.running:
        raise PenError(NOT_WHILE_RUNNING, "tilt reference cannot change while the needles run")
    _set_ref(c, 0, 0, Q14)


def _set_ref(c, x, y, z):
    cfg = c.cfg
    cfg.ref_x = x
    cfg.ref_y = y
    cfg.ref_z = z
    # the new cone must be held for the hold time before a start
    c.in_cone = 0
    c.cone_ms = 0
