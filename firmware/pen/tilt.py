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
import sys

from pen.compat import const, micropython
from pen.errors import HARDWARE_LIMIT, NOT_ALLOWED_IN_STATE, NOT_WHILE_RUNNING, PenError

Q14 = const(16384)
TILT_HYST_CDEG = const(300)  # re-arm only 3 degrees inside the cone ...
TILT_HOLD_MS = const(300)  # ... held for 300 ms
# the narrowest clinic max_tilt: the re-arm cone (max_tilt - the margin)
# must be at least 1 degree wide, or the pen could never re-arm
TILT_MIN_REARM_CDEG = const(100)
MAX_TILT_MIN_CDEG = const(400)  # TILT_HYST_CDEG + TILT_MIN_REARM_CDEG
_STEP_CDEG = const(50)
# accelerometer plausibility (4096 LSB/g after the shift; raw counts at +-2 g)
MAG_MIN = const(3277)  # 0.8 g
MAG_MAX = const(4915)  # 1.2 g
RAW_MAX = const(32767)  # a saturated axis reads the converter's end stop
RAW_MIN = const(-32768)

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


def _measure_py(c, i, cfg):
    """The tilt of the present sample from the reference, centidegrees;
    -1 when the sample gives no trustworthy axis."""
    # raw counts at 16384 LSB/g -> 4096 LSB/g keeps every product < 2**30
    ax = i.ax >> 2
    ay = i.ay >> 2
    az = i.az >> 2
    m = isqrt(ax * ax + ay * ay + az * az, c.mag)
    c.mag = m
    # plausibility: a pen held on the skin reads about 1 g (tremor and the
    # motor's vibration add hundredths); outside 0.8-1.2 g, or with an axis
    # at the converter's end stop (a saturated or stuck-at-full-scale axis),
    # the direction of gravity is unknown: out of the cone (pen.faults
    # latches imu_implausible if it persists)
    c.implaus = 0
    if i.imu_ok and (
        m < MAG_MIN
        or m > MAG_MAX
        or i.ax >= RAW_MAX
        or i.ax <= RAW_MIN
        or i.ay >= RAW_MAX
        or i.ay <= RAW_MIN
        or i.az >= RAW_MAX
        or i.az <= RAW_MIN
    ):
        c.implaus = 1
    if m < 1024 or not i.imu_ok or c.implaus:
        # under 0.25 g (free fall or a dead sensor) or implausible: no
        # trustworthy axis
        return -1
    return cos_to_cdeg(((ax * cfg.ref_x + ay * cfg.ref_y + az * cfg.ref_z) << 1) // m)


def _leave_if_out_py(c, i, cfg):
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


measure = _measure_py
leave_if_out = _leave_if_out_py
if sys.implementation.name == "micropython":
    # measure() and leave_if_out() in viper (machine integers, the table read
    # through a pointer): the SR1 watch runs them about once per ms and the
    # tick once per pass; in native code every integer operation and array
    # read is a runtime call (~120 us per watch on the chip, docs/performance.md).
    # Same arithmetic as the functions above: every value stays below 2**30
    # (the module comment), so 32-bit machine integers give the same results.

    @micropython.viper  # type: ignore[name-defined]  # noqa: F821
    def _measure_viper(c, i, cfg) -> int:
        rx = int(i.ax)
        ry = int(i.ay)
        rz = int(i.az)
        ax = rx >> 2
        ay = ry >> 2
        az = rz >> 2
        # isqrt(n, c.mag), inline
        n = ax * ax + ay * ay + az * az
        m = 0
        if n > 0:
            x = int(c.mag)
            if x <= 0:
                x = n
            x = (x + n // x) >> 1
            if x != 0:
                while True:
                    y = (x + n // x) >> 1
                    if y >= x:
                        break
                    x = y
            m = x
        c.mag = m
        ok = int(i.imu_ok)
        imp = 0
        if ok and (
            m < MAG_MIN
            or m > MAG_MAX
            or rx >= RAW_MAX
            or rx <= RAW_MIN
            or ry >= RAW_MAX
            or ry <= RAW_MIN
            or rz >= RAW_MAX
            or rz <= RAW_MIN
        ):
            imp = 1
        c.implaus = imp
        if m < 1024 or not ok or imp:
            return -1
        k = ((ax * int(cfg.ref_x) + ay * int(cfg.ref_y) + az * int(cfg.ref_z)) << 1) // m
        # cos_to_cdeg(k), inline
        if k >= 32768:
            return 0
        if k <= -32768:
            return 18000
        # the entries (-32768..32768) sign-extended from their 17 bits: a
        # ptr32 load is 32 bits, which a 64-bit unix port does not extend
        t = ptr32(ACOS_TABLE)  # type: ignore[name-defined]  # noqa: F821
        lo = 0
        hi = 360
        while hi - lo > 1:
            mid = (lo + hi) >> 1
            if ((t[mid] + 0x10000) & 0x1FFFF) - 0x10000 > k:
                lo = mid
            else:
                hi = mid
        c_lo = ((t[lo] + 0x10000) & 0x1FFFF) - 0x10000
        c_hi = ((t[hi] + 0x10000) & 0x1FFFF) - 0x10000
        return lo * _STEP_CDEG + (c_lo - k) * _STEP_CDEG // (c_lo - c_hi)

    @micropython.viper  # type: ignore[name-defined]  # noqa: F821
    def _leave_if_out_viper(c, i, cfg) -> bool:
        if not int(c.running):
            return False
        t = int(_measure_viper(c, i, cfg))
        if t < 0 or t > int(cfg.max_tilt):
            c.in_cone = 0
            c.cone_ms = 0
            return True
        return False

    measure = _measure_viper
    leave_if_out = _leave_if_out_viper


@micropython.native
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


def check_max_tilt(max_tilt):
    """A clinic max tilt must leave room for the re-arm margin."""
    if max_tilt < MAX_TILT_MIN_CDEG:
        raise PenError(
            HARDWARE_LIMIT,
            "max_tilt %d.%02d deg below the re-arm margin: re-arming needs the axis within max_tilt - %d.%02d deg"
            " for %d ms, so max_tilt must be at least %d.%02d deg"
            % (
                max_tilt // 100,
                max_tilt % 100,
                TILT_HYST_CDEG // 100,
                TILT_HYST_CDEG % 100,
                TILT_HOLD_MS,
                MAX_TILT_MIN_CDEG // 100,
                MAX_TILT_MIN_CDEG % 100,
            ),
        )


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


# a captured reference may lean from the factory axis (gravity-down) by at
# most this much: past it the "vertical" the cone guards is not vertical
REF_MAX_CDEG = const(3000)
REF_MIN_Z = const(14189)  # ceil(cos(30 deg) * Q14): z of a unit vector at the bound
# a stored reference is a unit vector within this (|r|^2 within 0.1 %, so
# |r| within 0.05 %: at a 20 deg limit the angle errs by under 0.05 deg)
REF_NORM_TOL = const(268435)  # Q14 * Q14 // 1000


def _div_round(a, m):
    return (a * Q14 + m // 2) // m if a >= 0 else -((-a * Q14 + m // 2) // m)


def normalise_ref(x, y, z):
    """The reference as an exact Q14 unit vector (rounded): a stored or
    captured vector a little long or short must not scale the angle."""
    m = isqrt(x * x + y * y + z * z, Q14)
    if m == 0:
        raise PenError(NOT_ALLOWED_IN_STATE, "tilt reference is not a unit vector")
    return _div_round(x, m), _div_round(y, m), _div_round(z, m)


def ref_angle_cdeg(cfg):
    """The reference's angle from the factory axis, in centidegrees."""
    z = cfg.ref_z
    if z > Q14:
        z = Q14
    elif z < -Q14:
        z = -Q14
    return cos_to_cdeg(z << 1)


def check_ref(cfg):
    """A reference within the bound of the factory axis, or an error naming
    the bound."""
    if cfg.ref_z < REF_MIN_Z:
        a = ref_angle_cdeg(cfg)
        raise PenError(
            HARDWARE_LIMIT,
            "tilt reference %d.%02d deg from the factory axis, above the bound %d deg"
            % (a // 100, a % 100, REF_MAX_CDEG // 100),
        )


@micropython.native
def cone_ok(cfg):
    """Every tick (Core.config_ok): a clinic max tilt the pen can re-arm
    under, and a tilt reference that is a unit vector within the bound.
    Allocation free: components are checked first, so every product stays
    < 2**30. (Here, not in core: this module's constants are folded.)"""
    if cfg.max_tilt < MAX_TILT_MIN_CDEG:
        return False
    x = cfg.ref_x
    y = cfg.ref_y
    z = cfg.ref_z
    if x < -Q14 or x > Q14 or y < -Q14 or y > Q14 or z < REF_MIN_Z or z > Q14:
        return False
    m = x * x + y * y + z * z - Q14 * Q14
    return -REF_NORM_TOL <= m <= REF_NORM_TOL


def check_reset(c):
    """Back to the default reference, gravity-down: refused while running."""
    if c.running:
        raise PenError(NOT_WHILE_RUNNING, "tilt reference cannot change while the needles run")
    return 0, 0, Q14


def restart_hold(c):
    """A new cone must be held for the hold time before a start."""
    c.in_cone = 0
    c.cone_ms = 0
