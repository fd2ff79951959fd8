"""penctl deploy / make flash: put the firmware on a board, safely.

1. Compile the firmware with mpy-cross (tools/compile_firmware.py) and sign
   the integrity manifest over the tree that goes onto the board
   (tools/manifest.py, docs/security.md SEC5) with the technician's key
   file. A provisioned pen boots unsigned firmware into safe mode, so
   deploy refuses to go on without the key for one.
2. Reach the board's raw REPL (mpremote): a fresh board offers it; a
   production pen is asked for maintenance mode first (an authenticated
   command), which reboots it into the REPL.
3. Check the board's MicroPython before copying: a .mpy (viper code above
   all) loads only on the mpy version and architecture it was compiled for.
4. Stage: the changed files go to ``.next/`` on the board and are checked
   there by their SHA-256. The firmware never runs from a half-copied tree.
5. Switch on the board in one script: each replaced file (and each code
   file the new firmware no longer has) moves to ``.prev/``, each staged
   file moves into place; ``.prev/LIST`` records the switch and
   ``.prev/TRIAL`` puts the new files on trial: the pen's boot guard
   (firmware/bootguard.py, run by the image's main.py) rolls them back by
   itself if they fail two boots before a verified start. Folders whose
   name starts with a dot are outside the integrity check (pen/integrity.py).
6. Reboot and verify: the pen answers, runs the version just deployed,
   integrity ``ok`` (``unverified`` only on a pen without a key), mode
   production, not in safe mode.
7. Any failure after the switch rolls back to ``.prev/`` (the last good
   firmware) and verifies that; every connection that authenticated logs
   out on the way out, on success and on failure.

The steps take a transport (mpremote's SerialTransport, or a fake in the
tests: tests/host/test_deploy.py) so the logic is tested without a board.
"""

from __future__ import annotations

import base64
import contextlib
import hashlib
import io
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Protocol

from host import resources

KEEP_SOURCE = ("main.py", "boot.py")
MANIFEST = "manifest.txt"
STAGE = ".next"
PREV = ".prev"
RAW_REPL_TIMEOUT_S = 4
MAINTENANCE_REBOOT_S = 10.0  # the pen reboots into the REPL; USB re-enumerates
# bytes of file data per raw-REPL script while copying (base64 in the
# script: 8 KB of text, compiled on the board in one piece of heap)
COPY_CHUNK = 6144
SCRIPT_SILENCE_S = 10.0  # a board script may print nothing for this long (mpremote's default)
BOOT_WAIT_S = 15.0  # the pen answers again after the reboot into the new firmware
ARCHS = ("none", "x86", "x64", "armv6", "armv6m", "armv7m", "armv7em", "armv7emsp", "armv7emdp", "xtensa", "xtensawin")


class DeployError(Exception):
    """Compiling, copying, verifying (or rolling back) failed."""


class Transport(Protocol):
    """What deploy uses of mpremote's SerialTransport (raw REPL entered):
    every step is a script run on the board."""

    def exec(self, command: str | bytes, data_consumer: Callable[[bytes], None] | None = None) -> bytes: ...


class SerialTransportLike(Transport, Protocol):
    def enter_raw_repl(self, soft_reset: bool = True, timeout_overall: float = 10) -> None: ...
    def exec_raw_no_follow(self, command: str | bytes) -> None: ...
    def exec_raw(
        self, command: str | bytes, timeout: float = 10, data_consumer: Callable[[bytes], None] | None = None
    ) -> tuple[bytes, bytes]: ...
    def close(self) -> None: ...


