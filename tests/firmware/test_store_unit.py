# Unit tests of the configuration store, the rings and the persistence glue
# (the persistence requirements of docs/persistence.md); plain asserts, run by pytest and under MicroPython.
import struct

import flash
from pen import errors as E
from pen import eventlog as EL
from pen import persist as P
from pen import sessions as S
from pen import store as ST
from pen.core import ST_RUNNING, Config, Core
from pen.persist import Persistence

Mem = flash.MemFileOps  # in-RAM files; the power-cut walk uses littlefs


def boot(ops):
    p = Persistence(Core(Config()), ops)
    p.boot("test")
    return p


def kinds(p):
    return [(e[3], e[4]) for e in p.log.read()]


def test_sr_persist_crc32_known_vector():
    # the standard CRC-32 check value
    assert ST.crc32(b"123456789") == 0xCBF43926
    assert ST.crc32(b"") == 0


def test_sr_persist_first_boot_is_fresh_and_saves_counter():
    m = Mem()
    p = boot(m)
    assert p.store.status == "fresh"
    assert p.store.cfg_valid  # the boot counter was written at boot
    assert ("boot", "n=1,cause=test,cfg=fresh") in kinds(p)
    q = boot(m)
    assert q.boot_no == 2 and q.store.status == "ok"
    assert q.store.values["writes"] == 2


def test_sr_persist_settings_survive_reboot():
    m = Mem()
    p = boot(m)
    p.core.configure({"max_depth": 2000, "depth": 1800})
    p.service(1)
    p.store.last_write_ms = None  # rate limit tested separately
    p.service(100)
    q = boot(m)
    assert q.core.cfg.depth == 1800 and q.core.cfg.max_depth == 2000
    # a clinic limit is logged once, by the security log's limit_change
    assert not [k for k in kinds(q) if k[0] == "limit"]
    assert ("setting", "depth:0.50->1.80,by=host") in kinds(q)


def test_sr_persist_corrupt_record_falls_back_to_previous():
    m = Mem()
    p = boot(m)  # record 1 (boots=1)
    p.core.configure({"depth": 1000})
    p.store.last_write_ms = None
    p.service(60)  # record 2: depth 1.0, record 1 kept as cfg.bak
    data = bytearray(m.files["cfg"])
    data[20] ^= 0x04  # one bit flips
    m.files["cfg"] = bytes(data)
    q = boot(m)
    assert q.store.status == "fallback"
    assert q.core.cfg.depth == 500  # the previous record, exactly
    assert ("integrity", "cfg:crc") in kinds(q)


def test_sr_persist_no_valid_record_boots_on_safe_defaults_and_says_so():
    m = Mem()
    p = boot(m)
    p.core.configure({"depth": 1000})
    p.store.last_write_ms = None
    p.service(60)
    m.files["cfg"] = b"garbage"
    m.files["cfg.bak"] = m.files["cfg.bak"][:-1]
    q = boot(m)
    assert q.store.status == "defaults"
    d = ST.defaults()
    for k in ST.FIELDS:
        assert getattr(q.core.cfg, k) == d[k], k
    assert ("integrity", "no_valid_record:defaults_in_use") in kinds(q)
    assert "store=defaults" in q.status_words()


def test_sr_persist_crc_valid_record_outside_limits_is_refused():
    m = Mem()
    boot(m)
    boot(m)  # two records: cfg and cfg.bak
    v = ST.defaults()
    v["depth"] = 2000  # above max_depth 1.50: a half-made or foreign record
    m.files["cfg"] = ST.frame(ST.SCHEMA, 99, ST.encode_payload(v))
    q = boot(m)
    assert q.core.cfg.depth == ST.defaults()["depth"]
    assert q.store.status == "fallback"  # cfg.bak from the first boot
    assert any(k == "integrity" and t.startswith("cfg:invalid") for k, t in kinds(q))


