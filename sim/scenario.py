"""Scenario files for `pensim run`: timed world events and expected outcomes.

Format (one step per line; `#` starts a comment; times in ms of simulated
time since the pen started, steps run in file order and a time earlier than
the clock runs at once)::

    # pen settings and the world, then what must be true
    trace run.csv 10            # optional: record a trace (path, interval ms)
    plot run.png                # optional: render it at the end
    at 0     penctl set depth 1.5     # any penctl command, over the pty
    at 1500  contact on               # any `pensim serve` console command
    at 1500  trigger on
    at 3000  expect stroke_hz ~ 100 +- 1.5
    at 3000  expect status.state == running
    at 3100  tilt 25
    at 3102  expect running == false
    at 3200  expect faults has none

`expect FIELD OP VALUE [+- TOL]`: FIELD is a key of SimulatedPen.truth()
(stroke_hz, needle_depth_mm, tilt_deg, motor_ma, battery_mv, running,
strokes, resets, lost_steps, faults, ...) or `status.KEY` from the
firmware's `status` reply (state, fault, rate, depth, tilt, ...). OP is one
of == != < <= > >= ~ (approximately: |x - VALUE| <= TOL) and `has`
(FIELD is a list containing VALUE; `has none` means an empty list).
The scenario runs in stepped time, so the same file gives the same world
on every run and on both runtimes.
"""

from __future__ import annotations

import shlex
import threading
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, cast

from sim.console import console_command
from sim.simulated_pen import SimError, SimulatedPen

OPS = ("==", "!=", "<", "<=", ">", ">=", "~", "has")


class ScenarioError(ValueError):
    """The scenario file is malformed (line number in the message)."""


@dataclass
class Step:
    line: int
    at_ms: int
    words: list[str]
    text: str


@dataclass
class Scenario:
    steps: list[Step] = field(default_factory=list)
    trace: str | None = None
    trace_interval_ms: int = 10
    plot: str | None = None
    seed: int = 1


def parse(text: str, base: Path | None = None) -> Scenario:
    sc = Scenario()
    base = base or Path.cwd()
    last = 0
    for n, raw in enumerate(text.splitlines(), 1):
        line = raw.split("#", 1)[0].strip()
        if not line:
            continue
        try:
            words = shlex.split(line)
        except ValueError as e:
            raise ScenarioError(f"line {n}: {e}") from None
        head = words[0]
        if head == "trace":
            if len(words) not in (2, 3):
                raise ScenarioError(f"line {n}: trace PATH [INTERVAL_MS]")
            sc.trace = str(base / words[1])
            sc.trace_interval_ms = int(words[2]) if len(words) == 3 else 10
        elif head == "plot":
            if len(words) != 2:
                raise ScenarioError(f"line {n}: plot PATH.png")
            sc.plot = str(base / words[1])
        elif head == "seed":
            sc.seed = int(words[1])
        elif head == "at":
            if len(words) < 3:
                raise ScenarioError(f"line {n}: at MS COMMAND ...")
            try:
                t = int(words[1])
            except ValueError:
                raise ScenarioError(f"line {n}: time {words[1]!r} is not a whole number of ms") from None
            if t < last:
                raise ScenarioError(f"line {n}: time {t} ms is before the previous step ({last} ms)")
            last = t
            step = Step(n, t, words[2:], line)
            if step.words[0] == "expect":
                _check_expect_syntax(step)
            sc.steps.append(step)
        else:
            raise ScenarioError(f"line {n}: expected 'at MS ...', 'trace', 'plot' or 'seed', not {head!r}")
    if sc.trace is None and sc.plot is not None:
        raise ScenarioError("plot needs a trace line")
    return sc


def _check_expect_syntax(step: Step) -> None:
    w = step.words
    if len(w) not in (4, 6) or w[2] not in OPS or (len(w) == 6 and w[4] not in ("+-", "±")):
        raise ScenarioError(f"line {step.line}: expect FIELD OP VALUE [+- TOL], OP one of {' '.join(OPS)}")
    if w[2] == "~" and len(w) != 6:
        raise ScenarioError(f"line {step.line}: '~' needs a tolerance: expect FIELD ~ VALUE +- TOL")


def _value(text: str) -> object:
    low = text.lower()
    if low in ("true", "on", "yes"):
        return True
    if low in ("false", "off", "no"):
        return False
    try:
        return float(text)
    except ValueError:
        return text


def check(actual: Any, op: str, expected_text: str, tol: float = 0.0) -> bool:
    if op == "has":
        items: list[object] = list(cast("list[object]", actual)) if isinstance(actual, list) else [actual]
        return not items if expected_text == "none" else expected_text in [str(x) for x in items]
    exp = _value(expected_text)
    if isinstance(exp, bool) or isinstance(actual, bool):
        a: object = actual if isinstance(actual, bool) else str(actual).lower() in ("1", "true", "on")
        return (a == exp) if op == "==" else (a != exp) if op == "!=" else False
    if isinstance(exp, float):
        try:
            x = float(actual)
        except (TypeError, ValueError):
            return False
        return {
            "==": abs(x - exp) <= tol,
            "!=": abs(x - exp) > tol,
            "<": x < exp,
            "<=": x <= exp,
            ">": x > exp,
            ">=": x >= exp,
            "~": abs(x - exp) <= tol,
        }[op]
    if op == "==":
        return str(actual) == exp
    if op == "!=":
        return str(actual) != exp
    return False