class Patient:
    """The board's scripts with a longer patience than mpremote's: exec
    gives up on a script silent for 10 s, and a raw-paste window not
    acknowledged within the serial timeout (1 s here). A real pen answers
    well within both; the virtual Pico under load runs at a twentieth of
    real time, where one rename that compacts littlefs metadata (several
    sector erases) is silent for longer (deploy --boot-wait)."""

    def __init__(self, transport: SerialTransportLike, silence_s: float) -> None:
        self.transport = transport
        self.silence_s = silence_s
        port = getattr(transport, "serial", None)
        if port is not None and getattr(port, "timeout", None) is not None:
            port.timeout = max(float(port.timeout), silence_s / 10)

    def exec(self, command: str | bytes, data_consumer: Callable[[bytes], None] | None = None) -> bytes:
        out, err = self.transport.exec_raw(command, timeout=self.silence_s, data_consumer=data_consumer)
        if err:
            raise DeployError(err.decode(errors="replace").strip())
        return out


def firmware_version() -> str:
    try:
        return resources.firmware_version()
    except resources.ResourceError as e:
        raise DeployError(str(e)) from None


# --- 1. build and sign ---
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


def sign(files: dict[str, bytes], key_file: str | Path | None) -> dict[str, bytes]:
    """files plus manifest.txt, signed with the key (tools/manifest.py, the
    same code the pen checks at boot with)."""
    try:
        tool = resources.tool("manifest")
    except resources.ResourceError as e:
        raise DeployError(str(e)) from None
    with tempfile.TemporaryDirectory(prefix="pen-sign-") as tmp:
        tree = Path(tmp)
        for rel, data in files.items():
            (tree / rel).parent.mkdir(parents=True, exist_ok=True)
            (tree / rel).write_bytes(data)
        cmd = [sys.executable, str(tool), str(tree)]
        if key_file:
            cmd[2:2] = ["--key-file", str(key_file)]
        r = subprocess.run(cmd, capture_output=True, text=True)
        if r.returncode != 0:
            raise DeployError("signing the manifest failed: " + (r.stderr or r.stdout).strip().splitlines()[-1])
        return {**files, MANIFEST: (tree / MANIFEST).read_bytes()}


# --- 3. the board's MicroPython ---
@dataclass(frozen=True)
class MpyAbi:
    version: int
    sub: int
    arch: int

    @property
    def text(self) -> str:
        arch = ARCHS[self.arch] if 0 <= self.arch < len(ARCHS) else str(self.arch)
        return f"mpy v{self.version}.{self.sub} {arch}"

    def loads(self, other: MpyAbi) -> bool:
        """Does a board with this ABI load a file compiled for `other`? As
        MicroPython's loader decides (py/persistentcode.c): the version
        always; native/viper code also the sub-version and the architecture."""
        if self.version != other.version:
            return False
        return other.arch == 0 or (self.sub == other.sub and self.arch == other.arch)

    def header(self) -> bytes:
        """The first bytes of a .mpy compiled for this ABI (bytecode-only
        files carry no architecture and no sub-version)."""
        return bytes((ord("M"), self.version, (self.arch << 2) | self.sub if self.arch else 0, 31))


def file_abi(data: bytes) -> MpyAbi:
    """The ABI in a .mpy header: b'M', version, (arch << 2) | sub-version."""
    if len(data) < 4 or data[0] != ord("M"):
        raise DeployError("not a .mpy file (compile step broken)")
    return MpyAbi(data[1], data[2] & 3, data[2] >> 2)


BOARD_ABI = "import sys\nprint(sys.implementation.version[0], sys.implementation.version[1], sys.implementation.version[2], getattr(sys.implementation, '_mpy', 0))"


def board_abi(transport: Transport) -> tuple[str, MpyAbi]:
    """(MicroPython version, ABI) of the board."""
    words = transport.exec(BOARD_ABI).decode(errors="replace").split()
    if len(words) != 4 or not all(w.isdigit() for w in words):
        raise DeployError(f"cannot read the board's MicroPython version ({' '.join(words)[:60]})")
    mpy = int(words[3])
    return ".".join(words[:3]), MpyAbi(mpy & 0xFF, (mpy >> 8) & 3, mpy >> 10)


