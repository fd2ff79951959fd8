"""SR7 on the full virtual pen, both runtimes: the session timer survives a
watchdog reset and a power cycle (the open session's time is written at
every drive stop and restored at boot; a reset mid-burst loses at most that
burst), a session that ran out of time stays blocked across reboots, and
only a technician ends it (`session-end`)."""

from __future__ import annotations

import importlib.util
import shutil
from pathlib import Path

import pytest
from test_sr_pen import drive_on, wait_state

from host import Pen, PenRefused
from host import auth as host_auth
from sim import SimulatedPen

ROOT = Path(__file__).resolve().parents[2]


def _signed_copy(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """A copy of the firmware and the sim's device side, as deployed: a
    provisioned pen checks its firmware's manifest at every boot."""
    shutil.copytree(ROOT / "firmware", tmp_path / "firmware", ignore=shutil.ignore_patterns("__pycache__"))
    shutil.copytree(ROOT / "sim" / "device", tmp_path / "sim" / "device", ignore=shutil.ignore_patterns("__pycache__"))
    import sim.simulated_pen

    monkeypatch.setattr(sim.simulated_pen, "DEVICE_DIR", tmp_path / "sim" / "device")
    monkeypatch.setattr(sim.simulated_pen, "RUNNER", tmp_path / "sim" / "device" / "runner.py")
    return tmp_path / "firmware"


def _sign(firmware: Path, key_file: str) -> None:
    spec = importlib.util.spec_from_file_location("manifest_tool", ROOT / "tools" / "manifest.py")
    assert spec is not None and spec.loader is not None
    tool = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(tool)
    tool.write_manifest(firmware, host_auth.load_key(key_file))


def _status(sim: SimulatedPen) -> dict[str, object]:
    sim.set_speed(0)
    with Pen(sim.port) as host:
        st = host.status()
    sim.set_speed(None)
    return st


def _fresh_press(sim: SimulatedPen) -> None:
    sim.release_trigger()
    sim.advance(50)
    sim.press_trigger()


def test_sr7_session_timer_survives_a_watchdog_reset_and_a_power_cycle(
    runtime: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("PEN_FLASH", str(tmp_path / "flash"))
    firmware = _signed_copy(tmp_path, monkeypatch)
    key = str(tmp_path / "tech.key")
    with SimulatedPen(runtime=runtime, speed=0) as sim:
        with Pen(sim.port, key_file=key) as host:
            host.provision()
            _sign(firmware, key)
            host.limits_set("max_session_min", 1)
            host.set("depth", "1.0")
            wait_state(sim, host, "ready")
        sim.set_speed(None)  # stepped: the session clock is exact
        sim.press_trigger()
        sim.advance(40000)
        sim.release_trigger()  # a stop: the open session (40 s) is written
        sim.advance(100)
        sim.press_trigger()
        sim.advance(5000)  # a burst in progress ...
        assert sim.truth()["running"] is True
        sim.inject("loop_hang")  # ... and the watchdog resets the MCU
        sim.advance(3000)  # reset, homing, the stage at its depth
        assert sim.truth()["resets"] == 1 and not drive_on(sim.truth())
        st = _status(sim)
        # restored, not restarted: at most the burst cut by the reset is lost
        assert 39 <= int(st["run_s"]) <= 45 and st["state"] == "ready", st  # type: ignore[call-overload]
        _fresh_press(sim)  # held through the reset: needs a release (SR8)
        sim.advance(15000)
        assert sim.truth()["running"] is True
        sim.advance(10000)  # 40 s restored + 20 s: the session time is up
        assert not drive_on(sim.truth())
        st = _status(sim)
        assert st["stop"] == "session_time" and "session_time" in str(st["block"])
    # the power is pulled and comes back: the session stays over
    with SimulatedPen(runtime=runtime, speed=0) as sim:
        with Pen(sim.port) as host:
            wait_state(sim, host, "idle")
            st = host.status()
            assert "session_time" in str(st["block"]) and int(st["run_s"]) >= 60, st  # type: ignore[call-overload]
        sim.set_speed(None)
        _fresh_press(sim)
        sim.advance(500)
        assert not drive_on(sim.truth())
        sim.set_speed(0)
        with Pen(sim.port) as host:
            with pytest.raises(PenRefused) as e:
                host.link.request("session-end")  # not a technician
            assert e.value.code == 40
        with Pen(sim.port, key_file=key) as host:
            host.session_end()  # the technician starts the next session
            assert int(host.status()["run_s"]) == 0  # type: ignore[call-overload]
        sim.set_speed(None)
        sim.advance(50)
        assert not drive_on(sim.truth())  # ending a session starts nothing
        _fresh_press(sim)
        sim.advance(500)
        assert sim.truth()["running"] is True