class Runner:
    """Runs a parsed scenario on a SimulatedPen in stepped time."""

    def __init__(self, pen: SimulatedPen, say: Callable[[str], None] = print) -> None:
        self.pen = pen
        self.say = say
        self.now = 0
        self._t0 = 0
        self.failures: list[str] = []

    def advance_to(self, t: int) -> None:
        if t > self.now:
            self.now = self.pen.advance(t - self.now) - self._t0
        # else: the clock is past t already (a host command took time)

    def run(self, sc: Scenario) -> int:
        self._t0 = self.pen.advance(0)
        for step in sc.steps:
            self.advance_to(step.at_ms)
            self._do(step)
        return 1 if self.failures else 0

    def _do(self, step: Step) -> None:
        w = step.words
        if w[0] == "expect":
            self._expect(step)
        elif w[0] == "penctl":
            self._penctl(step)
        else:
            out = console_command(self.pen, " ".join(w))
            if out and (out.startswith("unknown command") or out.startswith("error")):
                raise ScenarioError(f"line {step.line}: {out}")
        return None

    def _field(self, name: str) -> Any:
        if name.startswith("status."):
            from host import Pen

            key = name.split(".", 1)[1]

            def status() -> dict[str, object]:
                with Pen(self.pen.port) as p:
                    return p.status()

            st: dict[str, object] = self._host(status)
            if key not in st:
                raise ScenarioError(f"the pen's status has no {key!r}: {sorted(st)}")
            return st[key]  # type: ignore[index]
        truth = self.pen.truth()
        if name not in truth:
            raise ScenarioError(f"the world has no {name!r}; known: {', '.join(sorted(truth))}")
        return truth[name]

    def _expect(self, step: Step) -> None:
        w = step.words
        tol = float(w[5]) if len(w) == 6 else 0.0
        actual = self._field(w[1])
        ok = check(actual, w[2], w[3], tol)
        msg = f"t={self.now} ms line {step.line}: {' '.join(w)}  (actual {actual})"
        if ok:
            self.say("PASS " + msg)
        else:
            self.say("FAIL " + msg)
            self.failures.append(msg)

    def _host(self, fn: Callable[[], Any]) -> Any:
        """Run a host-side call while the pen's time moves: in stepped time
        the firmware only reads its serial line while time advances."""
        result: dict[str, Any] = {}

        def work() -> None:
            try:
                result["value"] = fn()
            except BaseException as e:  # noqa: BLE001 - re-raised below
                result["error"] = e

        th = threading.Thread(target=work, daemon=True)
        th.start()
        for _ in range(5000):  # at most 10 s of simulated time
            th.join(0.001)
            if not th.is_alive():
                break
            self.now = self.pen.advance(2) - self._t0
        th.join(30)
        err = result.get("error")
        if isinstance(err, BaseException):
            raise err
        return result.get("value")

    def _penctl(self, step: Step) -> None:
        import contextlib
        import io

        from host.cli import main as penctl_main

        args = ["--port", self.pen.port, *step.words[1:]]
        out, err = io.StringIO(), io.StringIO()

        def call() -> int:
            with contextlib.redirect_stdout(out), contextlib.redirect_stderr(err):
                try:
                    return int(penctl_main(args) or 0)
                except SystemExit as e:
                    return int(e.code or 0)

        rc = self._host(call)
        text = (out.getvalue() + err.getvalue()).strip().replace("\n", "; ")
        self.say(f"     t={self.now} ms $ penctl {' '.join(step.words[1:])} -> {rc} {text}")
        if rc != 0:
            self.failures.append(f"t={self.now} ms line {step.line}: penctl exited {rc}: {text}")


def run_file(path: str | Path, runtime: str = "micropython", say: Callable[[str], None] = print) -> int:
    """Run a scenario file; 0 if every expectation held, 1 if one failed."""
    p = Path(path)
    sc = parse(p.read_text())  # trace and plot paths: relative to the working directory
    with SimulatedPen(
        runtime=runtime, speed=None, seed=sc.seed, trace=sc.trace, trace_interval_ms=sc.trace_interval_ms
    ) as pen:
        r = Runner(pen, say)
        try:
            rc = r.run(sc)
        except SimError as e:
            say(f"FAIL simulator: {e}")
            return 1
        if sc.plot:
            pen.plot(sc.plot, title=f"{p.name} ({runtime})")
            say(f"plot written to {sc.plot}")
    n = sum(1 for s in sc.steps if s.words[0] == "expect")
    say(f"{n - len(r.failures)}/{n} expectations held" if n else "no expectations")
    return rc
