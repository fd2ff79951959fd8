"""penctl output: help texts, tables, --json parses on every read command,
documented exit codes, one-line errors without tracebacks."""

from __future__ import annotations

import csv
import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

from host import cli
from host.deploy import build, copy, plan
from sim import SimulatedPen
from tests.host.ptydevice import PtyDevice, framed


def run(capsys: pytest.CaptureFixture[str], *args: str) -> tuple[int, str, str]:
    try:
        code = cli.main(list(args))
    except SystemExit as e:  # argparse usage errors and --help
        code = int(e.code or 0)
    out, err = capsys.readouterr()
    return code, out, err


def penctl(*args: str, env: dict[str, str] | None = None) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "host.cli", *args], capture_output=True, text=True, timeout=60, env=env
    )


@pytest.fixture(scope="module")
def sim_port() -> object:
    with SimulatedPen(runtime="cpython", speed=0) as sp:
        yield sp


def test_help_lists_every_subcommand_and_exit_codes(capsys: pytest.CaptureFixture[str]) -> None:
    code, out, _ = run(capsys, "--help")
    assert code == 0
    for name in ("ports", "info", "status", "get", "set", "limits", "monitor", "config", "clear-fault", "deploy"):
        assert name in out
    assert "exit codes" in out and "4 incompatible pen" in out


def test_get_help_shows_units_and_ranges(capsys: pytest.CaptureFixture[str]) -> None:
    code, out, _ = run(capsys, "get", "--help")
    assert code == 0
    assert "depth" in out and "0.00-2.50 mm, step 0.05" in out and "max_depth" in out
    assert "25.0-150.0 Hz, step 0.1" in out
    code, out, _ = run(capsys, "limits", "--help")
    assert "max_tilt" in out and "1.0-20.0 deg" in out and "1-60 min" in out


def test_read_commands_json_parses(sim_port: SimulatedPen, capsys: pytest.CaptureFixture[str]) -> None:
    port = sim_port.port
    for args in (["info"], ["status"], ["get"], ["get", "rate"], ["limits"]):
        code, out, err = run(capsys, "--port", port, "--json", *args)
        assert code == 0, err
        data = json.loads(out)
        assert isinstance(data, dict) and data
        # --json also after the subcommand
        code, out2, err = run(capsys, "--port", port, *args, "--json")
        assert code == 0 and json.loads(out2).keys() == data.keys()
    code, out, _ = run(capsys, "--json", "ports")
    assert code == 0 and isinstance(json.loads(out), list)
    assert json.loads(run(capsys, "--port", port, "--json", "info")[1])["proto"] == 1


def test_tables_show_units(sim_port: SimulatedPen, capsys: pytest.CaptureFixture[str]) -> None:
    code, out, _ = run(capsys, "--port", sim_port.port, "get")
    assert code == 0
    assert (
        "depth" in out
        and " mm" in out
        and "0.00-2.50 mm" in out
        and "clinic limit max_depth 1.50 mm" in out
        and "depth  0.50 mm" in out
    )
    code, out, _ = run(capsys, "--port", sim_port.port, "status")
    assert code == 0 and "battery" in out and " mV" in out and "state" in out
    code, out, _ = run(capsys, "ports")
    assert code == 0 and ("no serial ports" in out or "usb id" in out)


def test_exit_codes_and_one_line_errors(sim_port: SimulatedPen, capsys: pytest.CaptureFixture[str]) -> None:
    port = sim_port.port
    code, _, err = run(capsys, "--port", port, "set", "depth", "2.6")
    assert code == cli.EXIT_REFUSED and err.count("\n") == 1
    assert "hardware limit 2.50 mm" in err and "choose a value" in err
    code, _, err = run(capsys, "--port", port, "limits", "set", "max_depth", "2.0")
    assert code == cli.EXIT_USAGE and "auth_required" in err and "no key file" in err  # as for every command
    code, _, err = run(capsys, "--port", port, "set", "depth")
    assert code == cli.EXIT_USAGE
    code, _, err = run(capsys, "--port", port, "monitor", "--rate", "500")
    assert code == cli.EXIT_USAGE and "1-100" in err
    code, _, err = run(capsys, "--port", "/dev/nonexistent-pen", "status")
    assert code == cli.EXIT_LINK and err.count("\n") == 1 and "cannot open /dev/nonexistent-pen" in err


def test_no_port_found_is_one_clear_line(tmp_path: Path) -> None:
    env = {k: v for k, v in os.environ.items() if k != "PENCTL_PORT"}
    r = penctl("status", env=env)
    assert r.returncode == cli.EXIT_LINK
    assert r.stderr.count("\n") == 1 and "Traceback" not in r.stderr
    assert "PENCTL_PORT" in r.stderr and ("no pen found" in r.stderr or "pens found" in r.stderr)


