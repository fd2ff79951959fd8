"""`pensim run SCENARIO` and `pensim serve` (DESIGN §5, pensim): scenario files pass
and fail as their expectations say; the same scenario gives the same trace
on MicroPython and CPython; a person at the console tilts the pen and
penctl on the printed port sees it."""

from __future__ import annotations

import json
import subprocess
import sys
import time
from pathlib import Path

import pytest

from sim.scenario import ScenarioError, check, parse
from sim.trace import TOLERANCE, compare, load

ROOT = Path(__file__).resolve().parents[2]

WORLD_ONLY = """\
# world events only (no host traffic), so both runtimes see the same inputs
trace {csv} 5
seed 3
at 1500  contact on
at 1500  trigger on
at 2500  load 1.8
at 3000  sweep 40 25         # tilt at 40 deg/s up to 25 deg: SR1 stops the drive
at 3400  expect running == false
at 3400  tilt 0
at 3400  trigger off
at 3750  trigger on           # a fresh press after the re-arm hold (300 ms): SR1's start rule
at 4400  inject hall_lost
at 4800  expect running == false
at 4800  battery 0.1
at 5000  expect faults has hall_lost
"""


def pensim(*args: str, cwd: Path, timeout: float = 120) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "sim.cli", *args], capture_output=True, text=True, cwd=cwd, timeout=timeout
    )


def test_sim_same_scenario_same_trace_on_both_runtimes(tmp_path: Path) -> None:
    for rt in ("micropython", "cpython"):
        (tmp_path / f"{rt}.pen").write_text(WORLD_ONLY.format(csv=f"{rt}.csv"))
        r = pensim("run", f"{rt}.pen", "--runtime", rt, cwd=tmp_path)
        assert r.returncode == 0, r.stdout + r.stderr
        assert "3/3 expectations held" in r.stdout
    mp, cp = tmp_path / "micropython.csv", tmp_path / "cpython.csv"
    # tolerance: sim.trace.TOLERANCE per column; state/fault must agree on every row
    assert compare(mp, cp) == []
    cols = load(mp)
    assert len(cols["t_ms"]) > 900
    # the run exercised what it claims: drive on, tilt stop, hall fault
    assert "running" in cols["state"] and "fault" in cols["state"]
    assert max(float(x) for x in cols["tilt_deg"]) > 15.0  # type: ignore[arg-type]


def test_sim_trace_compare_sees_a_difference(tmp_path: Path) -> None:
    a = tmp_path / "a.csv"
    a.write_text("t_ms,stroke_hz,state,fault\n0,100.0,running,none\n5,100.0,running,none\n")
    b = tmp_path / "b.csv"
    b.write_text(
        f"t_ms,stroke_hz,state,fault\n0,100.0,running,none\n5,{100.0 + 2 * TOLERANCE['stroke_hz']},idle,none\n"
    )
    diffs = compare(a, b)
    assert any(d.startswith("stroke_hz") for d in diffs) and any(d.startswith("state") for d in diffs)
    assert compare(a, a) == []


def test_sr1_sim_scenario_with_penctl_steps_passes_and_plots(tmp_path: Path) -> None:
    r = pensim("run", str(ROOT / "sim" / "scenarios" / "tilt_stop.pen"), "--runtime", "cpython", cwd=tmp_path)
    assert r.returncode == 0, r.stdout + r.stderr
    assert "8/8 expectations held" in r.stdout and "FAIL" not in r.stdout
    assert (tmp_path / "tilt_stop.png").read_bytes()[:4] == b"\x89PNG"
    assert len(load(tmp_path / "tilt_stop.csv")["t_ms"]) > 500


def test_sim_scenario_failed_expectation_exits_non_zero(tmp_path: Path) -> None:
    (tmp_path / "bad.pen").write_text(
        "at 1500 trigger on\nat 2500 expect stroke_hz ~ 140 +- 1\nat 2500 expect status.state == running\n"
    )
    r = pensim("run", "bad.pen", "--runtime", "cpython", cwd=tmp_path)
    assert r.returncode == 1
    assert "FAIL t=2500 ms line 2: expect stroke_hz ~ 140 +- 1" in r.stdout
    assert "PASS" in r.stdout and "1/2 expectations held" in r.stdout


