# The three layers of limits (DESIGN §3) and the parsing of values into the
# fixed-point integers the core works in. Floats never reach the core: they
# are boxed on the heap in MicroPython and single precision on the RP2040.
#
# Internal units: depth in micrometres, rate in millihertz, angles in
# centidegrees, time in ms, current in mA, voltage in mV.
from pen.compat import const, micropython
from pen.errors import (
    BAD_NUMBER,
    CLINIC_LIMIT,
    HARDWARE_LIMIT,
    RESOLUTION,
    UNKNOWN_KEY,
    PenError,
)

# Layer 1: hardware limits, fixed in firmware.
HW_DEPTH_MIN_UM = const(0)
HW_DEPTH_MAX_UM = const(2500)
DEPTH_STEP_UM = const(50)
HW_RATE_MIN_MHZ = const(25000)
HW_RATE_MAX_MHZ = const(150000)
RATE_STEP_MHZ = const(100)  # 0.1 Hz
HW_TILT_MAX_CDEG = const(2000)
HW_TILT_MIN_CDEG = const(100)  # a cone narrower than 1 degree cannot be held
_TILT_STEP_CDEG = const(10)
HW_SESSION_MAX_MIN = const(60)
HW_SESSION_MIN_MIN = const(1)

# SR10: what the device label must declare (21 CFR 878.4430), reported by
# `info` from these constants; the core's depth check uses the same accuracy
# (core.DEPTH_TOL_STEPS = DEPTH_ACCURACY_UM at 400 steps/mm, a test keeps them
# equal) and the rate accuracy is what the SR3 tests hold the loop to.
NEEDLE_COUNT = const(12)  # reference cartridge
NEEDLE_LENGTH_UM = const(2500)  # exposed length at full travel = hardware max depth
DEPTH_ACCURACY_UM = const(20)
RATE_ACCURACY_PERMILLE = const(10)  # 1.0 % steady-state stroke-rate error

# Layer 2 defaults (the clinic's limits, DESIGN §3).
DEFAULT_MAX_DEPTH_UM = const(1500)
DEFAULT_MAX_RATE_MHZ = const(150000)
DEFAULT_MAX_TILT_CDEG = const(1500)
DEFAULT_MAX_SESSION_MIN = const(25)

# Layer 3 defaults (working settings): safe values inside every limit.
DEFAULT_DEPTH_UM = const(500)
DEFAULT_RATE_MHZ = const(100000)


def _digits(s):
    """ASCII digits only (str.isdigit() also takes '²' on CPython, which
    int() then refuses)."""
    for ch in s:
        if ch < "0" or ch > "9":
            return False
    return True


def parse_fixed(text, decimals, what):
    """'1.5' with decimals=3 -> 1500. Exact decimal parsing, no floats.

    Refuses more decimals than the resolution allows rather than rounding."""
    s = text.strip()
    neg = s[:1] == "-"
    if s[:1] in ("-", "+"):
        s = s[1:]
    whole, _, frac = s.partition(".")
    why = None
    if not (whole or frac) or not _digits(whole + frac):
        why = "is not a number"
    elif len(whole) > 6:
        why = "is out of range"
    # trailing zeros beyond the resolution are harmless: 1.500 == 1.5
    frac = frac.rstrip("0")
    if why is None and len(frac) > decimals:
        raise PenError(RESOLUTION, "%s: '%s' has more decimals than its resolution" % (what, text[:16]))
    if why:
        raise PenError(BAD_NUMBER, "%s: '%s' %s" % (what, text[:16], why))
    value = int(whole + (frac + "0" * decimals)[:decimals] or "0")
    return -value if neg else value


_FIXED = ("%s%d", "%s%d.%01d", "%s%d.%02d", "%s%d.%03d")  # by decimals


