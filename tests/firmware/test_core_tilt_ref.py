# SR1: the tilt reference (bounded lean from the factory axis, normalised
# when set or loaded, re-checked every tick, shown by status) and the clinic
# max tilt against the re-arm margin. Plain asserts: pytest and MicroPython.
import math

from pen import core as C
from pen import tilt as T
from pen.errors import PenError
from test_core_replay import Harness


def _refused(fn, *words):
    try:
        fn()
    except PenError as e:
        for w in words:
            assert w in e.text, e.text
        return e
    raise AssertionError("accepted")


def _ready():
    h = Harness(stage_steps=100)
    h.advance(1000)
    assert h.core.state == C.ST_READY
    return h


def test_sr1_tilt_ref_capture_beyond_the_bound_is_refused():
    h = _ready()
    h.do("tilt", (60.0, 30.0))
    h.advance(100)
    before = (h.cfg.ref_x, h.cfg.ref_y, h.cfg.ref_z)
    _refused(h.core.capture_tilt_ref, "deg from the factory axis, above the bound 30 deg")
    assert (h.cfg.ref_x, h.cfg.ref_y, h.cfg.ref_z) == before
    h.do("tilt", (31.0, 30.0))
    h.advance(100)
    _refused(h.core.capture_tilt_ref, "bound 30 deg")
    h.do("tilt", (29.0, 30.0))
    h.advance(100)
    x, y, z = h.core.capture_tilt_ref()
    assert abs(T.ref_angle_cdeg(h.cfg) - 2900) <= 20
    assert abs(x * x + y * y + z * z - T.Q14 * T.Q14) <= T.REF_NORM_TOL
    # the bound constant is cos(30 deg) in Q14
    assert T.REF_MIN_Z == math.ceil(math.cos(math.radians(T.REF_MAX_CDEG / 100)) * T.Q14)


def test_sr1_tilt_ref_is_normalised_when_loaded():
    c = C.Core(C.Config())
    # a stored reference 2 % too long (the loader takes up to ~5 %): normalised
    c.configure({"ref_x": 0, "ref_y": int(0.3420 * 16384 * 1.02), "ref_z": int(0.9397 * 16384 * 1.02)})
    m = c.cfg.ref_x**2 + c.cfg.ref_y**2 + c.cfg.ref_z**2
    assert abs(m - T.Q14 * T.Q14) <= T.REF_NORM_TOL, m
    assert c.config_ok()
    _refused(lambda: c.configure({"ref_x": 0, "ref_y": 14189, "ref_z": 8192}), "bound 30 deg")
    _refused(lambda: c.configure({"ref_x": 0, "ref_y": 0, "ref_z": 8000}), "unit vector")


def test_sr1_tilt_ref_config_ok_rechecks_it_every_tick():
    # a reference 2 % too long that went past configure: a real 22.8 deg
    # would read as 20 deg. config_ok refuses it, so the drive stops.
    h = _ready()
    h.do("trigger", 1)
    h.advance(300)
    assert h.core.running
    h.cfg.ref_z = int(T.Q14 * 1.02)
    h.advance(1)
    assert not h.core.running and h.core.block & C.BLK_CONFIG
    assert not h.core.config_ok()
    h.cfg.ref_z = T.Q14
    assert h.core.config_ok()
    # a vector at 60 deg poked past configure
    h.cfg.ref_y = 14189
    h.cfg.ref_z = 8192
    assert not h.core.config_ok()


def test_sr1_max_tilt_below_the_rearm_margin_is_refused():
    c = C.Core(C.Config())
    for cdeg in (100, 300, 350, 390):
        e = _refused(
            lambda cdeg=cdeg: c.configure({"max_tilt": cdeg}), "re-arm margin", "max_tilt - 3.00 deg", "4.00 deg"
        )
        assert e.code == 10
        assert c.cfg.max_tilt == 1500
    assert c.configure({"max_tilt": 400}) == 1
    assert c.config_ok()
    c.cfg.max_tilt = 300  # poked past configure
    assert not c.config_ok()
