# Unit tests of pen.limits: run by pytest (CPython) and by tests/firmware/mprun.py
# under MicroPython. Plain asserts only.
from pen import limits as L
from pen.core import Config
from pen.errors import BAD_NUMBER, CLINIC_LIMIT, HARDWARE_LIMIT, RESOLUTION, PenError


def _code(fn):
    try:
        fn()
    except PenError as e:
        return e.code, e.text
    return None, ""


def test_parse_fixed_exact_decimals():
    assert L.parse_fixed("1.5", 3, "depth") == 1500
    assert L.parse_fixed("1.15", 3, "depth") == 1150  # no float rounding
    assert L.parse_fixed("0.05", 3, "depth") == 50
    assert L.parse_fixed("2.500", 3, "depth") == 2500
    assert L.parse_fixed("100", 3, "rate") == 100000
    assert L.parse_fixed("-1", 3, "x") == -1000


def test_parse_fixed_refuses_garbage():
    for bad in ("", ".", "abc", "1.2.3", "1e3", "nan", "0x10", "1,5", "9999999", "\u00b2", "1.\u0663"):
        code, _ = _code(lambda b=bad: L.parse_fixed(b, 3, "depth"))
        assert code == BAD_NUMBER, bad


def test_parse_fixed_refuses_excess_resolution():
    code, _ = _code(lambda: L.parse_fixed("1.2345", 3, "depth"))
    assert code == RESOLUTION


def test_fmt_fixed():
    assert L.fmt_fixed(150, 2) == "1.50"
    assert L.fmt_fixed(5, 2) == "0.05"
    assert L.fmt_fixed(-5, 1) == "-0.5"
    assert L.fmt_fixed(25, 0) == "25"


def test_hardware_limit_named_in_error():
    cfg = Config()
    code, text = _code(lambda: L.check_working(L.DEPTH, 2600, cfg))
    assert code == HARDWARE_LIMIT
    assert "hardware limit 2.50 mm" in text
    code, text = _code(lambda: L.check_working(L.RATE, 20000, cfg))
    assert code == HARDWARE_LIMIT and "below hardware limit 25.0 Hz" in text


def test_clinic_limit_named_in_error():
    cfg = Config()
    code, text = _code(lambda: L.check_working(L.DEPTH, 2000, cfg))
    assert code == CLINIC_LIMIT
    assert "max_depth 1.50 mm" in text


def test_depth_step_resolution():
    cfg = Config()
    code, text = _code(lambda: L.check_working(L.DEPTH, 1020, cfg))
    assert code == RESOLUTION and "0.05 mm step" in text
    L.check_working(L.DEPTH, 1050, cfg)


def test_every_working_setting_capped_by_a_clinic_limit():
    for s in L.WORKING:
        assert L.find(L.CLINIC, s.clinic_key).hw_max == s.hw_max
