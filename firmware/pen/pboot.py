# Persistence at boot (docs/persistence.md): load the configuration, count
# the boot, scan the rings, close a session a reset left open, name the
# reset cause. Runs once; imported for the call and dropped after
# (pen.compat.lazy), so none of it stays on the heap.
from pen import eventlog as EL
from pen import sessions as S
from pen import store as ST


def boot(p, cause):
    problems = []
    try:
        values = p.store.load()
        problems = p.store.problems
    except Exception as e:  # noqa: BLE001 - the pen always boots
        p.store.status = "error"
        values = ST.defaults()
        p.store.values = values
        problems = ["load_failed:%s" % type(e).__name__]
    _apply(p, values)
    p.boot_no = values["boots"] + 1
    p.store.set("boots", p.boot_no)
    p.event(EL.EV_BOOT, "n=%d cause=%s cfg=%s" % (p.boot_no, cause, p.store.status))
    for problem in problems:
        p.event(EL.EV_INTEGRITY, problem)
    p._guard(lambda: _boot_rings(p))
    p._guard(p._flush_all)


def _boot_rings(p):
    torn = p.log.ring.scan()
    if torn:
        p.event(EL.EV_INTEGRITY, "log:%d_torn_records_skipped" % torn)
    torn = p.sessions.scan()
    if torn:
        p.event(EL.EV_INTEGRITY, "sessions:%d_torn_records_skipped" % torn)
    s = p.sessions.load_open()
    if s is not None:
        if s.end_reason == S.END_OPEN:
            s.end_reason = S.END_REBOOT
        if not p.sessions.is_recorded(s):
            seq = p.sessions.finish(s)
            p.event(EL.EV_SESSION, "closed_at_boot:seq=%d,boot=%d" % (seq, s.boot))
        else:
            p.sessions.drop_open()


def _apply(p, values):
    cfg = p.core.cfg
    for i, k in enumerate(ST.FIELDS):
        setattr(cfg, k, values[k])
        p.snap[i] = values[k]
    p.core.tilt_limit = cfg.max_tilt


_CAUSES = (
    ("PWRON_RESET", "power_on"),
    ("WDT_RESET", "watchdog"),
    ("HARD_RESET", "hard_reset"),
    ("SOFT_RESET", "soft_reset"),
    ("DEEPSLEEP_RESET", "deepsleep"),
)


def reset_cause_name(board):
    rc = getattr(board, "reset_cause", None)
    if rc is None:
        return "unknown"
    if callable(rc):
        rc = rc()
    if isinstance(rc, str):
        return rc
    try:
        import machine  # type: ignore[import-not-found]

        for attr, name in _CAUSES:
            if getattr(machine, attr, None) == rc:
                return name
    except ImportError:
        pass
    return "code_%d" % rc
