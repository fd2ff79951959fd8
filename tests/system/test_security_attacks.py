"""Attacker test suite (docs/security.md SEC1-SEC6) against the
simulated pen on both runtimes, through the pty as penctl or mpremote would
reach a real pen. Each attack is refused, changes nothing, and is logged
(the pen's event log is echoed on the line as '! log EVENT ...')."""

from __future__ import annotations

import hashlib
import hmac
import importlib.util
import shutil
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from host import auth as host_auth
from host.link import Link, PenRefused, parse_pairs
from sim import SimulatedPen

ROOT = Path(__file__).resolve().parents[2]
KEY = bytes(range(32))
WRONG = bytes(range(1, 33))
REPL_MARKERS = (b">>>", b"raw REPL", b"MicroPython v", b"Traceback", b"soft reboot", b"paste mode")


@pytest.fixture
def pen(runtime: str) -> Iterator[SimulatedPen]:
    # real time: lock-outs and idle timeouts are in simulated ms
    with SimulatedPen(runtime=runtime, speed=1.0) as p:
        yield p


def refusal(link: Link, line: str) -> PenRefused:
    with pytest.raises(PenRefused) as e:
        link.request(line)
    return e.value


def logged(link: Link, event: str) -> list[str]:
    link.request("ping")  # events come before the reply that follows them
    return [u for u in link.unprompted if u.startswith(f"! log {event}")]


def security(link: Link) -> dict[str, str]:
    return parse_pairs(link.request("security"))


def snapshot(link: Link) -> tuple[object, ...]:
    st = parse_pairs(link.request("status"))
    try:
        sec = security(link)
    except PenRefused as e:
        # `security` is loaded per call, so not served while the needles run
        assert e.code == 30 and st["state"] == "running", e
        sec = {"key": None, "session": None, "fails": None, "mode": None}
    return (
        link.request("get"),
        link.request("limits"),
        sec["key"],
        sec["session"],
        sec["fails"],
        sec["mode"],
        st["state"],
        st["fault"],
    )


def raw_exchange(link: Link, data: bytes, wait: float = 0.05) -> bytes:
    link.ser.write(data)
    end = time.monotonic() + wait
    got = b""
    while time.monotonic() < end:
        got += link.ser.read(link.ser.in_waiting or 1)
    # events read here still belong to the link's unprompted lines
    link.unprompted.extend(x.decode(errors="replace") for x in got.split(b"\n") if x.startswith(b"!"))
    return got


def provision_and_auth(link: Link) -> None:
    link.request("key provision " + KEY.hex())
    host_auth.authenticate(link, KEY)


def wait_ready(pen: SimulatedPen) -> None:
    pen.advance(1500)  # homing and tilt hold


def _flash_log(link: Link) -> list[str]:
    words = link.request("log").split()
    return [w for w in words if w.startswith("e=")]


def test_sec1_a_closed_port_ends_the_technician_session(pen: SimulatedPen) -> None:
    # a program that authenticates and dies (no logout) leaves no session
    # for the next one on the port: the pen sees the host close it (the pty
    # hang-up here, USB CDC DTR on the pen)
    link = Link(pen.port)
    provision_and_auth(link)
    assert security(link)["session"] == "technician"
    link.close()
    pen.advance(200)  # simulated time for the pen to notice
    link = Link(pen.port)
    try:
        assert security(link)["session"] == "none"  # asked before any `id`
        assert refusal(link, "limits set max_depth 2.5").code == 40
        assert any("session_end,reason=disconnect" in e for e in _flash_log(link))
    finally:
        link.close()


def test_sec1_a_new_handshake_ends_the_session(pen: SimulatedPen) -> None:
    link = Link(pen.port)
    try:
        provision_and_auth(link)
        link.request("id")
        assert security(link)["session"] == "none"
        assert any("reason=handshake" in u for u in logged(link, "session_end"))
    finally:
        link.close()


