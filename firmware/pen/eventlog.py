# Bounded rings of fixed-size records on flash (docs/persistence.md), and
# the event log built on one.
#
# A ring is NSEG segment files <prefix>0..<prefix>N-1 of up to _PER_SEG
# records each, written in turn; when the current segment is full the next
# one is removed and restarted, dropping the oldest records. A record is
#   magic:u8 seq:u32 body crc32:u32
# One append = one open(..., "ab") / write / close: littlefs commits a file
# on close, so a power cut loses at most the record being written; the CRC
# catches a torn record on storage without that guarantee, and a segment
# with a torn tail is never appended to again.
import struct
import sys

from pen.compat import const, micropython
from pen.store import seal, unseal

NSEG = const(4)
_PER_SEG = const(32)
_QUEUE_MAX = const(16)  # events held in RAM while the drive runs


class Ring:
    def __init__(self, ops, prefix, body_size, magic, nseg=NSEG, per_seg=_PER_SEG):
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

    def _records(self, data):
        """(seq, body) of every valid record in a segment's bytes."""
        out = []
        sz = self.size
        if len(data) % sz:
            self.torn += 1  # a partial record at the end
        for off in range(0, len(data) - sz + 1, sz):
            r = data[off : off + sz]
            if r[0] != self.magic or unseal(r, sz - 4) is None:
                self.torn += 1
                continue
            out.append((struct.unpack("<I", r[1:5])[0], bytes(r[5 : sz - 4])))
        return out

    def scan(self):
        """At boot: find the newest segment and the next sequence number."""
        self.torn = 0
        best = -1
        for i in range(self.nseg):
            data = self.ops.read(self._name(i))
            if not data:
                continue
            recs = self._records(data)
            for seq, _ in recs:
                if seq >= self.next_seq:
                    self.next_seq = seq + 1
                if seq > best:
                    best = seq
                    self.seg = i
                    whole = len(recs) * self.size == len(data)
                    # a torn tail: never append behind it, start a new segment
                    self.count = len(recs) if whole else self.per_seg
        if best < 0:
            self.seg = 0
            self.count = 0
            self.ops.remove(self._name(0))
        return self.torn

    def clear(self):
        """Remove every record; sequence numbers go on from where they were,
        so a cleared log can still be told apart from a fresh one."""
        for i in range(self.nseg):
            self.ops.remove(self._name(i))
        self.seg = 0
        self.count = 0

    def read(self, since=0, limit=1000):
        """(seq, body) with seq >= since, oldest first, at most `limit`."""
        out = []
        for i in range(self.nseg):
            for rec in self._records(self.ops.read(self._name(i)) or b""):
                if rec[0] >= since:
                    out.append(rec)
        out.sort()  # by seq (unique)
        return out[:limit]

    def append(self, body):
        if len(body) != self.body:
            raise ValueError("record size")
        if self.count >= self.per_seg:
            self.seg = (self.seg + 1) % self.nseg
            self.ops.remove(self._name(self.seg))
            self.count = 0
        seq = self.next_seq
        self.ops.append(self._name(self.seg), seal(bytes([self.magic]) + struct.pack("<I", seq) + body))
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
_KIND_NAMES = const(("none", "boot", "fault", "limit", "setting", "auth", "integrity", "session", "storage", "other"))
_TEXT_MAX = const(47)
_CONT_MAX = const(4)  # continuation records read past a page's last entry
EV_BODY = const(4 + 4 + 1 + _TEXT_MAX)  # boot, ms since boot, kind, text
_EV_MAGIC = const(0xE5)


def _is_clean_py(text):
    for c in text:
        if c <= " " or c > "~" or c == "|":
            return False
    return True


_is_clean = _is_clean_py
if sys.implementation.name == "micropython":

    @micropython.viper  # type: ignore[attr-defined]
    def _is_clean_viper(text) -> bool:
        # the UTF-8 bytes of a str: any byte of a non-ASCII character is
        # >= 0x80, so it is never taken for clean
        b = ptr8(text)  # type: ignore[name-defined]  # noqa: F821  # a str is a buffer
        for i in range(int(len(text))):
            c = b[i]
            if c <= 0x20 or c >= 0x7F or c == 0x7C:
                return False
        return True

    _is_clean = _is_clean_viper


def clean_text(text):
    """Event text is one token on the wire: printable, no spaces or '|'.
    Text that is clean already is returned as it is, checked without
    allocation (an event logged while the drive runs: a session's start
    cost ~150 us on the chip with the check in bytecode)."""
    if _is_clean(text):
        return text
    out = []
    for c in text:
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
        """Text longer than a record goes on in continuation records ('+'
        first), cut at a ',' where there is one: never cut short."""
        text = clean_text(text)
        for fn in self.listeners:
            fn(kind, text)
        while True:
            if len(self.queue) >= _QUEUE_MAX:
                self.dropped += 1
                return
            if len(text) <= _TEXT_MAX:
                self.queue.append((boot, ms, kind, text))
                return
            cut = text.rfind(",", 1, _TEXT_MAX + 1)
            if cut <= 0:
                cut = _TEXT_MAX
            self.queue.append((boot, ms, kind, text[:cut]))
            text = "+" + text[cut:]

    def flush(self):
        """Write queued events (drive off only). Returns the number written."""
        n = 0
        while self.queue:
            boot, ms, kind, text = self.queue[0]
            raw = text.encode()
            body = struct.pack("<IIB", boot, ms & 0xFFFFFFFF, kind) + raw + b"\x00" * (_TEXT_MAX - len(raw))
            self.ring.append(body)
            self.queue.pop(0)
            n += 1
        return n

    def read(self, since=0, limit=1000):
        """[(seq, boot, ms, kind_name, text)] oldest first; continuation
        records are joined to their entry, whose seq is then its last
        record's (so the next page starts after it)."""
        out = []
        for seq, body in self.ring.read(since, limit + _CONT_MAX):
            boot, ms, kind = struct.unpack("<IIB", body[:9])
            text = body[9:].split(b"\x00", 1)[0].decode()
            name = _KIND_NAMES[kind] if kind < len(_KIND_NAMES) else "other"
            if text[:1] == "+" and out and out[-1][1] == boot and out[-1][3] == name:
                last = out[-1]
                out[-1] = (seq, boot, last[2], name, last[4] + text[1:])
                continue
            if len(out) >= limit:
                break
            out.append((seq, boot, ms, name, text))
        return out
