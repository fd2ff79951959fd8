"""penctl deploy / make flash: compile the firmware with mpy-cross
(tools/compile_firmware.py), copy it with mpremote's library, skipping files
whose SHA-256 on the board already matches, reboot, and check that the pen
reports the firmware version just deployed.

The board must be reachable on mpremote's raw REPL: a fresh board, or a pen
put into maintenance mode (an authenticated protocol command, see
docs/security.md) since production firmware locks the REPL. When the raw
REPL does not answer, deploy asks the pen for maintenance itself
(Pen.maintenance(), authenticating with the technician's key file when the
pen asks), waits for the reboot into the REPL and tries once more.
"""

from __future__ import annotations

import contextlib
import hashlib
import io
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable
from pathlib import Path
from typing import Protocol

from host import resources

KEEP_SOURCE = ("main.py", "boot.py")
RAW_REPL_TIMEOUT_S = 4
MAINTENANCE_REBOOT_S = 10.0  # the pen reboots into the REPL; USB re-enumerates


class DeployError(Exception):
    """Compiling, copying or verifying failed."""


class SerialTransportLike(Protocol):
    """What deploy uses of mpremote's SerialTransport beyond Transport."""

    def enter_raw_repl(self, soft_reset: bool = True, timeout_overall: float = 10) -> None: ...
    def exec_raw_no_follow(self, command: str | bytes) -> None: ...
    def close(self) -> None: ...
    def fs_exists(self, src: str) -> bool: ...
    def fs_mkdir(self, path: str) -> None: ...
    def fs_hashfile(self, path: str, algo: str, chunk_size: int = 256) -> bytes: ...
    def fs_writefile(
        self, dest: str, data: bytes, chunk_size: int = 256, progress_callback: Callable[[int, int], None] | None = None
    ) -> None: ...


class Transport(Protocol):
    def fs_exists(self, src: str) -> bool: ...
    def fs_mkdir(self, path: str) -> None: ...
    def fs_hashfile(self, path: str, algo: str, chunk_size: int = 256) -> bytes: ...
    def fs_writefile(
        self, dest: str, data: bytes, chunk_size: int = 256, progress_callback: Callable[[int, int], None] | None = None
    ) -> None: ...


def firmware_version() -> str:
    try:
        return resources.firmware_version()
    except resources.ResourceError as e:
        raise DeployError(str(e)) from None


def build(out: Path) -> dict[str, bytes]:
    """Compile to out/ and return {path on the board: content}."""
    try:
        compiler, firmware = resources.tool("compile_firmware"), resources.firmware_dir()
    except resources.ResourceError as e:
        raise DeployError(str(e)) from None
    r = subprocess.run([sys.executable, str(compiler), "--out", str(out)], capture_output=True, text=True)
    if r.returncode != 0:
        raise DeployError("mpy-cross failed: " + (r.stderr or r.stdout).strip().splitlines()[-1])
    files: dict[str, bytes] = {}
    for mpy in sorted((out / "firmware").rglob("*.mpy")):
        rel = mpy.relative_to(out / "firmware").as_posix()
        if Path(rel).with_suffix(".py").name in KEEP_SOURCE:
            continue
        files[rel] = mpy.read_bytes()
    for name in KEEP_SOURCE:
        files[name] = (firmware / name).read_bytes()
    return files


def plan(files: dict[str, bytes], transport: Transport, force: bool = False) -> list[str]:
    """The files whose content on the board differs (or is missing)."""
    todo: list[str] = []
    for path, data in files.items():
        if not force and transport.fs_exists(path):
            if transport.fs_hashfile(path, "sha256") == hashlib.sha256(data).digest():
                continue
        todo.append(path)
    return todo


def copy(files: dict[str, bytes], todo: list[str], transport: Transport, progress: Callable[[str], None]) -> int:
    total = sum(len(files[p]) for p in todo)
    done = 0
    made: set[str] = set()
    for path in todo:
        parts = path.split("/")[:-1]
        for i in range(1, len(parts) + 1):
            d = "/".join(parts[:i])
            if d not in made:
                if not transport.fs_exists(d):
                    transport.fs_mkdir(d)
                made.add(d)
        base = done

        def cb(written: int, size: int, base: int = base, path: str = path) -> None:
            progress(_bar(base + written, total, path))

        transport.fs_writefile(path, files[path], progress_callback=cb)
        done += len(files[path])
        progress(_bar(done, total, path))
    return done


def _bar(done: int, total: int, name: str, width: int = 30) -> str:
    frac = done / total if total else 1.0
    fill = int(frac * width)
    return f"\r[{'#' * fill}{'.' * (width - fill)}] {frac * 100:5.1f}% {done}/{total} B {name[:30]:<30}"