def check_board(transport: Transport, files: dict[str, bytes]) -> str:
    """Refuses a board whose MicroPython cannot load the compiled files."""
    version, abi = board_abi(transport)
    if abi.version == 0:
        raise DeployError(f"the board runs MicroPython {version} without .mpy support; flash a current image")
    need = {file_abi(d) for p, d in files.items() if p.endswith(".mpy")}
    wrong = sorted((n.text for n in need if not abi.loads(n)), key=str)
    if wrong:
        raise DeployError(
            f"the board runs MicroPython {version} ({abi.text}); the firmware is compiled for {', '.join(wrong)}: "
            "flash the matching MicroPython image first (make firmware, then copy the UF2)"
        )
    return f"MicroPython {version} ({abi.text})"


# --- 4. stage ---
# Few, large scripts: each raw-REPL exec costs a round trip and a compile on
# the board, so the hashes of all files are one script, and the copy sends
# several files per script, base64 (4/3 of the bytes; a bytes repr of a .mpy
# is about 2.5 times its size), COPY_CHUNK bytes of file data per script.
HASH_SCRIPT = """import hashlib, binascii
def sha(p):
    h = hashlib.sha256()
    try:
        f = open(p, "rb")
    except OSError:
        return "-"
    while True:
        b = f.read(512)
        if not b:
            break
        h.update(b)
    f.close()
    return binascii.hexlify(h.digest()).decode()
for p in PATHS:
    print(sha(p), p)
"""
WRITE_LIB = """import binascii
def w(p, m, d):
    f = open(p, m)
    f.write(binascii.a2b_base64(d))
    f.close()
    print(".", end="")
"""


def board_hashes(transport: Transport, paths: list[str], what: str) -> dict[str, str]:
    """{path: SHA-256 hex of the file on the board, or "-" when missing}: one script."""
    if not paths:
        return {}
    out = _run(transport, HASH_SCRIPT.replace("PATHS", repr(paths)), what)
    got: dict[str, str] = {}
    for line in out.splitlines():
        h, _, p = line.strip().partition(" ")
        got[p] = h
    return got


def plan(files: dict[str, bytes], transport: Transport, force: bool = False) -> list[str]:
    """The files whose content on the board differs (or is missing)."""
    if force:
        return list(files)
    on_board = board_hashes(transport, list(files), "reading the board's files")
    return [p for p, data in files.items() if on_board.get(p) != hashlib.sha256(data).hexdigest()]


def copy(
    files: dict[str, bytes],
    todo: list[str],
    transport: Transport,
    progress: Callable[[str], None],
    prefix: str = "",
) -> int:
    """Writes the files of `todo` under prefix/ (folders made first, one
    script); bytes written."""
    total = sum(len(files[p]) for p in todo)
    dests = [f"{prefix}/{p}" if prefix else p for p in todo]
    _run(transport, board_lib() + "".join(f"mkparents({d!r})\n" for d in dests), "making the folders")
    done = 0
    lines: list[str] = []
    size = 0
    last = ""

    def send() -> None:
        _run(transport, WRITE_LIB + "".join(lines), "copying the firmware")
        progress(_bar(done, total, last))
        lines.clear()

    for path, dest in zip(todo, dests, strict=True):
        data = files[path]
        for i in range(0, max(len(data), 1), COPY_CHUNK):
            piece = data[i : i + COPY_CHUNK]
            if size + len(piece) > COPY_CHUNK and lines:
                send()
                size = 0
            mode = "wb" if i == 0 else "ab"
            lines.append(f"w({dest!r}, {mode!r}, {base64.b64encode(piece).decode()!r})\n")
            size += len(piece)
            done += len(piece)
            last = path
    if lines:
        send()
    return done


def stage(files: dict[str, bytes], todo: list[str], transport: Transport, progress: Callable[[str], None]) -> int:
    """Copy into .next/ and check every staged file by its hash."""
    _run(transport, board_lib() + f"rmtree({STAGE!r}, tick)\n", "clearing the staging folder")
    n = copy(files, todo, transport, progress, prefix=STAGE)
    staged = board_hashes(transport, [f"{STAGE}/{p}" for p in todo], "checking the staged files")
    for path in todo:
        if staged.get(f"{STAGE}/{path}") != hashlib.sha256(files[path]).hexdigest():
            raise DeployError(f"the staged copy of {path} on the board differs from the build (bad cable?)")
    return n


