# Protocol unit tests with the real Core, no simulator. Plain asserts: they
# run under pytest (CPython) and under MicroPython (tests/firmware/mprun.py).
from pen import core as C
from pen import errors as E
from pen import faults as FT
from pen.core import Config, Core
from pen.frame import crc16, hex4
from pen.protocol import ERR_BUDGET, MAX_LINE, Protocol


class Rig:
    def __init__(self):
        self.out = []
        self.core = Core(Config())
        self.p = Protocol(self.core, self.out.append, "test-board", "SN1")
        self.stops = 0
        self.core.request_stop = self._stop
        self.now = 1000
        self.p.service(self.now)
        self.lines()  # drop the boot events

    def _stop(self):
        self.stops += 1

    def feed(self, data):
        if isinstance(data, str):
            data = data.encode()
        for b in data:
            self.p.feed(b)

    def lines(self):
        text = b"".join(self.out).decode()
        self.out.clear()
        return [x for x in text.split("\n") if x]

    def send(self, line):
        self.feed(line + "\n")
        return self.lines()

    def checked(self, rid, body):
        head = ("@%s %s" % (rid, body)).encode()
        return self.send(head.decode() + "*" + hex4(crc16(head)))

    def advance(self, ms):
        for _ in range(ms):
            self.now += 1
            self.p.service(self.now)

    def config(self):
        c = self.core.cfg
        return (c.max_depth, c.max_rate, c.max_tilt, c.max_session_min, c.depth, c.rate)


def strip_check(line):
    assert line[-5] == "*", line
    body = line[:-5]
    assert hex4(crc16(body.encode())) == line[-4:], line
    return body


def code_of(line):
    words = line.split()
    if words[0].startswith("@"):
        words = words[1:]
    assert words[0] == "err", line
    return int(words[1])


def test_crc16_is_ccitt_false():
    assert crc16(b"123456789") == 0x29B1
    assert crc16(b"") == 0xFFFF


def test_human_line_gets_plain_reply():
    r = Rig()
    out = r.send("get depth")
    assert out == ["ok depth=0.50"]


def test_checked_request_reply_carries_id_and_check():
    r = Rig()
    out = r.checked("42", "set depth 1.0")
    assert len(out) == 2  # the config event and the reply
    assert strip_check(out[0]).startswith("! config hash=")
    assert strip_check(out[1]) == "@42 ok depth=1.00"
    assert r.core.cfg.depth == 1000


def test_sr9_bad_check_is_refused_and_nothing_changes():
    r = Rig()
    before = r.config()
    head = b"@7 set depth 1.0"
    good = crc16(head)
    out = r.send(head.decode() + "*" + hex4(good ^ 1))
    assert len(out) == 1 and code_of(strip_check(out[0])) == E.BAD_CHECK
    assert out[0].startswith("@7 err 22 bad_check")
    # the check is over the whole line: one changed byte is caught
    out = r.send("@7 set depth 1.5*" + hex4(good))
    assert code_of(strip_check(out[0])) == E.BAD_CHECK
    assert r.config() == before


def test_sr9_request_id_without_check_is_refused():
    r = Rig()
    before = r.config()
    out = r.send("@3 set depth 1.0")
    assert code_of(strip_check(out[0])) == E.BAD_CHECK
    out = r.send("@ set depth 1.0")
    assert code_of(out[0]) == E.BAD_CHECK
    out = r.send("set depth 1.0*zzzz")
    assert code_of(out[0]) == E.BAD_CHECK
    assert r.config() == before


def test_retried_request_is_answered_from_cache_not_run_twice():
    r = Rig()
    calls = []

    def count(args):
        calls.append(1)
        return "n=%d" % len(calls)

    r.p.register("count", count)
    a = r.checked("9", "count")
    b = r.checked("9", "count")
    assert a == b == ["@9 ok n=1*" + a[0][-4:]]
    assert len(calls) == 1
    r.checked("10", "count")
    assert len(calls) == 2


def test_registry_needs_auth_and_help():
    r = Rig()
    r.p.register("secret", lambda args: "x=1", needs_auth=True, usage="secret")
    assert code_of(r.send("secret")[0]) == E.AUTH_REQUIRED
    r.p.is_authorized = lambda: True
    assert r.send("secret") == ["ok x=1"]
    assert "secret" in r.send("help")[0]
    assert r.send("help set") == ["ok usage: set KEY VALUE"]


