# SR1 vertical only: the tilt of the needle axis from the reference axis,
# the cone with its hysteresis and hold time, and the technician's reference
# capture. Integer arithmetic only.
#
# Accelerometer counts are taken at +-2 g full scale (16384 LSB/g) and shifted
# to 4096 LSB/g, the reference axis is a unit vector in Q14. Every product
# then stays below 2**30, the RP2040's small-int limit, so the tick allocates
# nothing: dot <= |a|*|r| <= 3.47 g * 4096 * 16384 < 2**28.
#
# The state (in_cone, cone_ms, tilt_cdeg, the filtered vector) lives on the
# Core; this module holds the code and the constants of the concern.
import array

from pen.compat import const
from pen.errors import NOT_ALLOWED_IN_STATE, NOT_WHILE_RUNNING, PenError

Q14 = const(16384)
TILT_HYST_CDEG = const(300)  # re-arm only 3 degrees inside the cone ...
TILT_HOLD_MS = const(300)  # ... held for 300 ms
_STEP_CDEG = const(50)

# cos(k * 0.5 deg) in Q15 for k = 0..360 (0..180 deg), strictly decreasing;
# built once at import (a 361-entry literal would add 2.3 KB of .mpy).
ACOS_TABLE = array.array("i", [0] * 361)


def _build():
    import math

    for k in range(361):
        ACOS_TABLE[k] = int(round(math.cos(math.radians(k * 0.5)) * 32768))


_build()


def isqrt(n, guess):
    """Integer square root by Newton's method from a guess (the last
    magnitude), so the usual case converges in one or two steps."""
    if n <= 0:
        return 0
    x = guess if guess > 0 else n
    # one step from any start lands at or above the root (AM-GM) ...
    x = (x + n // x) >> 1
    if x == 0:
        return 0
    # ... from where Newton descends monotonically to floor(sqrt(n))
    while True:
        y = (x + n // x) >> 1
        if y >= x:
            return x
        x = y


def cos_to_cdeg(c):
    """Q15 cosine -> angle in centidegrees via the table, linear between
    entries (binary search, no allocation)."""
    if c >= 32768:
        return 0
    if c <= -32768:
        return 18000
    lo = 0
    hi = 360
    t = ACOS_TABLE
    while hi - lo > 1:
        mid = (lo + hi) >> 1
        if t[mid] > c:
            lo = mid
        else:
            hi = mid
    c_lo = t[lo]
    c_hi = t[hi]
    return lo * _STEP_CDEG + (c_lo - c) * _STEP_CDEG // (c_lo - c_hi)


def measure(c, i, cfg):
    """The tilt of the present sample from the reference, centidegrees;
    -1 when the sample gives no trustworthy axis."""
    # raw counts at 16384 LSB/g -> 4096 LSB/g keeps every product < 2**30
    ax = i.ax >> 2
    ay = i.ay >> 2
    az = i.az >> 2
    m = isqrt(ax * ax + ay * ay + az * az, c.mag)
    c.mag = m
    if m < 1024 or not i.imu_ok:
        # under 0.25 g (free fall or a dead sensor): no trustworthy axis
        return -1
    return cos_to_cdeg(((ax * cfg.ref_x + ay * cfg.ref_y + az * cfg.ref_z) << 1) // m)


def leave_if_out(c, i, cfg):
    """SR1's fast path (pen.runtime, ahead of the rest of a loop pass and
    between passes): a sample outside the cone leaves it at once, as
    update() would; True when the drive must be cut now."""
    if not c.running:
        return False
    t = measure(c, i, cfg)
    if t < 0 or t > cfg.max_tilt:
        c.in_cone = 0
        c.cone_ms = 0
        return True
    return False


def update(c, i, cfg, dt, cfg_ok):
    """Every tick: the tilt from the reference and the cone state (SR1).
    Leaving the cone is immediate; coming back needs the hysteresis margin
    held for TILT_HOLD_MS."""
    t = measure(c, i, cfg)
    if t < 0:
        c.tilt_cdeg = 18000
    else:
        c.tilt_cdeg = t
        ax = i.ax >> 2
        ay = i.ay >> 2
        az = i.az >> 2
        # low-pass (1/8 per ms) of the accel for a reference capture
        c.fx += ax - (c.fx >> 3)
        c.fy += ay - (c.fy >> 3)
        c.fz += az - (c.fz >> 3)
    limit = cfg.max_tilt if cfg_ok else 0
    if c.tilt_cdeg > limit:
        c.in_cone = 0
        c.cone_ms = 0
    elif not c.in_cone:
        if c.tilt_cdeg <= limit - TILT_HYST_CDEG:
            c.cone_ms += dt
            if c.cone_ms >= TILT_HOLD_MS:
                c.in_cone = 1
        else:
            c.cone_ms = 0


# --- the reference axis (technician commands, outside the tick) ---
def capture_ref(c, imu_failed):
    """The pen's present axis becomes the reference of the tilt cone.
    Refused while the drive runs, without a live IMU, or while the pen
    moves (|a| not within 10 % of 1 g). Returns the new reference."""
    if c.running:
        raise PenError(NOT_WHILE_RUNNING, "tilt reference cannot change while the needles run")
    if not c.inp.imu_ok or imu_failed:
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
    return x * Q14 // m, y * Q14 // m, z * Q14 // m


def check_reset(c):
    """Back to the default reference, gravity-down: refused while running."""
    if c.running:
        raise PenError(NOT_WHILE_RUNNING, "tilt reference cannot change while the needles run")
    return 0, 0, Q14


def restart_hold(c):
    """A new cone must be held for the hold time before a start."""
    c.in_cone = 0
    c.cone_ms = 0
