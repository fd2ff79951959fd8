"""Deploy's logic against a fake board (a folder, and the board scripts run
by CPython in it, as mpremote's exec runs them by MicroPython): signing,
the MicroPython check, staging, the switch that keeps the last good
firmware, the roll back, and the verify-or-roll-back flow of deploy()."""

from __future__ import annotations

import contextlib
import io
import os
from collections.abc import Callable
from pathlib import Path

import pytest

from host import deploy as D


class FakeBoard:
    """A board's flash as a folder; exec() runs a script with cwd there."""

    def __init__(self, root: Path, abi: str = "1 29 0 4870", corrupt: bool = False) -> None:
        self.root = root
        self.abi = abi  # sys.implementation.version and _mpy (4870 = v6.3 armv6m)
        self.corrupt = corrupt
        self.scripts: list[str] = []

    def exec(self, command: str | bytes, data_consumer: Callable[[bytes], None] | None = None) -> bytes:
        script = command.decode() if isinstance(command, bytes) else command
        if script == D.BOARD_ABI:
            return self.abi.encode()
        self.scripts.append(script)
        out = io.StringIO()
        cwd = os.getcwd()
        os.chdir(self.root)
        try:
            with contextlib.redirect_stdout(out):
                exec(compile(script, "<board>", "exec"), {"__name__": "__board__"})
        finally:
            os.chdir(cwd)
        if self.corrupt and script.startswith(D.WRITE_LIB):
            for f in (self.root / D.STAGE).rglob("*"):  # a bad cable: the last byte of each file differs
                if f.is_file() and f.stat().st_size:
                    f.write_bytes(f.read_bytes()[:-1] + b"X")
        return out.getvalue().encode()

    def exec_raw(
        self, command: str | bytes, timeout: float = 10, data_consumer: Callable[[bytes], None] | None = None
    ) -> tuple[bytes, bytes]:
        """mpremote's: (stdout, stderr); deploy calls it through Patient."""
        try:
            return self.exec(command), b""
        except Exception as e:  # noqa: BLE001 - a board script's traceback is its stderr
            return b"", f"Traceback\n{type(e).__name__}: {e}".encode()

    def tree(self) -> dict[str, bytes]:
        return {
            p.relative_to(self.root).as_posix(): p.read_bytes()
            for p in sorted(self.root.rglob("*"))
            if p.is_file() and not p.relative_to(self.root).as_posix().startswith(".")
        }


MPY = D.MpyAbi(6, 3, 4).header() + b"code"  # viper code for armv6m
OLD = {"main.py": b"old main", "pen/core.mpy": b"old core", "pen/gone.mpy": b"stale", "cfg/store.bin": b"data"}
NEW = {"main.py": b"new main", "pen/core.mpy": MPY + b"1", "pen/added.mpy": MPY + b"2", "boot.py": b"boot"}


def _board(tmp_path: Path, **kw: object) -> FakeBoard:
    root = tmp_path / "flash"
    for rel, data in OLD.items():
        (root / rel).parent.mkdir(parents=True, exist_ok=True)
        (root / rel).write_bytes(data)
    return FakeBoard(root, **kw)  # type: ignore[arg-type]


def test_stage_switch_keeps_the_last_good_firmware_and_rolls_back(tmp_path: Path) -> None:
    board = _board(tmp_path)
    todo = D.plan(NEW, board)
    assert sorted(todo) == sorted(NEW)
    D.stage(NEW, todo, board, lambda s: None)
    assert board.tree() == OLD, "staging changes nothing the firmware runs from"
    assert (board.root / ".next" / "pen" / "added.mpy").read_bytes() == NEW["pen/added.mpy"]
    D.switch(board, NEW, todo)
    # the new firmware in place, the stale code file gone from the tree, data kept
    assert board.tree() == {**NEW, "cfg/store.bin": b"data"}
    assert (board.root / ".prev" / "pen" / "gone.mpy").read_bytes() == b"stale"
    assert not (board.root / ".next").exists()
    D.roll_back(board)
    assert board.tree() == OLD
    assert not (board.root / ".prev").exists()


