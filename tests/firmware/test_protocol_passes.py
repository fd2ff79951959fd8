# The input side of the protocol in loop passes (DESIGN §7 loop budget): a pass's serial
# bytes fed in one call (Protocol.feed_from) and a request that comes in
# while the needles run served over passes, a part per pass
# (Protocol.defer, step()). Same bytes on the wire as a request served at
# once. Plain asserts: pytest and MicroPython (tests/firmware/mprun.py).
from pen.frame import crc16, hex4
from test_protocol_unit import Rig, _lcg

REQUESTS = (
    "status",
    "ping",
    "get",
    "get rate",
    "set rate 90",
    "set depth 0.6",
    "tel",
    "limits",
    "info",
    "id",
    "config",
    "help",
    "dict",
    "dict errors",
    "dict limits",
    "bogus",
    "status x",
)


def framed(rid, body):
    head = ("@%s %s" % (rid, body)).encode()
    return head + b"*" + hex4(crc16(head)).encode() + b"\n"


def out_bytes(r):
    data = b"".join(r.out)
    r.out.clear()
    return data


def served_over_passes(r, data):
    """Feeds data in one call, then steps the request to its end; the
    output of the feed and the number of steps it took."""
    r.p.feed_from(data, len(data))
    at_once = out_bytes(r)
    steps = 0
    while r.p.busy():
        r.p.step()
        steps += 1
        assert steps < 50, "a request never ends"
    return at_once, steps


def running_rig(defer):
    r = Rig()
    r.core.running = 1
    r.p.defer = defer
    return r


def test_sr9_feed_from_gives_the_bytes_of_feed_in_any_chunks():
    # lines, typed terminal lines with echo and Backspace, real-time bytes,
    # control bytes and overlong lines: the same output and state whether
    # the bytes come one at a time or in chunks of any size
    rnd = _lcg(777)
    alphabet = b"status ping get rate set 90 @1*AB \n\r\x08\x7f\x00\xff!help limits"
    stream = bytearray()
    for _ in range(3000):
        v = next(rnd)
        stream.append(alphabet[v % len(alphabet)] if v & 0x300 else v & 0xFF)
    stream += b"x" * 200 + b"\n" + framed("7", "ping") + b"get dep"
    one, chunked = Rig(), Rig()
    for r in (one, chunked):
        r.core.request_stop = lambda: None
    for b in stream:
        one.p.feed(b)
    i = 0
    while i < len(stream):
        k = 1 + next(rnd) % 70
        chunk = bytearray(stream[i : i + k])
        chunked.p.feed_from(chunk, len(chunk))
        i += k
    assert out_bytes(one) == out_bytes(chunked)
    for attr in ("n", "partial", "term", "echo", "overflow", "bad_byte", "ignored", "bad_checks"):
        assert getattr(one.p, attr) == getattr(chunked.p, attr), attr
    assert bytes(one.p.buf[: one.p.n]) == bytes(chunked.p.buf[: chunked.p.n])


def test_sr9_feed_from_reads_only_the_first_n_bytes():
    r = Rig()
    data = bytearray(b"ping\nstatus\n")
    r.p.feed_from(data, 5)
    assert r.lines() == ["ok"]


def test_request_while_running_is_served_over_passes_with_the_same_bytes():
    for rid, body in [("1", req) for req in REQUESTS] + [(None, "ping"), (None, "status")]:
        data = framed(rid, body) if rid is not None else (body + "\n").encode()
        now, later = running_rig(0), running_rig(1)
        want = b""
        now.p.feed_from(data, len(data))
        want = out_bytes(now)
        at_once, steps = served_over_passes(later, data)
        assert at_once == b"", (body, at_once)  # nothing in the pass the line ends in
        assert steps >= 2, (body, steps)  # the check, the reply: passes of their own
        assert out_bytes(later) == want, (body, want)


def test_status_while_running_is_spread_over_more_passes_than_ping():
    _, ping = served_over_passes(running_rig(1), framed("1", "ping"))
    _, status = served_over_passes(running_rig(1), framed("2", "status"))
    assert status >= ping + 4, (ping, status)  # its five parts and the status parts


