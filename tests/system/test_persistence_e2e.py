"""Persistence end to end (docs/persistence.md): the simulated pen's flash (littlefs on a
simulated chip under MicroPython, a directory under CPython) through resets
and power pulls, read with penctl log / sessions."""

from __future__ import annotations

import csv
import json
import subprocess
import sys
from pathlib import Path

import pytest

from host import Pen, PenRefused
from sim import SimulatedPen


def penctl(port: str, *args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "host.cli", "--port", port, *args],
        capture_output=True,
        text=True,
        timeout=60,
    )


def log_json(port: str, *extra: str) -> list[dict[str, object]]:
    r = penctl(port, "--json", "log", *extra)
    assert r.returncode == 0, r.stderr
    return json.loads(r.stdout)  # type: ignore[no-any-return]


def test_sr8_settings_and_log_survive_a_watchdog_reset(fast_pen: SimulatedPen) -> None:
    assert penctl(fast_pen.port, "set", "depth", "1.2").returncode == 0
    fast_pen.advance(6000)  # past the 5 s write rate limit, drive off
    fast_pen.inject("loop_hang")
    fast_pen.advance(1000)
    assert fast_pen.truth()["resets"] == 1
    with Pen(fast_pen.port) as pen:
        assert pen.get("depth") == {"depth": 1.2}
        st = pen.storage()
        assert st["boot"] == 2 and st["cfg"] == "ok"
    log = log_json(fast_pen.port)
    boots = [e["text"] for e in log if e["kind"] == "boot"]
    assert boots == ["n=1,cause=power_on,cfg=fresh", "n=2,cause=watchdog,cfg=ok"]
    assert any(e["kind"] == "setting" and e["text"] == "depth:0.50->1.20,by=host" for e in log)
    # --since: only what is new
    last = max(int(e["seq"]) for e in log)  # type: ignore[call-overload]
    assert [e["seq"] for e in log_json(fast_pen.port, "--since", str(last))] == [last]


