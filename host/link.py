"""The serial link to a pen (docs/protocol.md).

Every request goes out as ``@ID BODY*CRC`` after a line feed that ends any
half line left on the pen (resync). The reply that carries the same id and a
valid CRC-16 is the answer; lines with a bad check, other ids or no id are
garbage and skipped. Unprompted lines (events ``!``, telemetry ``~``,
real-time status ``?``) are verified and kept apart, never taken as replies.

Timeouts: each attempt waits ``timeout`` seconds. An idempotent request is
retried up to ``RETRIES`` times with the same id (a noisy cable garbles a
150-byte reply often enough that one retry is not enough: at 1 % bad bytes
most handshakes need a second or third try); the pen answers a repeated id+line from its
replay cache without running it twice. A reply ``err 20/21/22`` (line too long, bad
bytes, bad check) means the pen did not act, so any request is retried (up to ``RETRIES`` times) after it.
Authentication answers (``auth RESPONSE``) and key commands (``key ...``) are
never resent after a timeout, whatever the caller says: an answer is good for
one nonce only, and a second one that the pen runs counts as a failed attempt.
"""

from __future__ import annotations

import binascii
import errno
import importlib.util
import json
import os
import random
import re
import stat
import time
from collections import deque
from collections.abc import Callable
from pathlib import Path

import serial

from host.discover import resolve_port

__all__ = [
    "Link",
    "LinkError",
    "PenRefused",
    "PenIncompatible",
    "PortUsageError",
    "resolve_port",
    "parse_pairs",
    "ERRORS",
]

BAUD = 115200  # ignored by USB CDC and the simulator's pty; kept for UARTs
# refusals that mean 'garbled on the way, not acted on': safe to send again
LINK_ERRORS = {20, 21, 22}
# of those, the ones that cannot come from a well-formed request of ours: when
# they persist, the line is noisy (exit 3); a line too long (20) persists
# because the request is too long, and stays the pen's refusal
NOISE_ERRORS = {21, 22}
# requests never resent after a timeout (see the module docstring); a bare
# 'auth' (asking for a nonce) may be: a new nonce replaces the old one
NOT_RETRIED = ("auth ", "key ")
RETRIES = 3  # resends after a timeout or a garbled request
ERRORS_FILE = Path(__file__).resolve().parent / "errors.json"


def _load_errors() -> dict[int, dict[str, str]]:
    data = json.loads(ERRORS_FILE.read_text())
    return {int(e["code"]): {"name": e["name"], "hint": e.get("hint", "")} for e in data["errors"]}


ERRORS = _load_errors()


class LinkError(Exception):
    """The pen could not be reached or did not answer."""


class PenIncompatible(LinkError):
    """The pen answers, but speaks a protocol this host does not."""


class PortUsageError(ValueError):
    """The port given is not something a pen can be on (an unknown URL scheme)."""


# lines only a MicroPython REPL prints (the pen's firmware locks the REPL)
REPL_SIGNS = (">>>", "MicroPython v", "Traceback (most recent call last)", "raw REPL", 'Type "help()"')


def check_port_name(port: str) -> None:
    """A pyserial URL must have a scheme pyserial knows (socket://, rfc2217://,
    loop://, ...); anything else is a usage error, not a link problem."""
    m = re.match(r"^([A-Za-z][A-Za-z0-9+.-]*)://", port)
    if m is None:
        return
    scheme = m.group(1).lower()
    known = re.fullmatch(r"[a-z0-9]+", scheme) is not None and (
        importlib.util.find_spec(f"serial.urlhandler.protocol_{scheme}") is not None
    )
    if not known:
        raise PortUsageError(
            f"--port {port}: unknown URL scheme '{scheme}://' (give a device such as /dev/ttyACM0, "
            "or socket://HOST:PORT, rfc2217://HOST:PORT)"
        )


