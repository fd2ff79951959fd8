"""A fake serial device for penctl's tests: a pty whose far end answers
each line the host sends, so penctl meets a port that is not a pen (an
echo, a bare REPL, an old or incompatible firmware, line noise)."""

from __future__ import annotations

import os
import select
import threading
import tty
from collections.abc import Callable

from host.link import crc16


class PtyDevice:
    """A pty whose far end answers each line the host sends with answer(line)."""

    def __init__(self, answer: Callable[[bytes], bytes]) -> None:
        self.master, self.slave = os.openpty()
        tty.setraw(self.slave)
        self.port = os.ttyname(self.slave)
        self.answer = answer
        self.stop = False
        self.t = threading.Thread(target=self._run, daemon=True)
        self.t.start()

    def _run(self) -> None:
        buf = b""
        while not self.stop:
            if not select.select([self.master], [], [], 0.05)[0]:
                continue
            buf += os.read(self.master, 1024)
            while b"\n" in buf:
                line, buf = buf.split(b"\n", 1)
                if line.strip():
                    os.write(self.master, self.answer(line))

    def close(self) -> None:
        self.stop = True
        self.t.join()
        os.close(self.master)
        os.close(self.slave)


def framed(line: bytes, body: str) -> bytes:
    rid = line[1:].split(b" ", 1)[0].decode()
    head = f"@{rid} {body}".encode()
    return head + b"*%04X\n" % crc16(head)