def test_sr_persist_schema_1_record_is_migrated():
    m = Mem()
    v1 = b"max_depth=1800\nmax_rate=120000\nmax_tilt=1200\nmax_session_s=1200\ndepth=1500\nrate=90000\nboots=7\nwrites=3\n"
    m.files["cfg"] = ST.frame(1, 5, v1)
    p = boot(m)
    c = p.core.cfg
    assert (c.max_depth, c.max_rate, c.max_tilt, c.max_session_min) == (1800, 120000, 1200, 20)
    assert (c.depth, c.rate, c.ref_x, c.ref_y, c.ref_z) == (1500, 90000, 0, 0, ST.Q14)
    assert p.boot_no == 8
    assert ("integrity", "migrated:schema_1_to_2") in kinds(p)
    # stored again in schema 2, readable without migration
    rec = ST.unframe(m.files["cfg"])
    assert rec[0] == ST.SCHEMA and rec[1] == 6


def test_sr_persist_newer_schema_is_not_trusted():
    m = Mem()
    boot(m)
    boot(m)
    v = ST.defaults()
    m.files["cfg"] = ST.frame(ST.SCHEMA + 1, 50, ST.encode_payload(v))
    q = boot(m)
    assert q.store.status == "fallback"


def run(p, t0, t1):
    for t in range(t0, t1 + 1, 10):
        p.service(t)


def test_sr_persist_writes_only_with_drive_off_and_rate_limited():
    m = Mem()
    p = boot(m)  # writes the boot counter at ms 0
    w0 = p.store.values["writes"]
    p.service(0)
    p.core.running = 1
    p.core.state = ST_RUNNING
    p.core.configure({"rate": 120000})
    run(p, 10, 2000)
    p.service(2000)
    n = m.writes
    run(p, 2010, 6000)
    assert m.writes == n  # nothing written while the needles run, even when due
    p.core.running = 0
    p.core.state = 2
    p.service(6001)  # drive off: written now
    assert p.store.values["writes"] == w0 + 1
    p.core.configure({"rate": 110000})
    run(p, 6010, 10990)
    assert p.store.values["writes"] == w0 + 1  # rate-limited ...
    run(p, 11000, 11100)
    assert p.store.values["writes"] == w0 + 2  # ... not lost
    assert p.store.values["rate"] == 110000
    assert "cfg_writes=%d" % (w0 + 2) in p.status_words()


def test_sr_persist_kv_for_other_modules():
    m = Mem()
    p = boot(m)
    p.store.kv_set("auth_fail", 3)
    p.store.kv_set("key", "0a1b2c3d")
    for bad in (("has space", "x"), ("k", "a=b"), ("k", ""), ("k" * 30, "1")):
        try:
            p.store.kv_set(bad[0], bad[1])
            raise AssertionError("accepted %r" % (bad,))
        except ValueError:
            pass
    p.store.last_write_ms = None
    p.service(10)
    q = boot(m)
    assert q.store.kv_get("auth_fail") == "3" and q.store.kv_get("key") == "0a1b2c3d"
    assert q.store.kv_get("missing", "d") == "d"


def test_sr_persist_event_listener_and_actor():
    m = Mem()
    p = boot(m)
    got = []
    p.log.listeners.append(lambda kind, text: got.append((kind, text)))
    p.core.configure({"max_tilt": 1000, "depth": 1000})
    assert p.commit("technician") == 1
    p.service(100)
    assert got[0] == (EL.EV_SETTING, "depth:0.50->1.00,by=technician")
    assert not [g for g in got if g[0] == EL.EV_LIMIT]  # limit_change (auth) logs it
    p.core.configure({"depth": 1200})
    p.service(200)
    assert got[-1] == (EL.EV_SETTING, "depth:1.00->1.20,by=host")


def test_sr_persist_ok_is_durable_write_before_reply():
    # an `ok` survives a power cut one instant later: commit() writes the
    # record before the reply goes out
    m = Mem()
    p = boot(m)
    w0 = p.store.values["writes"]
    p.core.configure({"depth": 700})
    assert p.commit("host") == 1
    assert p.store.values["writes"] == w0 + 1 and p.stored() == 1
    q = boot(m)  # no service() in between: the cut came right after the reply
    assert q.core.cfg.depth == 700


