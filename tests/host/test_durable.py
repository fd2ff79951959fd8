"""An `ok` is durable (docs/persistence.md): when the pen says a working value is
applied but not yet stored (`stored=0`), Pen.set asks it to `sync` before
returning, so penctl never reports a value that a reset would lose."""

from __future__ import annotations

from host.api import Pen
from host.link import crc16
from tests.host.ptydevice import PtyDevice


def test_set_waits_until_the_pen_has_stored_the_value() -> None:
    sent: list[str] = []

    def answer(line: bytes) -> bytes:
        rid, _, rest = line[1:].partition(b" ")
        body = rest.rsplit(b"*", 1)[0].decode()
        sent.append(body)
        reply = {
            "id": "ok fw=0.2.0 proto=1 board=fake serial=AB caps=crc,rid,rt cfg=0000 max_line=160",
            "set depth 0.70": "ok depth=0.70 stored=0",
            "sync": "ok stored=1 writes=3",
        }.get(body, "err 1 unknown_command: no")
        head = b"@" + rid + b" " + reply.encode()
        return head + b"*%04X\n" % crc16(head)

    dev = PtyDevice(answer)
    try:
        with Pen(dev.port, timeout=1.0) as pen:
            r = pen.set("depth", "0.70")
    finally:
        dev.close()
    assert sent[-2:] == ["set depth 0.70", "sync"]
    assert r == {"depth": 0.7, "stored": 1, "writes": 3}
