"""penctl monitor follows a pen that disappears and comes back (a reset
re-enumerates the USB device): same serial number, resumed telemetry."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import time
from pathlib import Path

from sim import SimulatedPen


def _rest(proc: subprocess.Popen[str]) -> tuple[str, str]:
    """The rest of stdout through the same buffered reader readline() used
    (communicate() reads the pipe directly and would skip what that reader
    holds already), then stderr."""
    assert proc.stdout is not None and proc.stderr is not None
    out = proc.stdout.read()
    err = proc.stderr.read()
    proc.wait(timeout=60)
    return out, err


def _point(link: Path, target: str) -> None:
    tmp = link.with_suffix(".new")
    if tmp.exists() or tmp.is_symlink():
        tmp.unlink()
    tmp.symlink_to(target)
    os.replace(tmp, link)


def test_monitor_reconnects_when_the_pen_reenumerates(tmp_path: Path) -> None:
    link = tmp_path / "ttyPEN"
    first = SimulatedPen(runtime="cpython", speed=1.0)
    first.start()
    _point(link, first.port)
    proc = subprocess.Popen(
        [sys.executable, "-m", "host.cli", "--port", str(link), "--timeout", "0.5", "monitor", "--json",
         "--rate", "50", "--count", "80", "--reconnect-timeout", "20"],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )  # fmt: skip
    second = None
    try:
        assert proc.stdout is not None
        lines = [proc.stdout.readline() for _ in range(20)]
        assert all(json.loads(x)["seq"] for x in lines)
        first.close()  # the pen vanishes: USB gone
        time.sleep(0.3)
        second = SimulatedPen(runtime="cpython", speed=1.0)
        second.start()  # and comes back under a new path
        _point(link, second.port)
        out, err = _rest(proc)
    finally:
        if proc.poll() is None:
            proc.kill()
        first.close()
        if second is not None:
            second.close()
    print(err)
    assert proc.returncode == 0, err
    frames = lines + out.splitlines()
    assert len(frames) == 80
    assert "reconnects=1" in err and "frames=80" in err
    assert "pen lost" in err and "reconnected" in err


def test_sr8_monitor_resumes_after_a_watchdog_reset(tmp_path: Path) -> None:
    with SimulatedPen(runtime="cpython", speed=1.0) as sim:
        proc = subprocess.Popen(
            [
                sys.executable,
                "-m",
                "host.cli",
                "--port",
                sim.port,
                "monitor",
                "--json",
                "--rate",
                "50",
                "--count",
                "60",
            ],
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
        )
        try:
            assert proc.stdout is not None
            lines = [proc.stdout.readline() for _ in range(15)]
            sim.inject("loop_hang")  # the loop hangs; the watchdog resets the MCU
            out, err = _rest(proc)
        finally:
            if proc.poll() is None:
                proc.kill()
        assert sim.truth()["resets"] == 1
    assert proc.returncode == 0, err
    frames = [json.loads(x) for x in lines + out.splitlines()]
    assert len(frames) == 60
    assert "restarts=1" in err and "the pen restarted" in err
    # numbering restarted after the reset: a drop in seq, never counted as loss
    seqs = [f["seq"] for f in frames]
    assert any(b < a for a, b in zip(seqs, seqs[1:], strict=False))
    assert "lost=0" in err