def test_sec1_limit_changes_without_auth_refused_nothing_changes_logged(pen: SimulatedPen) -> None:
    link = Link(pen.port)
    link.request("key provision " + KEY.hex())
    before = snapshot(link)
    attempts = [
        "limits set max_depth 2.5",
        "limits set max_rate 150",
        "limits set max_tilt 20",
        "limits set max_session_min 60",
        "tilt-ref capture",
        "log-clear",
        "maintenance",
        "key rotate " + "00" * 32 + " " + "00" * 8,
    ]
    for line in attempts:
        assert refusal(link, line).name == "auth_required", line
    assert snapshot(link) == before
    assert len(logged(link, "denied")) == len(attempts)
    # what anyone may do still works: working settings within limits, STOP
    assert link.request("set depth 1.0") == "depth=1.00 stored=1"
    assert refusal(link, "set depth 2.0").name == "clinic_limit"
    link.send_byte(b"!")
    link.close()


def test_sec2_replayed_response_refused(pen: SimulatedPen) -> None:
    link = Link(pen.port)
    link.request("key provision " + KEY.hex())
    pairs = parse_pairs(link.request("auth"))
    nonce = bytes.fromhex(pairs["nonce"])
    recorded = "auth " + host_auth.response(KEY, pairs["serial"], nonce).hex()
    assert link.request(recorded).startswith("role=technician")
    link.request("logout")
    before = snapshot(link)
    # the recorded answer with no challenge out, then against a new challenge
    assert refusal(link, recorded).name == "auth_failed"
    new_nonce = parse_pairs(link.request("auth"))["nonce"]
    assert new_nonce != pairs["nonce"]
    assert refusal(link, recorded).name == "auth_failed"
    assert refusal(link, "limits set max_depth 2.0").name == "auth_required"
    after = snapshot(link)
    assert after[:4] == before[:4] and after[5:] == before[5:] and after[4] == "2"
    fails = logged(link, "auth_fail")
    assert any("reason=no_challenge" in f for f in fails)
    assert any("reason=wrong_response" in f for f in fails)
    link.close()


def test_sec2_wrong_key_refused(pen: SimulatedPen) -> None:
    link = Link(pen.port)
    link.request("key provision " + KEY.hex())
    before = snapshot(link)
    with pytest.raises(PenRefused) as e:
        host_auth.authenticate(link, WRONG)
    assert e.value.name == "auth_failed" and "wrong_response" in e.value.text
    assert refusal(link, "limits set max_depth 2.0").name == "auth_required"
    assert snapshot(link)[:2] == before[:2]
    assert security(link)["session"] == "none"
    assert len(logged(link, "auth_fail")) == 1
    # the right key afterwards works and resets the count
    host_auth.authenticate(link, KEY)
    assert link.request("limits set max_depth 2.0") == "max_depth=2.00 stored=1"
    assert security(link)["fails"] == "0"
    assert any("key=max_depth new=2.00 old=1.50" in u for u in logged(link, "limit_change"))
    link.close()


def test_sec3_brute_force_locks_out_and_lockout_survives_reboot(pen: SimulatedPen) -> None:
    link = Link(pen.port)
    link.request("key provision " + KEY.hex())
    codes = []
    for _ in range(5):
        try:
            host_auth.authenticate(link, WRONG)
        except PenRefused as e:
            codes.append(e.name)
    assert codes == ["auth_failed"] * 4 + ["auth_locked"]
    # locked: even the right key is refused, without a challenge
    with pytest.raises(PenRefused) as e:
        host_auth.authenticate(link, KEY)
    assert e.value.name == "auth_locked"
    sec = security(link)
    assert sec["fails"] == "5" and 0 < int(sec["locked_s"]) <= 30 and sec["session"] == "none"
    assert len(logged(link, "auth_fail")) == 5 and len(logged(link, "auth_locked")) == 1
    # reboot by the watchdog (hung loop): the count is persisted, the wait restarts
    pen.inject("loop_hang")
    pen.advance(400)
    assert pen.truth()["resets"] == 1
    sec = security(link)
    assert sec["fails"] == "5" and int(sec["locked_s"]) == 30
    with pytest.raises(PenRefused) as e:
        host_auth.authenticate(link, KEY)
    assert e.value.name == "auth_locked"
    assert refusal(link, "limits set max_depth 2.0").name == "auth_required"
    assert "max_depth=1.50" in link.request("limits")
    link.close()


