"""penctl deploy / make flash: compile the firmware with mpy-cross
(tools/compile_firmware.py), copy it with mpremote's library, skipping files
whose SHA-256 on the board already matches, reboot, and check that the pen
reports the firmware version just deployed.

The board must be reachable on mpremote's raw REPL: a fresh board, or a pen
put into maintenance mode (an authenticated protocol command, see
docs/security.md) since production firmware locks the REPL.
"""

from __future__ import annotations

import contextlib
import hashlib
import io
import re
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable
from pathlib import Path
from typing import Protocol

ROOT = Path(__file__).resolve().parent.parent
FIRMWARE = ROOT / "firmware"
COMPILER = ROOT / "tools" / "compile_firmware.py"
KEEP_SOURCE = ("main.py", "boot.py")
RAW_REPL_TIMEOUT_S = 4


class DeployError(Exception):
    """Compiling, copying or verifying failed."""


class Transport(Protocol):
    def fs_exists(self, src: str) -> bool: ...
    def fs_mkdir(self, path: str) -> None: ...
    def fs_hashfile(self, path: str, algo: str, chunk_size: int = 256) -> bytes: ...
    def fs_writefile(
        self, dest: str, data: bytes, chunk_size: int = 256, progress_callback: Callable[[int, int], None] | None = None
    ) -> None: ...


def firmware_version() -> str:
    m = re.search(r'FIRMWARE_VERSION\s*=\s*"([^"]+)"', (FIRMWARE / "pen" / "version.py").read_text())
    if not m:
        raise DeployError("cannot read FIRMWARE_VERSION from firmware/pen/version.py")
    return m.group(1)


def build(out: Path) -> dict[str, bytes]:
    """Compile to out/ and return {path on the board: content}."""
    r = subprocess.run([sys.executable, str(COMPILER), "--out", str(out)], capture_output=True, text=True)
    if r.returncode != 0:
        raise DeployError("mpy-cross failed: " + (r.stderr or r.stdout).strip().splitlines()[-1])
    files: dict[str, bytes] = {}
    for mpy in sorted((out / "firmware").rglob("*.mpy")):
        rel = mpy.relative_to(out / "firmware").as_posix()
        if Path(rel).with_suffix(".py").name in KEEP_SOURCE:
            continue
        files[rel] = mpy.read_bytes()
    for name in KEEP_SOURCE:
        files[name] = (FIRMWARE / name).read_bytes()
    return files


def plan(files: dict[str, bytes], transport: Transport, force: bool = False) -> list[str]:
    """The files whose content on the board differs (or is missing)."""
    todo = []
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


def deploy(port: str | None, force: bool = False, verify: bool = True, timeout: float = 2.0) -> None:
    from mpremote.transport import TransportError
    from mpremote.transport_serial import SerialTransport

    from host.discover import resolve_port

    device = resolve_port(port)
    version = firmware_version()
    try:
        transport = SerialTransport(device, baudrate=115200, timeout=1)
    except Exception as e:  # noqa: BLE001 - mpremote raises plain errors
        raise DeployError(f"cannot open {device}: {e}") from None
    with tempfile.TemporaryDirectory(prefix="pen-mpy-") as tmp:
        try:
            files = build(Path(tmp))
            print(f"deploy: firmware {version}, {len(files)} files compiled", file=sys.stderr)
            try:
                with contextlib.redirect_stdout(io.StringIO()):  # mpremote prints what it got
                    transport.enter_raw_repl(soft_reset=False, timeout_overall=RAW_REPL_TIMEOUT_S)
            except TransportError as e:
                raise DeployError(
                    f"the board on {device} does not enter the raw REPL ({e}); a production pen must be put "
                    "into maintenance mode first"
                ) from None
            todo = plan(files, transport, force)
            skipped = len(files) - len(todo)
            nbytes = copy(files, todo, transport, lambda s: print(s, end="", file=sys.stderr, flush=True))
            print(f"\ndeploy: copied {len(todo)} files ({nbytes} B), {skipped} unchanged", file=sys.stderr)
            if verify:
                transport.exec_raw_no_follow("import machine\nmachine.reset()")
        except TransportError as e:
            raise DeployError(f"copy to {device} failed: {e}") from None
        finally:
            try:
                transport.close()
            except Exception:  # noqa: BLE001 - the board may already be rebooting
                pass
    if verify:
        verify_version(device, version, timeout)


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