def test_config_export_import_roundtrip_all_or_nothing(
    sim_port: SimulatedPen, capsys: pytest.CaptureFixture[str], tmp_path: Path
) -> None:
    port = sim_port.port
    f = tmp_path / "pen.json"
    assert run(capsys, "--port", port, "set", "depth", "1.25")[0] == 0
    code, _, err = run(capsys, "--port", port, "config", "export", str(f))
    assert code == 0, err
    doc = json.loads(f.read_text())
    assert doc["format"] == "needle-pen-config" and doc["working"]["depth"] == 1.25
    assert run(capsys, "--port", port, "set", "depth", "0.50")[0] == 0
    code, out, err = run(capsys, "--port", port, "config", "import", str(f))
    assert code == 0, err
    assert json.loads(run(capsys, "--port", port, "--json", "get", "depth")[1]) == {"depth": 1.25}
    # one bad value: nothing changes
    doc["working"] = {"depth": 1.0, "rate": 999}
    f.write_text(json.dumps(doc))
    code, _, err = run(capsys, "--port", port, "config", "import", str(f))
    assert code == cli.EXIT_REFUSED and "rate 999.0 Hz above hardware limit" in err
    assert json.loads(run(capsys, "--port", port, "--json", "get")[1]) == {"depth": 1.25, "rate": 100.0}
    # not a configuration file
    f.write_text("{not json")
    code, _, err = run(capsys, "--port", port, "config", "import", str(f))
    assert code == cli.EXIT_FILE and err.count("\n") == 1
    f.write_text(json.dumps({"format": "needle-pen-config", "version": 1, "working": {"speed": 3}}))
    code, _, err = run(capsys, "--port", port, "config", "import", str(f))
    assert code == cli.EXIT_FILE and "unknown key 'speed'" in err


def test_monitor_json_csv_plot_and_frame_count(sim_port: SimulatedPen, tmp_path: Path) -> None:
    sim_port.set_speed(1.0)
    try:
        csv_path = tmp_path / "t.csv"
        png = tmp_path / "t.png"
        r = penctl(
            "--port", sim_port.port, "monitor", "--rate", "100", "--count", "40", "--json",
            "--csv", str(csv_path), "--plot", str(png),
        )  # fmt: skip
    finally:
        sim_port.set_speed(0)
    assert r.returncode == 0, r.stderr
    frames = [json.loads(line) for line in r.stdout.splitlines()]
    assert len(frames) == 40
    seqs = [f["seq"] for f in frames]
    assert seqs == list(range(seqs[0], seqs[0] + 40))
    assert "frames=40 lost=0" in r.stderr
    rows = list(csv.reader(csv_path.open()))
    assert rows[0][:3] == ["t_s", "seq", "state"] and len(rows) == 41
    assert png.stat().st_size > 1000


def test_incompatible_pen_refused_with_exit_4(capsys: pytest.CaptureFixture[str]) -> None:
    fake = PtyDevice(
        lambda ln: framed(ln, "ok fw=9.0.0 proto=2 board=x serial=y caps=crc,rid,rt") if ln[:1] == b"@" else b""
    )
    try:
        code, _, err = run(capsys, "--port", fake.port, "status")
        assert code == cli.EXIT_INCOMPATIBLE and err.count("\n") == 1
        assert "protocol 2" in err and "speaks 1" in err
    finally:
        fake.close()
    old = PtyDevice(
        lambda ln: (
            b"err 1 unknown_command: unknown command '%s'; try 'help'\n" % ln.split(b" ", 1)[0]
            if ln[:1] == b"@"
            else b""
        )
    )
    try:
        code, _, err = run(capsys, "--port", old.port, "--timeout", "0.5", "info")
        assert code == cli.EXIT_INCOMPATIBLE and "penctl deploy" in err
    finally:
        old.close()


def test_deploy_compiles_copies_and_skips_unchanged(tmp_path: Path) -> None:
    from tests.host.test_deploy import FakeBoard  # a board's flash as a folder

    files = build(tmp_path / "build")
    assert "main.py" in files and "boot.py" in files and "pen/protocol.mpy" in files
    assert not any(p.endswith(".py") and p not in ("main.py", "boot.py") for p in files)
    (tmp_path / "flash").mkdir()
    board = FakeBoard(tmp_path / "flash")
    progress: list[str] = []
    todo = plan(files, board)
    assert sorted(todo) == sorted(files)
    copy(files, todo, board, progress.append)
    assert board.tree() == files and "100.0%" in progress[-1]
    # second run: nothing to copy; one changed file: only that one
    assert plan(files, board) == []
    (board.root / "pen" / "protocol.mpy").write_bytes(b"old")
    assert plan(files, board) == ["pen/protocol.mpy"]
    assert sorted(plan(files, board, force=True)) == sorted(files)


def test_deploy_to_missing_board_fails_with_exit_6(capsys: pytest.CaptureFixture[str]) -> None:
    code, _, err = run(capsys, "--port", "/dev/nonexistent-board", "deploy")
    assert code == cli.EXIT_DEPLOY and err.count("\n") == 1 and "cannot open /dev/nonexistent-board" in err


def test_deploy_refuses_a_locked_pen_and_the_pen_keeps_running(capsys: pytest.CaptureFixture[str]) -> None:
    # production firmware ignores Ctrl-C/Ctrl-A: mpremote cannot get a raw REPL
    with SimulatedPen(runtime="micropython", speed=1.0) as sp:
        code, _, err = run(capsys, "--port", sp.port, "deploy")
        assert code == cli.EXIT_DEPLOY
        assert err.strip().splitlines()[-1].startswith("penctl: ") and "maintenance mode" in err
        code, out, err = run(capsys, "--port", sp.port, "--json", "info")
        assert code == 0 and json.loads(out)["board"] == "sim-rp2040"