def test_sr7_power_pull_keeps_config_and_the_open_session(
    runtime: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("PEN_FLASH", str(tmp_path / "flash"))
    with SimulatedPen(runtime=runtime, speed=0) as sp:
        with Pen(sp.port) as pen:
            pen.set("rate", "80")
        sp.set_speed(None)  # stepped: the world moves only in advance()
        sp.advance(1500)
        sp.press_trigger()
        sp.advance(3000)
        sp.release_trigger()
        sp.advance(6000)  # drive off: open session and config written
        strokes = int(sp.truth()["strokes"])  # type: ignore[call-overload]
    # the process is killed: the pen lost its power mid-session
    with SimulatedPen(runtime=runtime, speed=0) as sp:
        with Pen(sp.port) as pen:
            assert pen.get("rate") == {"rate": 80.0}
            assert pen.storage()["boot"] == 2
            sessions = pen.sessions()
            st = pen.status()
        assert len(sessions) == 1
        s = sessions[0]
        # SR7: the session goes on (restored, still open), and so does its timer
        assert s["end_reason"] == "open" and s["boot"] == 1
        assert 2 <= int(st["run_s"]) <= 3  # type: ignore[call-overload]
        assert s["rate_lo_hz"] == 80.0 and s["bursts"] == 1
        assert 2.5 <= float(s["run_s"]) <= 3.01  # type: ignore[arg-type]  # trigger held 3 s, minus arming
        assert abs(int(s["strokes"]) - strokes) <= 3  # type: ignore[call-overload]
        assert s["start_wall"] is None  # an earlier boot cannot be dated


def test_sr_persist_sessions_csv_and_plot(fast_pen: SimulatedPen, tmp_path: Path) -> None:
    assert penctl(fast_pen.port, "set", "depth", "1.0").returncode == 0
    fast_pen.set_speed(None)  # stepped: exact durations between world commands
    fast_pen.advance(1500)
    fast_pen.press_trigger()
    fast_pen.advance(2000)
    fast_pen.set_tilt(25)  # tilted with the trigger held: drive stops
    fast_pen.advance(400)
    fast_pen.set_tilt(0)
    fast_pen.release_trigger()
    fast_pen.advance(100)
    strokes = int(fast_pen.truth()["strokes"])  # type: ignore[call-overload]
    fast_pen.set_speed(0)
    out = tmp_path / "sessions.csv"
    key = str(tmp_path / "tech.key")
    with Pen(fast_pen.port, key_file=key) as pen:
        pen.provision()  # session-end needs a technician (SR7)
    r = penctl(
        fast_pen.port, "--key-file", key, "sessions", "--end", "--csv", str(out), "--plot", str(tmp_path / "plots")
    )
    assert r.returncode == 0, r.stderr
    rows = list(csv.DictReader(out.open()))
    assert len(rows) == 1
    row = rows[0]
    assert row["end_reason"] == "host_end" and row["last_stop"] == "tilt"
    assert float(row["depth_lo_mm"]) == 1.0 and float(row["depth_hi_mm"]) == 1.0
    assert abs(int(row["strokes"]) - strokes) <= 3  # the pen counted the world's strokes
    assert 0.39 <= float(row["tilt_out_s"]) <= 0.41  # 400 ms tilted with the trigger held
    assert row["start_wall"]  # this boot: the host stamped wall-clock time
    assert len(list((tmp_path / "plots").glob("session-*.png"))) == 1
    # closed: a second --end has nothing to close
    assert penctl(fast_pen.port, "--key-file", key, "sessions", "--end").returncode == 1


def test_sr9_record_requests_with_bad_arguments_are_refused(fast_pen: SimulatedPen) -> None:
    with Pen(fast_pen.port) as pen:
        for line, code in (("log abc", 3), ("log -1", 3), ("log 1 2", 2), ("sessions 1234567890", 3), ("storage x", 2)):
            with pytest.raises(PenRefused) as e:
                pen.link.request(line)
            assert e.value.code == code, line
        assert pen.status()["state"] in ("homing", "idle", "ready")


def test_sr4_latched_fault_reaches_the_log(fast_pen: SimulatedPen) -> None:
    fast_pen.advance(1500)
    fast_pen.press_trigger()
    fast_pen.advance(1000)
    fast_pen.inject("stall")
    fast_pen.advance(600)
    fast_pen.release_trigger()
    fast_pen.advance(50)
    with Pen(fast_pen.port) as pen:
        fault = pen.status()["fault"]
    assert fault != "none"
    log = log_json(fast_pen.port)
    codes = [e["text"] for e in log if e["kind"] == "fault"]
    assert len(codes) == 1 and str(codes[0]).endswith("," + str(fault))
    assert [e["text"] for e in log if e["kind"] == "session"] == ["start"]


def _typed(sp: SimulatedPen, port: object, line: str, ms: int = 50) -> str:
    """A line typed at the pen in stepped time; its answer (events skipped)."""
    import serial  # type: ignore[import-untyped]

    assert isinstance(port, serial.Serial)
    port.reset_input_buffer()
    port.write(line.encode() + b"\n")
    port.flush()
    got = b""
    for _ in range(20):  # simulated time only: the answer comes within ms
        sp.advance(ms)
        got += port.read(4096)
        for raw in got.decode(errors="replace").splitlines():
            if raw.startswith(("ok", "err")):
                return raw
    raise AssertionError(f"no answer to {line!r}: {got!r}")


def test_sr8_an_ok_survives_a_watchdog_reset_right_after(runtime: str) -> None:
    # DESIGN §4: an `ok` is durable. The reset comes 50 ms after the answer,
    # long before the old 5 s coalescing would have written the record
    import serial  # type: ignore[import-untyped]

    with SimulatedPen(runtime=runtime, speed=None) as sp:
        sp.advance(200)
        with serial.Serial(sp.port, timeout=0) as port:
            assert _typed(sp, port, "set depth 0.7") == "ok depth=0.70 stored=1"
            assert _typed(sp, port, "limits set max_rate 100").startswith("err 40")
            sp.inject("loop_hang")
            sp.advance(1500)
            assert sp.truth()["resets"] == 1
            sp.advance(300)
            assert _typed(sp, port, "get depth") == "ok depth=0.70"
            assert "stored=1" in _typed(sp, port, "storage")