def test_switched_files_are_on_trial_and_the_pen_rolls_them_back_if_they_never_start(tmp_path: Path) -> None:
    """The switch leaves the new files on trial (.prev/TRIAL); the pen's boot
    guard (firmware/bootguard.py, run by main.py at every boot) puts the
    last good firmware back after MAX_TRIES boots without a verified start,
    and keeps them after one."""
    import bootguard

    board = _board(tmp_path)
    todo = D.plan(NEW, board)
    D.stage(NEW, todo, board, lambda s: None)
    D.switch(board, NEW, todo)
    assert (board.root / bootguard.TRIAL).read_text() == "0"
    root = str(board.root)
    for n in range(1, bootguard.MAX_TRIES + 1):
        assert bootguard.begin(root) == n  # a boot that crashed or hung
    assert bootguard.begin(root) == -1
    assert board.tree() == OLD and not (board.root / ".prev").exists()
    # a boot that reaches the verified start keeps the new files
    todo = D.plan(NEW, board)
    D.stage(NEW, todo, board, lambda s: None)
    D.switch(board, NEW, todo)
    assert bootguard.begin(root) == 1 and bootguard.confirm(root)
    assert bootguard.begin(root) == 0
    assert board.tree() == {**NEW, "cfg/store.bin": b"data"}
    assert D.roll_back(board) == "rolled back 3 2"  # deploy's own check can still roll back
    assert board.tree() == OLD
    assert D.roll_back(board).startswith("nothing to roll back")


def test_unchanged_files_are_not_staged_and_stay(tmp_path: Path) -> None:
    board = _board(tmp_path)
    same = {**NEW, "main.py": OLD["main.py"]}
    todo = D.plan(same, board)
    assert "main.py" not in todo
    D.stage(same, todo, board, lambda s: None)
    D.switch(board, same, todo)
    assert board.tree()["main.py"] == OLD["main.py"] and board.tree()["pen/core.mpy"] == NEW["pen/core.mpy"]
    D.roll_back(board)
    assert board.tree() == OLD


def test_a_staged_copy_that_differs_stops_before_the_switch(tmp_path: Path) -> None:
    board = _board(tmp_path, corrupt=True)
    with pytest.raises(D.DeployError, match="staged copy of .* differs"):
        D.stage(NEW, D.plan(NEW, board), board, lambda s: None)
    assert board.tree() == OLD


def test_the_boards_micropython_must_load_the_compiled_files(tmp_path: Path) -> None:
    files = {"pen/core.mpy": D.MpyAbi(6, 3, 4).header() + b"x"}
    # _mpy = version | sub << 8 | arch << 10, as the unix port reports it (x64: 2822)
    assert "MicroPython 1.29.0 (mpy v6.3 armv6m)" == D.check_board(FakeBoard(tmp_path, "1 29 0 4870"), files)
    with pytest.raises(D.DeployError, match=r"MicroPython 1.22.0 \(mpy v6.2 armv6m\).*compiled for mpy v6.3"):
        D.check_board(FakeBoard(tmp_path, "1 22 0 4614"), files)
    with pytest.raises(D.DeployError, match=r"mpy v5"):
        D.check_board(FakeBoard(tmp_path, "1 18 0 4101"), {"pen/b.mpy": D.MpyAbi(6, 0, 0).header()})
    # viper/native code needs the architecture too; bytecode only the version
    with pytest.raises(D.DeployError, match="x64"):
        D.check_board(FakeBoard(tmp_path, "1 29 0 2822"), {"pen/v.mpy": D.MpyAbi(6, 3, 4).header()})
    D.check_board(FakeBoard(tmp_path, "1 29 0 2822"), {"pen/b.mpy": D.MpyAbi(6, 0, 0).header()})
    with pytest.raises(D.DeployError, match="without .mpy support"):
        D.check_board(FakeBoard(tmp_path, "1 29 0 0"), files)


def test_sec5_the_signed_manifest_is_what_the_pen_checks_at_boot(tmp_path: Path) -> None:
    from pen import integrity

    key = bytes(range(32))
    key_file = tmp_path / "key"
    key_file.write_text(key.hex() + "\n")
    key_file.chmod(0o600)
    files = D.sign({"main.py": b"print(1)\n", "pen/core.mpy": MPY}, key_file)
    tree = tmp_path / "board"
    for rel, data in files.items():
        (tree / rel).parent.mkdir(parents=True, exist_ok=True)
        (tree / rel).write_bytes(data)
    assert integrity.check(str(tree), key) == integrity.OK
    # the staging and roll-back folders are outside the check
    (tree / ".prev" / "pen").mkdir(parents=True)
    (tree / ".prev" / "pen" / "core.mpy").write_bytes(b"old")
    assert integrity.check(str(tree), key) == integrity.OK
    (tree / "pen" / "core.mpy").write_bytes(b"tampered")
    assert integrity.check(str(tree), key) != integrity.OK