def _bar(done: int, total: int, name: str, width: int = 30) -> str:
    frac = done / total if total else 1.0
    fill = int(frac * width)
    return f"\r[{'#' * fill}{'.' * (width - fill)}] {frac * 100:5.1f}% {done}/{total} B {name[:30]:<30}"


# --- 5. switch / roll back: small scripts run on the board (MicroPython and CPython) ---
# The helpers and the roll back are firmware/bootguard.py itself (the code
# the pen runs at boot to roll back by itself), sent as the script's head.
# Each file operation prints a dot: mpremote gives up on a script that is
# silent for 10 s, and a flash that erases slowly (or the virtual Pico, at
# a tenth of real time) can take longer than that for a whole switch. The
# script's last line is its result.
def board_lib() -> str:
    """firmware/bootguard.py without its comments, then tick() and code_files()."""
    try:
        guard = (resources.firmware_dir() / "bootguard.py").read_text()
    except (resources.ResourceError, OSError) as e:
        raise DeployError(f"cannot read firmware/bootguard.py: {e}") from None
    lines = [ln for ln in guard.splitlines() if ln.strip() and not ln.lstrip().startswith("#")]
    return "\n".join(lines) + "\n" + BOARD_EXTRA


BOARD_EXTRA = """def tick():
    print(".", end="")
def code_files(root=""):
    out = []
    for n in os.listdir(root or "."):
        if n.startswith(".") or n == "__pycache__":
            continue
        p = root + "/" + n if root else n
        if isdir(p):
            out += code_files(p)
        elif n.endswith(".py") or n.endswith(".mpy"):
            out.append(p)
    return out
"""


def switch_script(changed: list[str], keep: list[str]) -> str:
    """Move replaced and stale code files to .prev/, staged ones into place.
    .prev/LIST (written first: a switch cut short rolls back too) and
    .prev/TRIAL ("0": the new files are on trial until the pen's first
    verified start, firmware/bootguard.py) record it."""
    return board_lib() + (
        f"changed = {sorted(changed)!r}\n"
        f"keep = {sorted(keep)!r}\n"
        "rmtree(PREV, tick)\n"
        "os.mkdir(PREV)\n"
        "stale = [p for p in code_files() if p not in keep]\n"
        "moved = [p for p in sorted(set(changed + stale)) if exists(p)]\n"
        "new = [p for p in changed if p not in moved]\n"
        "f = open(LIST, 'w')\n"
        "for p in moved:\n"
        "    f.write('moved ' + p + '\\n')\n"
        "for p in new:\n"
        "    f.write('new ' + p + '\\n')\n"
        "f.close()\n"
        "f = open(TRIAL, 'w')\n"
        "f.write('0')\n"
        "f.close()\n"
        "for p in moved:\n"
        "    mkparents(PREV + '/' + p)\n"
        "    os.rename(p, PREV + '/' + p)\n"
        "    tick()\n"
        "for p in changed:\n"
        "    mkparents(p)\n"
        f"    os.rename({STAGE!r} + '/' + p, p)\n"
        "    tick()\n"
        f"rmtree({STAGE!r}, tick)\n"
        "print()\n"
        "print('switched', len(changed), len(moved))\n"
    )


def rollback_script() -> str:
    return board_lib() + (
        "r = roll_back('', tick)\n"
        "print()\n"
        "print('rolled back %d %d' % r if r else 'nothing to roll back (the pen rolled back at boot)')\n"
    )


def _run(transport: Transport, script: str, what: str) -> str:
    try:
        return transport.exec(script).decode(errors="replace").strip()
    except Exception as e:  # noqa: BLE001 - mpremote raises its own TransportError types
        raise DeployError(f"{what} on the board failed: {str(e).strip().splitlines()[-1] if str(e) else e}") from None


def switch(transport: Transport, files: dict[str, bytes], todo: list[str]) -> str:
    return _run(transport, switch_script(todo, list(files)), "switching to the new firmware").splitlines()[-1]