def test_limits_set_needs_auth_until_security_exists():
    r = Rig()
    before = r.config()
    assert code_of(r.send("limits set max_depth 2.0")[0]) == E.AUTH_REQUIRED
    assert r.config() == before
    r.p.is_authorized = lambda: True
    assert r.send("limits set max_depth 2.0")[-1] == "ok max_depth=2.00"
    assert r.core.cfg.max_depth == 2000


def test_sr9_every_protocol_error_code_is_answered():
    r = Rig()
    cases = [
        ("frobnicate", E.UNKNOWN_COMMAND),
        ("get depth rate", E.BAD_ARGUMENTS),
        ("set depth 1,5", E.BAD_NUMBER),
        ("set speed 1", E.UNKNOWN_KEY),
        ("set depth 2.6", E.HARDWARE_LIMIT),
        ("set depth 2.0", E.CLINIC_LIMIT),
        ("set depth 1.02", E.RESOLUTION),
        ("x" * (MAX_LINE + 1), E.LINE_TOO_LONG),
        ("get\x00 depth", E.BAD_BYTES),
        ("get d\xe9pth", E.BAD_BYTES),
        ("@1 get*0000", E.BAD_CHECK),
        ("limits set max_rate 100", E.AUTH_REQUIRED),
    ]
    before = r.config()
    for line, code in cases:
        out = r.send(line)
        assert len(out) == 1, (line, out)
        body = strip_check(out[0]) if out[0][-5:-4] == "*" else out[0]
        assert code_of(body) == code, (line, out)
    assert r.config() == before
    # limit order: a clinic limit may not fall below the working setting
    r.p.is_authorized = lambda: True
    r.send("set depth 1.0")
    assert code_of(r.send("limits set max_depth 0.5")[0]) == E.LIMIT_ORDER
    # depth never changes under running needles
    r.core.state = C.ST_RUNNING
    assert code_of(r.send("set depth 0.5")[0]) == E.NOT_WHILE_RUNNING
    r.core.state = C.ST_IDLE
    # a latched fault whose cause is still there
    r.core.fault = FT.F_IMU_LOST
    r.core.inp.imu_ok = 0
    assert code_of(r.send("clear-fault")[0]) == E.FAULT_STILL_PRESENT
    # stall and hall loss: only a technician clears them (SR4)
    r.core.fault = FT.F_STALL
    r.p.is_authorized = lambda: False
    assert code_of(r.send("clear-fault")[0]) == E.AUTH_REQUIRED
    assert r.core.fault == FT.F_STALL
    r.p.is_authorized = lambda: True
    assert r.send("clear-fault")[0].startswith("ok")
    assert r.core.fault == FT.F_NONE
    # a partial line that never ends
    r.feed("get dep")
    r.advance(10001)
    out = r.lines()
    assert any(code_of(x) == E.LINE_TIMEOUT for x in out if x.startswith("err")), out
    # a failing handler is an internal error, not a crash

    def broken(args):
        raise ValueError("boom")

    r.p.register("broken", broken)
    assert code_of(r.send("broken")[0]) == E.INTERNAL


def test_rt_bytes_act_before_line_parsing():
    r = Rig()
    r.feed("get de!pth\n")  # STOP inside a line still stops at once
    assert r.stops == 1
    assert r.lines() == ["ok depth=0.50"]
    r.feed(b"\x03")
    assert r.stops == 2
    r.feed("?")
    out = r.lines()
    assert len(out) == 1 and strip_check(out[0]).startswith("? state=")


def test_events_on_state_fault_and_stop():
    r = Rig()
    r.core.state = C.ST_RUNNING
    r.advance(1)
    assert [strip_check(x) for x in r.lines()] == ["! state running"]
    r.core.state = C.ST_FAULT
    r.core.fault = FT.F_STALL
    r.core.stop_reason = C.STOP_FAULT
    r.advance(1)
    ev = [strip_check(x) for x in r.lines()]
    assert ev[0].startswith("! stop reason=fault")
    assert "! state fault" in ev and "! fault stall" in ev
    r.core.fault = 0
    r.core.state = C.ST_IDLE
    r.advance(1)
    ev = [strip_check(x) for x in r.lines()]
    assert "! fault_cleared" in ev
    r.core.state = C.ST_RUNNING
    r.advance(1)
    r.core.state = C.ST_IDLE
    r.core.stop_reason = C.STOP_SESSION
    r.lines()
    r.advance(1)
    ev = [strip_check(x) for x in r.lines()]
    assert any(x.startswith("! session_end") for x in ev), ev