CONTROL_BYTES = bytes([*range(0x00, 0x20), 0x7F])


def _no_repl(out: bytes) -> None:
    for m in REPL_MARKERS:
        assert m not in out, (m, out)


def _blast(link: Link, pen: SimulatedPen, skip: bytes = b"") -> None:
    """Every control byte alone, between lines and inside a half-typed
    technician command; then every high byte. The pen must stay up, show no
    REPL and change nothing (Ctrl-C = STOP is tested on its own)."""
    before = snapshot(link)
    out = b""
    for b in CONTROL_BYTES:
        if bytes([b]) in skip:
            continue
        out += raw_exchange(link, bytes([b]), 0.0)
        # a technician command that is only complete if the byte vanished
        # (as the real-time Ctrl-C does) or split the line (CR, LF)
        out += raw_exchange(link, b"limits set max_depth" + bytes([b]) + b"2.5\n", 0.0)
    out += raw_exchange(link, bytes(range(0x80, 0x100)) + b"\n", 0.1)
    _no_repl(out)
    assert b"ok max_depth" not in out
    assert snapshot(link) == before
    assert pen.truth()["resets"] == 0
    assert "fw=" in link.request("info")  # still the pen (`id` would be a new connection's handshake)


def test_sr9_every_control_byte_in_every_state(pen: SimulatedPen) -> None:
    link = Link(pen.port)
    _blast(link, pen)  # booting / homing, no key
    link.request("key provision " + KEY.hex())
    wait_ready(pen)
    assert parse_pairs(link.request("status"))["state"] == "ready"
    _blast(link, pen)  # ready
    pen.press_trigger()
    pen.advance(300)
    assert parse_pairs(link.request("status"))["state"] == "running"
    _blast(link, pen, skip=b"\x03")  # running: the drive keeps running
    assert pen.truth()["running"]
    out = raw_exchange(link, b"\x03")  # Ctrl-C is STOP, never an interrupt
    pen.advance(100)
    _no_repl(out)
    st = parse_pairs(link.request("status"))
    assert st["state"] != "running" and st["stop"] == "host_stop" and not pen.truth()["running"]
    pen.release_trigger()
    host_auth.authenticate(link, KEY)
    _blast(link, pen)  # technician session: still open, nothing changed
    assert security(link)["session"] == "technician"
    pen.inject("imu_lost")
    pen.advance(50)
    assert parse_pairs(link.request("status"))["fault"] == "imu_lost"
    _blast(link, pen)  # latched fault: stays latched
    pen.clear("imu_lost")
    pen.advance(100)  # the IMU driver re-inits after its back-off (<= 32 ticks)
    link.request("clear-fault")
    host_auth.authenticate(link, KEY)
    link.request("maintenance")
    pen.advance(50)
    _blast(link, pen)  # maintenance (sim: no REPL, drive locked)
    assert parse_pairs(link.request("status"))["state"] == "safe"
    assert logged(link, "serial_reject")
    link.close()


# mpremote's own sequences (mpremote/transport_serial.py): interrupt, enter
# raw REPL, raw-paste, soft reset, friendly REPL, paste mode
MPREMOTE_SEQUENCES = (b"\r\x03\x03", b"\r\x01", b"\x05A\x01", b"\x04", b"\r\x02", b"\x05", b"\x03\x03\r\x01\x04")


