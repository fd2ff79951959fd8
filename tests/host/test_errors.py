"""penctl's errors and output (docs/protocol.md, penctl exit codes): each item
with the command that showed it. Exit codes: host/cli/errors.py."""

from __future__ import annotations

import errno
import json
import os
import signal
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest
import serial

from host import cli
from host.api import Pen
from host.link import Link, LinkError
from host.names import BUILTIN, Names
from sim import SimulatedPen
from tests.host.ptydevice import PtyDevice, framed


def run(capsys: pytest.CaptureFixture[str], *args: str) -> tuple[int, str, str]:
    try:
        code = cli.main(list(args))
    except SystemExit as e:
        code = int(e.code or 0)
    out, err = capsys.readouterr()
    return code, out, err


def penctl(*args: str, **kw: object) -> subprocess.Popen[str]:
    return subprocess.Popen([sys.executable, "-m", "host.cli", *args], text=True, **kw)  # type: ignore[call-overload]


@pytest.fixture(scope="module")
def sim() -> Iterator[SimulatedPen]:
    with SimulatedPen(runtime="cpython", speed=0) as sp:
        yield sp


def _key(tmp_path: Path, name: str = "key") -> Path:
    p = tmp_path / name
    p.write_text(os.urandom(32).hex() + "\n")
    p.chmod(0o600)
    return p


# --- file errors: exit 5, one line ---
def test_file_errors_exit_5_before_anything_runs(capsys: pytest.CaptureFixture[str]) -> None:
    code, _, err = run(capsys, "--port", "/dev/none", "sessions", "--csv", "/nonexist/s.csv")
    assert code == cli.EXIT_FILE and err.count("\n") == 1 and "/nonexist" in err
    code, _, err = run(capsys, "--port", "/dev/none", "monitor", "--plot", "/nonexist/m.png")
    assert code == cli.EXIT_FILE and err.count("\n") == 1 and "no such folder /nonexist" in err


def test_stdout_full_or_closed_is_a_file_error(sim: SimulatedPen) -> None:
    with open("/dev/full", "w") as full:
        p = penctl("--port", sim.port, "status", stdout=full, stderr=subprocess.PIPE)
        _, err = p.communicate(timeout=60)
    assert p.returncode == cli.EXIT_FILE and err.count("\n") == 1 and "No space left" in err, err
    # `penctl status | head -1`: the reader is gone before penctl writes
    p = penctl("--port", sim.port, "status", stdout=subprocess.PIPE, stderr=subprocess.PIPE)
    assert p.stdout is not None and p.stderr is not None
    p.stdout.close()
    err = p.stderr.read()
    p.wait(timeout=60)
    assert p.returncode == cli.EXIT_FILE and err.count("\n") == 1 and "Broken pipe" in err, err