def fmt_fixed(value, decimals):
    """1500, 3 -> '1.500'; integers only, no float formatting. One `%`
    (a `status` formats eight of these while the needles may run)."""
    sign = ""
    if value < 0:
        sign = "-"
        value = -value
    if not decimals:
        return sign + str(value)
    scale = 10**decimals
    if decimals < len(_FIXED):
        return _FIXED[decimals] % (sign, value // scale, value % scale)
    return sign + str(value // scale) + "." + ("0" * decimals + str(value % scale))[-decimals:]


class Setting:
    """One user-visible value: name, unit, display decimals, internal scale,
    hardware range and resolution. The table below drives validation,
    `get`, `limits`, and the published documentation."""

    def __init__(self, key, unit, shown_decimals, scale_decimals, hw_min, hw_max, step, clinic_key):
        self.key = key
        self.unit = unit
        self.shown = shown_decimals  # decimals shown to users
        self.scale = scale_decimals  # decimals of the internal integer (um in mm: 3)
        self.hw_min = hw_min
        self.hw_max = hw_max
        self.step = step
        self.clinic_key = clinic_key  # the clinic limit that caps it, or None

    def show(self, value):
        # internal int -> user text with the shown number of decimals
        drop = self.scale - self.shown
        return fmt_fixed(value // (10**drop), self.shown)

    def exact(self, value):
        """The value as it was given, never rounded to the shown decimals
        (1001 um -> '1.001', 1000 -> '1.00'): refusals say what is true."""
        s = fmt_fixed(value, self.scale)
        keep = len(s) - (self.scale - self.shown)
        while len(s) > keep and s[-1] == "0":
            s = s[:-1]
        return s

    def parse(self, text):
        return parse_fixed(text, self.scale, self.key)

    def check_hw(self, value):
        code = HARDWARE_LIMIT
        end = ""
        if value < self.hw_min:
            why, lim = "below hardware limit", self.hw_min
        elif value > self.hw_max:
            why, lim = "above hardware limit", self.hw_max
        elif (value - self.hw_min) % self.step:
            code, why, lim, end = RESOLUTION, "is not a multiple of the", self.step, " step"
        else:
            return
        u = self.unit
        raise PenError(code, "%s %s %s %s %s %s%s" % (self.key, self.exact(value), u, why, self.show(lim), u, end))


# Working settings (layer 3) and clinic limits (layer 2). Values are internal ints.
DEPTH = Setting("depth", "mm", 2, 3, HW_DEPTH_MIN_UM, HW_DEPTH_MAX_UM, DEPTH_STEP_UM, "max_depth")
RATE = Setting("rate", "Hz", 1, 3, HW_RATE_MIN_MHZ, HW_RATE_MAX_MHZ, RATE_STEP_MHZ, "max_rate")
WORKING = (DEPTH, RATE)
CLINIC = (
    Setting("max_depth", "mm", 2, 3, HW_DEPTH_MIN_UM, HW_DEPTH_MAX_UM, DEPTH_STEP_UM, None),
    Setting("max_rate", "Hz", 1, 3, HW_RATE_MIN_MHZ, HW_RATE_MAX_MHZ, RATE_STEP_MHZ, None),
    Setting("max_tilt", "deg", 1, 2, HW_TILT_MIN_CDEG, HW_TILT_MAX_CDEG, _TILT_STEP_CDEG, None),
    Setting("max_session_min", "min", 0, 0, HW_SESSION_MIN_MIN, HW_SESSION_MAX_MIN, 1, None),
)


def find(table, key):
    for s in table:
        if s.key == key:
            return s
    raise PenError(UNKNOWN_KEY, "unknown key '%s' (known: %s)" % (key[:24], " ".join(s.key for s in table)))


def check_working(setting, value, clinic):
    """Validate a working setting against layer 1 then layer 2. Raises, never clamps."""
    setting.check_hw(value)
    cap_setting = find(CLINIC, setting.clinic_key)
    cap = getattr(clinic, setting.clinic_key)
    if value > cap:
        raise PenError(
            CLINIC_LIMIT,
            "%s %s %s above clinic limit %s %s %s"
            % (setting.key, setting.show(value), setting.unit, cap_setting.key, cap_setting.show(cap), setting.unit),
        )


@micropython.native
def settings_ok(cfg):
    """Every tick (Core.config_ok): each setting within its hardware limit,
    depth and rate within the clinic's maxima and on their step. Here, not
    in core, because this module's constants are folded into the code: the
    same checks in core.py looked each limit up at run time (148 us a tick
    on the RP2040, docs/performance.md)."""
    md = cfg.max_depth
    mr = cfg.max_rate
    mt = cfg.max_tilt
    if md < HW_DEPTH_MIN_UM or md > HW_DEPTH_MAX_UM:
        return False
    if mr < HW_RATE_MIN_MHZ or mr > HW_RATE_MAX_MHZ:
        return False
    if mt < HW_TILT_MIN_CDEG or mt > HW_TILT_MAX_CDEG:
        return False
    m = cfg.max_session_min
    if m < HW_SESSION_MIN_MIN or m > HW_SESSION_MAX_MIN:
        return False
    d = cfg.depth
    if d < HW_DEPTH_MIN_UM or d > md or d % DEPTH_STEP_UM:
        return False
    r = cfg.rate
    return not (r < HW_RATE_MIN_MHZ or r > mr or r % RATE_STEP_MHZ)