def open_error(port: str, e: BaseException) -> LinkError:
    """Why a port did not open, from the errno, in one line."""
    no = getattr(e, "errno", None)
    if not isinstance(no, int) and e.args and isinstance(e.args[0], int):
        no = e.args[0]
    text = str(e)
    if no == errno.ENOENT:
        return LinkError(f"cannot open {port}: no such port ('penctl ports' lists the serial ports)")
    if no in (errno.EACCES, errno.EPERM):
        return LinkError(
            f"cannot open {port}: permission denied; add your user to the 'dialout' group "
            "(sudo usermod -aG dialout $USER, then log in again)"
        )
    if no in (errno.EBUSY, errno.EAGAIN) or "exclusively lock" in text:
        return LinkError(f"cannot open {port}: busy, another program has it open (a terminal, another penctl)")
    if no == errno.ENOTTY or "Inappropriate ioctl" in text:
        return LinkError(f"cannot open {port}: not a serial port (not a tty)")
    return LinkError(f"cannot open {port}: {text}")


def _not_a_tty(port: str) -> bool:
    try:
        return not stat.S_ISCHR(os.stat(port).st_mode)
    except OSError:
        return False


class PenRefused(Exception):
    """The pen answered with an error: nothing was changed."""

    def __init__(self, code: int, name: str, text: str) -> None:
        hint = ERRORS.get(code, {}).get("hint", "")
        super().__init__(f"pen refused ({code} {name}): {text}" + (f"; {hint}" if hint else ""))
        self.code = code
        self.name = name
        self.text = text


def crc16(data: bytes) -> int:
    """CRC-16/CCITT-FALSE, the pen's line check (pen/frame.py)."""
    return binascii.crc_hqx(data, 0xFFFF)


def frame(rid: str, body: str) -> bytes:
    head = f"@{rid} {body}".encode("ascii")
    return head + b"*%04X\n" % crc16(head)


def unframe(raw: bytes) -> str | None:
    """A line from the pen -> its text without the check; None if the check
    is missing or wrong (garbled on the way)."""
    raw = raw.rstrip(b"\r")
    if len(raw) < 5 or raw[-5:-4] != b"*":
        return None
    try:
        want = int(raw[-4:], 16)
    except ValueError:
        return None
    if crc16(raw[:-5]) != want:
        return None
    try:
        return raw[:-5].decode("ascii")
    except UnicodeDecodeError:
        return None


