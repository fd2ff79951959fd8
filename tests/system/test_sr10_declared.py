"""SR10: `info` reports what a microneedling device label must state
(21 CFR 878.4430: needle count and length, maximum penetration depth,
puncture-rate range, depth and rate accuracy), from the same constants that
enforce the limits; the pen refuses exactly what it declares impossible."""

from __future__ import annotations

from pen import depth as DP
from pen import limits as L

from host import Pen, PenRefused
from sim import SimulatedPen


def test_sr10_declared_depth_accuracy_is_the_enforced_tolerance() -> None:
    assert DP.DEPTH_TOL_STEPS * 1000 // DP.STEPS_PER_MM == L.DEPTH_ACCURACY_UM


def test_sr10_info_declares_the_label_parameters_from_the_limits(fast_pen: SimulatedPen) -> None:
    with Pen(fast_pen.port) as pen:
        info = pen.info()
        assert int(str(info["needles"])) == L.NEEDLE_COUNT
        assert float(str(info["needle_length_mm"])) == L.NEEDLE_LENGTH_UM / 1000
        assert float(str(info["max_depth_mm"])) == L.HW_DEPTH_MAX_UM / 1000
        assert float(str(info["depth_step_mm"])) == L.DEPTH_STEP_UM / 1000
        assert float(str(info["depth_accuracy_mm"])) == L.DEPTH_ACCURACY_UM / 1000
        assert float(str(info["rate_min_hz"])) == L.HW_RATE_MIN_MHZ / 1000
        assert float(str(info["rate_max_hz"])) == L.HW_RATE_MAX_MHZ / 1000
        assert float(str(info["rate_accuracy_pct"])) == L.RATE_ACCURACY_PERMILLE / 10
        # what is declared is what is enforced: one step past each end is refused
        for key, value in (
            ("rate", float(str(info["rate_max_hz"])) + 0.1),
            ("rate", float(str(info["rate_min_hz"])) - 0.1),
        ):
            try:
                pen.set(key, f"{value:.1f}")
            except PenRefused as e:
                assert e.code == 10, e
            else:
                raise AssertionError(f"{key} {value} outside the declared range was accepted")
        try:
            pen.set("depth", f"{float(str(info['max_depth_mm'])) + 0.05:.2f}")
        except PenRefused as e:
            assert e.code == 10 and "hardware limit 2.50 mm" in e.text
        else:
            raise AssertionError("depth past the declared maximum was accepted")
