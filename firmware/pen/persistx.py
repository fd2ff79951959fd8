# The persistence commands `log`, `sessions`, `storage`, `session-end`,
# closing a session and clearing the log:
# imported for one call and dropped after
# (pen.compat.lazy), so their code is not on the heap between commands.
# Each command takes the Persistence object and the argument words.
from pen import core as C
from pen import errors as E
from pen import eventlog as EL
from pen import sessions as S
from pen.persist import PAGE


def end_session(p, reason):
    cur = p.cur
    if cur is None:
        return 0
    if p.core.running:
        raise E.PenError(E.NOT_WHILE_RUNNING, "a session cannot end while the needles run")
    cur.end_reason = reason
    if reason != S.END_SESSION_TIME:
        # a new session starts: the SR7 timer restarts with the record. A
        # session that ran out of time stays blocked until someone ends it
        # on purpose (session-end) or the pen lies idle (SR7)
        p.core.new_session()
    if reason != S.END_IDLE:
        cur.end_ms = p.ms
    p.cur = None
    p.cur_dirty = 0
    ok = p._guard(lambda: p.sessions.finish(cur))
    p.event(EL.EV_SESSION, "end:%s,run_s=%d" % (S.END_NAMES[reason], cur.run_ms // 1000))
    return ok


def log_clear(p):
    p.log.queue = []
    p._guard(p.log.ring.clear)


# --- commands ---
def _since(args):
    if len(args) > 1:
        raise E.PenError(E.BAD_ARGUMENTS, "usage: log|sessions [SINCE_SEQ]")
    if not args:
        return 0
    a = args[0]
    if not a.isdigit() or len(a) > 9:
        raise E.PenError(E.BAD_NUMBER, "since: '%s' is not a record number (0-999999999)" % a[:16])
    return int(a)


def _session_token(seq, s):
    return "%s:%d:%d:%d:%d:%d:%d:%d:%d:%d:%d:%d:%s:%s" % (
        seq,
        s.boot,
        s.start_ms,
        s.end_ms,
        s.depth_lo if s.bursts else 0,
        s.depth_hi,
        s.rate_lo if s.bursts else 0,
        s.rate_hi,
        s.strokes,
        s.run_ms,
        s.tilt_out_ms,
        s.bursts,
        C.STOP_NAMES[s.last_stop] if s.last_stop < len(C.STOP_NAMES) else "?",
        S.END_NAMES[s.end_reason] if s.end_reason < len(S.END_NAMES) else "?",
    )


def _head(p, nxt, n):
    return "n=%d next=%d boot=%d now_ms=%d" % (n, nxt, p.boot_no, p.ms)


def cmd_log(p, args):
    since = _since(args)
    recs = p.log.read(since, PAGE)
    nxt = recs[-1][0] + 1 if recs else max(since, p.log.ring.next_seq)
    words = [_head(p, nxt, len(recs))]
    for seq, boot, ms, kind, text in recs:
        words.append("e=%d:%d:%d:%s:%s" % (seq, boot, ms, kind, text))
    return " ".join(words)


def cmd_sessions(p, args):
    since = _since(args)
    recs = p.sessions.read(since, PAGE)
    nxt = recs[-1][0] + 1 if recs else max(since, p.sessions.ring.next_seq)
    words = [_head(p, nxt, len(recs))]
    for seq, s in recs:
        words.append("s=" + _session_token(seq, s))
    if len(recs) < PAGE and p.cur is not None:
        cur = p.cur
        if p.core.running:  # the burst in progress counts as far as it went
            run, strokes = cur.run_ms, cur.strokes
            cur.run_ms += p.core.run_ms - p.run0
            cur.strokes += p.core.strokes - p.strokes0
            words.append("o=" + _session_token("open", cur))
            cur.run_ms, cur.strokes = run, strokes
        else:
            words.append("o=" + _session_token("open", cur))
    return " ".join(words)


def cmd_storage(p, args):
    if args:
        raise E.PenError(E.BAD_ARGUMENTS, "this command takes no arguments")
    st = p.store
    return (
        "cfg=%s cfg_writes=%d cfg_seq=%d boot=%d now_ms=%d log_next=%d log_queued=%d log_dropped=%d sessions_next=%d errors=%d"
        % (
            st.status,
            st.values["writes"],
            st.seq,
            p.boot_no,
            p.ms,
            p.log.ring.next_seq,
            len(p.log.queue),
            p.log.dropped,
            p.sessions.ring.next_seq,
            p.errors,
        )
    )


def cmd_session_end(p, args):
    if args:
        raise E.PenError(E.BAD_ARGUMENTS, "this command takes no arguments")
    if p.cur is None:
        if p.core.run_ms >= p.core.cfg.max_session_min * 60000:
            # the record was closed when the session time ran out: the
            # technician starts the next session explicitly
            p.core.new_session()
            p.event(EL.EV_SESSION, "new:after_session_time")
            return ""
        raise E.PenError(E.NOT_ALLOWED_IN_STATE, "no session is open")
    if not end_session(p, S.END_HOST):
        raise E.PenError(E.STORAGE, "the session record could not be written")
    return ""
