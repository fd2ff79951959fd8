# Unit tests of the integer tilt math (pen.tilt); pytest and MicroPython.
import math

from pen.tilt import cos_to_cdeg, isqrt


def test_isqrt_exact_floor():
    for n in (0, 1, 2, 3, 4, 15, 16, 17, 99, 100, 101, 4096 * 4096, 3 * 8192 * 8192, 123456789):
        for guess in (0, 1, 4096, 100000):
            r = isqrt(n, guess)
            assert r * r <= n < (r + 1) * (r + 1), (n, guess, r)


def test_cos_to_cdeg_matches_acos_near_the_limits():
    for deg in (5.0, 10.0, 14.9, 15.0, 15.1, 19.9, 20.0, 45.0, 90.0, 135.0):
        c = int(round(math.cos(math.radians(deg)) * 32768))
        got = cos_to_cdeg(c)
        assert abs(got - deg * 100) <= 3, (deg, got)


def test_cos_to_cdeg_ends():
    assert cos_to_cdeg(32768) == 0
    assert cos_to_cdeg(40000) == 0
    assert cos_to_cdeg(-32768) == 18000


def test_sr1_acos_table_is_the_cosine():
    from pen.tilt import ACOS_TABLE

    assert len(ACOS_TABLE) == 361
    for k in range(361):
        assert ACOS_TABLE[k] == int(round(math.cos(math.radians(k * 0.5)) * 32768)), k
