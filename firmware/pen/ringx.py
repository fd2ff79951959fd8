# The seldom used half of pen.eventlog and pen.sessions: scanning the rings
# at boot, reading them for the `log` and `sessions` commands, clearing the
# log, the open session left by a reset. Imported for one call and dropped
# after (pen.compat.lazy).
import struct

from pen.sessions import _FMT, BODY, CUR, CUR_TMP, Session
from pen.store import crc32

# --- pen.eventlog ---
KIND_NAMES = ("none", "boot", "fault", "limit", "setting", "auth", "integrity", "session", "storage", "other")


def _records(ring, data):
    """(seq, body) of every valid record in a segment's bytes."""
    out = []
    sz = ring.size
    if len(data) % sz:
        ring.torn += 1  # a partial record at the end
    for off in range(0, len(data) - sz + 1, sz):
        r = data[off : off + sz]
        if r[0] != ring.magic or struct.unpack("<I", r[sz - 4 :])[0] != crc32(r[: sz - 4]):
            ring.torn += 1
            continue
        out.append((struct.unpack("<I", r[1:5])[0], bytes(r[5 : sz - 4])))
    return out


def ring_scan(ring):
    """At boot: find the newest segment and the next sequence number."""
    ring.torn = 0
    best = -1
    for i in range(ring.nseg):
        data = ring.ops.read(ring._name(i))
        if not data:
            continue
        recs = _records(ring, data)
        for seq, _ in recs:
            if seq >= ring.next_seq:
                ring.next_seq = seq + 1
            if seq > best:
                best = seq
                ring.seg = i
                whole = len(data) % ring.size == 0 and len(recs) * ring.size == len(data)
                # a torn tail: never append behind it, start a new segment
                ring.count = len(recs) if whole else ring.per_seg
    if best < 0:
        ring.seg = 0
        ring.count = 0
        ring.ops.remove(ring._name(0))
    return ring.torn


def ring_clear(ring):
    """Remove every record; sequence numbers go on from where they were,
    so a cleared log can still be told apart from a fresh one."""
    for i in range(ring.nseg):
        ring.ops.remove(ring._name(i))
    ring.seg = 0
    ring.count = 0


def ring_read(ring, since=0, limit=1000):
    """(seq, body) with seq >= since, oldest first, at most `limit`."""
    out = []
    for i in range(ring.nseg):
        for rec in _records(ring, ring.ops.read(ring._name(i)) or b""):
            if rec[0] >= since:
                out.append(rec)
    out.sort(key=lambda r: r[0])
    return out[:limit]


def log_read(log, since=0, limit=1000):
    """[(seq, boot, ms, kind_name, text)] oldest first."""
    out = []
    for seq, body in ring_read(log.ring, since, limit):
        boot, ms, kind = struct.unpack("<IIB", body[:9])
        text = body[9:].split(b"\x00", 1)[0].decode()
        name = KIND_NAMES[kind] if kind < len(KIND_NAMES) else "other"
        out.append((seq, boot, ms, name, text))
    return out


# --- pen.sessions ---
def unpack(body):
    v = struct.unpack(_FMT, body)
    s = Session(v[0], v[1])
    (
        _,
        _,
        s.end_ms,
        s.depth_lo,
        s.depth_hi,
        s.rate_lo,
        s.rate_hi,
        s.strokes,
        s.run_ms,
        s.tilt_out_ms,
        s.bursts,
        s.last_stop,
        s.end_reason,
    ) = v
    return s


def sess_load_open(ss):
    """The session a reset or power cut left open, or None."""
    for name in (CUR, CUR_TMP):
        data = ss.ops.read(name)
        if data and len(data) == BODY + 4 and struct.unpack("<I", data[BODY:])[0] == crc32(data[:BODY]):
            return unpack(data[:BODY])
    return None


def sess_is_recorded(ss, s):
    body = s.pack()
    for _, b in ring_read(ss.ring, 0):
        if b[:8] == body[:8]:  # same boot, same start: the same session
            return True
    return False


def sess_read(ss, since=0, limit=1000):
    return [(seq, unpack(b)) for seq, b in ring_read(ss.ring, since, limit)]
