"""penctl shell (one connection, the technician session kept, the same
parsers as the subcommands, completion, history on a terminal) and the
monitor's events, stop/block reasons and its end when the pen is lost."""

from __future__ import annotations

import os
import pty
import select
import subprocess
import sys
import time
from pathlib import Path

from host.api import Pen
from host.cli.shell import PenShell, choices, shell_parser
from sim import SimulatedPen

ROOT = Path(__file__).resolve().parents[2]


def _key(tmp_path: Path) -> Path:
    p = tmp_path / "key"
    p.write_text(os.urandom(32).hex() + "\n")
    p.chmod(0o600)
    return p


def test_shell_keeps_one_session_for_many_commands_then_logs_out(tmp_path: Path) -> None:
    key = _key(tmp_path)
    with SimulatedPen(runtime="cpython", speed=0) as sp:
        with Pen(sp.port, key_file=key) as pen:
            pen.provision()
        script = "limits set max_depth 1.8\nlimits set max_rate 120\nsecurity --json\nget depth\nbogus\nquit\n"
        r = subprocess.run(
            [sys.executable, "-m", "host.cli", "--port", sp.port, "--key-file", str(key), "shell"],
            input=script, capture_output=True, text=True, timeout=60,
        )  # fmt: skip
        assert '"session": "technician"' in r.stdout and "max_rate" in r.stdout and "depth" in r.stdout, r.stderr
        assert "invalid choice: 'bogus'" in r.stderr
        assert r.returncode == 2, "a script exits with its first failure's code"
        with Pen(sp.port) as pen:
            log = [f"{e['kind']} {e['text']}" for e in pen.log()]
            assert pen.security()["session"] == "none" and pen.limits()["max_rate"] == 120.0
    assert len([x for x in log if "auth_ok" in x]) == 1, "one authentication for both technician commands"
    assert any("session_end" in x and "logout" in x for x in log)


def test_shell_completes_commands_keys_and_options() -> None:
    _, subs = shell_parser()
    assert "shell" not in subs and "deploy" not in subs and "limits" in subs
    assert "max_depth" in choices(subs, ["limits", "set"]) and "set" in choices(subs, ["limits"])
    assert "--plot" in choices(subs, ["monitor"]) and "--json" in choices(subs, ["status"])
    sh = PenShell.__new__(PenShell)
    sh.subparsers = subs
    assert sh.completenames("li") == ["limits"]
    assert sh.completedefault("max_", "limits set max_", 11, 15) == [
        "max_depth",
        "max_rate",
        "max_tilt",
        "max_session_min",
    ]


def test_shell_on_a_terminal_has_a_prompt_and_history(tmp_path: Path) -> None:
    env = {**os.environ, "XDG_STATE_HOME": str(tmp_path / "state")}
    with SimulatedPen(runtime="cpython", speed=0) as sp:
        pid, fd = pty.fork()
        if pid == 0:  # the child: penctl shell on a terminal
            os.execve(sys.executable, [sys.executable, "-m", "host.cli", "--port", sp.port, "shell"], env)
        out = b""

        def until(text: bytes, timeout: float = 30.0) -> None:
            nonlocal out
            end = time.monotonic() + timeout
            while text not in out and time.monotonic() < end:
                if select.select([fd], [], [], 0.2)[0]:
                    try:
                        out += os.read(fd, 4096)
                    except OSError:
                        break
            assert text in out, out.decode(errors="replace")

        until(b"pen> ")
        os.write(fd, b"get depth\r")
        until(b"depth")
        os.write(fd, b"quit\r")
        _, status = os.waitpid(pid, 0)
        os.close(fd)
    assert os.waitstatus_to_exitcode(status) == 0
    assert "get depth" in (tmp_path / "state" / "penctl" / "history").read_text()


def test_monitor_shows_events_with_stop_and_block_reasons() -> None:
    with SimulatedPen(runtime="cpython", speed=1.0) as sp:
        p = subprocess.Popen(
            [sys.executable, "-m", "host.cli", "--port", sp.port, "monitor", "--rate", "20", "--duration", "6"],
            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
        )  # fmt: skip
        time.sleep(2.0)
        sp.set_tilt(30)  # the pen leaves the cone: state stays ready, block says tilt
        sp.press_trigger()
        out, err = p.communicate(timeout=60)
    assert p.returncode == 0, err
    assert "penctl: event:" in err and "block=" in err, err
    assert "frames=" in err


def test_monitor_writes_summary_and_plot_when_the_pen_is_lost(tmp_path: Path) -> None:
    png = tmp_path / "m.png"
    sp = SimulatedPen(runtime="cpython", speed=1.0)
    sp.start()
    p = subprocess.Popen(
        [sys.executable, "-m", "host.cli", "--port", sp.port, "--timeout", "0.5", "monitor", "--rate", "20",
         "--plot", str(png), "--reconnect-timeout", "1"],
        stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
    )  # fmt: skip
    try:
        assert p.stdout is not None
        for _ in range(10):
            p.stdout.readline()
        sp.close()  # the pen is gone for good
        out, err = p.communicate(timeout=60)
    finally:
        sp.close()
    assert p.returncode == 3, err
    assert "frames=" in err and png.stat().st_size > 1000
    last = err.strip().splitlines()[-1]
    assert last.startswith("penctl: the pen (serial") and "did not come back within 1 s" in last