def roll_back(transport: Transport) -> str:
    return _run(transport, rollback_script(), "rolling back to the last good firmware").splitlines()[-1]


# --- 6. verify ---
@dataclass
class Booted:
    fw: str
    integrity: str
    mode: str
    state: str
    key: str

    def problems(self, version: str) -> list[str]:
        out: list[str] = []
        if self.fw != version:
            out.append(f"firmware {self.fw}, expected {version}")
        ok_integrity = ("ok",) if self.key == "set" else ("ok", "unverified")
        if self.integrity not in ok_integrity:
            out.append(f"integrity {self.integrity}")
        if self.mode != "production":
            out.append(f"mode {self.mode}")
        if self.state == "safe":
            out.append("safe mode")
        return out


def read_boot(device: str, timeout: float, wait_s: float = BOOT_WAIT_S) -> Booted:
    """What the rebooted pen says about itself (identity, security, status)."""
    from host.api import Pen
    from host.link import LinkError, PenRefused

    end = time.monotonic() + wait_s
    last: Exception | None = None
    while time.monotonic() < end:
        time.sleep(0.5)
        try:
            with Pen(device, timeout=timeout) as pen:
                sec = pen.security()
                st = pen.status()
                return Booted(
                    str(pen.identity.get("fw")),
                    str(sec.get("integrity", st.get("integrity", "?"))),
                    str(sec.get("mode", "?")),
                    str(st.get("state", "?")),
                    str(sec.get("key", "?")),
                )
        except (LinkError, PenRefused) as e:
            last = e
    raise DeployError(f"the pen did not answer after the reboot within {wait_s:g} s: {last}")


# --- the board connection ---
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


def pen_security(device: str, timeout: float) -> dict[str, object] | None:
    """The running pen's security state, or None when no pen firmware answers."""
    from host.api import Pen
    from host.link import LinkError, PenRefused

    try:
        with Pen(device, timeout=timeout) as pen:
            return pen.security()
    except (LinkError, PenRefused):
        return None


def request_maintenance(device: str, timeout: float, key_file: str | None) -> str:
    """Ask a production pen for maintenance (it reboots into the REPL).
    Returns what happened; raises DeployError when the pen refuses. The
    connection logs out whatever happens (Pen.close)."""
    from host.api import Pen
    from host.auth import KeyFileError
    from host.link import LinkError, PenRefused

    try:
        with Pen(device, timeout=timeout, key_file=key_file) as pen:
            if pen.identity.get("mode") == "maintenance":
                return "already in maintenance mode"
            pen.maintenance()
    except (LinkError, PenRefused, KeyFileError) as e:
        raise DeployError(f"putting the pen into maintenance mode failed: {e}") from None
    return "maintenance mode granted"


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


def repl(
    device: str, timeout: float, key_file: str | None, locked: bool = False, wait_s: float = MAINTENANCE_REBOOT_S
) -> SerialTransportLike:
    """The board in the raw REPL: directly, or through maintenance mode
    (at once when `locked`: production pen firmware answered)."""
    why = "production firmware locks the REPL"
    if not locked:
        transport = _open(device)
        why = _raw_repl(transport)
        if why is None:
            return transport
        _close(transport)  # a production pen locks the REPL: ask it for maintenance
    try:
        done = request_maintenance(device, timeout, key_file)
    except DeployError as e:
        raise DeployError(
            f"the board on {device} does not enter the raw REPL ({why}); a production pen must be "
            f"put into maintenance mode first: {e}"
        ) from None
    print(f"deploy: {done}; waiting for the pen's REPL", file=sys.stderr)
    transport, why = _reopen_in_repl(device, wait_s)
    if why is not None:
        _close(transport)
        raise DeployError(f"the board on {device} does not enter the raw REPL after maintenance mode ({why})")
    return transport


def _reset(transport: SerialTransportLike) -> None:
    try:
        transport.exec_raw_no_follow("import machine\nmachine.reset()")
    except Exception:  # noqa: BLE001 - the board resets under our feet
        pass
    _close(transport)