def test_sr9_mpremote_raw_repl_sequences_do_nothing(pen: SimulatedPen) -> None:
    link = Link(pen.port)
    link.request("key provision " + KEY.hex())
    wait_ready(pen)
    before = snapshot(link)
    out = b""
    for seq in MPREMOTE_SEQUENCES:
        out += raw_exchange(link, seq, 0.1)
        out += raw_exchange(link, b"import machine; machine.reset()\r\x04", 0.1)
    _no_repl(out)
    assert snapshot(link) == before
    assert pen.truth()["resets"] == 0
    assert logged(link, "serial_reject")
    link.close()


def test_sr9_mpremote_cannot_reach_a_repl(runtime: str) -> None:
    if runtime != "micropython":
        pytest.skip("one runtime is enough for the tool itself")
    with SimulatedPen(runtime=runtime, speed=1.0) as pen:
        link = Link(pen.port)
        events = int(security(link)["events"])
        link.close()
        mp = Path(sys.executable).parent / "mpremote"
        p = subprocess.Popen(
            [str(mp), "connect", pen.port, "exec", "print('PWNED')"],
            stdout=subprocess.PIPE,
            stderr=subprocess.STDOUT,
        )
        try:
            out, _ = p.communicate(timeout=3)  # a real REPL answers in well under a second
        except subprocess.TimeoutExpired:
            p.kill()
            out, _ = p.communicate()
        assert b"PWNED" not in out
        assert p.returncode != 0
        assert pen.truth()["resets"] == 0
        link = Link(pen.port)
        assert "fw=" in link.request("id")
        assert int(security(link)["events"]) > events  # the attempt was logged
        link.close()


def test_sr9_overlong_auth_lines_refused(pen: SimulatedPen) -> None:
    link = Link(pen.port)
    link.request("key provision " + KEY.hex())
    link.request("auth")
    for n in (200, 1000, 5000):
        assert refusal(link, "auth " + "a" * n).name == "line_too_long"
    assert refusal(link, "auth " + "\x01" + "a" * 64).name == "bad_bytes"
    assert refusal(link, "auth " + "0" * 64 + " extra").name == "bad_arguments"
    sec = security(link)
    assert sec["fails"] == "0" and sec["session"] == "none"
    # the longest line that fits is parsed, and a malformed answer is a failure
    assert refusal(link, "auth " + "0" * 123).name == "auth_failed"
    assert security(link)["fails"] == "1"
    assert logged(link, "serial_reject")
    host_auth.authenticate(link, KEY)  # not locked out by any of it
    link.close()


def test_sec1_maintenance_and_tilt_reference_need_and_get_a_technician(pen: SimulatedPen) -> None:
    link = Link(pen.port)
    provision_and_auth(link)
    pen.set_tilt(10.0)
    pen.advance(100)
    assert float(parse_pairs(link.request("status"))["tilt"]) > 9.0
    link.request("tilt-ref capture")
    pen.advance(100)
    assert float(parse_pairs(link.request("status"))["tilt"]) < 0.5
    assert logged(link, "tilt_ref")
    link.request("tilt-ref reset")
    pen.set_tilt(0.0)
    wait_ready(pen)
    assert link.request("maintenance").startswith("mode=maintenance")
    assert "mode=maintenance" in link.request("info")
    pen.press_trigger()
    pen.advance(300)
    st = parse_pairs(link.request("status"))
    assert st["state"] == "safe" and "safe_mode" in st["block"]
    assert not pen.truth()["running"]
    assert logged(link, "maintenance_entered")
    link.close()


def _load_manifest_tool():
    spec = importlib.util.spec_from_file_location("manifest_tool", ROOT / "tools" / "manifest.py")
    assert spec is not None and spec.loader is not None
    mod = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(mod)
    return mod