def _open(device: str) -> SerialTransportLike:
    from mpremote.transport_serial import SerialTransport  # pyright: ignore[reportMissingTypeStubs]  # mpremote ships no stubs

    try:
        return SerialTransport(device, baudrate=115200, timeout=1)  # type: ignore[no-any-return]
    except Exception as e:  # noqa: BLE001 - mpremote raises plain errors
        raise DeployError(f"cannot open {device}: {e}") from None


def _raw_repl(transport: SerialTransportLike) -> str | None:
    """Enter the raw REPL; None on success, else why not."""
    from mpremote.transport import TransportError  # pyright: ignore[reportMissingTypeStubs]  # mpremote ships no stubs

    try:
        with contextlib.redirect_stdout(io.StringIO()):  # mpremote prints what it got
            transport.enter_raw_repl(soft_reset=False, timeout_overall=RAW_REPL_TIMEOUT_S)
    except TransportError as e:
        return str(e) or "no answer"
    return None


def _close(transport: SerialTransportLike) -> None:
    try:
        transport.close()
    except Exception:  # noqa: BLE001 - the board may already be rebooting
        pass


def request_maintenance(device: str, timeout: float, key_file: str | None) -> str:
    """Ask a production pen for maintenance (it reboots into the REPL).
    Returns what happened; raises DeployError when the pen refuses."""
    from host.auth import KeyFileError
    from host.link import LinkError, PenRefused
    from host.pen import Pen

    try:
        with Pen(device, timeout=timeout, key_file=key_file) as pen:
            if pen.identity.get("mode") == "maintenance":
                return "already in maintenance mode"
            pen.maintenance()
    except (LinkError, PenRefused, KeyFileError) as e:
        raise DeployError(f"putting the pen into maintenance mode failed: {e}") from None
    return "maintenance mode granted"


def deploy(
    port: str | None, force: bool = False, verify: bool = True, timeout: float = 2.0, key_file: str | None = None
) -> None:
    from mpremote.transport import TransportError  # pyright: ignore[reportMissingTypeStubs]  # mpremote ships no stubs

    from host.discover import resolve_port

    device = resolve_port(port)
    version = firmware_version()
    transport = _open(device)
    with tempfile.TemporaryDirectory(prefix="pen-mpy-") as tmp:
        try:
            files = build(Path(tmp))
            print(f"deploy: firmware {version}, {len(files)} files compiled", file=sys.stderr)
            why = _raw_repl(transport)
            if why is not None:
                # a production pen locks the REPL: ask it for maintenance
                _close(transport)
                try:
                    done = request_maintenance(device, timeout, key_file)
                except DeployError as e:
                    raise DeployError(
                        f"the board on {device} does not enter the raw REPL ({why}); a production pen must be "
                        f"put into maintenance mode first: {e}"
                    ) from None
                print(f"deploy: {done}; waiting for the pen's REPL", file=sys.stderr)
                transport, why = _reopen_in_repl(device)
                if why is not None:
                    raise DeployError(
                        f"the board on {device} does not enter the raw REPL after maintenance mode ({why})"
                    )
            todo = plan(files, transport, force)
            skipped = len(files) - len(todo)
            nbytes = copy(files, todo, transport, lambda s: print(s, end="", file=sys.stderr, flush=True))
            print(f"\ndeploy: copied {len(todo)} files ({nbytes} B), {skipped} unchanged", file=sys.stderr)
            if verify:
                transport.exec_raw_no_follow("import machine\nmachine.reset()")
        except TransportError as e:
            raise DeployError(f"copy to {device} failed: {e}") from None
        finally:
            _close(transport)
    if verify:
        verify_version(device, version, timeout)


def _reopen_in_repl(device: str, wait_s: float = MAINTENANCE_REBOOT_S) -> tuple[SerialTransportLike, str | None]:
    """After `maintenance` the pen reboots into the REPL (and the USB port
    may disappear for a moment): open it again and enter the raw REPL."""
    end = time.monotonic() + wait_s
    why = "the port did not come back"
    while True:
        time.sleep(0.5)
        try:
            transport = _open(device)
        except DeployError as e:
            why = str(e)
            if time.monotonic() >= end:
                raise DeployError(
                    f"the pen did not come back after maintenance mode within {wait_s:g} s: {why}"
                ) from None
            continue
        why_not = _raw_repl(transport)
        if why_not is None or time.monotonic() >= end:
            return transport, why_not
        _close(transport)


def verify_version(device: str, version: str, timeout: float, wait_s: float = 15.0) -> None:
    from host.link import LinkError
    from host.pen import Pen

    end = time.monotonic() + wait_s
    last: Exception | None = None
    while time.monotonic() < end:
        time.sleep(0.5)
        try:
            with Pen(device, timeout=timeout) as pen:
                got = pen.identity.get("fw")
        except LinkError as e:
            last = e
            continue
        if got != version:
            raise DeployError(f"after reboot the pen reports firmware {got}, expected {version}")
        print(f"deploy: pen on {device} runs firmware {got}", file=sys.stderr)
        return
    raise DeployError(f"the pen did not answer after reboot within {wait_s:g} s: {last}")
