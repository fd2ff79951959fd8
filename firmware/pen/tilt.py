# Tilt of the needle axis from the reference axis, in integer arithmetic.
#
# Accelerometer counts are taken at +-2 g full scale (16384 LSB/g) and shifted
# to 4096 LSB/g, the reference axis is a unit vector in Q14. Every product
# then stays below 2**30, the RP2040's small-int limit, so the tick allocates
# nothing: dot <= |a|*|r| <= 3.47 g * 4096 * 16384 < 2**28.
import array

from pen.compat import const

Q14 = const(16384)

# cos(k * 0.5 deg) in Q15 for k = 0..360 (0..180 deg), strictly decreasing;
# built once at import.
_STEP_CDEG = const(50)
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
    while hi - lo > 1:
        mid = (lo + hi) >> 1
        if ACOS_TABLE[mid] > c:
            lo = mid
        else:
            hi = mid
    c_lo = ACOS_TABLE[lo]
    c_hi = ACOS_TABLE[hi]
    return lo * _STEP_CDEG + (c_lo - c) * _STEP_CDEG // (c_lo - c_hi)