def test_sr_persist_flood_is_coalesced_and_says_so():
    m = Mem()
    p = boot(m)
    w0 = p.store.values["writes"]
    answers = []
    for i in range(30):
        p.core.configure({"depth": 600 + 50 * (i % 10)})
        answers.append(p.commit("host"))
    # the burst is written through, the rest answered stored=0 (never a lie)
    assert answers[: P.WT_BURST] == [1] * P.WT_BURST
    assert 0 in answers and p.stored() == 0 and p.coalesced == answers.count(0)
    assert p.store.values["writes"] - w0 == answers.count(1)
    assert P.WT_BURST <= p.store.values["writes"] - w0 <= P.WT_BURST + 1
    # `sync` writes what was acknowledged
    assert p.cmd_sync([]).startswith("stored=1")
    assert boot(m).core.cfg.depth == p.core.cfg.depth
    # without sync, the coalesced record still lands within the write interval
    p.core.configure({"depth": 1400})
    assert p.commit("host") == 0
    p.service(1)
    p.service(ST.MIN_WRITE_INTERVAL_MS + 100)
    assert p.stored() == 1 and boot(m).core.cfg.depth == 1400


def test_sr_persist_running_ok_says_not_stored_until_drive_off():
    m = Mem()
    p = boot(m)
    p.core.running = 1
    p.core.configure({"rate": 90000})
    assert p.commit("host") == 0  # no flash write with the drive on
    try:
        p.cmd_sync([])
        raise AssertionError("sync wrote with the drive on")
    except E.PenError as e:
        assert e.code == E.NOT_WHILE_RUNNING
    p.core.running = 0
    p.service(1)
    p.service(ST.MIN_WRITE_INTERVAL_MS + 100)
    assert p.stored() == 1 and boot(m).core.cfg.rate == 90000


def test_sr_persist_log_ring_is_bounded_and_keeps_newest():
    m = Mem()
    ring = EL.Ring(m, "t", 4, 0x77, 3, 5)
    ring.scan()
    for i in range(40):
        ring.append(struct.pack("<I", i))
    recs = ring.read()
    assert 10 <= len(recs) <= 15
    assert struct.unpack("<I", recs[-1][1])[0] == 39
    assert [r[0] for r in recs] == list(range(recs[0][0], 41))
    r2 = EL.Ring(m, "t", 4, 0x77, 3, 5)
    r2.scan()
    assert r2.next_seq == 41
    assert r2.read(38) == recs[-3:]


def test_sr_persist_torn_log_tail_is_skipped_and_never_appended_behind():
    m = Mem()
    log = EL.EventLog(EL.Ring(m, "log", EL.EV_BODY, 0xE5))
    log.ring.scan()
    log.add(1, 5, EL.EV_OTHER, "a")
    log.add(1, 6, EL.EV_OTHER, "b")
    log.flush()
    m.files["log0"] = m.files["log0"][:-10]  # storage without atomic append
    log2 = EL.EventLog(EL.Ring(m, "log", EL.EV_BODY, 0xE5))
    assert log2.ring.scan() == 1
    log2.add(1, 7, EL.EV_OTHER, "c")
    log2.flush()
    assert [e[4] for e in log2.read()] == ["a", "c"]


def test_sr_persist_event_text_is_one_clean_token():
    assert EL.clean_text("a b|c\n") == "a,b?c?"
    assert len(EL.clean_text("x" * 100)) == 100  # never cut short


def test_sr_persist_long_event_is_never_cut_short():
    m = Mem()
    log = EL.EventLog(EL.Ring(m, "log", EL.EV_BODY, 0xE5))
    log.ring.scan()
    text = "denied,action=changing_clinic_limits,reason=no_session"
    log.add(1, 5, EL.EV_AUTH, text)
    log.add(1, 6, EL.EV_OTHER, "y" * 120)
    log.add(1, 7, EL.EV_OTHER, "z")
    log.flush()
    got = log.read()
    assert [e[4] for e in got] == [text, "y" * 120, "z"]
    assert log.read(got[0][0] + 1)[0][4] == "y" * 120  # paging resumes after a joined entry
    assert [e[4] for e in log.read(0, 1)] == [text]


def _burst(p, t, run_ms, strokes=100):
    p.core.running = 1
    p.service(t)
    p.core.running = 0
    p.core.run_ms += run_ms
    p.core.strokes += strokes
    p.core.stop_reason = 1
    p.service(t + run_ms)  # drive stop: the open session is written


