"""pytest plugin: a virtual pen in one line.

Installed with this package (entry point ``pytest11``), so any test can
ask for the ``sim_pen`` fixture::

    def test_my_pen_stops_when_tilted(sim_pen):
        sim_pen.advance(1500)          # homing and the tilt hold time
        sim_pen.press_trigger()
        sim_pen.advance(500)
        sim_pen.set_tilt(30)
        sim_pen.advance(2)
        assert not sim_pen.truth()["motor_duty"]

Runtime and time mode, in order of precedence:

- ``@pytest.mark.parametrize("sim_pen", [...], indirect=True)`` with dicts
  of SimulatedPen arguments (``{"runtime": "cpython", "speed": None}``) or
  with strings ``"RUNTIME"`` / ``"RUNTIME:SPEED"`` (``"micropython:stepped"``,
  ``"cpython:max"``, ``"micropython:1.0"``); ``SIM_PEN_ALL`` parametrizes
  over both runtimes in stepped time;
- a marker ``@pytest.mark.sim_pen(runtime="cpython", speed=0, seed=3)``;
- the command line ``--sim-runtime`` and ``--sim-speed`` (defaults:
  micropython, stepped).

With ``--sim-trace DIR`` every sim_pen records a CSV trace and a PNG plot
named after the test into DIR.
"""

from __future__ import annotations

import re
from collections.abc import Iterator
from pathlib import Path
from typing import Any, cast

import pytest

from sim.simulated_pen import RUNTIMES, SimulatedPen

SIM_PEN_ALL = [f"{rt}:stepped" for rt in RUNTIMES]


def _speed(text: str) -> float | None:
    if text == "stepped":
        return None
    if text == "max":
        return 0.0
    return float(text)


def pen_args(spec: object) -> dict[str, Any]:
    """SimulatedPen keyword arguments from a parameter (dict or string)."""
    if isinstance(spec, dict):
        return dict(cast("dict[str, Any]", spec))
    if isinstance(spec, str):
        runtime, _, speed = spec.partition(":")
        if runtime not in RUNTIMES:
            raise ValueError(f"sim_pen: runtime {runtime!r} is not one of {RUNTIMES}")
        return {"runtime": runtime, "speed": _speed(speed or "stepped")}
    raise TypeError(f"sim_pen: parameter must be a dict or 'runtime[:speed]', not {spec!r}")


def pytest_addoption(parser: pytest.Parser) -> None:
    g = parser.getgroup("pensim", "virtual needle pen (sim_pen fixture)")
    g.addoption("--sim-runtime", choices=RUNTIMES, default="micropython", help="runtime of sim_pen")
    g.addoption("--sim-speed", default="stepped", help="sim_pen time: stepped, max or a factor of real time")
    g.addoption("--sim-trace", default=None, metavar="DIR", help="record a trace CSV and plot PNG per test")


def pytest_configure(config: pytest.Config) -> None:
    config.addinivalue_line(
        "markers", "sim_pen(runtime=..., speed=..., seed=...): SimulatedPen arguments for the sim_pen fixture"
    )


@pytest.fixture
def sim_pen(request: pytest.FixtureRequest) -> Iterator[SimulatedPen]:
    """A running SimulatedPen (firmware + world), closed after the test."""
    opt = request.config.getoption
    kwargs: dict[str, Any] = {"runtime": str(opt("--sim-runtime")), "speed": _speed(str(opt("--sim-speed")))}
    marker = request.node.get_closest_marker("sim_pen")
    if marker is not None:
        kwargs.update(marker.kwargs)
    if hasattr(request, "param"):
        kwargs.update(pen_args(request.param))
    trace_dir = opt("--sim-trace")
    png = None
    if trace_dir and "trace" not in kwargs:
        d = Path(trace_dir)
        d.mkdir(parents=True, exist_ok=True)
        stem = re.sub(r"[^A-Za-z0-9_.-]+", "_", request.node.name)
        kwargs["trace"] = d / f"{stem}.csv"
        png = d / f"{stem}.png"
    with SimulatedPen(**kwargs) as pen:
        yield pen
        if png is not None:
            pen.stop_trace()
            if len(Path(kwargs["trace"]).read_text().splitlines()) > 1:  # time moved: rows to plot
                pen.plot(png, title=request.node.nodeid)
