# Bounded rings of fixed-size records on flash (docs/persistence.md), and
# the event log built on one.
#
# A ring is NSEG segment files <prefix>0..<prefix>N-1 of up to PER_SEG
# records each, written in turn; when the current segment is full the next
# one is removed and restarted, dropping the oldest records. A record is
#   magic:u8 seq:u32 body crc32:u32
# One append = one open(..., "ab") / write / close: littlefs commits a file
# on close, so a power cut loses at most the record being written; the CRC
# catches a torn record on storage without that guarantee, and a segment
# with a torn tail is never appended to again.
import struct

from pen.compat import const, lazy
from pen.store import crc32

NSEG = const(4)
PER_SEG = const(32)
QUEUE_MAX = const(16)  # events held in RAM while the drive runs


class Ring:
    def __init__(self, ops, prefix, body_size, magic, nseg=NSEG, per_seg=PER_SEG):
        self.ops = ops
        self.prefix = prefix
        self.body = body_size
        self.size = body_size + 9
        self.magic = magic
        self.nseg = nseg
        self.per_seg = per_seg
        self.seg = 0  # segment being appended to
        self.count = 0  # records in it
        self.next_seq = 1
        self.torn = 0  # torn or corrupt records seen at scan
        self.appends = 0

    def _name(self, i):
        return "%s%d" % (self.prefix, i)

    # --- scan (boot), clear and read (commands): code in pen.ringx ---
    def scan(self):
        """At boot: find the newest segment and the next sequence number."""
        return lazy("ringx", "ring_scan", self)

    def clear(self):
        """Remove every record; sequence numbers go on from where they were,
        so a cleared log can still be told apart from a fresh one."""
        lazy("ringx", "ring_clear", self)

    def read(self, since=0, limit=1000):
        """(seq, body) with seq >= since, oldest first, at most `limit`."""
        return lazy("ringx", "ring_read", self, since, limit)

    def append(self, body):
        if len(body) != self.body:
            raise ValueError("record size")
        if self.count >= self.per_seg:
            self.seg = (self.seg + 1) % self.nseg
            self.ops.remove(self._name(self.seg))
            self.count = 0
        seq = self.next_seq
        r = bytes([self.magic]) + struct.pack("<I", seq) + body
        self.ops.append(self._name(self.seg), r + struct.pack("<I", crc32(r)))
        self.next_seq = seq + 1
        self.count += 1
        self.appends += 1
        return seq


# --- the event log ---
EV_BOOT = const(1)
EV_FAULT = const(2)
EV_LIMIT = const(3)
EV_SETTING = const(4)
EV_AUTH = const(5)
EV_INTEGRITY = const(6)
EV_SESSION = const(7)
EV_STORAGE = const(8)
EV_OTHER = const(9)
TEXT_MAX = const(47)
EV_BODY = const(4 + 4 + 1 + TEXT_MAX)  # boot, ms since boot, kind, text
_EV_MAGIC = const(0xE5)


def clean_text(text):
    """Event text is one token on the wire: printable, no spaces or '|'."""
    out = []
    for c in text[:TEXT_MAX]:
        o = ord(c)
        if c == " ":
            out.append(",")
        elif o < 0x21 or o > 0x7E or c == "|":
            out.append("?")
        else:
            out.append(c)
    return "".join(out)


class EventLog:
    """Timestamped events (boot counter + ms since boot). Events raised while
    the drive runs wait in a small RAM queue and are written when it stops
    (flash writes stall the CPU); `listeners` get every event at once."""

    def __init__(self, ring):
        self.ring = ring
        self.queue = []
        self.dropped = 0
        self.errors = 0
        self.listeners = []

    def add(self, boot, ms, kind, text):
        text = clean_text(text)
        for fn in self.listeners:
            fn(kind, text)
        if len(self.queue) >= QUEUE_MAX:
            self.dropped += 1
            return
        self.queue.append((boot, ms, kind, text))

    def flush(self):
        """Write queued events (drive off only). Returns the number written."""
        n = 0
        while self.queue:
            boot, ms, kind, text = self.queue[0]
            raw = text.encode()
            body = struct.pack("<IIB", boot, ms & 0xFFFFFFFF, kind) + raw + b"\x00" * (TEXT_MAX - len(raw))
            self.ring.append(body)
            self.queue.pop(0)
            n += 1
        return n

    def read(self, since=0, limit=1000):
        """[(seq, boot, ms, kind_name, text)] oldest first."""
        return lazy("ringx", "log_read", self, since, limit)