def _flow(tmp_path: Path, monkeypatch: pytest.MonkeyPatch, boots: list[D.Booted]) -> FakeBoard:
    board = _board(tmp_path)
    key_file = tmp_path / "key"
    key_file.write_text("11" * 32 + "\n")
    key_file.chmod(0o600)
    monkeypatch.setattr(D, "build", lambda out: dict(NEW))
    monkeypatch.setattr(D, "pen_security", lambda device, timeout: {"key": "set", "mode": "production"})
    monkeypatch.setattr(D, "repl", lambda device, timeout, key_file, locked=False, wait_s=0.0: board)
    monkeypatch.setattr(D, "_reset", lambda transport: None)
    monkeypatch.setattr(D, "_close", lambda transport: None)
    monkeypatch.setattr(D, "read_boot", lambda device, timeout, wait_s=0.0: boots.pop(0))
    monkeypatch.setattr(D, "firmware_version", lambda: "9.9.9")
    return board


def test_deploy_verifies_integrity_mode_and_version_after_the_reboot(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    board = _flow(tmp_path, monkeypatch, [D.Booted("9.9.9", "ok", "production", "ready", "set")])
    D.deploy("socket://board:1", key_file=str(tmp_path / "key"))
    assert board.tree()["main.py"] == NEW["main.py"] and D.MANIFEST in board.tree()
    assert (board.root / ".prev" / "main.py").read_bytes() == OLD["main.py"]


@pytest.mark.parametrize(
    "booted, problem",
    [
        (D.Booted("9.9.9", "bad_signature", "production", "safe", "set"), "integrity bad_signature"),
        (D.Booted("9.9.9", "unverified", "production", "ready", "set"), "integrity unverified"),
        (D.Booted("0.1.0", "ok", "production", "ready", "set"), "firmware 0.1.0, expected 9.9.9"),
        (D.Booted("9.9.9", "ok", "maintenance", "ready", "set"), "mode maintenance"),
    ],
)
def test_deploy_rolls_back_when_the_new_firmware_fails_its_check(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, booted: D.Booted, problem: str
) -> None:
    old = D.Booted("0.1.0", "ok", "production", "ready", "set")
    board = _flow(tmp_path, monkeypatch, [booted, old])
    with pytest.raises(D.DeployError, match=f"{problem}.*rolled back: the pen runs firmware 0.1.0"):
        D.deploy("socket://board:1", key_file=str(tmp_path / "key"))
    assert board.tree() == OLD


def test_a_provisioned_pen_needs_the_key_to_sign(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    board = _flow(tmp_path, monkeypatch, [])
    with pytest.raises(D.DeployError, match="must be signed"):
        D.deploy("socket://board:1", key_file=str(tmp_path / "no-such-key"))
    assert board.tree() == OLD and not board.scripts


def test_maintenance_still_logs_out_when_the_pen_does_not_reboot() -> None:
    """deploy asks for maintenance; if the pen did not reboot, the closing
    logout ends the session (one short try)."""
    from host.api import Pen

    sent: list[str] = []

    class Link:
        port = "fake"
        timeout = 2.0
        retries = 1

        def request(self, body: str, idempotent: bool = True) -> str:
            sent.append(body)
            return ""

        def close(self) -> None:
            sent.append("<close>")

    pen = Pen.__new__(Pen)
    pen.link = Link()  # type: ignore[assignment]
    pen.authenticated = True
    pen.rebooting = False
    pen.key_file = None
    pen.maintenance()
    pen.close()
    assert sent[-2:] == ["logout", "<close>"] and pen.link.retries == 0 and pen.link.timeout <= 0.5


def test_board_scripts_wait_as_long_as_the_board_needs(tmp_path: Path) -> None:
    """Patient: a script's error is a DeployError naming it; a slow board
    (--boot-wait) gets a longer serial timeout for mpremote's raw-paste
    acknowledgements than its 1 s."""

    class Port:
        timeout = 1.0

    board = _board(tmp_path)
    board.serial = Port()  # type: ignore[attr-defined]
    patient = D.Patient(board, 600.0)  # type: ignore[arg-type]
    assert board.serial.timeout == 60.0  # type: ignore[attr-defined]
    assert patient.exec("print(6 * 7)") == b"42\n"
    with pytest.raises(D.DeployError, match="switching to the new firmware on the board failed: OSError: 28"):
        D._run(patient, "raise OSError(28)", "switching to the new firmware")  # pyright: ignore[reportPrivateUsage]
