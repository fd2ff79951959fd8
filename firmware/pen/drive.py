# SR3 rate: the needle drive. Soft start (a ramp from the hardware minimum),
# a PI loop on the hall period with feed-forward from the battery voltage,
# gains scheduled with the rate, and the rules that keep a missing hall
# pulse from ever raising the drive. The runaway check is a fault (pen.faults).
#
# The state (running, ramp_mhz, integ, meas_mhz, ...) lives on the Core;
# this module holds the code and the constants of the concern.
from pen import limits as L
from pen.compat import const, micropython
from pen.faults import COAST_MS, MOTOR_MV_PER_HZ

AGE_WRAP_US = const(0x20000000)  # 2**29 us: a ticks_us age past this has wrapped
NO_EDGE_US = const(100000000)

RAMP_MHZ_PER_MS = const(300)  # soft start: 300 Hz/s
# PI gains at 100 Hz, scheduled in proportion to the rate: the hall period
# (one sample per stroke) is the loop's dead time, so low rates need low gains
KP_Q10 = const(102)  # 0.1 duty-bp per mHz of error at 100 Hz
# ... and half that where a pass is this long or longer (the RP2040's 5 ms
# pass): up to a pass more between the hall read and the duty, on top of
# the period's own dead time. With the 1 ms tick's gain the chip's rate rang
# +-8-9 % at 150 Hz and never settled within 1 %; halved, a load step
# settles within 1 % in <= 100 ms (docs/performance.md, "The rate after a
# start on the chip")
KP_HALF_PASS_MS = const(4)
KI_Q16 = const(328)  # 0.005 duty-bp per mHz*ms at 100 Hz
GAIN_REF_HZ = const(100)
INTEG_MAX = const(2000000)
DUTY_MAX = const(10000)  # duty in basis points (0..10000)
DUTY_START_MAX = const(4000)  # until a period is measured in a run ...
START_BOOST = const(1500)  # ... feed-forward plus this much
STALE_DUTY_MARGIN = const(1000)  # duty rise allowed while no pulse comes


def start(c):
    """The drive switches on: the ramp starts at the hardware minimum."""
    c.running = 1
    c.ramp_mhz = L.HW_RATE_MIN_MHZ
    c.integ = 0
    c.no_edge_ms = 0
    c.run_edges = 0
    c.duty_hold = DUTY_START_MAX
    c.emf_f = 0
    c.emf_ms = 0


@micropython.native
def update(c, i, o, cfg, dt):
    """Every tick: the measured stroke rate, then the duty (SR3)."""
    # measured stroke rate from the hall period (one pulse per stroke)
    hc = i.hall_count
    edges = (hc - c.last_hall_count) & 0xFFFF
    c.last_hall_count = hc
    c.strokes += edges
    p = i.hall_period_us
    age = i.hall_age_us
    if age < 0 or age >= AGE_WRAP_US:
        age = NO_EDGE_US  # a wrapped ticks_us age: no edge (boards/hall.py)
    if p <= 0 or age > 500000:
        c.meas_mhz = 0  # no period, or no edge for 0.5 s: not turning
    else:
        if age > p + (p >> 2):
            # slowing down: the open period bounds the rate. Only past a
            # quarter period more: a read that lands just before the next
            # edge (the 5 ms pass against the 10 ms stroke, at a phase that
            # depends on the clock) read a rate too low and kicked the duty
            p = age
        c.meas_mhz = 1000000000 // p
    if not c.running:
        o.duty = 0
        o.brake = 1
        c.integ = 0
        if c.off_ms >= COAST_MS:
            # only a pass that began past the coast time: one that spans it
            # (a flash write just after a stop stalls the chip's loop 45 ms
            # and more) carries the hall edges of the coast before it
            c.coast_edges += edges
        if c.off_ms < 1000000:
            c.off_ms += dt
        return
    c.run_edges += edges
    if c.run_edges > 1000000:
        c.run_edges = 1000000
    c.run_ms += dt
    target = cfg.rate
    r = c.ramp_mhz
    if r < target:
        r += RAMP_MHZ_PER_MS * dt
        if r > target:
            r = target
    elif r > target:
        r = target  # slowing down needs no ramp
    c.ramp_mhz = r
    r_hz = r // 1000
    err = r - c.meas_mhz
    # the open period is longer than the last one: the rate is only
    # bounded, not measured; do not wind up on it (a lost hall sensor
    # looks exactly like this)
    stale = i.hall_period_us > 0 and age > i.hall_period_us
    if c.run_edges < 2:
        # no period measured in this run yet: feed-forward plus a fixed
        # break-away boost, no integration (no overshoot of the ramp)
        c.integ = 0
    elif not (stale and err > 0):
        c.integ += err * dt * r_hz // GAIN_REF_HZ
    if c.integ > INTEG_MAX:
        c.integ = INTEG_MAX
    elif c.integ < -INTEG_MAX:
        c.integ = -INTEG_MAX
    batt = c.batt_mv if c.batt_mv > 1000 else 1000  # filtered (core._battery)
    ff = r_hz * MOTOR_MV_PER_HZ * 10000 // batt
    kp = KP_Q10 if dt < KP_HALF_PASS_MS else KP_Q10 >> 1
    duty = ff + ((err * kp) >> 10) * r_hz // GAIN_REF_HZ + ((c.integ * KI_Q16) >> 16)
    dmax = DUTY_MAX
    if c.run_edges < 2:
        dmax = ff + START_BOOST
        if dmax > DUTY_START_MAX:
            dmax = DUTY_START_MAX
    if stale:
        # a missing pulse never raises the drive: hold the last duty
        # until the pulses return or the hall fault latches
        if dmax > c.duty_hold + STALE_DUTY_MARGIN:
            dmax = c.duty_hold + STALE_DUTY_MARGIN
    if duty > dmax:
        duty = dmax
    elif duty < 0:
        duty = 0
    o.duty = duty
    o.brake = 0
    if not stale:
        c.duty_hold = duty if c.run_edges >= 2 else dmax