def test_sec5_modified_firmware_file_boots_into_safe_mode(
    runtime: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    # a copy of the firmware and the simulator's device side, as deployed
    shutil.copytree(ROOT / "firmware", tmp_path / "firmware", ignore=shutil.ignore_patterns("__pycache__"))
    shutil.copytree(ROOT / "sim" / "device", tmp_path / "sim" / "device", ignore=shutil.ignore_patterns("__pycache__"))
    import sim.simulated_pen

    monkeypatch.setattr(sim.simulated_pen, "DEVICE_DIR", tmp_path / "sim" / "device")
    monkeypatch.setattr(sim.simulated_pen, "RUNNER", tmp_path / "sim" / "device" / "runner.py")
    tool = _load_manifest_tool()
    with SimulatedPen(runtime=runtime, speed=1.0) as pen:
        link = Link(pen.port)
        assert "integrity=unverified" in link.request("info")  # factory state: no key
        link.request("key provision " + KEY.hex())
        tool.write_manifest(tmp_path / "firmware", KEY)
        pen.inject("loop_hang")
        pen.advance(400)
        assert "integrity=ok" in link.request("info")
        wait_ready(pen)
        assert parse_pairs(link.request("status"))["state"] == "ready"
        # tamper with one file, reboot
        with open(tmp_path / "firmware" / "pen" / "limits.py", "a") as f:
            f.write("HW_DEPTH_MAX_UM = 9000\n")
        pen.inject("loop_hang")
        pen.advance(400)
        assert pen.truth()["resets"] == 2
        assert "integrity=modified:pen/limits.py" in link.request("info")
        st = parse_pairs(link.request("status"))
        assert st["state"] == "safe" and st["integrity"] == "modified:pen/limits.py"
        assert any("reason=modified:pen/limits.py" in u for u in logged(link, "integrity_fail"))
        wait_ready(pen)
        pen.press_trigger()
        pen.advance(300)
        assert not pen.truth()["running"]
        assert "safe_mode" in parse_pairs(link.request("status"))["block"]
        link.close()


def test_sec2_penctl_key_file_handling(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("XDG_CONFIG_HOME", str(tmp_path / "cfg"))
    default = tmp_path / "cfg" / "penctl" / "key"
    assert host_auth.default_key_file() == default

    def penctl(*args: str) -> subprocess.CompletedProcess[str]:
        return subprocess.run(
            [sys.executable, "-m", "host.cli", "--port", pen.port, *args],
            capture_output=True,
            text=True,
            timeout=30,
        )

    with SimulatedPen(runtime="cpython", speed=1.0) as pen:
        # no key file: nothing to authenticate with; exit 2 as for every
        # command with a missing key file, the line names the pen's refusal and the file
        r = penctl("limits", "set", "max_depth", "2.0")
        assert r.returncode == 2 and "auth_required" in r.stderr and r.stderr.count("\n") == 1
        assert f"no key file at {default}" in r.stderr
        r = penctl("auth", "--provision")
        assert r.returncode == 0, r.stderr
        assert default.stat().st_mode & 0o777 == 0o600
        assert (default.parent.stat().st_mode & 0o777) == 0o700
        r = penctl("limits", "set", "max_depth", "2.0")  # authenticates by itself
        assert r.returncode == 0 and "2.0" in r.stdout, r.stderr
        default.chmod(0o644)
        r = penctl("limits", "set", "max_depth", "1.5")
        assert r.returncode == 2 and "chmod 600" in r.stderr
        default.chmod(0o600)
        # rotation: the old key stops working, the new one works
        new = tmp_path / "new.key"
        assert penctl("auth", "--rotate", str(new)).returncode == 0
        assert new.stat().st_mode & 0o777 == 0o600
        r = penctl("limits", "set", "max_depth", "1.5")
        assert r.returncode == 1 and "auth_failed" in r.stderr
        r = penctl("--key-file", str(new), "limits", "set", "max_depth", "1.5")
        assert r.returncode == 0, r.stderr
        # the key never crossed the wire after provisioning: the wire format
        # of a response is an HMAC of a fresh nonce
        nonce = bytes(16)
        want = hmac.new(KEY, b"pen-auth-v1|S|" + nonce, hashlib.sha256).digest()
        assert host_auth.response(KEY, "S", nonce) == want