def test_design7_the_pass_that_reads_a_line_while_running_only_puts_it_aside():
    # the line's end while the needles run costs no parsing in that pass
    # (it was the longest pass of a request on the chip): the next step()
    # classifies it and starts it
    r = running_rig(1)
    seen = []
    classify = r.p._classify
    r.p._classify = lambda buf, n: seen.append(n) or classify(buf, n)
    data = framed("1", "status")
    r.p.feed_from(data, len(data))
    assert (seen, r.p.fast, r.p.job, out_bytes(r)) == ([], 0, None, b"")
    assert r.p.pending_n == len(data) - 1 and r.p.busy()
    r.p.step()
    assert seen == [len(data) - 1] and r.p.pending_n == 0 and r.p.fast
    while r.p.busy():
        r.p.step()
    assert out_bytes(r).startswith(b"@1 ok state=")


def test_a_line_put_aside_while_running_is_served_when_the_drive_stops_first():
    for body in ("status", "get rate"):
        now, later = running_rig(0), running_rig(1)
        data = framed("3", body)
        now.core.running = 0
        now.p.feed_from(data, len(data))
        later.p.feed_from(data, len(data))
        later.core.running = 0  # stopped before the next pass
        later.p.step()
        assert not later.p.busy() and out_bytes(later) == out_bytes(now), body


def test_rt_status_while_a_line_is_put_aside_answers_the_line_first():
    r = running_rig(1)
    data = framed("4", "ping") + b"?"
    r.p.feed_from(data, len(data))
    while r.p.busy():
        r.p.step()
    lines = out_bytes(r).decode().split("\n")
    assert lines[0].startswith("@4 ok*") and lines[1].startswith("? state="), lines


def test_request_while_idle_is_served_at_once():
    r = running_rig(1)
    r.core.running = 0
    at_once, steps = served_over_passes(r, framed("1", "status"))
    assert steps == 0 and at_once.startswith(b"@1 ok state=")


def test_sr9_stop_acts_at_once_while_a_request_is_being_served():
    r = running_rig(1)
    stops = []
    r.core.request_stop = lambda: stops.append(1)
    r.p.feed_from(framed("1", "status"), len(framed("1", "status")))
    r.p.step()
    assert r.p.busy()
    r.p.feed_from(bytearray(b"!"), 1)
    assert stops == [1]  # before the request's reply is out
    while r.p.busy():
        r.p.step()
    assert out_bytes(r).startswith(b"@1 ok state=")


def test_a_second_request_while_one_is_served_is_answered_in_order():
    r = running_rig(1)
    data = framed("1", "status") + framed("2", "ping")
    r.p.feed_from(data, len(data))  # the second line ends: the first is answered first
    while r.p.busy():
        r.p.step()
    lines = out_bytes(r).decode().split("\n")
    assert lines[0].startswith("@1 ok state="), lines
    assert lines[1].startswith("@2 ok*"), lines


def test_a_retried_request_while_running_gets_the_same_answer():
    r = running_rig(1)
    data = framed("5", "set rate 90")
    served_over_passes(r, data)
    first = out_bytes(r).split(b"\n")
    assert first[0].startswith(b"! config hash="), first  # the change happened once
    at_once, _ = served_over_passes(r, data)
    assert at_once + out_bytes(r) == first[1] + b"\n"  # the same answer, no second change


def test_rt_status_while_running_is_answered_over_passes_with_the_same_bytes():
    now, later = running_rig(0), running_rig(1)
    now.p.feed_from(bytearray(b"?"), 1)
    at_once, steps = served_over_passes(later, bytearray(b"?"))
    assert at_once == b"" and steps >= 4, (at_once, steps)
    want = out_bytes(now)
    assert want.startswith(b"? state=") and out_bytes(later) == want


def _heap_lock():
    try:
        import micropython  # type: ignore[import-not-found]

        return micropython.heap_lock, micropython.heap_unlock
    except (ImportError, AttributeError):  # CPython: the bytes are checked
        return (lambda: None), (lambda: None)


