# Power-loss proof of the persistent store (an `ok` is durable, DESIGN §4; docs/persistence.md).
# Under MicroPython the flash is littlefs (vfs.VfsLfs2) on sim/device/flash
# SimFlash, which cuts the power after the Nth block write or erase; under
# CPython the same walk runs on DirFileOps (a host directory with a cut point
# after every 64-byte chunk, rename and remove). For every cut point of a
# configuration save, a log append, a session record write and a whole boot:
# reboot and check the configuration is exactly the old or exactly the new
# one, the log lost at most the entry being written, and the pen boots.
import flash
from flash import PowerCut
from pen import eventlog as EL
from pen import sessions as S
from pen import store as ST
from pen.core import Config, Core
from pen.persist import Persistence

MOUNT = "/flash"
COUNTS = {}
# littlefs geometries walked: the rp2's (4 KB erase blocks, 256 B pages: small
# files live inline in metadata) and a small-block chip (512 B blocks, 64 B
# pages: files spill into their own blocks, more cut points per operation)
GEOMETRIES = ((4096, 32, 256), (512, 128, 64)) if flash.HAVE_LFS else ((0, 0, 0),)


def each_geometry(run):
    for g in GEOMETRIES:
        run(g, "%d" % g[0] if g[0] else "dir")


class Env:
    """One flash chip: reset to a snapshot, cut after N ops, reboot."""

    def __init__(self, geometry):
        self.progsize = geometry[2]
        if flash.HAVE_LFS:
            self.dev = flash.SimFlash(geometry[0], geometry[1])
            flash.mount(self.dev, MOUNT, fresh=True, progsize=self.progsize)
            self.ops = ST.FileOps(MOUNT)
            self.cutter = self.dev
        else:
            import tempfile

            self.tmp = tempfile.mkdtemp(prefix="penflash")
            self.ops = flash.DirFileOps(self.tmp)
            self.cutter = self.ops

    def snapshot(self):
        if flash.HAVE_LFS:
            flash.unmount(MOUNT)
            snap = bytes(self.dev.data)
            flash.mount(self.dev, MOUNT, progsize=self.progsize)
            return snap
        import os

        return {n: open(self.tmp + "/" + n, "rb").read() for n in os.listdir(self.tmp)}

    def restore(self, snap):
        if flash.HAVE_LFS:
            flash.unmount(MOUNT)
            self.dev.data[:] = snap
            flash.mount(self.dev, MOUNT, progsize=self.progsize)
            return
        import os

        for n in os.listdir(self.tmp):
            os.remove(self.tmp + "/" + n)
        for n, data in snap.items():
            with open(self.tmp + "/" + n, "wb") as f:
                f.write(data)

    def reboot(self):
        """Power back on; the RAM (every object) is gone, the flash stays."""
        self.cutter.power_on()
        if flash.HAVE_LFS:
            flash.unmount(MOUNT)
            flash.mount(self.dev, MOUNT, progsize=self.progsize)

    def close(self):
        if flash.HAVE_LFS:
            flash.unmount(MOUNT)
        else:
            import shutil

            shutil.rmtree(self.tmp)


def walk(env, snap, action, check):
    """Cut at op 1, 2, ... until the action completes; check each time. On
    the simulated chip each op is cut twice: after it completed and half-way
    through it (a torn page program or block erase)."""
    tears = (False, True) if flash.HAVE_LFS else (False,)
    n = 1
    tried = 0
    while True:
        for tear in tears:
            env.restore(snap)
            if flash.HAVE_LFS:
                env.cutter.arm_cut(n, tear)
            else:
                env.cutter.arm_cut(n)
            try:
                action()
                done = True
            except PowerCut:
                done = False
                tried += 1
            env.reboot()
            check(done)
            if done:
                env.cutter.power_on()
                return tried
        n += 1
        assert n < 2000, "action never completes"


def boot(env):
    core = Core(Config())
    p = Persistence(core, env.ops)
    p.boot("test")
    return p