def test_telemetry_100hz_numbers_every_frame():
    r = Rig()
    assert r.send("tel 100")[0].startswith("ok hz=100 period_ms=10")
    r.advance(1000)
    frames = [strip_check(x) for x in r.lines()]
    assert len(frames) == 100
    seqs = [int(f[1:].split()[0]) for f in frames]
    assert seqs == list(range(1, 101))
    assert len(frames[0].split()) == 9
    r.send("tel 0")
    r.advance(100)
    assert r.lines() == []
    assert code_of(r.send("tel 101")[0]) == E.BAD_ARGUMENTS


def test_heartbeat_dead_man_stops_the_drive():
    r = Rig()
    assert r.send("hb 200") == ["ok timeout_ms=200"]
    r.advance(150)
    r.send("hb")
    r.advance(150)
    assert r.stops == 0
    r.advance(60)
    assert r.stops == 1
    assert any(strip_check(x) == "! heartbeat_lost" for x in r.lines())
    r.advance(1000)
    assert r.stops == 1  # disarmed after it fired
    assert code_of(r.send("hb 50")[0]) == E.BAD_ARGUMENTS


def test_config_import_is_all_or_nothing():
    r = Rig()
    before = r.config()
    # one bad value: nothing applied
    assert code_of(r.send("config import depth=1.0 rate=999")[0]) == E.HARDWARE_LIMIT
    assert code_of(r.send("config import depth=1.0 rate=90 depth=1.0")[0]) == E.BAD_ARGUMENTS
    # changed clinic limits need a technician
    assert code_of(r.send("config import max_depth=2.0 depth=1.0")[0]) == E.AUTH_REQUIRED
    # working value above the imported clinic limit
    assert r.config() == before
    out = r.send("config import max_depth=1.50 depth=1.0 rate=90")
    assert out[-1].startswith("ok applied=3 hash=")
    assert r.core.cfg.depth == 1000 and r.core.cfg.rate == 90000
    exported = r.send("config")[0]
    assert "depth=1.00" in exported and "hash=" in exported


def test_identify_reports_versions_caps_and_config_hash():
    r = Rig()
    out = r.send("id")[0]
    for key in ("fw=", "proto=1", "board=test-board", "serial=SN1", "caps=", "cfg=", "image=none", "code=files"):
        assert key in out, out
    h1 = out.split("cfg=")[1].split()[0]
    r.send("set rate 90")
    h2 = r.send("id")[0].split("cfg=")[1].split()[0]
    assert h1 != h2


def test_sr9_error_flood_is_bounded():
    r = Rig()
    r.feed("x\n" * 500)
    out = r.lines()
    assert len(out) == ERR_BUDGET
    r.advance(100)
    ev = [strip_check(x) for x in r.lines()]
    assert ev == ["! flood suppressed_errors=%d" % (500 - ERR_BUDGET)]


def _lcg(seed):
    while True:
        seed = (seed * 1103515245 + 12345) & 0x7FFFFFFF
        yield seed >> 16


def test_sr9_fuzz_random_bytes_change_nothing_and_memory_stays_bounded():
    import gc

    r = Rig()
    r.core.request_stop = lambda: None
    before = r.config()
    rnd = _lcg(12345)
    alphabet = b"setdpthra 0123456789.@*\n\x00\xff-=limtsconfigimport"
    mem = getattr(gc, "mem_alloc", None)
    base = None
    for round_ in range(40):
        for _ in range(500):
            v = next(rnd)
            b = alphabet[v % len(alphabet)] if v & 0x100 else v & 0xFF
            if b == 0x3F:
                continue  # '?' answers a status line, tested elsewhere
            r.p.feed(b)
        r.advance(5)
        r.feed("\n")  # ends an echoed line (random CRs make a terminal of it)
        for line in r.lines():
            if line.endswith("\r"):
                continue  # a terminal's echo ends with CR LF
            assert line.startswith(("err ", "@", "! ", "~", "ok commands", "ok usage")) or line.startswith("ok "), line
            if line.startswith("@"):
                assert " err " in line, line
        gc.collect()
        if mem is not None:
            used = mem()
            if round_ == 5:
                base = used
            elif base is not None:
                assert used < base + 4096, (used, base)
    assert r.config() == before