@pytest.mark.parametrize(
    ("text", "message"),
    [
        ("at x trigger on", "line 1: time 'x'"),
        ("at 10 trigger on\nat 5 trigger off", "line 2: time 5 ms is before"),
        ("at 10 expect stroke_hz about 3", "line 1: expect FIELD OP VALUE"),
        ("at 10 expect stroke_hz ~ 3", "line 1: '~' needs a tolerance"),
        ("trigger on", "line 1: expected 'at MS"),
        ("plot x.png", "plot needs a trace"),
    ],
)
def test_sim_scenario_syntax_errors_name_the_line(text: str, message: str) -> None:
    with pytest.raises(ScenarioError, match=message.replace("(", r"\(")):
        parse(text)


def test_sim_scenario_bad_file_exits_2(tmp_path: Path) -> None:
    (tmp_path / "x.pen").write_text("at 0 levitate\n")
    r = pensim("run", "x.pen", "--runtime", "cpython", cwd=tmp_path)
    assert r.returncode == 2 and "unknown command" in r.stderr
    r = pensim("run", "missing.pen", "--runtime", "cpython", cwd=tmp_path)
    assert r.returncode == 2


def test_sim_console_help_lists_commands_and_the_fault_catalogue() -> None:
    from sim.console import FAULT_HELP, console_command
    from sim.simulated_pen import FAULTS

    text = console_command(None, "help")  # type: ignore[arg-type]
    assert text is not None
    for word in ("tilt", "sweep", "trigger", "cartridge", "contact", "load", "battery", "inject", "speed", "trace"):
        assert "\n  " + word in text
    assert set(FAULT_HELP) == set(FAULTS)
    assert console_command(None, "quit") is None  # type: ignore[arg-type]


def test_sim_scenario_checks() -> None:
    assert check(100.4, "~", "100", 0.5) and not check(100.6, "~", "100", 0.5)
    assert check(False, "==", "false") and check(True, "!=", "off")
    assert check("running", "==", "running") and check("idle", "!=", "running")
    assert check([], "has", "none") and check(["stall"], "has", "stall") and not check([], "has", "stall")
    assert check(3, ">=", "3") and not check(3, ">", "3") and check(2, "<", "3")


def test_sr1_sim_console_tilt_seen_by_penctl_on_the_printed_port(tmp_path: Path) -> None:
    """What docs/simulator.md tells a new user to do: start `pensim serve`,
    point penctl at the printed port, tilt the pen from the console."""
    proc = subprocess.Popen(
        [sys.executable, "-m", "sim.cli", "serve"],  # defaults: MicroPython, real time
        stdin=subprocess.PIPE,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        cwd=tmp_path,
    )
    assert proc.stdin is not None and proc.stdout is not None
    try:
        first = proc.stdout.readline()
        assert first.startswith("PORT /dev/"), first
        port = first.split(None, 1)[1].strip()

        def console(line: str) -> str:
            proc.stdin.write(line + "\n")  # type: ignore[union-attr]
            proc.stdin.flush()  # type: ignore[union-attr]
            return proc.stdout.readline().strip()  # type: ignore[union-attr]

        def penctl_status() -> dict[str, object]:
            r = subprocess.run(
                [sys.executable, "-m", "host.cli", "--port", port, "--json", "status"],
                capture_output=True,
                text=True,
                timeout=30,
            )
            assert r.returncode == 0, r.stderr
            return dict(json.loads(r.stdout))

        assert float(penctl_status()["tilt"]) < 2.0  # type: ignore[arg-type]
        assert console("tilt 30") == "ok"
        deadline = time.monotonic() + 20
        while float(penctl_status()["tilt"]) < 29.0:  # type: ignore[arg-type]
            assert time.monotonic() < deadline, "penctl never saw the tilt"
        assert abs(float(penctl_status()["tilt"]) - 30.0) < 1.0  # type: ignore[arg-type]
        truth = json.loads(console("truth"))
        assert truth["tilt_deg"] == 30.0
        assert console("inject gremlins").startswith("error: unknown fault")
        console("quit")
        assert proc.wait(timeout=20) == 0
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()