# --- open errors name their cause ---
def test_open_errors_name_the_cause(
    sim: SimulatedPen, tmp_path: Path, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    code, _, err = run(capsys, "--port", "/dev/ttyNOPE9", "status")
    assert code == cli.EXIT_LINK and "no such port" in err and "is another program" not in err
    plain = tmp_path / "plain"
    plain.write_text("x")
    code, _, err = run(capsys, "--port", str(plain), "status")
    assert code == cli.EXIT_LINK and "not a serial port (not a tty)" in err
    holder = Link(sim.port)  # holds the port exclusively
    try:
        code, _, err = run(capsys, "--port", sim.port, "status")
    finally:
        holder.close()
    assert code == cli.EXIT_LINK and "busy" in err and err.count("\n") == 1
    code, _, err = run(capsys, "--port", "foo://x", "status")
    assert code == cli.EXIT_USAGE and "unknown URL scheme 'foo://'" in err

    def denied(*a: object, **k: object) -> None:
        raise serial.SerialException(errno.EACCES, "could not open port /dev/ttyACM0: [Errno 13] Permission denied")

    monkeypatch.setattr(serial, "serial_for_url", denied)
    with pytest.raises(LinkError, match="permission denied; add your user to the 'dialout' group"):
        Link("socket://localhost:1")


# --- devices that are not a pen ---
def test_an_echoing_port_is_named(capsys: pytest.CaptureFixture[str]) -> None:
    dev = PtyDevice(lambda line: line + b"\n")
    try:
        code, _, err = run(capsys, "--port", dev.port, "--timeout", "0.5", "status")
    finally:
        dev.close()
    assert code == cli.EXIT_INCOMPATIBLE and "echoes what it is sent: it is not a pen" in err


def test_a_bare_micropython_repl_is_named(capsys: pytest.CaptureFixture[str]) -> None:
    """What MicroPython's friendly REPL answers to a framed line."""
    repl = PtyDevice(
        lambda line: (
            b">>> " + line + b"\r\nTraceback (most recent call last):\r\n"
            b'  File "<stdin>", line 1\r\nSyntaxError: invalid syntax\r\n>>> '
        )
    )
    try:
        code, _, err = run(capsys, "--port", repl.port, "--timeout", "0.5", "status")
    finally:
        repl.close()
    assert code == cli.EXIT_INCOMPATIBLE and err.count("\n") == 1
    assert "runs MicroPython without the pen firmware: flash it" in err


def test_line_noise_that_exhausts_the_retries_is_a_link_problem(capsys: pytest.CaptureFixture[str]) -> None:
    noisy = PtyDevice(lambda line: framed(line, "err 22 bad_check: check mismatch"))
    try:
        code, _, err = run(capsys, "--port", noisy.port, "--timeout", "0.5", "status")
    finally:
        noisy.close()
    assert code == cli.EXIT_LINK and "too noisy" in err and "refused" not in err


# --- output formats ---
def test_info_shows_the_sr10_label_parameters(sim: SimulatedPen, capsys: pytest.CaptureFixture[str]) -> None:
    code, out, _ = run(capsys, "--port", sim.port, "info")
    assert code == 0
    for key in ("needles", "needle_length_mm", "max_depth_mm", "rate_min_hz", "rate_max_hz", "rate_accuracy_pct"):
        assert key in out


def test_json_anywhere_and_numbers_are_numbers(sim: SimulatedPen, capsys: pytest.CaptureFixture[str]) -> None:
    for args in (["--json", "status"], ["status", "--json"], ["--port", sim.port, "--json"]):
        argv = (["--port", sim.port] if "--port" not in args else []) + args
        if "status" not in argv:
            argv.append("status")
        code, out, err = run(capsys, *argv)
        assert code == 0, err
        st = json.loads(out)
        assert isinstance(st["depth"], float) and isinstance(st["battery"], int) and isinstance(st["run_s"], int)
        assert isinstance(st["fault_code"], int) and isinstance(st["state"], str)
    code, out, _ = run(capsys, "--port", sim.port, "set", "depth", "0.5", "--json")
    assert code == 0 and json.loads(out) == {"depth": 0.5, "stored": 1}  # stored: the ok is durable
    code, out, _ = run(capsys, "--port", sim.port, "info", "--json")
    info = json.loads(out)
    assert isinstance(info["needles"], int) and isinstance(info["serial"], str) and isinstance(info["cfg"], str)


def test_negative_timeouts_are_refused(capsys: pytest.CaptureFixture[str]) -> None:
    for args in (
        ["--timeout", "-1", "status"],
        ["--timeout", "0", "status"],
        ["monitor", "--duration", "-5"],
        ["monitor", "--reconnect-timeout", "-1"],
        ["remote", "--seconds", "-1"],
    ):
        code, _, err = run(capsys, "--port", "/dev/none", *args)
        assert code == cli.EXIT_USAGE and ("must" in err), (args, err)


def test_version(capsys: pytest.CaptureFixture[str]) -> None:
    code, out, _ = run(capsys, "--version")
    assert code == 0 and out.startswith("penctl ") and "firmware" in out
    r = subprocess.run([sys.executable, "-m", "sim.cli", "--version"], capture_output=True, text=True, timeout=60)
    assert r.returncode == 0 and r.stdout.startswith("pensim ")


def test_missing_extra_is_one_line_naming_it(
    capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    import importlib.util

    real = importlib.util.find_spec
    monkeypatch.setattr(importlib.util, "find_spec", lambda name, *a: None if name == "matplotlib" else real(name, *a))
    code, _, err = run(capsys, "--port", "/dev/none", "monitor", "--plot", str(tmp_path / "m.png"))
    assert code == cli.EXIT_USAGE and err.count("\n") == 1 and "install needle-pen[plot]" in err


# --- the technician, the key file and the audit log ---
@pytest.fixture
def provisioned(tmp_path: Path) -> Iterator[tuple[SimulatedPen, Path]]:
    key = _key(tmp_path)
    with SimulatedPen(runtime="cpython", speed=0) as sp:
        with Pen(sp.port, key_file=key) as pen:
            pen.provision()
        yield sp, key


def test_missing_key_file_exits_the_same_way_everywhere(
    provisioned: tuple[SimulatedPen, Path], tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    sp, _ = provisioned
    none = str(tmp_path / "absent.key")
    for args in (["auth"], ["limits", "set", "max_depth", "1.8"], ["tilt-ref", "reset"], ["remote", "--seconds", "1"]):
        code, _, err = run(capsys, "--port", sp.port, "--key-file", none, *args)
        assert code == cli.EXIT_USAGE and "no key file at" in err and err.count("\n") == 1, (args, err)


def test_security_is_asked_first_so_no_denied_entry_is_logged(
    provisioned: tuple[SimulatedPen, Path], tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    sp, key = provisioned
    code, out, err = run(capsys, "--port", sp.port, "--key-file", str(key), "limits", "set", "max_depth", "1.8")
    assert code == 0, err
    # config import with clinic limits authenticates as limits set does
    cfg = tmp_path / "cfg.json"
    cfg.write_text(json.dumps({"format": "needle-pen-config", "version": 1, "clinic": {"max_depth": 1.7}}))
    code, out, err = run(capsys, "--port", sp.port, "--key-file", str(key), "config", "import", str(cfg))
    assert code == 0 and "applied" in out, err
    with Pen(sp.port) as pen:
        texts = [f"{r['kind']} {r['text']}" for r in pen.log()]
        assert pen.limits()["max_depth"] == 1.7
    assert not [t for t in texts if "denied" in t], texts
    assert len([t for t in texts if "auth_ok" in t]) == 2


def test_provision_with_the_same_key_succeeds_another_points_to_rotate(
    provisioned: tuple[SimulatedPen, Path], tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    sp, key = provisioned
    code, _, err = run(capsys, "--port", sp.port, "--key-file", str(key), "auth", "--provision")
    assert code == 0 and "has this key already" in err
    other = _key(tmp_path, "other")
    code, _, err = run(capsys, "--port", sp.port, "--key-file", str(other), "auth", "--provision")
    assert code == cli.EXIT_REFUSED and "auth --rotate NEW_KEY_FILE" in err and err.count("\n") == 1


def test_clear_fault_without_a_fault_says_so(sim: SimulatedPen, capsys: pytest.CaptureFixture[str]) -> None:
    code, out, _ = run(capsys, "--port", sim.port, "clear-fault")
    assert code == 0 and "no fault to clear" in out


# --- signals: log out, then 128+N ---
@pytest.mark.parametrize("sig, code", [(signal.SIGINT, 130), (signal.SIGTERM, 143), (signal.SIGHUP, 129)])
def test_signals_log_out_and_exit_128_plus_n(provisioned: tuple[SimulatedPen, Path], sig: int, code: int) -> None:
    sp, key = provisioned
    p = penctl(
        "--port", sp.port, "--key-file", str(key), "shell",
        stdin=subprocess.PIPE, stdout=subprocess.PIPE, stderr=subprocess.PIPE,
    )  # fmt: skip
    assert p.stdin is not None and p.stdout is not None
    p.stdin.write("auth\n")
    p.stdin.flush()
    seen = ""
    for _ in range(40):  # auth prints the security state of this connection
        line = p.stdout.readline()
        seen += line
        if line.startswith("session"):
            break
    assert "technician" in seen, seen
    p.send_signal(sig)
    _, err = p.communicate(timeout=30)
    assert p.returncode == code, err
    with Pen(sp.port) as pen:
        assert pen.security()["session"] == "none"
        ends = [r["text"] for r in pen.log() if "session_end" in f"{r['kind']} {r['text']}"]
    assert ends and "logout" in ends[-1], "penctl logged out before exiting"


# --- names from the handshake ---
def test_names_come_from_the_pen_with_a_fallback_for_old_firmware() -> None:
    pairs = {"states": "off,on", "faults": "none,smoke", "stops": "none,x", "tel": "seq,state,fault,temp_cdeg"}
    names = Names.from_reply(pairs)
    assert names.source == "pen" and names.columns[-1] == ("temp", "deg")
    assert names.parse_frame("~7 1 1 2150") == {"seq": 7, "state": "on", "fault": "smoke", "temp": 21.5}
    assert Names.from_reply({}).source.startswith("built-in")
    assert BUILTIN.parse_frame("~1 4 0 100000 99000 1500 120 300 7900") == {
        "seq": 1, "state": "running", "fault": "none", "rate_set": 100.0, "rate": 99.0,
        "depth": 1.5, "tilt": 1.2, "current": 300, "battery": 7900,
    }  # fmt: skip


def test_names_come_from_the_pen_and_old_firmware_gets_the_builtin_ones(sim: SimulatedPen) -> None:
    with Pen(sim.port) as pen:
        assert "dict" in str(pen.identity["caps"]).split(",")
        assert pen.names.source == "pen"
        # the generated copy equals what the pen says (tools/gen_tables.py)
        assert (pen.names.states, pen.names.faults, pen.names.stops, pen.names.tel) == (
            BUILTIN.states,
            BUILTIN.faults,
            BUILTIN.stops,
            BUILTIN.tel,
        )
        pen.identity["caps"] = "crc,rid"  # firmware without `dict`: no request, no unknown_command
        assert pen.read_names() is BUILTIN


# --- the pen's commands and the docs ---
def test_protocol_doc_lists_every_command_the_pen_serves(sim: SimulatedPen) -> None:
    doc = (Path(__file__).resolve().parents[2] / "docs" / "protocol.md").read_text()
    with Pen(sim.port) as pen:
        served = str(pen.request("help")["commands"]).split(",")
    rows = [line for line in doc.splitlines() if line.startswith("| `")]
    missing = [c for c in served if not any(f"`{c}`" in r or f"`{c} " in r for r in rows)]
    assert not missing, f"docs/protocol.md does not describe {missing}"


def test_pensim_console_refuses_tilt_without_a_value() -> None:
    from sim.console import console_command

    class NoPen:
        def set_tilt(self, *a: object) -> None:
            raise AssertionError("must not be called")

    out = console_command(NoPen(), "tilt")  # type: ignore[arg-type]
    assert out is not None and out.startswith("usage: tilt DEG")


def test_limit_order_refusal_says_its_advice_once() -> None:
    # the pen's own text carries the advice (err 13); the host adds no second one
    from host.link import PenRefused

    e = PenRefused(13, "limit_order", "max_depth 1.00 mm below working depth 1.50 mm; lower depth first")
    assert str(e).count("first") == 1, str(e)