def _config_save_cut_anywhere_gives_old_or_new(g, tag):
    env = Env(g)
    boot(env)  # first boot: fresh, saves the boot counter
    st = ST.Store(env.ops)
    st.load()
    st.set("max_depth", 2000)
    st.set("depth", 1500)
    st.save(0)
    old = dict(st.values)
    snap = env.snapshot()
    new = dict(old)
    new["depth"] = 1000
    new["rate"] = 120000
    new["kv.secret"] = "c0ffee00"
    new["writes"] = old["writes"] + 1

    def action():
        s = ST.Store(env.ops)
        s.load()
        s.set("depth", 1000)
        s.set("rate", 120000)
        s.kv_set("secret", "c0ffee00")
        s.save(0)

    seen = {"old": 0, "new": 0}

    def check(done):
        s = ST.Store(env.ops)
        v = s.load()
        assert v == old or v == new, v
        assert s.status in ("ok", "fallback"), s.status
        seen["old" if v == old else "new"] += 1
        if done:
            assert v == new
        # and the pen boots on it, with those values in force
        q = boot(env)
        assert q.core.cfg.depth == v["depth"] and q.core.cfg.rate == v["rate"]
        assert q.store.status in ("ok", "fallback")

    n = walk(env, snap, action, check)
    COUNTS["config_save/" + tag] = n
    assert n >= 3 and seen["old"] and seen["new"]
    env.close()


def _log_append_cut_loses_at_most_that_entry(g, tag):
    env = Env(g)
    p = boot(env)
    for i in range(5):
        p.event(EL.EV_OTHER, "entry %d" % i)
    p.log.flush()
    before = p.log.read()
    assert len(before) >= 6  # boot event + 5
    snap = env.snapshot()

    def action():
        q = Persistence(Core(Config()), env.ops)
        q.log.ring.scan()
        q.event(EL.EV_FAULT, "code=1,overcurrent")
        q.log.flush()

    def check(done):
        log = EL.EventLog(EL.Ring(env.ops, "log", EL.EV_BODY, 0xE5))
        log.ring.scan()
        after = log.read()
        assert after[: len(before)] == before, (before, after)
        assert len(after) - len(before) in (0, 1)
        if done:
            assert after[-1][3:] == ("fault", "code=1,overcurrent")
        # the log still takes entries after the cut
        log.add(9, 9, EL.EV_OTHER, "after")
        log.flush()
        assert log.read()[-1][4] == "after"
        boot(env)

    COUNTS["log_append/" + tag] = walk(env, snap, action, check)
    env.close()


def _log_rotation_cut_drops_only_the_oldest_segment(g, tag):
    env = Env(g)
    ring = EL.Ring(env.ops, "rl", 8, 0xA1, 3, 4)
    ring.scan()
    for i in range(12):
        ring.append(b"%08d" % i)
    before = ring.read()
    oldest = before[:4]
    snap = env.snapshot()

    def action():
        r = EL.Ring(env.ops, "rl", 8, 0xA1, 3, 4)
        r.scan()
        r.append(b"newentry")

    def check(done):
        r = EL.Ring(env.ops, "rl", 8, 0xA1, 3, 4)
        r.scan()
        after = r.read()
        for rec in before:
            assert rec in after or rec in oldest, rec
        assert len(after) >= 8
        if done:
            assert after[-1][1] == b"newentry"

    COUNTS["log_rotate/" + tag] = walk(env, snap, action, check)
    env.close()


def _session_write_cut_gives_one_record_or_none(g, tag):
    env = Env(g)
    p = boot(env)
    s0 = S.Session(p.boot_no, 100)
    s0.used(1500, 100000)
    s0.run_ms = 60000
    s0.end_reason = S.END_HOST
    p.sessions.finish(s0)
    snap = env.snapshot()

    s1 = S.Session(p.boot_no, 200000)
    s1.used(1200, 90000)
    s1.run_ms = 1200000
    s1.strokes = 123456
    s1.tilt_out_ms = 4321
    s1.bursts = 7
    s1.last_stop = 1

    def action():
        ss = S.SessionStore(env.ops)
        ss.scan()
        ss.save_open(s1)  # at a drive stop
        s1.end_reason = S.END_SESSION_TIME
        ss.save_timer(s1.run_ms)  # at session end: the timer first (SR7) ...
        ss.finish(s1)  # ... then the record

    def check(done):
        s1.end_reason = S.END_OPEN
        q = boot(env)  # restores a left-open session (SR7)
        recs = q.sessions.read()
        assert recs[0][1].pack() == s0.pack()
        later = [r for _, r in recs[1:]]
        assert len(later) <= 1, later
        if later:
            got = later[0]
            assert got.pack()[:-1] == s1.pack()[:-1]
            assert got.end_reason == S.END_SESSION_TIME
            assert q.cur is None and q.sessions.load_open() is None
        elif q.cur is not None:
            assert q.cur.pack() == s1.pack()  # the session goes on
        if later or q.cur is not None:
            # the SR7 timer never loses the session's time (a cut between
            # the timer and the record counts it twice: too much, not less)
            assert q.core.run_ms >= s1.run_ms, q.core.run_ms
        if done:
            assert len(later) == 1 and later[0].end_reason == S.END_SESSION_TIME
            assert q.core.run_ms == s1.run_ms

    COUNTS["session_write/" + tag] = walk(env, snap, action, check)
    env.close()


