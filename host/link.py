"""The serial link to a pen: one request line out, one reply line back.

Unprompted lines (events "!", telemetry "~", real-time status "?") are kept
apart from replies so they are never mistaken for one.
"""

from __future__ import annotations

import os
import time
from collections import deque

import serial

BAUD = 115200  # ignored by USB CDC and the simulator's pty; kept for UARTs


class LinkError(Exception):
    """The pen could not be reached or did not answer."""


class PenRefused(Exception):
    """The pen answered with an error: nothing was changed."""

    def __init__(self, code: int, name: str, text: str) -> None:
        super().__init__(f"pen refused ({code} {name}): {text}")
        self.code = code
        self.name = name
        self.text = text


def resolve_port(port: str | None) -> str:
    """--port, else $PENCTL_PORT; discovery by USB VID:PID comes with
    host.discover."""
    if port:
        return port
    env = os.environ.get("PENCTL_PORT")
    if env:
        return env
    raise LinkError("no pen port given: use --port PORT or set PENCTL_PORT")


class Link:
    def __init__(self, port: str, timeout: float = 2.0) -> None:
        self.port = port
        self.timeout = timeout
        try:
            self.ser = serial.serial_for_url(port, baudrate=BAUD, timeout=0.05, exclusive=True)
        except (serial.SerialException, OSError, ValueError) as e:
            raise LinkError(f"cannot open {port}: {e}") from e
        self.unprompted: deque[str] = deque(maxlen=10000)
        self._buf = b""
        # a fresh line start: whatever a previous program left half-typed
        self.ser.write(b"\n")
        self._drain(0.05)

    def close(self) -> None:
        self.ser.close()

    def _drain(self, seconds: float) -> None:
        end = time.monotonic() + seconds
        while time.monotonic() < end:
            line = self._readline(end)
            if line is None:
                break

    def _readline(self, deadline: float) -> str | None:
        while b"\n" not in self._buf:
            if time.monotonic() >= deadline:
                return None
            try:
                chunk = self.ser.read(self.ser.in_waiting or 1)
            except (serial.SerialException, OSError) as e:
                raise LinkError(f"lost the pen on {self.port}: {e}") from e
            self._buf += chunk
        line, self._buf = self._buf.split(b"\n", 1)
        return line.decode("ascii", errors="replace").rstrip("\r")

    def request(self, line: str) -> str:
        """Send one command; return the text after 'ok' or raise PenRefused."""
        try:
            self.ser.write(line.encode("ascii") + b"\n")
        except (serial.SerialException, OSError) as e:
            raise LinkError(f"cannot write to {self.port}: {e}") from e
        deadline = time.monotonic() + self.timeout
        while True:
            reply = self._readline(deadline)
            if reply is None:
                raise LinkError(f"no answer from the pen on {self.port} within {self.timeout:g} s to '{line}'")
            if reply.startswith(("!", "~", "?")):
                self.unprompted.append(reply)
                continue
            if reply == "ok" or reply.startswith("ok "):
                return reply[3:]
            if reply.startswith("err "):
                code, _, rest = reply[4:].partition(" ")
                name, _, text = rest.partition(": ")
                raise PenRefused(int(code) if code.isdigit() else -1, name, text)
            # garbage on the line (noise, a half line): skip it

    def send_byte(self, b: bytes) -> None:
        self.ser.write(b)


def parse_pairs(text: str) -> dict[str, str]:
    out: dict[str, str] = {}
    for word in text.split():
        key, sep, value = word.partition("=")
        if sep:
            out[key] = value
    return out
