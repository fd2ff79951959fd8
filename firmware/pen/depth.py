# SR2 depth: homing after power-up and depth moves verified against the
# home switch. Every move goes via the home edge: the descent checks the
# step count of the previous climb, so a lost step is a latched fault
# (docs/safety.md has the detection and its limits).
#
# The state (homed, pos_steps, target_steps, depth_phase, ...) lives on the
# Core; this module holds the code and the constants of the concern.
from pen.compat import const, micropython
from pen.faults import F_DEPTH, F_HOMING

STEPS_PER_MM = const(400)  # 0.5 mm lead screw, 200 full steps per turn
MAX_STEPS_PER_TICK = const(2)  # 2 kHz step rate: full travel in 0.6 s
HOMING_MAX_STEPS = const(1400)  # 2.5 mm of travel plus 1 mm of margin
HOMING_BACKOFF_MAX = const(200)
DEPTH_TOL_STEPS = const(8)  # 0.02 mm: home edge found within this of 0

# stage phases after homing
DP_IDLE = const(0)
DP_VERIFY = const(1)  # descending to the home edge, checking the count
DP_RETURN = const(2)  # climbing back to the target


@micropython.native
def um_to_steps(um):
    """Depth in micrometres -> stage steps: the one conversion."""
    return um * STEPS_PER_MM // 1000


@micropython.native
def steps_to_um(steps):
    return steps * 1000 // STEPS_PER_MM


def rehome(c):
    """After a depth or homing fault: the stage position is not trusted."""
    c.homed = 0
    c.homing_phase = 0
    c.homing_steps = 0
    c.depth_phase = DP_IDLE


def _fault(c, pos):
    c.verify_err = pos
    c.fault = F_DEPTH
    c.depth_phase = DP_IDLE


@micropython.native
def update(c, i, o, cfg, cfg_ok):
    """Every tick: homing, then the move to the set depth (SR2)."""
    o.steps = 0
    if not c.homed:
        if c.fault:
            return
        if c.homing_phase == 0:
            # start off the switch so the edge we home on is a real one
            if i.home:
                if c.homing_steps >= HOMING_BACKOFF_MAX:
                    c.fault = F_HOMING
                    return
                o.steps = 1
                c.homing_steps += 1
                return
            c.homing_phase = 1
            c.homing_steps = 0
        if i.home:
            c.homed = 1
            c.pos_steps = 0
            c.target_steps = 0
            c.depth_phase = DP_IDLE
            c.verified = 1  # the edge itself was just found
            # fall through: the move to the set depth starts this tick,
            # so the stage never reads "in place" at 0 before it
        elif c.homing_steps >= HOMING_MAX_STEPS:
            c.fault = F_HOMING
            return
        else:
            o.steps = -1
            c.homing_steps += 1
            return
    if c.fault:
        return  # a faulted stage holds still
    pos = c.pos_steps
    ph = c.depth_phase
    if ph == DP_IDLE:
        # a new depth is taken only with the drive off and a valid config
        if cfg_ok and not c.running:
            target = um_to_steps(cfg.depth)
            if target != c.target_steps:
                c.target_steps = target
                c.verified = 0
                # every move goes via the home edge: the descent checks
                # the step count of the previous climb (step loss)
                ph = DP_VERIFY
        # the switch must agree with the step count at any time
        if i.home and pos > DEPTH_TOL_STEPS:
            _fault(c, pos)
            return
    if ph == DP_VERIFY:
        if i.home:
            if pos > DEPTH_TOL_STEPS:
                _fault(c, pos)  # edge early: steps lost climbing
                return
            c.verify_err = pos
            c.verifies += 1
            c.pos_steps = 0  # re-zero on the edge
            pos = 0
            ph = DP_RETURN
        elif pos < -DEPTH_TOL_STEPS:
            _fault(c, pos)  # edge missing: steps lost descending
            return
        else:
            d = -MAX_STEPS_PER_TICK if pos > DEPTH_TOL_STEPS + MAX_STEPS_PER_TICK else -1
            o.steps = d
            c.pos_steps = pos + d
            c.depth_phase = ph
            return
    if ph == DP_RETURN:
        d = c.target_steps - pos
        if d > MAX_STEPS_PER_TICK:
            d = MAX_STEPS_PER_TICK
        elif d < -MAX_STEPS_PER_TICK:
            d = -MAX_STEPS_PER_TICK
        o.steps = d
        c.pos_steps = pos + d
        if c.pos_steps == c.target_steps:
            ph = DP_IDLE
            c.verified = 1
    c.depth_phase = ph


@micropython.native
def moving(c, cfg, cfg_ok):
    """The stage is not at the set depth (or is verifying): the drive waits."""
    return (
        c.pos_steps != c.target_steps
        or c.depth_phase != DP_IDLE
        or (cfg_ok and um_to_steps(cfg.depth) != c.target_steps)
    )