def say(text: str) -> None:
    print(text, file=sys.stderr)


def deploy(
    port: str | None,
    force: bool = False,
    verify: bool = True,
    timeout: float = 2.0,
    key_file: str | None = None,
    boot_wait_s: float | None = None,
) -> None:
    """boot_wait_s: how long a reboot may take before the pen answers (into
    maintenance mode, into the new firmware, after a roll back); None: the
    defaults for a real pen (10 s and 15 s). The virtual Pico, at about a
    tenth of real time, needs minutes (tests/chip/test_chip_maintenance.py)."""
    reboot_s = MAINTENANCE_REBOOT_S if boot_wait_s is None else boot_wait_s
    boot_s = BOOT_WAIT_S if boot_wait_s is None else boot_wait_s
    # a board slow to reboot is slow to run a script too
    silence_s = SCRIPT_SILENCE_S if boot_wait_s is None else max(SCRIPT_SILENCE_S, boot_wait_s / 10)
    from host.auth import default_key_file
    from host.discover import resolve_port

    device = resolve_port(port)
    if "://" not in device and not Path(device).exists():
        raise DeployError(f"cannot open {device}: no such port ('penctl ports' lists the serial ports)")
    version = firmware_version()
    key_path = Path(key_file) if key_file else default_key_file()
    sec = pen_security(device, timeout)  # None: no pen firmware answers (a fresh board)
    provisioned = sec is not None and sec.get("key") == "set"
    locked = sec is not None and sec.get("mode") != "maintenance"
    if locked and not provisioned:
        raise DeployError(
            f"the pen on {device} runs production firmware without a technician key, so it cannot be put into "
            "maintenance mode over the line: provision a key (penctl auth --provision), or use the maintenance "
            "gesture (trigger held 5 s at power-up), then deploy"
        )
    if provisioned and not key_path.exists():
        raise DeployError(
            f"the pen has a key: its firmware must be signed with it, and there is no key file at {key_path} "
            "(give --key-file)"
        )
    with tempfile.TemporaryDirectory(prefix="pen-mpy-") as tmp:
        files = build(Path(tmp))
        if key_path.exists():
            files = sign(files, key_path)
            say(f"deploy: firmware {version}, {len(files) - 1} files compiled, manifest signed")
        else:
            say(f"deploy: firmware {version}, {len(files)} files compiled; no key file: not signed (factory state)")
    raw = repl(device, timeout, key_file, locked, wait_s=reboot_s)
    transport = Patient(raw, silence_s)
    try:
        say(f"deploy: the board runs {check_board(transport, files)}")
        todo = plan(files, transport, force)
        nbytes = stage(files, todo, transport, lambda s: print(s, end="", file=sys.stderr, flush=True))
        say(f"\ndeploy: staged {len(todo)} files ({nbytes} B) in {STAGE}/, {len(files) - len(todo)} unchanged")
        say(f"deploy: {switch(transport, files, todo)}; the last good firmware is kept in {PREV}/")
    except BaseException:
        _close(raw)  # nothing switched: the board keeps what it had
        raise
    if not verify:
        _close(raw)
        return
    _reset(raw)
    booted = read_boot(device, timeout, wait_s=boot_s)
    problems = booted.problems(version)
    if not problems:
        say(f"deploy: pen on {device} runs firmware {booted.fw}, integrity {booted.integrity}, mode {booted.mode}")
        return
    say(f"deploy: after the reboot: {', '.join(problems)}; rolling back")
    raw = repl(device, timeout, key_file, locked=True, wait_s=reboot_s)
    try:
        say(f"deploy: {roll_back(Patient(raw, silence_s))}")
    finally:
        _reset(raw)
    old = read_boot(device, timeout, wait_s=boot_s)
    raise DeployError(
        f"the new firmware failed its check after the reboot ({', '.join(problems)}); rolled back: the pen runs "
        f"firmware {old.fw}, integrity {old.integrity}, mode {old.mode}"
    )