class Link:
    def __init__(self, port: str, timeout: float = 2.0, retries: int = RETRIES) -> None:
        self.port = port
        self.timeout = timeout
        self.retries = retries
        self._rid = random.randrange(1, 9999)  # ids differ across runs: a replay needs the same id
        check_port_name(port)
        if "://" not in port and _not_a_tty(port):
            raise LinkError(f"cannot open {port}: not a serial port (not a tty)")
        try:
            self.ser = serial.serial_for_url(port, baudrate=BAUD, timeout=0.05, exclusive=True)
        except (serial.SerialException, OSError, ValueError) as e:
            raise open_error(port, e) from e
        self.unprompted: deque[str] = deque(maxlen=10000)
        self.on_unprompted: Callable[[str], None] | None = None
        self.garbage = 0  # lines skipped: bad check, foreign ids
        self.retried = 0
        self._buf = b""

    def close(self) -> None:
        try:
            self.ser.close()
        except (serial.SerialException, OSError):
            pass

    # --- reading ---
    def _read_raw(self, deadline: float) -> bytes | None:
        while b"\n" not in self._buf:
            if time.monotonic() >= deadline:
                return None
            try:
                chunk = self.ser.read(self.ser.in_waiting or 1)
            except (serial.SerialException, OSError) as e:
                raise LinkError(f"lost the pen on {self.port}: {e}") from e
            self._buf += chunk
            if len(self._buf) > 65536:  # no line end in sight: keep the tail
                self._buf = self._buf[-4096:]
        line, self._buf = self._buf.split(b"\n", 1)
        return line

    def _dispatch_unprompted(self, text: str) -> None:
        if self.on_unprompted is not None:
            self.on_unprompted(text)
        else:
            self.unprompted.append(text)

    def poll(self, seconds: float) -> int:
        """Read until at least one line has arrived (or `seconds` passed),
        then everything already buffered; unprompted lines are handed on.
        Returns the number of lines read."""
        deadline = time.monotonic() + seconds
        n = 0
        while True:
            if n and b"\n" not in self._buf and not self.ser.in_waiting:
                return n
            raw = self._read_raw(deadline)
            if raw is None:
                return n
            n += 1
            text = unframe(raw)
            if text is None:
                self.garbage += 1
            elif text[:1] in ("!", "~", "?"):
                self._dispatch_unprompted(text)

    # --- requests ---
    def _next_rid(self) -> str:
        self._rid = self._rid % 9999 + 1
        return str(self._rid)

    def request(self, body: str, idempotent: bool = True) -> str:
        """Send one command; return the text after 'ok' or raise PenRefused.
        An idempotent request is resent up to `retries` times after a timeout (never one of
        NOT_RETRIED)."""
        idempotent = idempotent and not retry_unsafe(body)
        rid = self._next_rid()
        data = frame(rid, body)
        timeouts = 0
        checks = 0
        while True:
            try:
                self.ser.write(b"\n" + data)
            except (serial.SerialException, OSError) as e:
                raise LinkError(f"cannot write to {self.port}: {e}") from e
            reply = self._await(rid, body)
            if reply is None:
                timeouts += 1
                if idempotent and timeouts <= self.retries:
                    self.retried += 1
                    continue
                raise LinkError(
                    f"no answer from the pen on {self.port} within {self.timeout:g} s to '{body}'"
                    + (f" (after {timeouts - 1} retries)" if timeouts > 1 else "")
                    + "; check the cable and that the pen is on"
                )
            if reply.startswith("err "):
                code_s, _, rest = reply[4:].partition(" ")
                name, _, text = rest.partition(": ")
                code = int(code_s) if code_s.isdigit() else -1
                if code in LINK_ERRORS:
                    if checks < self.retries:
                        checks += 1  # garbled on the way in: the pen did not act
                        self.retried += 1
                        continue
                    ours = code == 21 and any(not 0x20 <= ord(c) < 0x7F for c in body)
                    if code not in NOISE_ERRORS or ours:  # the request itself is too long / carries bad bytes
                        raise PenRefused(code, name, text)
                    raise LinkError(
                        f"the line to the pen on {self.port} is too noisy: the pen got '{body}' garbled "
                        f"{checks + 1} times ({code} {name}) and did not act on it; check the cable"
                    )
                raise PenRefused(code, name, text)
            if reply == "ok" or reply.startswith("ok "):
                return reply[3:]
            raise LinkError(f"unexpected answer from the pen to '{body}': {reply[:60]}")

    def _await(self, rid: str, body: str) -> str | None:
        deadline = time.monotonic() + self.timeout
        prefix = f"@{rid} "
        while True:
            raw = self._read_raw(deadline)
            if raw is None:
                return None
            text = unframe(raw)
            if text is None:
                self.garbage += 1
                low = raw.decode("ascii", "replace")
                if low.startswith(f"err 1 unknown_command: unknown command '@{rid}'"):
                    raise PenIncompatible(
                        f"the pen on {self.port} does not understand checked requests (protocol 0); "
                        "deploy current firmware with 'penctl deploy'"
                    )
                if low.lstrip().startswith(REPL_SIGNS):
                    raise PenIncompatible(
                        f"the board on {self.port} runs MicroPython without the pen firmware: flash it "
                        f"(penctl --port {self.port} deploy, or make flash PORT={self.port})"
                    )
                continue
            if text.startswith(prefix):
                reply = text[len(prefix) :]
                if reply == body:
                    raise PenIncompatible(
                        f"the device on {self.port} echoes what it is sent: it is not a pen "
                        "(a loopback plug, or a terminal with echo on)"
                    )
                return reply
            if text[:1] in ("!", "~", "?"):
                self._dispatch_unprompted(text)
            else:
                self.garbage += 1  # an old reply, or an answer to someone's typing

    def send_byte(self, b: bytes) -> None:
        try:
            self.ser.write(b)
        except (serial.SerialException, OSError) as e:
            raise LinkError(f"cannot write to {self.port}: {e}") from e


def retry_unsafe(body: str) -> bool:
    """True for requests that must not be sent twice after a timeout."""
    return body.lstrip().startswith(NOT_RETRIED)


def parse_pairs(text: str) -> dict[str, str]:
    out: dict[str, str] = {}
    for word in text.split():
        key, sep, value = word.partition("=")
        if sep:
            out[key] = value
    return out