def test_sr7_reboot_mid_session_restores_the_session_timer():
    m = Mem()
    p = boot(m)
    _burst(p, 10, 5000, 500)
    q = boot(m)  # power was lost (or the watchdog reset the MCU)
    assert q.core.run_ms == 5000  # the timer did not restart
    assert q.cur is not None and q.cur.run_ms == 5000 and q.cur.boot == 1
    assert q.sessions.read() == []  # the session is still open
    assert any(k == "session" and t.startswith("restored:run_s=5") for k, t in kinds(q))
    _burst(q, 10, 3000)
    r = boot(m)
    assert r.core.run_ms == 8000 and r.cur.run_ms == 8000 and r.cur.bursts == 2


def test_sr7_idle_and_session_time_keep_the_timer_until_a_technician_ends_it():
    m = Mem()
    p = boot(m)
    _burst(p, 10, 7000)
    p.idle_ms = S.IDLE_END_MS  # the pen lies idle: the record ends ...
    p.service(7020)
    assert p.cur is None and p.sessions.read()[0][1].end_reason == S.END_IDLE
    assert p.core.run_ms == 7000  # ... but not the session timer
    q = boot(m)
    assert q.core.run_ms == 7000 and q.cur is None
    # a technician starts the next session (the protocol checks auth)
    q.cmd_session_end([])
    assert q.core.run_ms == 0
    assert boot(m).core.run_ms == 0


def test_sr_persist_session_ends_at_session_time_limit():
    m = Mem()
    p = boot(m)
    p.core.running = 1
    p.service(10)
    p.core.running = 0
    p.core.run_ms = 25 * 60000
    p.core.stop_reason = 6  # STOP_SESSION
    p.service(11)
    recs = p.sessions.read()
    assert len(recs) == 1 and recs[0][1].end_reason == S.END_SESSION_TIME
    assert p.cur is None
    # SR7: the timer survives the closed record and a reboot: no start
    # until a technician ends the session
    q = boot(m)
    assert q.core.run_ms == 25 * 60000
    q.cmd_session_end([])
    assert q.core.run_ms == 0


def test_sr_persist_service_allocates_nothing_in_steady_state():
    try:
        import micropython  # type: ignore[import-not-found]

        lock = micropython.heap_lock
        unlock = micropython.heap_unlock
    except (ImportError, AttributeError):
        print("skipped under CPython: heap_lock is MicroPython's")
        return
    m = Mem()
    p = boot(m)
    for t in range(1, 200):
        p.service(t)
    p.core.running = 1
    p.service(200)  # a session starts (allocates once)
    lock()
    try:
        for t in range(201, 1200):  # includes config checks every 50 ms
            p.service(t)
    finally:
        unlock()
    p.core.running = 0
    p.service(1200)
    p.service(1201)
    lock()
    try:
        for t in range(1202, 2000):
            p.service(t)
    finally:
        unlock()


def test_sr_persist_dir_backend_matches_fileops_interface():
    # the CPython stand-in offers every operation the store uses
    for name in ("read", "write", "append", "rename", "remove", "size"):
        assert hasattr(flash.DirFileOps, name) and hasattr(ST.FileOps, name)


def test_sr4_latched_fault_is_logged_with_its_code():
    m = Mem()
    p = boot(m)
    p.service(0)
    p.core.fault = 2  # F_STALL, latched by the core
    p.service(1)
    p.service(2)  # stays latched: logged once
    p.core.fault = 0
    p.service(3)
    p.core.fault = 2
    p.service(4)
    faults = [t for k, t in kinds(p) if k == "fault"]
    assert faults == ["code=2,stall", "code=2,stall"]


def test_sr_persist_save_now_skips_rate_limit_but_not_the_drive_rule():
    m = Mem()
    p = boot(m)  # a write at boot: the rate limit would hold the next one
    p.service(0)
    p.store.kv_set("auth_fail", 1)
    p.core.running = 1
    assert not p.save_now()  # never while the needles run
    p.core.running = 0
    w = p.store.values["writes"]
    assert p.save_now()
    assert p.store.values["writes"] == w + 1
    assert boot(m).store.kv_get("auth_fail") == "1"