def test_design7_a_run_serves_its_request_budget_of_str_replies_then_refuses_without_heap():
    # requests answered from str while the needles run make garbage and no
    # collection may run then (~12 ms on the chip: the dead-man): a run
    # serves RUN_REQUESTS of them, then refuses the next with
    # NOT_WHILE_RUNNING, built in place (no heap: heap_lock under
    # MicroPython), with its id and check. hb, ping, status and '?' are
    # answered without heap and never count: a host polls them for the
    # whole run, before and after the budget is spent. STOP still acts; the
    # count starts again when the drive stops (pen/runtime.py)
    from pen.protocol import RUN_BUDGET_TEXT, RUN_REQUESTS

    r = running_rig(1)
    for k in range(RUN_REQUESTS):
        for body in ("hb", "status", "ping"):
            served_over_passes(r, framed("%s%d" % (body[0], k), body))
            assert r.lines()[-1].startswith("@%s%d ok" % (body[0], k)), body
        r.p.now += 25
        served_over_passes(r, bytearray(b"?"))
        assert r.lines()[-1].startswith("? state="), k
        served_over_passes(r, framed(str(k), "get rate"))
        assert r.lines()[-1].startswith("@%d ok rate=" % k)
    assert r.p.run_served == RUN_REQUESTS
    cap = bytearray(600)
    got = [0]

    def sink(d):
        n = got[0]
        for j in range(len(d)):
            cap[n + j] = d[j]
        got[0] = n + len(d)

    r.p.write = sink
    r.p.write_now = 1
    lock, unlock = _heap_lock()
    cases = (
        (bytearray(framed("99", "get rate")), framed("99", RUN_BUDGET_TEXT)),
        (bytearray(b"info\n"), (RUN_BUDGET_TEXT + "\n").encode()),
        (bytearray(framed("98", "status")), b"@98 ok state="),
        (bytearray(b"hb\n"), b"ok timeout_ms=0\n"),
        (bytearray(framed("97", "ping")), framed("97", "ok")),
    )
    for line, want in cases:
        got[0] = 0
        lock()
        try:
            r.p.feed_from(line, len(line))
            while r.p.busy():
                r.p.step()
        finally:
            unlock()
        assert bytes(cap[: got[0]]).startswith(want), (line, bytes(cap[: got[0]]))
    assert "not_while_running" in RUN_BUDGET_TEXT and RUN_BUDGET_TEXT.startswith("err 30 ")
    assert r.p.run_served == RUN_REQUESTS
    r.p.feed(0x21)  # '!': STOP acts whatever the budget
    assert r.stops == 1
    # ... and the request that confirms it (penctl stop) is served
    r.core.host_stop = 1  # what request_stop sets until the tick acts
    r.p.write = r.out.append
    r.p.write_now = 0
    served_over_passes(r, framed("101", "stop"))
    assert "not_while_running" not in r.lines()[-1]
    r.core.host_stop = 0
    r.p.run_served = 0  # the drive stopped: pen/runtime.py resets the count
    served_over_passes(r, framed("100", "get rate"))
    assert r.lines()[-1].startswith("@100 ok rate=")


def test_design7_a_bad_check_on_a_fast_request_counts_in_the_budget_only_while_running():
    # a line that looks like hb/ping/status but fails its check is answered
    # from str (err 22): while running it counts in the run's budget, idle
    # it does not (the next run starts with its whole budget)
    bad = bytearray(b"@5 ping*0000\n")
    r = running_rig(1)
    served_over_passes(r, bad)
    assert r.lines()[-1].startswith("@5 err 22 "), r.lines()
    assert r.p.run_served == 1
    r = running_rig(1)
    r.core.running = 0
    at_once, _ = served_over_passes(r, bad)  # idle: answered at once
    assert at_once.startswith(b"@5 err 22 "), at_once
    assert r.p.run_served == 0


def feed_held(r, data):
    """The runtime's loop (pen/runtime.py step): feed_from stops after a
    held line, serve_held() serves it, the rest of the bytes follow."""
    i = r.p.feed_from(data, len(data))
    lines = 0
    while r.p.held_line:
        n = len(r.out)
        r.p.serve_held()  # its answer comes from here, not from feed_from
        assert len(r.out) > n and not r.p.held_line and not r.p.busy()
        lines += 1
        if i < len(data):
            i = r.p.feed_from(data, len(data), i)
    return lines


