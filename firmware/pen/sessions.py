# Treatment records (docs/persistence.md): one per session.
#
# A session starts with the first drive start after boot (or after the last
# session ended) and ends when the clinic's session time is used up, after
# IDLE_END_MS without the drive, on the host's `session-end`, or with a
# reset/power loss. The open session is kept in "sess.cur" (rewritten
# atomically, tmp + rename, at every drive stop) so a power cut loses at most
# the last burst; at the next boot it is closed with reason "reboot" and
# appended to the ring of finished sessions. The pen has no real-time
# clock: times are ms since boot plus the boot counter.
import struct

from pen.compat import const
from pen.eventlog import Ring
from pen.store import seal, unseal

IDLE_END_MS = const(600000)  # 10 min without the drive ends a session
END_NAMES = ("open", "session_time", "idle", "host_end", "reboot")
END_OPEN = const(0)
END_SESSION_TIME = const(1)
END_IDLE = const(2)
END_HOST = const(3)
END_REBOOT = const(4)

# boot start_ms end_ms depth_lo depth_hi rate_lo rate_hi strokes run_ms
# tilt_out_ms bursts last_stop end_reason
_FMT = const("<IIIHHIIIIIHBB")
BODY = const(40)
_CUR = const("sess.cur")
_CUR_TMP = const("sess.tmp")
# the SR7 session timer when no record is open (the record closed at the
# session time or after the idle period): written only when a record closes
# or a technician starts a new session, never while the drive runs
_TMR = const("sess.tmr")
_TMR_TMP = const("sess.tmq")
_MAGIC = const(0x5E)


class Session:
    def __init__(self, boot, now_ms):
        self.boot = boot
        self.start_ms = now_ms
        self.end_ms = now_ms
        self.depth_lo = 0xFFFF
        self.depth_hi = 0
        self.rate_lo = 0xFFFFFFFF
        self.rate_hi = 0
        self.strokes = 0
        self.run_ms = 0
        self.tilt_out_ms = 0
        self.bursts = 0
        self.last_stop = 0
        self.end_reason = END_OPEN

    def used(self, depth_um, rate_mhz):
        if depth_um < self.depth_lo:
            self.depth_lo = depth_um
        if depth_um > self.depth_hi:
            self.depth_hi = depth_um
        if rate_mhz < self.rate_lo:
            self.rate_lo = rate_mhz
        if rate_mhz > self.rate_hi:
            self.rate_hi = rate_mhz

    def pack(self):
        return struct.pack(
            _FMT,
            self.boot,
            self.start_ms & 0xFFFFFFFF,
            self.end_ms & 0xFFFFFFFF,
            self.depth_lo & 0xFFFF,
            self.depth_hi,
            self.rate_lo & 0xFFFFFFFF,
            self.rate_hi,
            self.strokes & 0xFFFFFFFF,
            self.run_ms & 0xFFFFFFFF,
            self.tilt_out_ms & 0xFFFFFFFF,
            self.bursts & 0xFFFF,
            self.last_stop,
            self.end_reason,
        )


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


class SessionStore:
    def __init__(self, ops, nseg=4, per_seg=16):
        self.ops = ops
        self.ring = Ring(ops, "sess", BODY, _MAGIC, nseg, per_seg)

    def scan(self):
        return self.ring.scan()

    def _put(self, name, tmp, body):
        """Writes a sealed record atomically: tmp, then renamed."""
        self.ops.write(tmp, seal(body))
        self.ops.rename(tmp, name)

    def _get(self, name, tmp, n):
        """The body of the first valid record of name, tmp (None: none)."""
        for f in (name, tmp):
            body = unseal(self.ops.read(f), n)
            if body is not None:
                return body
        return None

    def save_open(self, s):
        self._put(_CUR, _CUR_TMP, s.pack())

    def finish(self, s):
        """Append a closed session to the ring, then drop the open copy. A
        cut between the two leaves both: the boot check skips a duplicate."""
        seq = self.ring.append(s.pack())
        self.drop_open()
        return seq

    def load_open(self):
        """The session a reset or power cut left open, or None."""
        body = self._get(_CUR, _CUR_TMP, BODY)
        return None if body is None else unpack(body)

    def save_timer(self, run_ms):
        """The session timer carried past a closed record (SR7)."""
        self._put(_TMR, _TMR_TMP, struct.pack("<I", run_ms & 0xFFFFFFFF))

    def load_timer(self):
        """The stored session timer, 0 if none (or torn: the open record,
        written at every stop, still holds its own time)."""
        body = self._get(_TMR, _TMR_TMP, 4)
        return 0 if body is None else struct.unpack("<I", body)[0]

    def drop_open(self):
        self.ops.remove(_CUR)
        self.ops.remove(_CUR_TMP)

    def is_recorded(self, s):
        body = s.pack()
        for _, b in self.ring.read(0):
            if b[:8] == body[:8]:  # same boot, same start: the same session
                return True
        return False

    def read(self, since=0, limit=1000):
        return [(seq, unpack(b)) for seq, b in self.ring.read(since, limit)]
