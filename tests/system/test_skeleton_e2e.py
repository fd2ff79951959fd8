"""End to end through the pty: penctl and Pen against the simulated pen on
both runtimes, checked against the world's ground truth."""

from __future__ import annotations

import json
import os
import subprocess
import sys

import pytest

from host import Pen, PenRefused
from sim import SimulatedPen


def penctl(port: str, *args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "host.cli", "--port", port, *args],
        capture_output=True,
        text=True,
        timeout=30,
    )


def wait_ready(pen: SimulatedPen) -> None:
    pen.advance(1500)  # homing (<= 1400 steps at 1 step/ms) and tilt hold


def test_sr2_set_depth_moves_the_needle_stop(fast_pen: SimulatedPen) -> None:
    r = penctl(fast_pen.port, "set", "depth", "1.5")
    assert r.returncode == 0, r.stderr
    wait_ready(fast_pen)
    assert abs(float(fast_pen.truth()["needle_depth_mm"]) - 1.5) < 0.01  # type: ignore[arg-type]
    r = penctl(fast_pen.port, "--json", "get", "depth")
    assert json.loads(r.stdout) == {"depth": 1.5}


def test_sr9_value_outside_hardware_limit_refused_and_nothing_changes(fast_pen: SimulatedPen) -> None:
    assert penctl(fast_pen.port, "set", "depth", "1.0").returncode == 0
    r = penctl(fast_pen.port, "set", "depth", "2.6")
    assert r.returncode == 1
    assert "hardware limit 2.50 mm" in r.stderr
    assert r.stderr.count("\n") == 1 and "Traceback" not in r.stderr
    r = penctl(fast_pen.port, "set", "rate", "151")
    assert r.returncode == 1 and "hardware limit 150.0 Hz" in r.stderr
    wait_ready(fast_pen)
    assert abs(float(fast_pen.truth()["needle_depth_mm"]) - 1.0) < 0.01  # type: ignore[arg-type]
    with Pen(fast_pen.port) as pen:
        assert pen.get() == {"depth": 1.0, "rate": 100.0}


def test_sr3_trigger_runs_the_needles_at_the_set_rate(fast_pen: SimulatedPen) -> None:
    with Pen(fast_pen.port) as pen:
        pen.set("depth", "1.5")
        pen.set("rate", "120")
        wait_ready(fast_pen)
        assert pen.status()["state"] == "ready"
        fast_pen.press_trigger()
        fast_pen.advance(1500)
        truth = fast_pen.truth()
        assert abs(float(truth["stroke_hz"]) - 120.0) < 1.2  # type: ignore[arg-type]
        st = pen.status()
        assert st["state"] == "running"
        assert abs(float(st["rate"]) - 120.0) < 1.2  # type: ignore[arg-type]
        fast_pen.release_trigger()
        fast_pen.advance(200)
        assert fast_pen.truth()["running"] is False


def test_info_identifies_the_pen(fast_pen: SimulatedPen) -> None:
    r = penctl(fast_pen.port, "--json", "info")
    assert r.returncode == 0, r.stderr
    info = json.loads(r.stdout)
    assert info["board"] == "sim-rp2040"
    assert info["proto"] == 1


def test_design7_penctl_loop_reads_the_pens_own_pass_timing(fast_pen: SimulatedPen) -> None:
    """DESIGN §7: `penctl loop` reads the loop's stopwatch (pen/looptime.py);
    in the simulator the period is its 1 ms tick and the clock the desktop's.
    `loop reset` starts the figures again; other words are refused."""
    r = penctl(fast_pen.port, "--json", "loop")
    assert r.returncode == 0, r.stderr
    f = json.loads(r.stdout)
    assert f["period_us"] == 1000 and f["passes"] > 0, f
    assert 0 < f["tick_mean_us"] <= f["busy_mean_us"] <= f["busy_max_us"], f
    with Pen(fast_pen.port) as pen:
        before = int(pen.loop()["passes"])  # type: ignore[call-overload]
        after = int(pen.loop(reset=True)["passes"])  # type: ignore[call-overload]
        assert before > 0 and after == 0, (before, after)
        with pytest.raises(PenRefused) as e:
            pen.request("loop now")
        assert e.value.code == 2 and "usage: loop [reset]" in e.value.text


def test_pen_refusal_is_an_exception_with_the_code(fast_pen: SimulatedPen) -> None:
    with Pen(fast_pen.port) as pen:
        try:
            pen.set("depth", "2.0")
        except PenRefused as e:
            assert e.code == 11 and "max_depth 1.50 mm" in e.text
        else:
            raise AssertionError("depth above the clinic limit was accepted")


def test_penctl_port_from_environment(fast_pen: SimulatedPen) -> None:
    env = dict(os.environ, PENCTL_PORT=fast_pen.port)
    r = subprocess.run(
        [sys.executable, "-m", "host.cli", "status"], capture_output=True, text=True, env=env, timeout=30
    )
    assert r.returncode == 0 and "state" in r.stdout


def test_penctl_without_port_is_one_clear_line() -> None:
    env = {k: v for k, v in os.environ.items() if k != "PENCTL_PORT"}
    r = subprocess.run(
        [sys.executable, "-m", "host.cli", "status"], capture_output=True, text=True, env=env, timeout=30
    )
    assert r.returncode == 3
    assert r.stderr.strip().count("\n") == 0 and "PENCTL_PORT" in r.stderr


def test_ctrl_c_on_the_line_does_not_stop_the_firmware(fast_pen: SimulatedPen) -> None:
    with Pen(fast_pen.port) as pen:
        pen.link.send_byte(b"\x03\x03\x01\x04\x02\x05")
        fast_pen.advance(50)
        assert pen.info()["board"] == "sim-rp2040"