def test_crc16_table_literal_is_the_polynomial():
    from pen.frame import TABLE

    assert len(TABLE) == 512
    for i in range(256):
        c = i << 8
        for _ in range(8):
            c = ((c << 1) ^ 0x1021) if c & 0x8000 else (c << 1)
        assert TABLE[2 * i] | (TABLE[2 * i + 1] << 8) == c & 0xFFFF, i


def test_sr9_messages_say_what_is_true():
    r = Rig()
    # the value as typed, never rounded to the shown decimals
    assert r.send("set depth 1.001") == ["err 12 resolution: depth 1.001 mm is not a multiple of the 0.05 mm step"]
    assert r.send("set depth 0.249")[0].endswith("depth 0.249 mm is not a multiple of the 0.05 mm step")
    # the limit-order refusal names both values and gives its advice once
    r.p.is_authorized = lambda: True
    r.send("set depth 1.0")
    msg = r.send("limits set max_depth 0.5")[0]
    assert msg == "err 13 limit_order: max_depth 0.50 mm below working depth 1.00 mm; lower depth first"
    assert msg.count("first") == 1
    # clear-fault with no fault says so; error 32 names the fault
    assert r.send("clear-fault") == ["ok fault=none cleared=0 (there was no fault to clear)"]
    r.core.fault = FT.F_IMU_LOST
    r.core.inp.imu_ok = 0
    msg = r.send("clear-fault")[0]
    assert code_of(msg) == E.FAULT_STILL_PRESENT and "fault imu_lost not cleared" in msg
    r.core.inp.imu_ok = 1
    r.core.imu_bad_ms = 0
    assert r.send("clear-fault") == ["ok fault=imu_lost cleared=1"]


def test_sr9_a_plain_terminal_gets_echo_backspace_and_any_case():
    # miniterm/picocom end a line with CR (Enter): from then on the lines a
    # person types are echoed and Backspace edits them
    r = Rig()
    assert r.send("ping") == ["ok"]  # a program's plain LF line: no echo
    r.feed("\r")  # Enter on an empty line: a terminal
    r.lines()
    r.feed("STATUS")
    assert b"".join(r.out) == b"STATUS"  # echoed as typed
    r.out.clear()
    r.feed("\x7f\x7f\x7f\x7f\x7f\x7fGet deptx\x08h\r")
    text = b"".join(r.out).decode()
    r.out.clear()
    assert text.startswith("\b \b" * 6 + "Get deptx\b \bh\r\n"), repr(text)
    assert text.endswith("ok depth=0.50\n"), repr(text)
    assert r.send("HELP").count("commands=") == 0  # LF-ended line below: echo, then the answer
    r.feed("help\r")
    text = b"".join(r.out).decode()
    r.out.clear()
    assert "commands=" in text and "set" in text.split("commands=")[1].split(",")
    # a framed line is never echoed, and ends the terminal mode
    body = "@7 get depth"
    r.feed(body + "*" + hex4(crc16(body.encode())) + "\n")
    assert [x for x in r.lines()] == ["@7 ok depth=0.50*" + hex4(crc16(b"@7 ok depth=0.50"))]
    r.feed("get\x7f depth\n")  # not a terminal any more: DEL voids the line
    assert code_of(r.lines()[0]) == E.BAD_BYTES


def test_sr9_a_plain_terminal_sees_its_first_line_too():
    # the first line typed at miniterm/picocom: the pen knows it is a
    # terminal only at the Enter (CR), and shows the line then, before the
    # answer; the lines after it are echoed as they are typed
    r = Rig()
    r.feed("ping\r")
    assert b"".join(r.out) == b"ping\r\nok\n"
    r.out.clear()
    r.feed("pi")
    assert b"".join(r.out) == b"pi"


def test_sr9_rt_status_flood_is_rate_limited():
    from pen.protocol import RT_STATUS_MS

    r = Rig()
    r.feed("?" * 50)  # a flood within one loop pass
    got = [x for x in r.lines() if x.startswith("? ")]
    assert len(got) == 1 and r.p.rt_skipped == 49
    r.now += RT_STATUS_MS - 1
    r.p.service(r.now)
    r.lines()
    r.feed("?")
    assert not [x for x in r.lines() if x.startswith("? ")] and r.p.rt_skipped == 50
    r.now += 1
    r.p.service(r.now)
    r.lines()
    r.feed("??")
    assert len([x for x in r.lines() if x.startswith("? ")]) == 1 and r.p.rt_skipped == 51