def test_sr9_a_line_held_for_the_pass_gets_the_bytes_of_one_served_at_once():
    """Protocol.hold (the runtime): a line ended with the drive off is held
    and served from the loop pass (a shallower C stack under its flash
    write), not from inside feed_from. Same bytes, same order, lines and
    real-time bytes of one chunk alike; a line fed by feed() alone is served
    by the next step()."""
    stream = b"".join(framed(str(k), req) for k, req in enumerate(REQUESTS)) + b"ping\n?status\nget rate\n"
    at_once, held = Rig(), Rig()
    held.p.hold = 1
    at_once.p.feed_from(bytearray(stream), len(stream))
    # status, ping and ? are answered without heap at once (_start_fast):
    # the other lines are held
    assert feed_held(held, bytearray(stream)) == len(REQUESTS) - 2 + 1
    assert out_bytes(held) == out_bytes(at_once)
    r = Rig()
    r.p.hold = 1
    for b in b"get rate\n":
        r.p.feed(b)
    assert r.p.held_line and not r.out
    r.p.step()
    assert r.lines()[0].startswith("ok rate=") and not r.p.held_line and not r.p.busy()


def runtime_rig():
    """As pen/runtime.py sets the protocol up on the RP2040: requests over
    passes, the writes taken before they return (write_now: each is copied
    here), a reply's pieces written by service_telemetry."""
    r = running_rig(1)
    writes = []
    r.p.write = lambda data: writes.append(bytes(data))
    r.p.write_now = 1
    r.p.tel_writes = 1
    return r, writes


def test_design7_a_long_reply_while_running_is_written_in_pieces_and_no_line_cuts_it():
    # info is ~560 bytes: on the chip one write of it took ~1.1 ms of a
    # pass; while the needles run it goes out 2 * OUT_MAX bytes at most per
    # telemetry pass, and the telemetry frame due meanwhile waits for its end
    want = running_rig(0)
    data = framed("5", "info")
    want.p.feed_from(data, len(data))
    reply = out_bytes(want)
    assert len(reply) > 2 * 128, len(reply)
    r, writes = runtime_rig()
    r.p.service_telemetry(r.now)
    r.p.feed_from(b"tel 100\n", 8)
    while r.p.busy():
        r.p.step()
        r.p.service_telemetry(r.now)
    del writes[:]
    r.p.feed_from(data, len(data))
    pieces = 0
    for _ in range(80):
        r.now += 5
        r.p.now = r.now
        r.p.step()
        was = r.p.wr_n
        r.p.service_telemetry(r.now)
        if was:
            pieces += 1
            assert r.p.wr_n == 0 or r.p.wr_n == was, "one piece per telemetry pass"
        if not r.p.busy():
            break
    assert not r.p.busy()
    for _ in range(3):  # the frame that waited
        r.now += 5
        r.p.service_telemetry(r.now)
    assert pieces == (len(reply) + 255) // 256, (pieces, len(reply))
    assert all(len(w) <= 256 for w in writes), [len(w) for w in writes]
    stream = b"".join(writes)
    k = stream.index(reply[:8])
    assert stream[k : k + len(reply)] == reply, "the reply was cut by another line"
    assert stream[k + len(reply) :].startswith(b"~"), "the telemetry frame after the reply"


def test_design7_an_unprompted_line_during_a_reply_in_pieces_writes_the_reply_first():
    want = running_rig(0)
    data = framed("6", "info")
    want.p.feed_from(data, len(data))
    reply = out_bytes(want)
    r, writes = runtime_rig()
    r.p.feed_from(data, len(data))
    while not r.p.wr_n:
        r.p.step()
    r.p.service_telemetry(r.now)  # the first piece
    assert 0 < r.p.wr_n and r.p.wr_k
    r.p.event("state state=ready")  # e.g. the drive stopped: the reply's rest first
    stream = b"".join(writes)
    assert stream.startswith(reply) and stream[len(reply) :].startswith(b"! state"), stream
    assert r.p.wr_n == 0
    while r.p.busy():
        r.p.step()
    assert b"".join(writes).count(b"@6 ok") == 1


def test_dict_served_in_steps_gives_the_tables_of_dictionary():
    # `dict TABLE` is built an item a step (served while the needles run);
    # the text is the data dictionary's (tools/gen_tables.py reads that)
    from pen.protocol import DICT_TABLES, dictionary

    want = dict(dictionary())
    assert tuple(name for name, _ in dictionary()) == DICT_TABLES
    for name in DICT_TABLES:
        r = running_rig(1)
        at_once, steps = served_over_passes(r, framed("9", "dict " + name))
        line = out_bytes(r).decode().split("*")[0]
        assert line == "@9 ok " + name + "=" + want[name], (name, line)