def _boot_cut_anywhere_still_boots(g, tag):
    env = Env(g)
    p = boot(env)
    p.core.configure({"depth": 1000})
    p.service(0)  # config change noticed
    p.store.last_write_ms = None
    p.service(1)  # and saved
    assert p.store.values["depth"] == 1000
    p.cur = S.Session(p.boot_no, 5)
    p.cur_dirty = 1
    p.service(2)  # an open session on flash: boot closes it
    snap = env.snapshot()

    def check(done):
        q = boot(env)
        assert q.core.cfg.depth == 1000
        assert q.store.status in ("ok", "fallback")

    COUNTS["boot/" + tag] = walk(env, snap, lambda: boot(env), check)
    env.close()


def _ok_write_point_cut_anywhere(g, tag, sync):
    # the write points of a durable `ok` (Persistence.commit before the
    # reply; `sync` after a coalesced stored=0): a cut anywhere leaves the old
    # or the new value, and once the answer could go out the new one is there
    env = Env(g)
    boot(env)
    snap = env.snapshot()
    answer = []

    def action():
        del answer[:]
        p = boot(env)
        p.core.configure({"depth": 700})
        if sync:
            p.wt_tokens = 0  # a flood was being coalesced: stored=0, then sync
            assert p.commit("host") == 0
            answer.append(p.cmd_sync([]))
        else:
            answer.append(p.commit("host"))

    def check(done):
        q = boot(env)
        assert q.core.cfg.depth in (500, 700)
        if done:
            assert answer[0] == 1 or answer[0].startswith("stored=1")
            assert q.core.cfg.depth == 700
            assert ("setting", "depth:0.50->0.70,by=host") in [(e[3], e[4]) for e in q.log.read()]

    COUNTS[("sync/" if sync else "commit/") + tag] = walk(env, snap, action, check)
    env.close()


def test_sr_persist_ok_write_before_reply_cut_anywhere():
    each_geometry(lambda g, tag: _ok_write_point_cut_anywhere(g, tag, False))


def test_sr_persist_sync_cut_anywhere():
    each_geometry(lambda g, tag: _ok_write_point_cut_anywhere(g, tag, True))


def test_sr_persist_config_save_cut_anywhere_gives_old_or_new():
    each_geometry(_config_save_cut_anywhere_gives_old_or_new)


def test_sr_persist_log_append_cut_loses_at_most_that_entry():
    each_geometry(_log_append_cut_loses_at_most_that_entry)


def test_sr_persist_log_rotation_cut_drops_only_the_oldest_segment():
    each_geometry(_log_rotation_cut_drops_only_the_oldest_segment)


def test_sr_persist_session_write_cut_gives_one_record_or_none():
    each_geometry(_session_write_cut_gives_one_record_or_none)


def test_sr_persist_boot_cut_anywhere_still_boots():
    each_geometry(_boot_cut_anywhere_still_boots)


def test_zz_report_cut_points():
    # runs last (alphabetical): prints what the walk covered
    total = 0
    for k in sorted(COUNTS):
        total += COUNTS[k]
    print(
        "CUT POINTS %s total=%d backend=%s"
        % (" ".join("%s=%d" % (k, COUNTS[k]) for k in sorted(COUNTS)), total, "littlefs" if flash.HAVE_LFS else "dirfs")
    )
    assert len(COUNTS) == 7 * len(GEOMETRIES) and total > 20


def test_sr_persist_long_use_stays_bounded_on_the_sim_chip():
    # months of use in miniature: the rings wrap, the record is rewritten,
    # littlefs never runs out of its 32 blocks and nothing is lost but the
    # ring's oldest entries
    env = Env((4096, 32, 256) if flash.HAVE_LFS else (0, 0, 0))
    p = boot(env)
    for i in range(300):
        p.event(EL.EV_OTHER, "n%d" % i)
        p.log.flush()
        if i % 3 == 0:
            p.store.set("depth", 500 + 50 * (i % 10))
            p.store.save(i)
        if i % 5 == 0:
            s = S.Session(p.boot_no, i)
            s.bursts = 1
            p.sessions.finish(s)
    assert p.errors == 0
    q = boot(env)
    log = q.log.read()
    assert 96 <= len(log) <= 128
    assert log[-1][3] == "boot" and log[-1][4].endswith("cfg=ok")
    texts = [e[4] for e in log]
    assert "n299" in texts and "n0" not in texts
    assert 48 <= len(q.sessions.read()) <= 64
    assert q.store.values["depth"] == 500 + 50 * (297 % 10)
    env.close()
